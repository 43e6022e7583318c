"""vla_stack core distribution: `vla_policy` and `sim` (ament_python compatible)."""

from setuptools import find_packages, setup

PACKAGE = "vla_stack"

setup(
    name=PACKAGE,
    version="0.1.0",
    description="ROS 2 control stack for vision-language-action robot policies: model, data, sim, eval",
    packages=find_packages(include=["vla_policy", "vla_policy.*", "sim", "sim.*"]),
    python_requires=">=3.10",
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
    ],
    install_requires=[],  # pinned in requirements.txt / constraints.txt; see README
    zip_safe=True,
    entry_points={"console_scripts": ["vla = vla_policy.cli:main"]},
)
