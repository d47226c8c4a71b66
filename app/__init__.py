"""Taskmarket: the backend of a task-marketplace community."""

__version__ = "0.1.0"
