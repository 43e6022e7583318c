"""policy_node alone, for a real robot whose drivers publish cameras and joint states.

ros2 launch vla_ros robot.launch.py checkpoint:=/path/to/checkpoint device:=cuda \
    agentview_topic:=/front_camera/color/image_raw wrist_topic:=/wrist_camera/color/image_raw \
    joint_states_topic:=/franka/joint_states eef_pose_topic:=/franka/eef_pose \
    action_topic:=/cartesian_delta_controller/commands
Send an instruction:  ros2 topic pub --once /vla/instruction std_msgs/String "data: 'lift the red cube'"
Stop (e-stop):        ros2 service call /vla/enable std_srvs/srv/SetBool "data: false"
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

REMAPS = {  # launch argument -> (topic the node uses, default robot topic)
    "agentview_topic": ("camera/agentview/image_raw", "camera/agentview/image_raw"),
    "wrist_topic": ("camera/wrist/image_raw", "camera/wrist/image_raw"),
    "joint_states_topic": ("joint_states", "joint_states"),
    "eef_pose_topic": ("eef_pose", "eef_pose"),
    "instruction_topic": ("vla/instruction", "vla/instruction"),
    "action_topic": ("vla/action", "vla/action"),
    "action_chunk_topic": ("vla/action_chunk", "vla/action_chunk"),
}


def generate_launch_description() -> LaunchDescription:
    arguments = [
        DeclareLaunchArgument("checkpoint", description="checkpoint directory"),
        DeclareLaunchArgument("device", default_value="auto", description="auto | cpu | cuda"),
        DeclareLaunchArgument("control_rate_hz", default_value="50.0"),
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([FindPackageShare("vla_ros"), "config", "robot.yaml"]),
                              description="policy_node parameters (joint names, limits, staleness)"),
    ] + [DeclareLaunchArgument(arg, default_value=default) for arg, (_, default) in REMAPS.items()]
    policy = Node(
        package="vla_ros", executable="policy_node", name="policy_node", output="screen",
        parameters=[LaunchConfiguration("params_file"),
                    {"checkpoint": LaunchConfiguration("checkpoint"), "device": LaunchConfiguration("device"),
                     "control_rate_hz": LaunchConfiguration("control_rate_hz")}],
        remappings=[(topic, LaunchConfiguration(arg)) for arg, (topic, _) in REMAPS.items()],
    )
    return LaunchDescription(arguments + [policy])
