"""``python -m bench``: roost against Prosody (see bench/compare.py)."""

from __future__ import annotations

import sys

from bench.compare import main

if __name__ == "__main__":
    sys.exit(main())
