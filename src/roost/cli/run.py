"""``roost init`` (a commented configuration file, the data directory, a certificate) and
``roost run`` (the server in the foreground), docs/architecture.md"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from roost.cli.command import FAILED, OK, CommandError, _out
from roost.config import config_warnings, default_config_text, load_config
from roost.tls import ensure_certificate

log = logging.getLogger(__name__)


def cmd_init(args: argparse.Namespace) -> int:
    """Write a commented configuration file, the data directory and a certificate."""
    path: Path = args.config
    text = default_config_text(args.domain)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("x", encoding="utf-8") as file:
            file.write(text)
    except FileExistsError:
        raise CommandError(
            f"{path} already exists; roost init does not overwrite it "
            "(remove it, or name another file with -c)",
            FAILED,
        ) from None
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror}", FAILED) from None
    _out(f"wrote {path}")
    config = load_config(path)
    config.server.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    cert, _ = ensure_certificate(config)
    domain = config.server.domains[0]
    _out(f"data directory: {config.server.data_dir}")
    _out(f"self-signed certificate for {domain} and *.{domain}: {cert}")
    _out(f"next: roost user add -c {path} alice@{domain}")
    _out(f"      roost run -c {path}")
    return OK


def cmd_run(args: argparse.Namespace) -> int:
    """Run the server in the foreground until SIGTERM or SIGINT."""
    config = load_config(args.config)
    logging.basicConfig(
        level=config.server.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for warning in config_warnings(config):
        log.warning("%s", warning)
    from roost import server  # the whole server only for this command

    return server.run(config)
