"""Launch files and parameter files agree with the package: every executable a launch file names
is a console script of vla_ros, every YAML it names exists, and every parameter in those YAML
files is one the node declares (a typo would otherwise be silently ignored by ROS)."""

import ast
import importlib
from pathlib import Path

import pytest
import yaml

PACKAGE = Path(__file__).resolve().parents[1] / "ros2_ws" / "src" / "vla_ros"
LAUNCH_FILES = sorted((PACKAGE / "launch").glob("*.launch.py"))


def _console_scripts() -> dict[str, str]:
    tree = ast.parse((PACKAGE / "setup.py").read_text())
    nodes = next(n.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "NODES")
    scripts = {name: f"vla_ros.{name}:main" for name in ast.literal_eval(nodes)}
    scripts["ros_demo"] = "vla_ros.closed_loop:main"
    return scripts


def _nodes(path: Path) -> list[dict]:
    """Every Node(...) call: its keyword arguments that are literals, and the YAML files it names."""
    nodes = []
    for call in ast.walk(ast.parse(path.read_text())):
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "Node":
            kwargs = {k.arg: k.value for k in call.keywords}
            literal = {k: v.value for k, v in kwargs.items() if isinstance(v, ast.Constant)}
            literal["yaml"] = [
                c.value
                for c in ast.walk(kwargs.get("parameters", ast.List(elts=[])))
                if isinstance(c, ast.Constant) and str(c.value).endswith(".yaml")
            ]
            nodes.append(literal)
    return nodes


def test_every_launch_file_parses_and_declares_nodes():
    assert [p.name for p in LAUNCH_FILES] == ["robot.launch.py", "sim_demo.launch.py"]
    for path in LAUNCH_FILES:
        tree = ast.parse(path.read_text())
        assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)
        assert _nodes(path), f"{path.name} declares no Node"


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_files_name_only_existing_executables_and_files(path):
    scripts = _console_scripts()
    for node in _nodes(path):
        assert node["package"] == "vla_ros"
        assert node["executable"] in scripts, f"{path.name}: no console script {node['executable']!r}"
        module, function = scripts[node["executable"]].split(":")
        assert callable(getattr(importlib.import_module(module), function))
        for name in node["yaml"]:
            assert (PACKAGE / "config" / name).is_file(), f"{path.name} names config/{name}, which does not exist"


@pytest.mark.parametrize("config", sorted((PACKAGE / "config").glob("*.yaml")), ids=lambda p: p.name)
def test_parameter_files_set_only_declared_parameters(config):
    data = yaml.safe_load(config.read_text())
    ((node_name, section),) = data.items()
    executable = {"robot.yaml": "policy_node", "policy.yaml": "policy_node"}.get(config.name, node_name)
    declared = importlib.import_module(f"vla_ros.{executable}").PARAMETERS
    params = section["ros__parameters"]
    assert set(params) <= set(declared), f"{config.name}: unknown parameters {set(params) - set(declared)}"
    for name, value in params.items():
        assert type(value) is type(declared[name]) or (isinstance(value, list) and isinstance(declared[name], list)), (
            f"{config.name}: {name} is {type(value).__name__}, the node declares {type(declared[name]).__name__}"
        )


def test_the_closed_loop_runner_starts_what_sim_demo_launch_starts():
    from vla_ros.closed_loop import sim_demo_commands

    launched = {n["executable"]: n["yaml"] for n in _nodes(PACKAGE / "launch" / "sim_demo.launch.py")}
    commands = sim_demo_commands("ckpt", record="bag")
    assert set(commands) == set(launched)
    for executable, command in commands.items():
        assert Path(command[0]).name == executable
        params_file = command[command.index("--params-file") + 1]
        assert Path(params_file).name in launched[executable]


def test_package_xml_declares_what_the_code_imports():
    import xml.etree.ElementTree as ET

    depends = {e.text for e in ET.parse(PACKAGE / "package.xml").getroot() if e.tag.endswith("depend")}
    imported = set()
    for source in (PACKAGE / "vla_ros").glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                imported.update(a.name.split(".")[0] for a in node.names)
    ros_packages = {m for m in imported if m == "rclpy" or m.endswith(("_msgs", "_srvs", "_interfaces"))}
    assert ros_packages <= depends, f"package.xml lacks {ros_packages - depends}"
