"""The VLA model: encoders, attention, fusion, action heads, world model."""
