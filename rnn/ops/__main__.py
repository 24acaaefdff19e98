"""``python -m rnn.ops``: compiles every kernel library into the per-user cache."""

import sys

from rnn.ops._build import build_all

if __name__ == "__main__":
    sys.exit(build_all())
