"""The goal reader fitted on text alone (`train.reader`, `vla reader`): it names the goal of every
training wording, the policy downstream of the goal is left as it was, and the one training
command gives what `vla reader` gives on the run's reader-less checkpoint."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from sim.env import EnvConfig
from vla_policy.config import load_config
from vla_policy.data.collect import collect
from vla_policy.data.rewording import WordingPool
from vla_policy.models.build import build_model
from vla_policy.train.checkpoint import CheckpointError, load_checkpoint
from vla_policy.train.reader import READER_PREFIXES, fit_checkpoint_reader, fit_reader
from vla_policy.train.trainer import Trainer

GOAL_READING = ["model.text.kind=minilm", "model.text.condition=goal", "model.aux.goal=1.0"]


def _read_right(model, wordings: WordingPool) -> float:
    ids, mask = wordings.ids.flatten(0, 1), wordings.mask.flatten(0, 1)
    labels = torch.arange(len(wordings.goals)).repeat_interleave(wordings.ids.shape[1])
    return float((model.read_goal(ids, mask).argmax(-1) == labels).float().mean())


def test_a_reader_fitted_on_text_alone_names_every_goal_and_leaves_the_policy_as_it_was():
    wordings = WordingPool("tabletop", 8, 24, seed=0)
    config = load_config("tiny", [*GOAL_READING, f"model.text.goals={len(wordings.goals)}"]).model
    model = build_model(config, 18).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert _read_right(model, wordings) < 0.2  # untrained: about one goal in 24

    report = fit_reader(model, wordings, minilm_layer=3, steps=200, seed=0)

    assert report["wordings_read"] == f"{len(wordings.goals) * 8}/{len(wordings.goals) * 8}"
    assert _read_right(model, wordings) == 1.0 and model.text.minilm_layer == 3
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(READER_PREFIXES) for k in changed)
    assert "goal_reader.embed" not in changed  # what the policy does for each goal stays as trained


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    out = tmp_path_factory.mktemp("reader") / "tabletop.hdf5"
    collect("tabletop", 2, out, seed=3, config=EnvConfig(task="tabletop", image_size=32))
    return out


def _run(demos, out, *extra):
    overrides = [
        *GOAL_READING,
        f"train.dataset={demos}",
        f"train.out={out}",
        "train.steps=4",
        "train.eval_every=4",
        "train.val_fraction=0",
        "train.reword_templates=8",
        *extra,
    ]
    return load_config("tiny", overrides)


def test_training_fits_the_reader_last_and_the_cli_fits_the_same_reader(demos, tmp_path):
    fitted = Trainer(_run(demos, tmp_path / "fitted", "train.reader.steps=300", "train.reader.minilm_layer=3"))
    fitted.train()
    last = tmp_path / "fitted" / "checkpoints" / "last"
    model, config, _, meta = load_checkpoint(last)
    assert config.model.text.minilm_layer == 3 and meta["reader_fit"]["minilm_layer"] == 3
    assert _read_right(model, fitted.wordings) == 1.0
    # resuming the finished run neither trains nor fits again
    again = Trainer(_run(demos, tmp_path / "fitted", "train.reader.steps=300", "train.reader.minilm_layer=3"), True)
    assert again.config.model.text.minilm_layer == 3
    again.train()
    assert json.loads((last / "meta.json").read_text())["reader_fit"] == meta["reader_fit"]
    longer = _run(demos, tmp_path / "fitted", "train.steps=8", "train.reader.steps=300", "train.reader.minilm_layer=3")
    with pytest.raises(CheckpointError, match="fitted on text alone"):
        Trainer(longer, resume=True)

    # the same run without the fit, then `vla reader` on its checkpoint: the same weights
    Trainer(_run(demos, tmp_path / "joint")).train()
    joint = tmp_path / "joint" / "checkpoints" / "last"
    report = fit_checkpoint_reader(joint, tmp_path / "refit", steps=300, minilm_layer=3)
    assert report["reader_fit"] == {k: v for k, v in meta["reader_fit"].items() if k != "seconds"}
    ours, theirs = load_file(str(tmp_path / "refit" / "model.safetensors")), load_file(str(last / "model.safetensors"))
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    refit_config = json.loads((tmp_path / "refit" / "config.json").read_text())
    assert refit_config["model"]["text"]["minilm_layer"] == 3 and refit_config["train"]["reader"]["steps"] == 300
    # a model that reads no goal has no reader to fit
    Trainer(_run(demos, tmp_path / "plain", "model.text.condition=mean", "model.aux.goal=0")).train()
    with pytest.raises(ValueError, match="condition=goal"):
        fit_checkpoint_reader(tmp_path / "plain" / "checkpoints" / "last", tmp_path / "nope")
