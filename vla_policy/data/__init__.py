"""Demonstration datasets: robomimic-style HDF5 with simulator states for exact replay."""
