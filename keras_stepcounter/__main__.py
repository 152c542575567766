"""`python -m keras_stepcounter report LOGDIR`: see `keras_stepcounter.tools.cli`."""

import sys

from keras_stepcounter.tools.cli import main

if __name__ == "__main__":
    sys.exit(main())
