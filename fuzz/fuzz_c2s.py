"""atheris target: the c2s machine behind the parser (``fuzz.targets.drive_c2s``).

    .venv/bin/python fuzz/fuzz_c2s.py [libFuzzer options] [corpus directories]

``make fuzz`` runs it for a bounded time with ``fuzz/seeds/c2s`` as seeds.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris  # type: ignore[import-untyped,import-not-found,unused-ignore]

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

with atheris.instrument_imports(include=["roost"]):
    from fuzz.targets import drive_c2s


def main() -> None:
    """Run libFuzzer with the command-line options."""
    atheris.Setup(sys.argv, drive_c2s)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
