"""The comparison table (scenario, figure, roost, Prosody, ratio, target) and the JSON record."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Results = dict[str, dict[str, dict[str, float]]]  # scenario → server → figure → value


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table: where its numbers come from and what is better."""

    scenario: str  # key in the results: "connect", "messages_max", "presence_50", ...
    label: str  # the scenario as printed
    figure: str
    key: str
    higher_is_better: bool
    target: float | None = None  # the roost/Prosody ratio to reach (issue 4), if any
    digits: int = 1


def _connect_rows(results: Results) -> list[Row]:
    connect = results.get("connect", {})
    steps = sorted(
        {int(k.split("@")[1]) for f in connect.values() for k in f if k.startswith("sessions")}
    )
    rows = [
        Row("connect", "connect", f"sessions/s, N={n}", f"sessions_per_s@{n}", True, 1.0)
        for n in steps
    ]
    rows += [
        Row("connect", "connect", f"RSS KiB/idle session, N={n}", f"rss_per_session_kib@{n}",
            False, 1.0)
        for n in steps
    ]  # fmt: skip
    if steps:
        rows += [
            Row("connect", "connect", "server CPU s, all steps", "server_cpu_s", False),
            Row("connect", "connect", "load generator CPU s", "loadgen_cpu_s", False),
        ]
    return rows


def _message_rows(scenario: str, label: str, fixed: bool) -> list[Row]:
    rows = []
    if fixed:
        rows.append(Row(scenario, label, "offered/s (½ Prosody max)", "offered_per_s", True))
    rows += [
        Row(scenario, label, "delivered/s", "delivered_per_s", True, None if fixed else 1.5, 0),
        Row(scenario, label, "latency p50 ms", "latency_p50_ms", False, None, 2),
        Row(scenario, label, "latency p99 ms", "latency_p99_ms", False, 1.0 if fixed else None, 2),
        Row(scenario, label, "server CPU %", "server_cpu_pct", False),
        Row(scenario, label, "load generator CPU %", "loadgen_cpu_pct", False),
    ]
    return rows


def _presence_rows(scenario: str) -> list[Row]:
    label = f"presence wave, R={scenario.split('_')[1]}"
    return [
        Row(scenario, label, "presence delivered/s", "presence_per_s", True, 1.0, 0),
        Row(scenario, label, "wave time s", "wave_s", False, 1.0, 2),
        Row(scenario, label, "users complete", "complete_users", True, None, 0),
        Row(scenario, label, "server CPU s", "server_cpu_s", False, None, 2),
        Row(scenario, label, "load generator CPU s", "loadgen_cpu_s", False, None, 2),
    ]


def rows_for(results: Results) -> list[Row]:
    """The rows that the results have figures for, in reading order."""
    rows = _connect_rows(results)
    if "messages_max" in results:
        rows += _message_rows("messages_max", "messages, saturation", fixed=False)
    if "messages_fixed" in results:
        rows += _message_rows("messages_fixed", "messages, fixed rate", fixed=True)
    presence = sorted((k for k in results if k.startswith("presence_")), key=lambda k: int(k[9:]))
    for scenario in presence:
        rows += _presence_rows(scenario)
    return rows


def _lookup(results: Results, scenario: str, server: str, key: str) -> float | None:
    figures = results.get(scenario, {}).get(server)
    if figures is None or key not in figures:
        return None
    value = float(figures[key])
    return None if math.isnan(value) else value


def table(results: Results) -> tuple[str, list[dict[str, Any]]]:
    """The printed table and its rows as records (for the JSON); with a baseline run, two
    more columns: the baseline's figure and roost/baseline."""
    based = any("baseline" in servers for servers in results.values())
    records: list[dict[str, Any]] = []
    extra = f" {'baseline':>10} {'vs base':>7}" if based else ""
    header = f"{'scenario':<22} {'figure':<30} {'roost':>10}{extra} {'Prosody':>10} {'ratio':>7}"
    lines = [header + "  target", "-" * (92 + len(extra))]
    for row in rows_for(results):
        ours = _lookup(results, row.scenario, "roost", row.key)
        theirs = _lookup(results, row.scenario, "prosody", row.key)
        base = _lookup(results, row.scenario, "baseline", row.key)
        ratio = _ratio(ours, theirs)
        verdict = ""
        if row.target is not None and ratio is not None:
            met = ratio >= row.target if row.higher_is_better else ratio <= row.target
            sign = "≥" if row.higher_is_better else "≤"
            verdict = f"{sign}{row.target:g} {'met' if met else 'MISSED'}"
        columns = f"{_fmt(ours, row.digits):>10}"
        if based:
            columns += f" {_fmt(base, row.digits):>10} {_fmt(_ratio(ours, base), 2):>7}"
        lines.append(
            f"{row.label:<22} {row.figure:<30} {columns} "
            f"{_fmt(theirs, row.digits):>10} {_fmt(ratio, 2):>7}  {verdict}"
        )
        record = {"scenario": row.label, "figure": row.figure, "roost": ours, "prosody": theirs}
        record |= {"ratio": ratio, "target": verdict or None}
        if based:
            record |= {"baseline": base, "vs_baseline": _ratio(ours, base)}
        records.append(record)
    return "\n".join(lines), records


def _ratio(ours: float | None, theirs: float | None) -> float | None:
    return ours / theirs if ours is not None and theirs else None


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def write_json(path: Path, record: dict[str, Any]) -> None:
    """Write the run's record (creating bench/results/ if needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
