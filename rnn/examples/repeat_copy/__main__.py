"""``python -m rnn.examples.repeat_copy``: train a core on the repeat-copy task."""

import sys

from rnn.examples.repeat_copy.training import main

if __name__ == "__main__":
    sys.exit(main())
