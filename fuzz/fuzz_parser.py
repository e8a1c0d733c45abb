"""atheris target: the stream parser (``fuzz.targets.parse_stream``).

    .venv/bin/python fuzz/fuzz_parser.py [libFuzzer options] [corpus directories]

``make fuzz`` runs it for a bounded time with ``fuzz/seeds/parser`` as seeds.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris  # type: ignore[import-untyped,import-not-found,unused-ignore]

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

with atheris.instrument_imports(include=["roost"]):
    from fuzz.targets import parse_stream


def main() -> None:
    """Run libFuzzer with the command-line options."""
    atheris.Setup(sys.argv, parse_stream)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
