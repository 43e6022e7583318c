"""The tabletop family's objects (kept free of robosuite imports so task metadata loads fast)."""

CUBE_HALF = 0.021  # metres; every tabletop cube is 4.2 cm wide
CUBE_COLORS = {
    "red": (0.85, 0.10, 0.10, 1.0),
    "green": (0.10, 0.70, 0.15, 1.0),
    "blue": (0.10, 0.25, 0.90, 1.0),
    "yellow": (0.95, 0.85, 0.10, 1.0),
}
