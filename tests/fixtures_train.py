"""Session fixtures producing briefly trained checkpoints (owned by the trainer)."""
