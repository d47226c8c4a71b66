"""Adapters that run the job catalogue: taskiq scheduler and workers over Redis, or in-process."""
