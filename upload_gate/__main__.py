"""`python -m upload_gate ...`: the same as the `upload-gate` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
