"""roost against Prosody, side by side in one run: ``python -m bench`` (``make bench``).

Provisions the same accounts and rosters for both servers, then runs every scenario against
roost and against Prosody in turn (a fresh server process for each run), prints the table
(scenario, figure, roost, Prosody, ratio, target of issue 4) and writes everything measured
to ``bench/results/bench-<time>.json``. ``--smoke`` runs every scenario with tiny numbers
(the test suite does, in well under a minute); ``--profile`` adds a py-spy profile of roost
under the saturation message load.

Order: connect; messages at saturation; messages at a fixed offered rate of half Prosody's
saturation rate (half roost's without Prosody); presence waves. Prosody is left out, with a
note, when the ``prosody`` command is not installed (scripts/install-bench-deps.sh).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import profile
from bench.loadgen import PASSWORD, LoadGenerator, raise_open_files_limit
from bench.provision import Population, bench_keys
from bench.report import Results, table, write_json
from bench.scenarios import FULL, SMOKE, Figures, Runner, Sizes, StartHook
from bench.servers import (
    BenchServer,
    ProsodyServer,
    RoostServer,
    prosody_installed,
    prosody_version,
)
from roost import __version__

RESULTS = Path(__file__).parent / "results"


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny numbers, a quick check")
    parser.add_argument("--no-prosody", action="store_true", help="measure roost alone")
    parser.add_argument("--profile", action="store_true", help="py-spy profile of roost")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply N, U, P by this")
    parser.add_argument("--seconds", type=float, help="seconds per message run")
    parser.add_argument("--workers", type=int, help="load generator processes")
    parser.add_argument("--only", help="comma-separated: connect,messages,presence")
    parser.add_argument("--out", type=Path, help="the JSON file (default: bench/results/)")
    parser.add_argument(
        "--baseline", type=Path, help="also run roost from this source tree (its src/ directory)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    return parser.parse_args()


def _sizes(args: argparse.Namespace) -> Sizes:
    sizes = SMOKE if args.smoke else FULL
    if args.scale != 1.0:
        scale = args.scale

        def scaled(n: int) -> int:
            return max(4, int(n * scale + 0.5))

        sizes = dataclasses.replace(
            sizes,
            connect_steps=tuple(scaled(n) for n in sizes.connect_steps),
            pairs=max(1, round(sizes.pairs * scale)),
            rings=tuple((r, max(r + 2, scaled(u))) for r, u in sizes.rings),
        )
    if args.seconds:
        sizes = dataclasses.replace(sizes, message_seconds=args.seconds)
    if args.workers:
        sizes = dataclasses.replace(sizes, workers=args.workers)
    return sizes


def _timed(label: str, server: BenchServer, run: Any) -> Figures:
    """Start ``server``, run, stop; print what it took."""
    began = time.monotonic()
    server.start()
    try:
        figures: Figures = run(server)
    finally:
        server.stop()
    print(f"  {label:<24} {server.name:<8} {time.monotonic() - began:6.1f} s", flush=True)
    return figures


class Comparison:
    """One bench run: the servers, the load generator and the results so far."""

    def __init__(self, args: argparse.Namespace, sizes: Sizes, work: Path) -> None:
        self.args = args
        self.sizes = sizes
        self.work = work
        self.results: Results = {}
        self.record: dict[str, Any] = {}
        plain = max(max(sizes.connect_steps), 2 * sizes.pairs)
        self.population = Population("localhost", plain, sizes.rings)
        self.roost = RoostServer(work / "roost")
        self.baseline: RoostServer | None = None
        if args.baseline is not None:
            source = args.baseline.resolve()
            if not (source / "roost" / "__init__.py").is_file():
                raise SystemExit(f"--baseline {args.baseline}: no roost package there")
            self.baseline = RoostServer(work / "baseline", source, name="baseline")
        self.prosody: ProsodyServer | None = None
        if not args.no_prosody and prosody_installed():
            self.prosody = ProsodyServer(work / "prosody")
        elif not args.no_prosody:
            print("prosody is not installed (scripts/install-bench-deps.sh): roost alone")

    @property
    def servers(self) -> list[BenchServer]:
        """The servers, in the order each scenario runs them."""
        extra = [self.baseline, self.prosody]
        return [self.roost, *(server for server in extra if server is not None)]

    def provision(self) -> None:
        """Give both servers the accounts and rosters."""
        keys = bench_keys(PASSWORD)
        pop = self.population
        print(f"provisioning {pop.plain + sum(u for _, u in pop.rings)} accounts, "
              f"{pop.roster_items} roster items", flush=True)  # fmt: skip
        self.record["provision"] = {"roost": self.roost.prepare(pop, keys)}
        if self.baseline is not None:
            self.record["provision"]["baseline"] = self.baseline.prepare(pop, keys)
        if self.prosody is not None:
            cert = self.roost.certificate
            self.record["provision"]["prosody"] = self.prosody.prepare(pop, keys, cert)
        for name, figures in self.record["provision"].items():
            print(f"  {name}: {figures}", flush=True)

    def run(self, runner: Runner, only: set[str]) -> None:
        """Every scenario, alternating the servers."""
        if "connect" in only:
            self._each("connect", runner.connect)
        if "messages" in only:
            self._each("messages_max", runner.messages)
            saturation = self.results["messages_max"]
            reference = saturation.get("prosody", saturation["roost"])["delivered_per_s"]
            rate = max(10.0, reference / 2)
            self._each("messages_fixed", lambda s: runner.messages(s, rate))
        if "presence" in only:
            for contacts, _ in self.sizes.rings:
                self._each(f"presence_{contacts}", lambda s, r=contacts: runner.presence(s, r))

    def _each(self, scenario: str, run: Any) -> None:
        self.results[scenario] = {}
        for server in self.servers:
            self.results[scenario][server.name] = _timed(scenario, server, run)

    def profile(self, runner: Runner) -> None:
        """py-spy profiles of roost at message saturation and in the biggest presence wave
        (extra runs, not in the table)."""
        if profile.py_spy() is None:
            print("profile skipped: py-spy is not installed (pip install py-spy)")
            return
        self.record["profile"] = {}
        self._profiled("messages_max", lambda s, hook: runner.messages(s, on_start=hook))
        contacts = max(r for r, _ in self.sizes.rings)
        self._profiled(
            f"presence_{contacts}", lambda s, hook: runner.presence(s, contacts, on_start=hook)
        )

    def _profiled(self, name: str, run: Callable[[BenchServer, StartHook], Figures]) -> None:
        raw = self.work / f"{name}.pyspy.txt"
        spies: list[subprocess.Popen[bytes]] = []

        def profiled(server: BenchServer) -> Figures:
            def start(end: float | None) -> None:
                seconds = 600.0 if end is None else end - time.monotonic()
                spies.append(profile.record(server.pid, seconds, raw))

            try:
                return run(server, start)
            finally:
                for spy in spies:
                    spy.send_signal(signal.SIGINT)  # stop now and write what was sampled
                    spy.wait(60)

        figures = _timed(f"profile {name}", self.roost, profiled)
        self.record["profile"][name] = {
            "figures_while_profiled": figures,
            "self": profile.top_functions(raw),
            "cumulative": profile.top_cumulative(raw),
        }
        print(f"\nroost, {name} (py-spy: self time, total time):")
        for entry in self.record["profile"][name]["self"][:20]:
            print(f"  {entry['self_pct']:5.1f}% {entry['total_pct']:5.1f}%  {entry['function']}")


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "roost": __version__,
        "prosody": prosody_version() if prosody_installed() else None,
    }


def main() -> int:
    """Run the comparison; 0 when every run completed."""
    args = _parse()
    sizes = _sizes(args)
    only = set((args.only or "connect,messages,presence").split(","))
    raise_open_files_limit()
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="roost-bench-"))
    load_before = os.getloadavg()
    print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")
    comparison = Comparison(args, sizes, work)
    lg = LoadGenerator(sizes.workers)
    try:
        comparison.provision()
        runner = Runner(lg, comparison.population, sizes)
        comparison.run(runner, only)
        if args.profile:
            comparison.profile(runner)
    finally:
        lg.close()
        for server in comparison.servers:
            server.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    text, rows = table(comparison.results)
    elapsed = time.monotonic() - started
    load_after = os.getloadavg()
    print()
    print(text)
    print(f"\nload generator: {sizes.workers} processes, {lg.cpu:.1f} CPU s in total; "
          f"elapsed {elapsed:.0f} s; load average after: {load_after[0]:.2f}")  # fmt: skip
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out = args.out or RESULTS / f"bench-{'smoke-' if args.smoke else ''}{stamp}.json"
    write_json(
        out,
        {
            "started_utc": stamp,
            "elapsed_s": elapsed,
            "load_average_before": load_before,
            "load_average_after": load_after,
            "machine": _machine(),
            "sizes": dataclasses.asdict(sizes),
            "loadgen_cpu_s_total": lg.cpu,
            "results": comparison.results,
            "rows": rows,
            **comparison.record,
        },
    )
    print(f"results: {out}" + (f"; work directory kept: {work}" if args.keep else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
