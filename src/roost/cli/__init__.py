"""The ``roost`` command: init, run, user add/passwd/del/list, check, import, export, version.

One file per command group (docs/architecture.md): ``run`` (init, run), ``user``, ``check``,
``transfer`` (import, export), ``version``; ``command`` holds what they share. This file
builds the argparse parser and maps what a command raises to its exit code.

Exit codes, for scripts: 0 done; 1 the operation failed (the account exists or does not,
``check`` found a problem, ``init`` would overwrite a file); 2 a usage or configuration
error. Mistakes of the user are told in one plain sentence on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Final

from roost.cli.check import cmd_check
from roost.cli.command import FAILED, OK, USAGE, CommandError, _err
from roost.cli.run import cmd_init, cmd_run
from roost.cli.transfer import cmd_export, cmd_import
from roost.cli.user import cmd_user
from roost.cli.version import cmd_version
from roost.config import ConfigError

__all__ = ["FAILED", "OK", "USAGE", "CommandError", "main"]

DEFAULT_CONFIG: Final = Path("roost.toml")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-c", "--config", type=Path, default=DEFAULT_CONFIG, metavar="FILE",
        help=f"the configuration file (default: {DEFAULT_CONFIG})",
    )  # fmt: skip
    parser = argparse.ArgumentParser(prog="roost", description="roost, an XMPP server")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    def command(name: str, run: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        # `user` takes -c after its action: a subparser's defaults would override it.
        parents = [] if name == "user" else [common]
        sub = commands.add_parser(name, parents=parents, help=(run.__doc__ or "").strip())
        sub.set_defaults(run=run)
        return sub

    init = command("init", cmd_init)
    init.add_argument("--domain", default="localhost", help="the domain to serve")
    command("run", cmd_run)
    command("check", cmd_check)
    command("version", cmd_version)
    importing = command("import", cmd_import)
    importing.add_argument("files", nargs="+", type=Path, metavar="FILE.xml")
    command("export", cmd_export).add_argument("file", type=Path, metavar="FILE.xml|-")
    user = command("user", cmd_user)
    actions = user.add_subparsers(title="actions", dest="action", metavar="ACTION", required=True)
    for name, help_text in (("add", "create an account"), ("passwd", "change a password")):
        action = actions.add_parser(name, parents=[common], help=help_text)
        action.add_argument("jid", metavar="USER@DOMAIN")
        action.add_argument("password", nargs="?", help="default: read from the terminal/stdin")
    actions.add_parser("del", parents=[common], help="delete an account").add_argument(
        "jid", metavar="USER@DOMAIN"
    )
    listing = actions.add_parser("list", parents=[common], help="list the accounts")
    listing.add_argument("domain", nargs="?", help="default: every served domain")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``roost`` command; returns the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed by argparse
        return exc.code if isinstance(exc.code, int) else USAGE
    run: Callable[[argparse.Namespace], int] | None = getattr(args, "run", None)
    if run is None:
        parser.print_help(sys.stderr)
        return USAGE
    try:
        return run(args)
    except CommandError as exc:
        _err(str(exc))
        return exc.code
    except ConfigError as exc:
        _err(str(exc))
        return USAGE
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
