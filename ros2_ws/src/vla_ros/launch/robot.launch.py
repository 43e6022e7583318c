"""policy_node alone, for a real robot whose drivers publish cameras and joint states.

ros2 launch vla_ros robot.launch.py checkpoint:=/path/to/checkpoint device:=cuda output:=twist \
    agentview_topic:=/front_camera/color/image_raw wrist_topic:=/wrist_camera/color/image_raw \
    joint_states_topic:=/franka/joint_states eef_pose_topic:=/franka/eef_pose \
    twist_topic:=/servo_node/delta_twist_cmds gripper_topic:=/gripper_controller/commands
The node starts unconfigured: nothing moves until it is activated.
Start:                ros2 lifecycle set /policy_node configure && ros2 lifecycle set /policy_node activate
                      (or autostart:=true)
Send an instruction:  ros2 topic pub --once /vla/instruction std_msgs/String "data: 'lift the red cube'"
Stop (e-stop):        ros2 service call /vla/enable std_srvs/srv/SetBool "data: false"
output:=twist         TwistStamped in m/s, rad/s (base frame) + gripper position (Float64MultiArray)
output:=joint_trajectory  JointTrajectory for joint-space checkpoints
image_transport:=compressed  subscribe <camera topic>/compressed (sensor_msgs/CompressedImage)
policy_url:=ws://gpu-box:8000 policy_token:=...  the model runs on a `vla serve` (no checkpoint here)
join:=rtc             real-time chunking (ensemble | switch | rtc)
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
    "twist_topic": ("vla/cmd_twist", "vla/cmd_twist"),
    "gripper_topic": ("vla/gripper_command", "vla/gripper_command"),
    "joint_trajectory_topic": ("vla/joint_trajectory", "vla/joint_trajectory"),
    "action_chunk_topic": ("vla/action_chunk", "vla/action_chunk"),
}


def generate_launch_description() -> LaunchDescription:
    arguments = [
        DeclareLaunchArgument("checkpoint", default_value="", description="checkpoint directory (or policy_url)"),
        DeclareLaunchArgument("policy_url", default_value="", description="ws(s)://host:port of a `vla serve`"),
        DeclareLaunchArgument("policy_token", default_value="", description="the server's shared token"),
        DeclareLaunchArgument("join", default_value="ensemble", description="ensemble | switch | rtc"),
        DeclareLaunchArgument("device", default_value="auto", description="auto | cpu | cuda"),
        DeclareLaunchArgument("control_rate_hz", default_value="50.0"),
        DeclareLaunchArgument("output", default_value="twist", description="action | twist | joint_trajectory"),
        DeclareLaunchArgument("image_transport", default_value="raw", description="raw | compressed"),
        DeclareLaunchArgument("autostart", default_value="false", description="configure and activate at once"),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([FindPackageShare("vla_ros"), "config", "robot.yaml"]),
            description="policy_node parameters (joint names, limits, staleness)",
        ),
    ] + [DeclareLaunchArgument(arg, default_value=default) for arg, (_, default) in REMAPS.items()]
    policy = Node(
        package="vla_ros",
        executable="policy_node",
        name="policy_node",
        output="screen",
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "checkpoint": LaunchConfiguration("checkpoint"),
                "device": LaunchConfiguration("device"),
                "control_rate_hz": LaunchConfiguration("control_rate_hz"),
                "output": LaunchConfiguration("output"),
                "image_transport": LaunchConfiguration("image_transport"),
                "autostart": LaunchConfiguration("autostart"),
                "policy_url": LaunchConfiguration("policy_url"),
                "policy_token": LaunchConfiguration("policy_token"),
                "join": LaunchConfiguration("join"),
            },
        ],
        remappings=[(topic, LaunchConfiguration(arg)) for arg, (topic, _) in REMAPS.items()]
        + [
            (f"{topic}/compressed", [LaunchConfiguration(arg), "/compressed"])
            for arg, (topic, _) in REMAPS.items()
            if arg in ("agentview_topic", "wrist_topic")
        ],
    )
    return LaunchDescription(arguments + [policy])
