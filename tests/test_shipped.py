"""The checkpoint committed under checkpoints/default: it loads, acts, and the demo runs it."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
from safetensors.torch import save_file

from sim.env import SimEnv
from vla_policy.config import Config, from_dict
from vla_policy.eval.demo import SHIPPED_CHECKPOINT
from vla_policy.eval.runner import checkpoint_env_config
from vla_policy.models.build import build_model
from vla_policy.policy import Policy
from vla_policy.train.checkpoint import trainable_state


def test_shipped_checkpoint_loads_and_gives_finite_actions():
    policy = Policy.from_checkpoint(SHIPPED_CHECKPOINT, device="cpu")
    meta = json.loads((SHIPPED_CHECKPOINT / "meta.json").read_text())
    with SimEnv(checkpoint_env_config(str(SHIPPED_CHECKPOINT), meta["env_args"]["env_kwargs"]["task"], "train")) as env:
        obs = env.reset(seed=1_000_000)
        chunk = policy.predict_chunk(obs)
        action = policy.select_action(obs)
    assert chunk.actions.shape == (policy.config.model.chunk, 7) and np.isfinite(chunk.actions).all()
    assert action.shape == (7,) and np.all(np.abs(action) <= 1.0)
    assert (SHIPPED_CHECKPOINT / "train_config.yaml").exists()


def test_demo_runs_the_shipped_policy_as_its_committed_evaluation_says(vla_cmd, tmp_path):
    """The demo's first episode is the evaluation's first seed: the checkpoint must do now what its
    committed report (checkpoints/default/eval) recorded for that seed, step for step."""
    out = subprocess.run(
        [*vla_cmd, "demo", "--episodes", "1", "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    recorded = json.loads((SHIPPED_CHECKPOINT / "eval" / "report.json").read_text())["episodes"][0]
    outcome = "SUCCESS" if recorded["success"] else "FAIL   "
    line = f'episode 0  seed {recorded["seed"]}  {outcome}  {recorded["steps"]:3d} steps  "{recorded["instruction"]}"'
    assert line in out.stdout, out.stdout
    assert (tmp_path / "demo.mp4").stat().st_size > 0


def test_a_checkpoint_from_before_the_keypoint_token_still_loads(tiny_checkpoint, tmp_path):
    """A config.json written before `vision.keypoints` existed was trained without the token."""
    old = tmp_path / "old"
    shutil.copytree(tiny_checkpoint, old)
    config = json.loads((old / "config.json").read_text())
    config["model"]["vision"]["keypoints"] = 0
    meta = json.loads((old / "meta.json").read_text())
    model = build_model(from_dict(Config, config).model, meta["proprio_dim"])
    save_file(trainable_state(model), str(old / "model.safetensors"))
    del config["model"]["vision"]["keypoints"]  # written before the field existed
    (old / "config.json").write_text(json.dumps(config))
    policy = Policy.from_checkpoint(old, device="cpu")
    assert policy.config.model.vision.keypoints == 0


def test_the_shipped_policy_holds_the_out_of_scope_commands_and_accepts_the_tasks_wordings(root):
    """The 100 commands in tests/data/out_of_scope.json were written apart from the gate's
    generator and never trained on; docs/RESULTS.md reports what the shipped policy holds: its
    gate, and the check of the goal it reads."""
    from sim.tasks import get_task

    policy = Policy.from_checkpoint(SHIPPED_CHECKPOINT, device="cpu")
    commands = json.loads((root / "tests" / "data" / "out_of_scope.json").read_text())
    assert len(commands) == 100 == len(set(commands))
    held = sum(not c.accepted for c in policy.check_instructions(commands))
    assert held >= 95, held
    wordings = get_task("tabletop").instructions("train") + get_task("tabletop").instructions("heldout")
    refused = [w for w, c in zip(wordings, policy.check_instructions(wordings)) if not c.accepted]
    assert len(refused) <= 0.05 * len(wordings), refused
