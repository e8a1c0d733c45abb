"""``roost check``: the configuration, certificates, storage and ports, in plain words."""

from __future__ import annotations

import argparse
import asyncio
import errno
import socket
from dataclasses import fields

from roost.cli.command import FAILED, OK, CommandError, _open_storage, _out
from roost.config import (
    UNBUILT_FEATURES,
    Config,
    ConfigError,
    Endpoint,
    ListenSection,
    config_warnings,
    load_config,
)
from roost.tls import generated_paths, inspect_certificate, read_certificate


class _Report:
    """The lines `roost check` prints, counting problems."""

    __slots__ = ("problems",)

    def __init__(self) -> None:
        self.problems = 0

    def ok(self, text: str) -> None:
        _out(f"OK       {text}")

    def note(self, text: str) -> None:
        _out(f"NOTE     {text}")

    def warning(self, text: str) -> None:
        _out(f"WARNING  {text}")

    def problem(self, text: str) -> None:
        self.problems += 1
        _out(f"PROBLEM  {text}")


def _check_certificates(config: Config, report: _Report) -> None:
    domains = config.server.domains
    if config.tls.cert is not None and config.tls.key is not None:
        cert, key = config.tls.cert, config.tls.key
        problems = inspect_certificate(cert, key, domains)
        for problem in problems:
            report.problem(problem)
        if not problems:
            until = read_certificate(cert, key).not_after
            report.ok(f"certificate {cert} covers {', '.join(domains)}, valid until {until:%F}")
        return
    cert, key = generated_paths(config)
    if not cert.exists():
        report.ok(f"a self-signed certificate will be generated at start in {cert}")
    elif problems := inspect_certificate(cert, key, domains):
        report.note(f"{cert} will be generated again at start: {'; '.join(problems)}")
    else:
        report.ok(f"self-signed certificate {cert} covers {', '.join(domains)}")
    report.note(
        "clients do not trust a self-signed certificate: for a public server, "
        "set [tls].cert and [tls].key"
    )


async def _check_storage(config: Config, report: _Report) -> None:
    if config.storage.backend == "sqlite" and not config.sqlite_path.exists():
        report.ok(f"storage: the SQLite database {config.sqlite_path} will be created")
        return
    try:
        async with _open_storage(config) as storage:
            version = storage.schema_version
    except CommandError as exc:
        report.problem(str(exc))
        return
    where = config.sqlite_path if config.storage.backend == "sqlite" else "PostgreSQL"
    report.ok(f"storage: {where} opened (schema version {version})")


def _bind_problem(endpoint: Endpoint) -> str | None:
    """Why ``endpoint`` cannot be listened on now, or None if it can."""
    try:
        addresses = socket.getaddrinfo(
            endpoint.host, endpoint.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        return f"cannot resolve {endpoint.host}: {exc.strerror}"
    for family, kind, proto, _, address in dict.fromkeys(addresses):
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(address)
                sock.listen()
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return "is in use (is roost already running?)"
                if exc.errno == errno.EACCES:
                    return "needs privileges (ports below 1024: root or CAP_NET_BIND_SERVICE)"
                if exc.errno == errno.EADDRNOTAVAIL:
                    return "is not an address of this machine"
                return f"cannot be listened on: {exc.strerror}"
    return None


def _check_ports(config: Config, report: _Report) -> None:
    for field in fields(ListenSection):
        endpoint: Endpoint | None = getattr(config.listen, field.name)
        key = f"[listen].{field.name}"
        if endpoint is None or key in UNBUILT_FEATURES:
            continue
        problem = _bind_problem(endpoint)
        if problem is None:
            report.ok(f"{key} {endpoint} is free")
        else:
            report.problem(f"{key} {endpoint} {problem}")


def cmd_check(args: argparse.Namespace) -> int:
    """Check the configuration, certificates, storage and ports; exit 1 on a problem."""
    report = _Report()
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        report.problem(str(exc))
        return FAILED
    report.ok(f"configuration {args.config} (domains: {', '.join(config.server.domains)})")
    for warning in config_warnings(config):
        report.warning(warning)
    _check_certificates(config, report)
    asyncio.run(_check_storage(config, report))
    _check_ports(config, report)
    _out("no problem found" if not report.problems else f"{report.problems} problem(s) found")
    return FAILED if report.problems else OK
