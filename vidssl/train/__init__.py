"""Training engine: loop, distributed helpers, checkpoints, schedules, logging."""
