"""The `vla` command: help, did-you-mean, and clear errors for bad input."""

import subprocess


def _run(cmd, *args):
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120)


def test_help_lists_subcommands(vla_cmd):
    out = _run(vla_cmd, "--help")
    assert out.returncode == 0
    for name in ("collect", "replay", "dataset", "bench", "tasks", "demo"):
        assert name in out.stdout


def test_unknown_subcommand_suggests(vla_cmd):
    out = _run(vla_cmd, "colect")
    assert out.returncode == 2
    assert "did you mean 'collect'" in out.stderr


def test_unknown_task_lists_valid_tasks(vla_cmd, tmp_path):
    out = _run(vla_cmd, "collect", "--task", "lfit", "--episodes", "1", "--out", str(tmp_path / "x.hdf5"))
    assert out.returncode == 2
    assert "unknown task 'lfit'" in out.stderr and "did you mean 'lift'" in out.stderr
    assert "'pick'" in out.stderr and "'tabletop'" in out.stderr
    assert not (tmp_path / "x.hdf5").exists()


def test_unknown_camera_lists_valid_cameras(vla_cmd, tmp_path):
    out = _run(
        vla_cmd,
        "collect",
        "--task",
        "lift",
        "--episodes",
        "1",
        "--cameras",
        "agentveiw",
        "--out",
        str(tmp_path / "x.hdf5"),
    )
    assert out.returncode == 2
    assert "unknown camera 'agentveiw'" in out.stderr and "'wrist'" in out.stderr


def test_missing_dataset_file(vla_cmd, tmp_path):
    out = _run(vla_cmd, "dataset", "info", str(tmp_path / "nope.hdf5"))
    assert out.returncode == 2 and "no such file" in out.stderr


def test_tasks_lists_instructions(vla_cmd):
    out = _run(vla_cmd, "tasks", "--instructions", "heldout")
    assert out.returncode == 0
    assert "vla_stack/Tabletop-v0" in out.stdout
    assert "[heldout]" in out.stdout and "[train]" not in out.stdout
    assert "verbs: hoist / elevate / snatch" in out.stdout and "templates x" in out.stdout
