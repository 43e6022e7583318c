"""vla_stack's policy side: model, data, training, evaluation. Never imports ROS."""

__version__ = "0.1.0"
