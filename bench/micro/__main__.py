"""Run every micro-benchmark and print the figures: ``python -m bench.micro`` (repo root).

``python -m bench.micro xml route write websocket`` runs only the named ones.
"""

from __future__ import annotations

import sys

from bench.micro import route, websocket, write, xml_layer

BENCHES = {
    "xml": xml_layer.run,
    "route": route.run,
    "write": write.run,
    "websocket": websocket.run,
}


def main() -> None:
    """Run the benchmarks named on the command line (default: all), in order."""
    names = sys.argv[1:] or list(BENCHES)
    for name in names:
        BENCHES[name]()


if __name__ == "__main__":
    main()
