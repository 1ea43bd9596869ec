"""Timed scenarios; `python -m benchmarks` runs every module's `main()`."""
