"""Every bench scenario runs, with tiny numbers, against roost (and Prosody when installed).

``python -m bench --smoke`` provisions both servers (``roost import`` of a XEP-0227 file,
Prosody's storage files), starts each server per scenario and writes the JSON record; the
figures themselves are not judged here, only that each scenario produced them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.servers import prosody_installed

SCENARIOS = ("connect", "messages_max", "messages_fixed", "presence_4")


def test_every_scenario_runs_with_tiny_numbers(tmp_path: Path) -> None:
    out = tmp_path / "smoke.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = json.loads(out.read_text())
    servers = ["roost", "prosody"] if prosody_installed() else ["roost"]
    for scenario in SCENARIOS:
        assert sorted(record["results"][scenario]) == sorted(servers), scenario
    for server in servers:
        results = record["results"]
        assert results["connect"][server]["sessions_per_s@16"] > 0
        assert results["connect"][server]["failed@16"] == 0
        assert results["messages_max"][server]["delivered_per_s"] > 0
        assert results["messages_max"][server]["lost"] == 0
        assert results["messages_fixed"][server]["delivered_per_s"] > 0
        assert results["presence_4"][server]["complete_users"] == 10
    assert record["loadgen_cpu_s_total"] > 0
    assert "sessions/s, N=16" in done.stdout
