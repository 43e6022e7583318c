"""The QoS of vla_ros's interface, one definition for every node (and the tests)."""

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

SENSOR = qos_profile_sensor_data  # cameras, joint states, pose: best effort, keep last
# policy_node's camera subscriptions: best effort, only the newest frame kept (the node pairs frames
# itself; a deeper reader history only holds more frame buffers in DDS).
CAMERA = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT, durability=DurabilityPolicy.VOLATILE)
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)  # actions, commands, diagnostics
# The last message is kept for late subscribers (instruction, episode markers), like a ROS 1 latch.
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
