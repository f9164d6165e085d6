"""Benchmark programs (not tests): `.venv/bin/python -m bench` runs them all; see README.md."""
