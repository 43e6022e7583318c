"""House rule: vla_policy/ and sim/ never import ROS."""

import ast
import importlib
import pkgutil
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


def test_importing_everything_loads_no_ros():
    for package_name in ("vla_policy", "sim"):
        package = importlib.import_module(package_name)
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package_name}."):
            importlib.import_module(info.name)
    loaded = [m for m in sys.modules if _is_ros(m)]
    assert not loaded, loaded


def test_detector_flags_ros_names():
    assert _is_ros("rclpy.node") and _is_ros("sensor_msgs.msg") and _is_ros("std_srvs.srv")
    assert not _is_ros("numpy") and not _is_ros("robosuite")
