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


def write_config(directory: Path, limits: str = "") -> Path:
    """A ``roost.toml`` in ``directory``: localhost, no listeners, no services, loopback
    exempt from the limits; ``limits``: more ``[limits]`` lines."""
    path = directory / "roost.toml"
    path.write_text(
        '[server]\ndomains = ["localhost"]\ndata_dir = "data"\nlog_level = "warning"\n'
        '[listen]\nc2s = ""\nc2s_tls = ""\ns2s = ""\ncomponent = ""\nhttp = ""\n'
        '[services]\nmuc = ""\npubsub = ""\nupload = ""\n'
        "[limits]\nexempt_loopback = true\nread_rate = 1000000000\n" + limits
    )
    return path
