"""The whole loop through ROS 2: sim_node + policy_node (as sim_demo.launch.py starts them) on a
shipped checkpoint, with the recorder; and `make demo`'s command."""

import json
import subprocess

from vla_policy.data.from_bag import convert_bag
from vla_policy.data.hdf5_dataset import validate_dataset
from vla_ros.closed_loop import SHIPPED_CHECKPOINT, run_closed_loop

LIFT_CHECKPOINT = SHIPPED_CHECKPOINT.parent / "lift"


def test_shipped_lift_checkpoint_succeeds_through_the_nodes_and_the_session_becomes_data(tmp_path):
    bag = tmp_path / "bag"
    summary = run_closed_loop(LIFT_CHECKPOINT, episodes=1, out=tmp_path / "run", task="lift", device="cpu",
                              seed=1_000_000, record=str(bag), episode_timeout=60)
    result = summary["results"][0]
    assert result["success"], f"episode failed; policy diagnostics: {result['diagnostics']}"
    assert result["instruction"] == "lift the cube"
    assert float(result["diagnostics"]["control_rate_hz"]) > 40
    assert (tmp_path / "run" / "episode_0.mp4").stat().st_size > 0
    assert json.loads((tmp_path / "run" / "report.json").read_text())["successes"] == 1
    converted = convert_bag(bag, tmp_path / "session.hdf5", task="lift")  # the policy's own session as demos
    assert converted["demos"] == 1 and converted["successes"] == 1 and validate_dataset(tmp_path / "session.hdf5") == []


def test_make_demo_command_runs_the_default_checkpoint_through_ros(tmp_path):
    out = subprocess.run(["ros_demo", "--episodes", "1", "--out", str(tmp_path)], capture_output=True, text=True,
                         timeout=300, check=True)
    assert "episode 0" in out.stdout and "through ROS 2" in out.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["episodes"] == 1 and report["checkpoint"] == str(SHIPPED_CHECKPOINT)
    assert (tmp_path / "episode_0.mp4").stat().st_size > 0
