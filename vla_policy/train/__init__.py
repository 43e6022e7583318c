"""Training: trainer, schedules, EMA, checkpoints, distributed."""
