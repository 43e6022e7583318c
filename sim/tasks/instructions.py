"""Instruction text handling shared by the tasks."""

from __future__ import annotations

import re


def normalize(text: str) -> str:
    """Lower case, single spaces, no trailing punctuation: how instructions are compared."""
    return re.sub(r"\s+", " ", str(text)).strip().rstrip(".!").strip().lower()
