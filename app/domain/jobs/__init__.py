"""Periodic jobs: what runs, when, and the one domain use case each run calls."""
