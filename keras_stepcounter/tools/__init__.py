"""Reading back what the recorders wrote: event files, report, plot, command line.

Nothing here imports TensorFlow: event files are read with TensorBoard's
pure-Python reader, so the tools start in well under a second.
"""
