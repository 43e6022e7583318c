"""vla_ros: ament_python package (colcon build) that also installs with pip."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "vla_ros"
NODES = ("policy_node", "sim_node", "recorder_node")

setup(
    name=PACKAGE,
    version="0.1.0",
    description="ROS 2 nodes of vla_stack: policy (lifecycle), simulated robot, MCAP recorder",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    entry_points={
        "console_scripts": [f"{node} = {PACKAGE}.{node}:main" for node in NODES]
        + [f"ros_demo = {PACKAGE}.closed_loop:main"]
    },
)
