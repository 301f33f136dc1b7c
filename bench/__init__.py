"""Benchmarks: patched vs unpatched in one process, reported as ratios (see bench/common.py)."""
