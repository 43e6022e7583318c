"""The simulated closed loop: sim_node (robot stand-in) + policy_node, optionally recorded.

ros2 launch vla_ros sim_demo.launch.py checkpoint:=/path/to/checkpoints/default [device:=cuda] [record:=true]
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    config = PathJoinSubstitution([FindPackageShare("vla_ros"), "config"])
    arguments = [
        DeclareLaunchArgument(
            "checkpoint", description="checkpoint directory (model.safetensors, config.json, norm_stats.json)"
        ),
        DeclareLaunchArgument("device", default_value="auto", description="auto | cpu | cuda"),
        DeclareLaunchArgument("control_rate_hz", default_value="50.0"),
        DeclareLaunchArgument(
            "task", default_value="tabletop", description="sim task: lift, pick, stack, push, tabletop"
        ),
        DeclareLaunchArgument("time_factor", default_value="1.0", description="simulation speed relative to real time"),
        DeclareLaunchArgument("record", default_value="false", description="also record a rosbag2 MCAP"),
        DeclareLaunchArgument("bag", default_value="runs/bags/sim_demo", description="where the recording goes"),
    ]
    sim = Node(
        package="vla_ros",
        executable="sim_node",
        name="sim_node",
        output="screen",
        parameters=[
            PathJoinSubstitution([config, "sim.yaml"]),
            {"task": LaunchConfiguration("task"), "time_factor": LaunchConfiguration("time_factor")},
        ],
    )
    policy = Node(
        package="vla_ros",
        executable="policy_node",
        name="policy_node",
        output="screen",
        parameters=[
            PathJoinSubstitution([config, "policy.yaml"]),
            {
                "checkpoint": LaunchConfiguration("checkpoint"),
                "device": LaunchConfiguration("device"),
                "control_rate_hz": LaunchConfiguration("control_rate_hz"),
            },
        ],
    )
    recorder = Node(
        package="vla_ros",
        executable="recorder_node",
        name="recorder_node",
        output="screen",
        parameters=[PathJoinSubstitution([config, "recorder.yaml"]), {"output": LaunchConfiguration("bag")}],
        condition=IfCondition(LaunchConfiguration("record")),
    )
    return LaunchDescription(arguments + [sim, policy, recorder])
