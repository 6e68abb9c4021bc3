"""Helpers for `make bench` (scripts/bench.py): servers, load, conversations, report."""
