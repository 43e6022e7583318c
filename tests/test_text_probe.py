"""The text probe (`vla text-probe`): a reader trained on frozen MiniLM features of training
wordings names the goal of wordings it never saw."""

from __future__ import annotations

import pytest

from vla_policy.eval.text_probe import text_probe


def test_a_reader_names_the_goal_of_fresh_training_wordings_and_reports_heldout_per_skill():
    result = text_probe(
        templates=24,
        fresh=4,
        steps=300,
        seeds=1,
        readers=("tokens", "tokens-max", "tokens-per-layer", "sentence-knn"),
        layers=(3, (3, 5)),
        heldout_per_skill=8,
    )
    assert result["wordings"] == {"train": 24 * 24, "fresh_train": 4 * 24, "heldout": 8 * 24}
    tokens = result["readers"]["tokens (tokens of layer 3)"]
    assert tokens["fresh_train"] >= 0.9, tokens  # 24 goals: chance is 1/24
    assert set(tokens["heldout_per_skill"]) == {"pick", "stack", "push"}
    run = tokens["runs"][0]["heldout"]
    assert run["total"] == 8 * 24 and 0 <= run["wilson95"][0] <= run["rate"] <= run["wilson95"][1] <= 1
    assert result["readers"]["tokens (tokens of layers 3+5)"]["fresh_train"] >= 0.9  # two layers side by side
    assert result["readers"]["tokens-per-layer (tokens of layers 3+5)"]["fresh_train"] >= 0.9  # a query each
    assert result["readers"]["tokens-max (tokens of layer 3)"]["fresh_train"] >= 0.9  # the policy's goal reader
    assert result["readers"]["sentence-knn"]["fresh_train"] > 0.5
    # Per word order: each held-out frame of each skill, its wordings adding up to the whole split.
    per_frame = run["per_frame"]
    assert {order.split(":")[0] for order in per_frame} == {"heldout pick", "heldout stack", "heldout push"}
    assert sum(r["total"] for r in per_frame.values()) == run["total"]
    assert sum(r["hits"] for r in per_frame.values()) == run["hits"]
    assert set(tokens["heldout_per_frame"]) == set(per_frame)
    assert 0 <= run["stack_roles_swapped"] <= run["per_skill"]["stack"]["total"] - run["per_skill"]["stack"]["hits"]


def test_a_stack_goal_read_with_its_cubes_swapped_is_counted_as_a_role_swap():
    from sim.tasks import get_task
    from vla_policy.eval.text_probe import _swapped

    goals = get_task("tabletop").grammar.goals()
    swapped = _swapped(goals)
    stacks = [g for g in goals if g.skill == "stack"]
    assert int(swapped.sum()) == len(stacks)  # every stack goal has exactly one role swap
    a = goals.index(stacks[0])
    b = next(i for i, g in enumerate(goals) if (g.target, g.place_on) == (stacks[0].place_on, stacks[0].target))
    assert swapped[a, b] and swapped[b, a] and not swapped[a, a]


def test_unknown_readers_and_layers_are_refused():
    with pytest.raises(ValueError, match="unknown readers"):
        text_probe(readers=("bag-of-words",))
    with pytest.raises(ValueError, match="layers"):
        text_probe(layers=(0,))
    with pytest.raises(ValueError, match="layers"):
        text_probe(layers=((3, 7),))


def test_a_goal_reading_checkpoint_is_scored_by_its_own_reader_on_the_probes_wordings(tmp_path, tiny_checkpoint):
    from sim.env import EnvConfig
    from vla_policy.config import load_config
    from vla_policy.data.collect import collect
    from vla_policy.eval.text_probe import ProbeWordings, checkpoint_reading
    from vla_policy.policy import Policy
    from vla_policy.train.trainer import Trainer

    demos = tmp_path / "pick.hdf5"
    collect("pick", 2, demos, seed=3, config=EnvConfig(task="pick", image_size=32))
    overrides = ["train.steps=2", "train.val_fraction=0", "train.reword_templates=8", "model.text.condition=goal"]
    Trainer(load_config("tiny", [f"train.dataset={demos}", f"train.out={tmp_path / 'run'}", *overrides])).train()
    checkpoint = tmp_path / "run" / "checkpoints" / "last"
    result = checkpoint_reading(str(checkpoint), fresh=3, heldout_per_skill=5)
    wordings = ProbeWordings("pick", 8, 3, 0, 5)
    assert result["wordings"] == {"train": 8 * 4, "fresh_train": 3 * 4, "heldout": 5 * 4} and result["goals"] == 4
    policy = Policy.from_checkpoint(checkpoint, device="cpu")  # the same reader, one wording at a time
    texts, labels = wordings.sets["heldout"]
    hits = sum(policy.read_goal(text)[0] == int(label) for text, label in zip(texts, labels))
    assert result["reader"]["heldout"]["hits"] == hits and result["reader"]["heldout"]["total"] == len(texts)
    with pytest.raises(ValueError, match="reads no goal"):
        checkpoint_reading(str(tiny_checkpoint))


def test_a_tuned_reader_trains_minilm_layers_below_the_one_it_reads():
    import copy

    import torch

    from vla_policy.eval.text_probe import Reader
    from vla_policy.models.text import MiniLM

    backbone = MiniLM()
    tuned = copy.deepcopy(backbone.layers[1:3]).requires_grad_(True)  # layers 2 and 3, read from layer 1
    reader = Reader("tokens-tuned", goals=4, tuned=tuned)
    tokens, mask = torch.randn(2, 5, 384), torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    reader(tokens, mask, None).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in tuned.parameters())
    untuned = Reader("tokens", goals=4)
    untuned.load_state_dict({k: v for k, v in reader.state_dict().items() if not k.startswith("tuned.")})
    assert not torch.allclose(untuned(tokens, mask, None), reader(tokens, mask, None))  # the layers run first
    with pytest.raises(ValueError, match="tokens-tuned"):
        text_probe(readers=("tokens-tuned",), layers=((3, 5),))
