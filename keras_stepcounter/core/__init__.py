"""The arithmetic every recorder shares, in plain Python (no TensorFlow import).

The recorders (`StepCounter`, `GraphStepCounter`, `compat.v1.StepCounterHook`)
are thin adapters over these modules: they read steps and clocks, hand them
here, and pass what comes back to a sink.
"""
