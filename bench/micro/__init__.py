"""Micro-benchmarks of the hot path (DESIGN.md §3): one module per measured layer."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any


def run_in_temporary_directory(measure: Callable[[Path], Coroutine[Any, Any, None]]) -> None:
    """Run ``measure(directory)`` on uvloop when installed, in a fresh temporary directory."""
    try:
        import uvloop
    except ImportError:
        runner: Any = asyncio.run
    else:
        runner = uvloop.run
    with tempfile.TemporaryDirectory(prefix="roost-micro-") as tmp:
        runner(measure(Path(tmp)))
