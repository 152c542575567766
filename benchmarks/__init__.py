"""Benchmarks of keras_stepcounter: run `python3 benchmarks/run.py`."""
