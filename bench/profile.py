"""Sampling profiles of the running roost with py-spy (optional: ``pip install py-spy``).

``record`` attaches to the server's PID for a number of seconds and writes py-spy's raw
(collapsed stacks) output; ``top_functions`` turns it into the functions with the most
samples on their own (self) and below them (total).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def py_spy() -> str | None:
    """The py-spy command next to this interpreter or on PATH, if installed."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def record(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    """Start py-spy on ``pid`` for ``seconds``; wait() on the result."""
    command = py_spy()
    if command is None:
        raise RuntimeError("py-spy is not installed (pip install py-spy)")
    return subprocess.Popen(
        [
            command, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
            "--rate", "200", "--format", "raw", "--nonblocking", "--output", str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _name(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    path = match["file"]
    short = path.split("/site-packages/")[-1].split("/src/")[-1]
    return f"{match['func']} ({short})"


def top_functions(raw: Path, count: int = 25) -> list[dict[str, Any]]:
    """The functions with the most self samples: name, self %, total %."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        n = int(number)
        samples += n
        frames = [_name(f) for f in stack.split(";") if f.strip()]
        if not frames:
            continue
        own[frames[-1]] += n
        for name in set(frames):
            total[name] += n
    if not samples:
        return []
    return [
        {
            "function": name,
            "self_pct": 100 * n / samples,
            "total_pct": 100 * total[name] / samples,
        }
        for name, n in own.most_common(count)
    ]


def top_cumulative(raw: Path, count: int = 25) -> list[dict[str, Any]]:
    """The functions with the most samples below them (total %), roost's own first."""
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        samples += int(number)
        for name in {_name(f) for f in stack.split(";") if f.strip()}:
            total[name] += int(number)
    if not samples:
        return []
    return [
        {"function": name, "total_pct": 100 * n / samples}
        for name, n in total.most_common(count * 4)
        if "roost/" in name
    ][:count]
