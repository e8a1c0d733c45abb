"""Run every micro-benchmark and print the figures: ``python -m bench.micro`` (repo root)."""

from __future__ import annotations

from bench.micro import xml_layer


def main() -> None:
    """Run the benchmarks in order."""
    xml_layer.run()


if __name__ == "__main__":
    main()
