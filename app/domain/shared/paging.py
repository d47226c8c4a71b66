"""Bounds of every paginated list."""

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
