"""``python -m rnn.examples.keras_multi_worker``: the Keras multi-worker example."""

import sys

from rnn.examples.keras_multi_worker.training import main

if __name__ == "__main__":
    sys.exit(main())
