"""Training: checkpoints load to identical outputs, resume is exact, DDP matches one process."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch

from sim.env import EnvConfig
from tests.model_utils import PROPRIO_DIM, fit, random_batch, random_obs, tiny_model_config
from vla_policy.config import load_config
from vla_policy.data.collect import collect
from vla_policy.models.vla import VLAModel
from vla_policy.train.augment import prepare_batch
from vla_policy.train.checkpoint import CheckpointError, load_checkpoint
from vla_policy.train.trainer import Trainer


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "pick.hdf5"
    collect("pick", 3, out, seed=7, config=EnvConfig(task="pick", image_size=32))
    return out


def _config(demos, out, **train):
    overrides = [
        f"train.dataset={demos}",
        f"train.out={out}",
        "train.steps=8",
        "train.eval_every=4",
        "train.log_every=1",
        "train.val_fraction=0.34",
    ] + [f"train.{k}={v}" for k, v in train.items()]
    return load_config("tiny", overrides)


def _metrics(out) -> dict[int, float]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["total"] for r in rows if "total" in r}


def test_save_load_gives_identical_outputs(demos, tmp_path):
    trainer = Trainer(_config(demos, tmp_path / "run"))
    trainer.train()
    model, config, stats, meta = load_checkpoint(tmp_path / "run" / "checkpoints" / "last")
    assert meta["step"] == 8 and meta["proprio_dim"] == PROPRIO_DIM and config == trainer.config
    batch = random_batch(config.model)
    expected = trainer.ema.module.eval().sample_actions(batch, torch.Generator().manual_seed(0))
    assert torch.equal(model.sample_actions(batch, torch.Generator().manual_seed(0)), expected)
    assert (tmp_path / "run" / "checkpoints" / "best" / "model.safetensors").exists()


def test_keep_every_keeps_numbered_checkpoints_that_load_as_trained(demos, tmp_path):
    trainer = Trainer(_config(demos, tmp_path / "run", keep_every=4))
    trainer.train()
    ckpts = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["best", "last", "step_000004", "step_000008"]
    _, _, meta = load_checkpoint(ckpts / "step_000004")[1:]
    assert meta["step"] == 4
    final, *_ = load_checkpoint(ckpts / "step_000008")
    batch = random_batch(final.config)
    expected = trainer.ema.module.eval().sample_actions(batch, torch.Generator().manual_seed(0))
    assert torch.equal(final.sample_actions(batch, torch.Generator().manual_seed(0)), expected)
    with pytest.raises(ValueError, match="multiple of eval_every"):
        Trainer(_config(demos, tmp_path / "odd", keep_every=6))


def test_resume_continues_exactly(demos, tmp_path):
    Trainer(_config(demos, tmp_path / "straight")).train()
    Trainer(_config(demos, tmp_path / "split")).train(until=4)
    Trainer(_config(demos, tmp_path / "split"), resume=True).train()
    straight, split = _metrics(tmp_path / "straight"), _metrics(tmp_path / "split")
    assert sorted(split) == list(range(1, 9))
    for step in range(1, 9):
        assert split[step] == straight[step], step


def test_a_save_killed_mid_way_leaves_a_checkpoint_that_resumes_exactly(demos, tmp_path):
    """A kill while `last.tmp` is written leaves `last` intact; a kill between the two renames
    leaves only `last.old`. Either way resume continues as if nothing happened."""
    Trainer(_config(demos, tmp_path / "straight")).train()
    straight = _metrics(tmp_path / "straight")
    for where in ("writing", "swapping"):
        run = tmp_path / where
        Trainer(_config(demos, run)).train(until=4)
        last = run / "checkpoints" / "last"
        (run / "checkpoints" / "last.tmp").mkdir()
        (run / "checkpoints" / "last.tmp" / "model.safetensors").write_bytes(b"half a file")
        if where == "swapping":
            os.replace(last, last.with_name("last.old"))
        assert load_checkpoint(last)[3]["step"] == 4
        Trainer(_config(demos, run), resume=True).train()
        split = _metrics(run)
        assert all(split[step] == straight[step] for step in range(1, 9)), where
        assert sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.startswith("last")) == ["last"]


def test_resume_with_another_config_is_refused(demos, tmp_path):
    Trainer(_config(demos, tmp_path / "run")).train(until=4)
    with pytest.raises(CheckpointError, match="config differs in .*train.lr"):
        Trainer(_config(demos, tmp_path / "run", lr=0.1), resume=True)


def test_resume_on_other_data_under_the_same_path_is_refused(demos, tmp_path):
    """The config names the dataset by path; a file re-collected under that path is other data
    (its fingerprint differs), and resuming would silently mix the two."""
    data = tmp_path / "demos.hdf5"
    shutil.copy(demos, data)
    Trainer(_config(data, tmp_path / "run")).train(until=4)
    data.unlink()
    collect("pick", 3, data, seed=8, config=EnvConfig(task="pick", image_size=32))
    with pytest.raises(CheckpointError, match="trained on different data"):
        Trainer(_config(data, tmp_path / "run"), resume=True)


def test_loading_into_another_config_is_a_clear_error(demos, tmp_path):
    Trainer(_config(demos, tmp_path / "run")).train(until=4)
    ckpt = tmp_path / "run" / "checkpoints" / "last"
    config = json.loads((ckpt / "config.json").read_text())
    config["model"]["d_model"] = 64
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="weights do not match this model's config"):
        load_checkpoint(ckpt)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "nope")


# ------------------------------------------------------------------------ DDP
def test_torchrun_two_ranks_train_as_one_process_with_the_same_global_batch(demos, tmp_path, vla_cmd):
    """`vla train` under torchrun (2 ranks, gloo on CPU, 4 samples each) trains as one process
    taking 8: at every step the global batch's loss and gradient norm are the same, so each rank
    read its own half of that step's batch and the gradients were averaged; rank 0 alone writes.
    Randomness (augmentation, camera dropout, flow noise) is off, since two ranks draw other noise
    than one process does."""
    import subprocess
    import sys

    from safetensors.torch import load_file

    def train(out, batch_size, launcher):
        args = [
            *launcher,
            "train",
            "--config",
            "tiny",
            f"train.dataset={demos}",
            f"train.out={out}",
            f"train.batch_size={batch_size}",
            "train.steps=3",
            "train.eval_every=3",
            "train.log_every=1",
            "train.augment=false",
            "train.camera_dropout=0",
            "model.head=discrete",
        ]
        done = subprocess.run(args, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    train(tmp_path / "one", 8, vla_cmd)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    two = train(tmp_path / "two", 4, [*torchrun, "-m", "vla_policy.cli"])
    assert json.loads(two)["step"] == 3  # one report: rank 0's
    one_rows, two_rows = ([json.loads(x) for x in (tmp_path / r / "metrics.jsonl").open()] for r in ("one", "two"))
    one_steps, two_steps = ([r for r in rows if "total" in r] for rows in (one_rows, two_rows))
    assert [r["step"] for r in two_steps] == [1, 2, 3]  # one writer: one line per step
    for a, b in zip(one_steps, two_steps, strict=True):
        for key in ("total", "grad_norm"):
            assert b[key] == pytest.approx(a[key], rel=1e-5), (a["step"], key)
    assert one_steps[0]["total"] != one_steps[1]["total"]  # each step a different batch
    ckpt = tmp_path / "two" / "checkpoints" / "last"
    # The weights agree to Adam's step on rounding noise: attention key biases get no gradient
    # (softmax ignores them) and Adam moves them up to lr a step in the noise's direction.
    weights_one = load_file(str(tmp_path / "one" / "checkpoints" / "last" / "model.safetensors"))
    for k, v in load_file(str(ckpt / "model.safetensors")).items():
        assert torch.allclose(v, weights_one[k], atol=3 * 3e-4), k
    # Rank 1's RNG state travels in the checkpoint, so a resumed job continues its stream.
    assert "rng.rank1.torch" in load_file(str(ckpt / "train_state.safetensors"))
    assert two_steps[-1]["samples_per_s"] > 0


def test_a_rank_drives_the_gpu_of_its_local_rank(monkeypatch):
    from vla_policy.train.distributed import Distributed

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert Distributed(rank=5, local_rank=1, world=8).device == torch.device("cuda", 1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert Distributed(rank=5, local_rank=1, world=8).device == torch.device("cpu")


def test_vla_train_cli_end_to_end(demos, tmp_path, vla_cmd):
    import subprocess

    out = tmp_path / "cli"
    args = [
        *vla_cmd,
        "train",
        "--config",
        "tiny",
        f"train.dataset={demos}",
        f"train.out={out}",
        "train.steps=4",
        "train.eval_every=2",
        "model.head=discrete",
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["step"] == 4
    assert (out / "config.yaml").exists() and (out / "checkpoints" / "last" / "model.safetensors").exists()
    bad = subprocess.run(
        [*vla_cmd, "train", "--config", "tiny", "model.haed=x"], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and "did you mean 'head'" in bad.stderr


def test_language_blind_baseline_trains_and_ignores_the_instruction(demos, tmp_path):
    from vla_policy.policy import Policy

    config = load_config(
        "tiny",
        [
            f"train.dataset={demos}",
            f"train.out={tmp_path}",
            "train.steps=6",
            "train.eval_every=6",
            "train.val_fraction=0.34",
            "model.architecture=conv_bc",
        ],
    )
    Trainer(config).train()
    policy = Policy.from_checkpoint(tmp_path / "checkpoints" / "last", device="cpu")
    obs = random_obs()
    red = policy.predict_chunk(obs, "pick up the red cube").actions
    blue = policy.predict_chunk(obs, "pick up the blue cube").actions
    assert red.shape == (config.model.chunk, 7) and torch.isfinite(torch.from_numpy(red)).all()
    assert (red == blue).all()  # it never reads the instruction


def test_device_resident_windows_match_the_episode(demos):
    from vla_policy.data.demos import compute_stats, load_demos
    from vla_policy.data.windows import DemoWindows

    config = load_config("tiny")
    loaded, _ = load_demos(str(demos), config.model)
    windows = DemoWindows(loaded, compute_stats(loaded), chunk=4)
    last = len(loaded[0].actions) - 2  # two real steps left in the first demo, then padding
    sample = windows[last]
    assert sample["action_mask"].tolist() == [True, True, False, False]
    assert (sample["actions"][2:] == 0).all()
    expected = windows.stats.normalize_actions(loaded[0].actions[last : last + 2])
    assert torch.allclose(sample["actions"][:2], torch.from_numpy(expected).float())
    assert (sample["future_images"] == loaded[0].images[-1]).all()  # clamped to the episode's end


def test_object_position_targets_come_from_object_state(demos, tmp_path):
    from vla_policy.data.hdf5_dataset import open_dataset

    config = load_config(
        "tiny",
        [
            f"train.dataset={demos}",
            f"train.out={tmp_path}",
            "train.val_fraction=0",
            "model.aux.object_position=1.0",
            "model.aux.objects=4",
        ],
    )
    trainer = Trainer(config)
    batch = trainer.train_set.batch(torch.arange(3))
    with open_dataset(demos) as f:
        obs = f["data"]["demo_0"]["obs"]
        state, eef = obs["object_state"][:3], obs["eef_pos"][:3]
    expected = (state.reshape(3, 4, 7)[:, :, :3] - eef[:, None]) * 10
    assert torch.allclose(batch["object_position"], torch.from_numpy(expected.reshape(3, 12)).float(), atol=1e-5)
    losses = trainer.model.compute_loss(prepare_batch(batch, False, 0.0, trainer.device))
    assert "object_position" in losses and torch.isfinite(losses["object_position"])


def test_instructions_are_reworded_to_name_each_object():
    from vla_policy.data.rewording import instructions_naming_each_object

    names = ("red", "green", "blue")
    assert instructions_naming_each_object("pick up the red cube", "red", names) == [
        "pick up the red cube",
        "pick up the green cube",
        "pick up the blue cube",
    ]
    # stack names a second cube: rewording the target as that one would be ambiguous
    assert instructions_naming_each_object("put the green cube on the red cube", "green", names) == [
        None,
        "put the green cube on the red cube",
        "put the blue cube on the red cube",
    ]
    assert instructions_naming_each_object("lift the cube", "cube", ("cube",)) == ["lift the cube"]
    assert instructions_naming_each_object("lift it", "red", names) == ["lift it", None, None]  # no name to swap


def test_stack_instructions_are_reworded_in_both_roles():
    from vla_policy.data.rewording import rewordings

    names = ("red", "green", "blue")
    put = "put the green cube on the red cube"
    texts, objects = rewordings(put, {"target": "green", "place_on": "red"}, names, with_place=True)
    assert texts == [
        None,
        put,
        "put the blue cube on the red cube",  # the target swapped
        put,
        None,
        "put the green cube on the blue cube",
    ]  # the place swapped
    assert objects == [(0, 0), (1, 0), (2, 0), (1, 0), (1, 1), (1, 2)]  # (target, place) each then names
    texts, objects = rewordings("pick up the red cube", {"target": "red"}, names, with_place=True)
    assert texts[3:] == [None] * 3 and [o[1] for o in objects] == [-1] * 6  # no place to ask about
    texts, objects = rewordings(put, {"target": "green", "place_on": "red"}, names, with_place=False)
    assert len(texts) == 3 and objects == [(0, -1), (1, -1), (2, -1)]


def test_place_position_is_where_the_reworded_base_is(tmp_path):
    from sim.tasks.tabletop import COLORS
    from vla_policy.data.hdf5_dataset import open_dataset
    from vla_policy.models.text import _tokenizer

    stack = tmp_path / "stack.hdf5"
    collect("stack", 1, stack, seed=3, config=EnvConfig(task="stack", image_size=32))
    config = load_config(
        "tiny",
        [
            f"train.dataset={stack}",
            f"train.out={tmp_path / 'run'}",
            "train.val_fraction=0",
            "model.aux.target_position=1.0",
            "model.aux.place_position=1.0",
            "model.vision.instructed_keypoints=2",
        ],
    )
    trainer = Trainer(config)
    torch.manual_seed(0)
    batch = trainer.train_set.batch(torch.zeros(60, dtype=torch.long))  # t = 0, 60 draws
    with open_dataset(stack) as f:
        demo = f["data"]["demo_0"]
        state, eef = demo["obs"]["object_state"][0].reshape(len(COLORS), 7)[:, :3], demo["obs"]["eef_pos"][0]
    where = {c: torch.from_numpy((state[i] - eef) * 10).float() for i, c in enumerate(COLORS)}
    places = set()
    for ids, mask, target, place in zip(
        batch["target_text_ids"], batch["target_text_mask"], batch["target_position"], batch["place_position"]
    ):
        words = _tokenizer().decode(ids[mask].tolist()).split()
        first, second = [w for w in words if w in COLORS]  # "put the <target> cube on the <place> cube" or alike
        assert torch.allclose(target, where[first], atol=1e-5) and torch.allclose(place, where[second], atol=1e-5)
        places.add(second)
    assert batch["place_valid"].all() and len(places) >= 3  # the base is reworded too, not only the target
    losses = trainer.model.compute_loss(prepare_batch(batch, False, 0.0, trainer.device))
    assert torch.isfinite(losses["place_position"]) and losses["place_position"] > 0
    with pytest.raises(ValueError, match="aux.target_position"):
        VLAModel(tiny_model_config(vision={"instructed_keypoints": 2}, aux={"place_position": 1.0}), PROPRIO_DIM)


def test_target_position_is_where_the_reworded_instruction_points(demos, tmp_path):
    from sim.tasks.tabletop import COLORS
    from vla_policy.data.hdf5_dataset import open_dataset
    from vla_policy.models.text import _tokenizer

    config = load_config(
        "tiny",
        [
            f"train.dataset={demos}",
            f"train.out={tmp_path}",
            "train.val_fraction=0",
            "model.aux.target_position=1.0",
            "model.vision.instructed_keypoints=2",
        ],
    )
    trainer = Trainer(config)
    torch.manual_seed(0)
    batch = trainer.train_set.batch(torch.zeros(40, dtype=torch.long))  # demo 0, t = 0, 40 draws
    with open_dataset(demos) as f:
        demo = f["data"]["demo_0"]
        original = demo.attrs["instruction"]
        state, eef = demo["obs"]["object_state"][0], demo["obs"]["eef_pos"][0]
    named = set()
    for ids, mask, target in zip(batch["target_text_ids"], batch["target_text_mask"], batch["target_position"]):
        words = _tokenizer().decode(ids[mask].tolist()).split()
        colour = next(c for c in COLORS if c in words)
        assert " ".join(w for w in words if w not in COLORS) == " ".join(w for w in original.split() if w not in COLORS)
        expected = (state.reshape(len(COLORS), 7)[COLORS.index(colour), :3] - eef) * 10
        assert torch.allclose(target, torch.from_numpy(expected).float(), atol=1e-5)
        named.add(colour)
    assert named == set(COLORS)  # every cube is asked about, not only the demo's own
    losses = trainer.model.compute_loss(prepare_batch(batch, False, 0.0, trainer.device))
    assert "target_position" in losses and torch.isfinite(losses["target_position"])
    with pytest.raises(ValueError, match="instructed_keypoints"):
        VLAModel(tiny_model_config(aux={"target_position": 1.0}), PROPRIO_DIM)


def test_object_position_head_fits_a_batch():
    model = VLAModel(tiny_model_config(aux={"object_position": 1.0, "objects": 2}, world_model_weight=0.0), PROPRIO_DIM)
    batch = random_batch(model.config, batch=4)
    batch["object_position"] = torch.randn(4, 6, generator=torch.Generator().manual_seed(1))
    optim = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = fit(model, batch, "object_position", optim, 60)
    assert losses[-1] < 0.2 * losses[0]


def test_init_from_fine_tunes_and_keeps_new_heads(demos, tmp_path):
    Trainer(_config(demos, tmp_path / "base")).train()
    base, _, base_stats, _ = load_checkpoint(tmp_path / "base" / "checkpoints" / "last")
    config = load_config(
        "tiny",
        [
            f"train.dataset={demos}",
            f"train.out={tmp_path / 'tuned'}",
            "train.steps=1",
            f"train.init_from={tmp_path / 'base' / 'checkpoints' / 'last'}",
            "model.aux.object_position=1.0",
            "train.val_fraction=0",
        ],
    )  # other training demos
    trainer = Trainer(config)
    assert trainer.stats.to_dict() == base_stats.to_dict()  # the weights' own normalisation, not the new data's
    assert torch.equal(trainer.model.vision.position, base.vision.position)
    assert torch.equal(trainer.ema.module.vision.position, base.vision.position)
    assert hasattr(trainer.model, "object_queries")


def test_ema_forgets_the_random_init_within_a_short_run():
    # A fixed decay of 0.999 keeps 0.999**1000 = 37% of the initial weights after 1000 steps;
    # the warmed-up EMA must follow the trained weights instead.
    from torch.optim.swa_utils import AveragedModel

    from vla_policy.train.trainer import warmup_ema

    model = torch.nn.Linear(3, 2)
    torch.nn.init.zeros_(model.weight)
    ema = AveragedModel(model, multi_avg_fn=warmup_ema(0.999), use_buffers=True)
    ema.update_parameters(model)  # the first update copies
    with torch.no_grad():
        model.weight.fill_(1.0)
    for _ in range(1000):
        ema.update_parameters(model)
    assert ema.module.weight.min().item() > 0.99
    with torch.no_grad():  # late in training it averages over ~1/(1-decay) steps, not one
        model.weight.fill_(2.0)
    ema.update_parameters(model)
    assert ema.module.weight.max().item() < 1.01


def test_augmentation_shifts_only_as_far_as_shift_pad():
    torch.manual_seed(0)
    images = torch.zeros(64, 1, 3, 16, 16, dtype=torch.uint8)
    images[:, :, :, 8, 8] = 255  # one bright pixel
    batch = {"images": images, "future_images": images, "camera_mask": torch.ones(64, 1, dtype=torch.bool)}

    def bright_pixel_offsets(shift_pad: int) -> set[tuple[int, int]]:
        out = prepare_batch(batch, True, 0.0, torch.device("cpu"), shift_pad)["images"][:, 0].sum(1)  # (B, S, S)
        return {(int(i) - 8, int(j) - 8) for i, j in (divmod(int(k), 16) for k in out.flatten(1).argmax(1))}

    assert bright_pixel_offsets(0) == {(0, 0)}  # jitter alone keeps every pixel in place
    moved = bright_pixel_offsets(2)
    assert len(moved) > 1 and all(abs(i) <= 2 and abs(j) <= 2 for i, j in moved)


def test_rewording_gives_each_sample_a_fresh_training_wording_of_its_goal(demos, tmp_path):
    from sim.tasks import get_task
    from vla_policy.data.hdf5_dataset import open_dataset
    from vla_policy.models.text import _tokenizer

    config = load_config(
        "tiny",
        [
            f"train.dataset={demos}",
            f"train.out={tmp_path}",
            "train.val_fraction=0",
            "train.reword_templates=32",
            "model.aux.target_position=1.0",
            "model.vision.instructed_keypoints=2",
        ],
    )
    trainer = Trainer(config)
    with open_dataset(demos) as f:
        goal = json.loads(f["data"]["demo_0"].attrs["goal"])
        state, eef = f["data"]["demo_0"]["obs"]["object_state"][0], f["data"]["demo_0"]["obs"]["eef_pos"][0]
    grammar, colours = get_task("pick").grammar, get_task("pick").object_names

    def texts(ids, mask):
        return [_tokenizer().decode(i[m].tolist()) for i, m in zip(ids, mask)]

    torch.manual_seed(0)
    first, second = (trainer.train_set.batch(torch.zeros(16, dtype=torch.long)) for _ in range(2))  # one goal
    seen = texts(first["text_ids"], first["text_mask"]) + texts(second["text_ids"], second["text_mask"])
    assert texts(first["text_ids"], first["text_mask"]) != texts(second["text_ids"], second["text_mask"])
    assert len(set(seen)) >= 10
    for text in seen:
        parsed, split = grammar.parse(text)
        assert (parsed.skill, parsed.target, split) == (goal["skill"], goal["target"], "train"), text
    # the grounding rewording keeps the sample's template and names another cube, whose position it asks for
    for text, asked, where in zip(
        texts(first["text_ids"], first["text_mask"]),
        texts(first["target_text_ids"], first["target_text_mask"]),
        first["target_position"],
    ):
        named = grammar.parse(asked)[0].target
        assert asked == grammar.render(text.replace(goal["target"], "{c}"), grammar.parse(asked)[0])
        expected = (state.reshape(len(colours), 7)[colours.index(named), :3] - eef) * 10
        assert torch.allclose(where, torch.from_numpy(expected).float(), atol=1e-5)
    losses = trainer.model.compute_loss(prepare_batch(first, False, 0.0, trainer.device))
    assert torch.isfinite(losses["target_position"])


def test_train_builds_the_instruction_gate_into_every_checkpoint_and_resume_keeps_it(demos, tmp_path, monkeypatch):
    import functools

    import vla_policy.train.gate as gate_module
    from vla_policy.gate import load_gate
    from vla_policy.policy import Policy

    monkeypatch.setattr(gate_module, "build_gate", functools.partial(gate_module.build_gate, examples=40))
    Trainer(_config(demos, tmp_path, instruction_gate=True, steps=4)).train()
    last = tmp_path / "checkpoints" / "last"
    gate = load_gate(last)
    assert gate is not None and gate.objects == ("red", "green", "blue", "yellow") and len(gate.in_texts) > 20
    policy = Policy.from_checkpoint(last, device="cpu")
    assert policy.check_instruction(gate.in_texts[0]).accepted
    assert not policy.check_instruction("").accepted
    monkeypatch.setattr(gate_module, "build_gate", None)  # resuming must not build another
    resumed = Trainer(_config(demos, tmp_path, instruction_gate=True, steps=8), resume=True)
    assert resumed.gate.in_texts == gate.in_texts
    resumed.train()
    assert load_gate(last).out_texts == gate.out_texts


def test_a_goal_reading_policy_learns_the_goal_of_each_wording_and_acts_on_the_goal_alone(demos, tmp_path):
    """text.condition=goal: the trainer gives the reader the grammar's goals, every reworded sample
    carries its goal, the cross-entropy teaches the reader to name it, and downstream of the text
    the model sees nothing of the wording but the goal read (two wordings whose reads agree act the
    same)."""
    from sim.tasks import get_task
    from vla_policy.data.rewording import WordingPool
    from vla_policy.models.text import _tokenizer

    overrides = [
        f"train.dataset={demos}",
        f"train.out={tmp_path}",
        "train.val_fraction=0",
        "train.reword_templates=32",
        "model.text.condition=goal",
        "model.aux.goal=1.0",
    ]
    trainer = Trainer(load_config("tiny", overrides))
    model, goals = trainer.model, WordingPool("pick", 4, 24).goals
    assert trainer.config.model.text.goals == len(goals) == model.goal_reader.embed.shape[0]
    torch.manual_seed(0)
    starts = torch.cat([torch.zeros(1, dtype=torch.long), trainer.train_set.demo_end[:-1]])  # each demo's first step
    batch = prepare_batch(trainer.train_set.batch(starts), False, 0.0, trainer.device)
    assert len(set(batch["goal"].tolist())) > 1
    grammar = get_task("pick").grammar
    for ids, mask, goal in zip(batch["text_ids"], batch["text_mask"], batch["goal"]):  # each label: its wording's goal
        assert grammar.parse(_tokenizer().decode(ids[mask].tolist()))[0].key() == goals[goal].key()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = model.compute_loss(batch)["goal"].item()
    for _ in range(30):
        optimizer.zero_grad()
        model.compute_loss(batch)["total"].backward()
        optimizer.step()
    assert model.compute_loss(batch)["goal"].item() < 0.5 * first
    assert torch.equal(model.read_goal(batch["text_ids"], batch["text_mask"]).argmax(-1), batch["goal"])
    # an evaluation records which goal the policy read, and whether it is the episode's
    from sim.env import SimEnv
    from vla_policy.eval.runner import _goal_read, _goal_read_rates
    from vla_policy.policy import Policy

    policy = Policy(model, trainer.config, trainer.stats, device="cpu")
    text = _tokenizer().decode(batch["text_ids"][0][batch["text_mask"][0]].tolist())
    assert policy.read_goal(text)[0] == int(batch["goal"][0]) and 0 < policy.read_goal(text)[1] <= 1
    # its instruction check hands the gate the goal it reads in each instruction
    from vla_policy.train.gate import build_gate

    policy.gate = build_gate(grammar, get_task("pick").object_names, policy.minilm(), examples=20)
    seen, decide = [], policy.gate.decide
    policy.gate.decide = lambda texts, embeddings, goals_read: seen.append(goals_read) or decide(
        texts, embeddings, goals_read
    )
    texts = [text, "", "make me a coffee"]
    assert len(policy.check_instructions(texts)) == 3 and not policy.check_instruction("").accepted
    assert seen[0] == [policy.read_goal(t)[0] for t in texts]
    with SimEnv(EnvConfig(task="pick", image_size=32)) as env:
        env.reset(seed=7, instruction=text)
        truth = goals[int(batch["goal"][0])].to_dict()
        records = [
            {"success": True, **_goal_read(policy, env, truth)},
            {"success": False, **_goal_read(policy, env, truth | {"target": "not a cube"})},
        ]
    assert records[0]["goal_read"]["target"] == truth["target"] and records[0]["goal_read_right"]
    assert not records[1]["goal_read_right"]
    rates = _goal_read_rates(records)
    assert rates["right"]["successes"] == 1 and rates["success_when_wrong"]["successes"] == 0
    assert _goal_read_rates([{"success": True}]) is None
    model.eval()
    with torch.no_grad():
        assert model.encode(batch).text.shape[1] == 1  # the backbone's one text token: the goal read
        other = dict(batch, text_ids=batch["text_ids"].flip(0), text_mask=batch["text_mask"].flip(0))
        model.goal_reader.classify[-1].weight.zero_()  # every wording now reads as the same goal mix
        same = [model.sample_actions(b, generator=torch.Generator().manual_seed(1)) for b in (batch, other)]
    assert torch.allclose(*same, atol=1e-5)
    with pytest.raises(ValueError, match="goals"):
        Trainer(load_config("tiny", [*overrides, "model.text.goals=3"]))
