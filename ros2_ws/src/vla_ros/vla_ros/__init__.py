"""vla_ros: the ROS 2 layer of vla_stack (policy, sim robot and recorder nodes)."""
