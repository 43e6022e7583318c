"""Closed-loop evaluation."""
