"""House rule: vla_policy/ and sim/ never import ROS."""

import ast
import os
import subprocess
import sys

import pytest

ROS_PREFIXES = ("rclpy", "rosidl", "rosbag2", "launch", "launch_ros", "ament_index_python", "builtin_interfaces")
ROS_SUFFIX = "_msgs"


def _is_ros(module: str) -> bool:
    top = module.split(".")[0]
    return top in ROS_PREFIXES or top.endswith(ROS_SUFFIX) or top.endswith("_srvs")


@pytest.mark.parametrize("package", ["vla_policy", "sim"])
def test_sources_import_no_ros(root, package):
    offenders = []
    for path in sorted((root / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.relative_to(root)}:{node.lineno} imports {n}" for n in names if _is_ros(n)]
    assert not offenders, "\n".join(offenders)


def test_importing_everything_loads_no_ros(root):
    """In a fresh interpreter (this one may have loaded ROS for the vla_ros tests)."""
    script = (
        "import importlib, pkgutil, sys\n"
        "for name in ('vla_policy', 'sim'):\n"
        "    package = importlib.import_module(name)\n"
        "    for info in pkgutil.walk_packages(package.__path__, prefix=name + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "print('\\n'.join(sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", script],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(root), *sys.path])},
    )
    loaded = [m for m in out.stdout.split() if _is_ros(m)]
    assert not loaded, loaded


def test_detector_flags_ros_names():
    assert _is_ros("rclpy.node") and _is_ros("sensor_msgs.msg") and _is_ros("std_srvs.srv")
    assert not _is_ros("numpy") and not _is_ros("robosuite")
