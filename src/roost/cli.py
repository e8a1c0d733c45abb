"""The ``roost`` command: init, run, user add/passwd/del/list, check, import, export, version.

Exit codes, for scripts: 0 done; 1 the operation failed (the account exists or does not,
``check`` found a problem, ``init`` would overwrite a file); 2 a usage or configuration
error. Mistakes of the user are told in one plain sentence on stderr, never a traceback.

``user`` commands open the storage named by the configuration directly, so they work
whether the server runs or not (SQLite lets both write, one after the other).
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import getpass
import logging
import os
import platform
import pyexpat
import socket
import ssl
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any, BinaryIO, Final

from roost import __version__
from roost.auth.credentials import Credentials, PasswordError, derive
from roost.config import (
    UNBUILT_FEATURES,
    Config,
    ConfigError,
    Endpoint,
    ListenSection,
    config_warnings,
    default_config_text,
    load_config,
)
from roost.jid import JID, JIDError, normalize_domain
from roost.storage import AccountExists, AccountNotFound, Storage, StorageError, open_storage
from roost.tls import ensure_certificate, generated_paths, inspect_certificate, read_certificate
from roost.xep0227 import UserData, Xep0227Error, read_users, write_document
from roost.xml.parser import parse_fragment
from roost.xml.serializer import serialize

log = logging.getLogger(__name__)

OK: Final = 0
FAILED: Final = 1
USAGE: Final = 2
DEFAULT_CONFIG: Final = Path("roost.toml")


class CommandError(Exception):
    """A command cannot go on: the message for the user and the exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _out(line: str) -> None:
    sys.stdout.write(f"{line}\n")


def _err(line: str) -> None:
    sys.stderr.write(f"{line}\n")


# --- init, run, version -----------------------------------------------------------------


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


def cmd_version(args: argparse.Namespace) -> int:
    """Print the versions of roost and of what it runs on."""
    _out(f"roost {__version__}")
    _out(f"Python {platform.python_version()} ({platform.python_implementation()})")
    _out(f"expat {pyexpat.EXPAT_VERSION.removeprefix('expat_')}")
    _out(ssl.OPENSSL_VERSION)
    return OK


# --- user -------------------------------------------------------------------------------


@asynccontextmanager
async def _open_storage(config: Config) -> AsyncIterator[Storage]:
    if config.storage.backend == "sqlite":
        config.server.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    storage = open_storage(config.storage.backend, path=config.sqlite_path, dsn=config.storage.dsn)
    try:
        await storage.open()
    except (StorageError, OSError) as exc:
        raise CommandError(f"cannot open the storage: {exc}", FAILED) from None
    try:
        yield storage
    finally:
        await storage.close()


def _served(config: Config, domain: str) -> str:
    if domain not in config.server.domains:
        served = ", ".join(config.server.domains)
        raise CommandError(
            f"{domain} is not served here (served: {served}; see [server].domains in "
            f"{config.path})",
            USAGE,
        )
    return domain


def _account(config: Config, raw: str) -> tuple[str, str]:
    """(host, user) of an account given as ``user@domain``."""
    try:
        jid = JID.parse(raw)
    except JIDError as exc:
        raise CommandError(f"{raw!r} is not a valid JID: {exc}", USAGE) from None
    if jid.local is None:
        example = f"alice@{config.server.domains[0]}"
        raise CommandError(f"{raw} has no user name; write user@domain (e.g. {example})", USAGE)
    if jid.resource is not None:
        raise CommandError(f"{raw}: give the account without a resource ({jid.bare})", USAGE)
    return _served(config, jid.domain), jid.local


def _read_password(given: str | None) -> str:
    """The password: from the command line, else typed twice on a terminal, else one line."""
    if given is not None:
        return given
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Password (again): ") != first:
            raise CommandError("the passwords do not match", USAGE)
        return first
    return sys.stdin.readline().removesuffix("\n").removesuffix("\r")


async def _new_credentials(given: str | None) -> Credentials:
    password = await asyncio.to_thread(_read_password, given)
    try:
        return derive(password)
    except PasswordError as exc:
        raise CommandError(str(exc), USAGE) from None


async def _user_add(config: Config, args: argparse.Namespace) -> int:
    host, user = _account(config, args.jid)
    async with _open_storage(config) as storage:
        if await storage.accounts.exists(host, user):
            raise CommandError(f"user {user}@{host} already exists", FAILED)
        creds = await _new_credentials(args.password)
        try:
            await storage.accounts.create(host, user, creds)
        except AccountExists:
            raise CommandError(f"user {user}@{host} already exists", FAILED) from None
    _out(f"user {user}@{host} created")
    return OK


async def _user_passwd(config: Config, args: argparse.Namespace) -> int:
    host, user = _account(config, args.jid)
    async with _open_storage(config) as storage:
        if not await storage.accounts.exists(host, user):
            raise CommandError(f"user {user}@{host} does not exist", FAILED)
        creds = await _new_credentials(args.password)
        try:
            await storage.accounts.set_credentials(host, user, creds)
        except AccountNotFound:
            raise CommandError(f"user {user}@{host} does not exist", FAILED) from None
    _out(f"password of {user}@{host} changed")
    return OK


async def _user_del(config: Config, args: argparse.Namespace) -> int:
    host, user = _account(config, args.jid)
    async with _open_storage(config) as storage:
        if not await storage.accounts.delete(host, user):
            raise CommandError(f"user {user}@{host} does not exist", FAILED)
    _out(f"user {user}@{host} deleted")
    return OK


async def _user_list(config: Config, args: argparse.Namespace) -> int:
    if args.domain is None:
        hosts = config.server.domains
    else:
        try:
            hosts = (_served(config, normalize_domain(args.domain)),)
        except JIDError as exc:
            raise CommandError(f"{args.domain!r} is not a valid domain: {exc}", USAGE) from None
    async with _open_storage(config) as storage:
        for host in hosts:
            for user in await storage.accounts.list(host):
                _out(f"{user}@{host}")
    return OK


UserAction = Callable[[Config, argparse.Namespace], Coroutine[Any, Any, int]]
_USER_ACTIONS: Final[dict[str, UserAction]] = {
    "add": _user_add,
    "passwd": _user_passwd,
    "del": _user_del,
    "list": _user_list,
}


def cmd_user(args: argparse.Namespace) -> int:
    """Add, change, delete or list accounts in the configured storage."""
    config = load_config(args.config)
    return asyncio.run(_USER_ACTIONS[args.action](config, args))


# --- check ------------------------------------------------------------------------------


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


# --- import, export (XEP-0227) ----------------------------------------------------------

NOTES_SHOWN: Final = 20  # notes printed in full by import/export; the rest are counted


def _print_notes(notes: list[str]) -> None:
    for note in notes[:NOTES_SHOWN]:
        _err(f"note: {note}")
    if len(notes) > NOTES_SHOWN:
        _err(f"note: ... and {len(notes) - NOTES_SHOWN} more")


def _read_import(config: Config, files: list[Path]) -> list[UserData]:
    """Every user of the files, checked before anything is written."""
    users: list[UserData] = []
    for path in files:
        try:
            users.extend(read_users(path))
        except Xep0227Error as exc:
            raise CommandError(f"{exc}; nothing was imported", FAILED) from None
    foreign = sorted({u.host for u in users} - set(config.server.domains))
    if foreign:
        served = ", ".join(config.server.domains)
        raise CommandError(
            f"{', '.join(foreign)} not served here (served: {served}; see [server].domains "
            f"in {config.path}); nothing was imported",
            FAILED,
        )
    return users


async def _import_user(
    storage: Storage, config: Config, user: UserData, creds: Credentials
) -> None:
    from roost.modules import private, vcard  # their storage keys; only this command needs them

    host, name = user.host, user.name
    await storage.accounts.create(host, name, creds)
    for item in user.roster:
        await storage.roster.put(host, name, item)
    for contact, request in user.pending_in.items():
        await storage.roster.set_pending_in(host, name, contact, serialize(request))
    if user.vcard is not None:
        await storage.kv.set(host, name, vcard.STORE, vcard.KEY, serialize(user.vcard))
    for fragment in user.private:
        if fragment.xmlns.startswith(private.RESERVED_PREFIX):
            user.notes.append(f"{user.jid}: private XML in {fragment.xmlns} left out (reserved)")
        else:
            key = private.item_key(fragment)
            await storage.kv.set(host, name, private.STORE, key, serialize(fragment))
    limit = config.limits.offline_messages
    for message in user.offline:
        if not await storage.offline.push(host, name, serialize(message), limit=limit):
            user.notes.append(f"{user.jid}: offline messages beyond {limit} left out")
            break


async def _import(config: Config, users: list[UserData]) -> tuple[int, list[str]]:
    """Write the users; (accounts imported, notes). Passwords are derived on all cores."""
    loop = asyncio.get_running_loop()
    imported, notes = 0, []
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        derived = [
            loop.run_in_executor(pool, derive, u.password) if u.password is not None else None
            for u in users
        ]
        try:
            async with _open_storage(config) as storage:
                for user, future in zip(users, derived, strict=True):
                    try:
                        creds = user.scram if future is None else await future
                        await _import_user(storage, config, user, creds)
                    except PasswordError as exc:
                        notes.append(f"{user.jid} not imported: {exc}")
                    except AccountExists:
                        notes.append(f"{user.jid} not imported: the account exists already")
                    else:
                        imported += 1
                        notes.extend(user.notes)
        except StorageError as exc:
            _print_notes(notes)
            raise CommandError(
                f"the storage failed after {imported} accounts were imported: {exc}", FAILED
            ) from None
        finally:
            pool.shutdown(cancel_futures=True)
    return imported, notes


def cmd_import(args: argparse.Namespace) -> int:
    """Import accounts, rosters, vCards, private XML and offline messages (XEP-0227)."""
    config = load_config(args.config)
    users = _read_import(config, args.files)
    imported, notes = asyncio.run(_import(config, users))
    _print_notes(notes)
    items = sum(len(u.roster) for u in users)
    _out(f"imported {imported} of {len(users)} accounts ({items} roster items in the files)")
    return OK if imported == len(users) else FAILED


async def _export_user(storage: Storage, host: str, name: str) -> UserData:
    from roost.modules import private, vcard

    user = UserData(host, name, scram=await storage.accounts.get_credentials(host, name) or {})
    user.roster = list((await storage.roster.get(host, name)).items.values())
    for contact, request in (await storage.roster.pending_in(host, name)).items():
        user.pending_in[contact] = parse_fragment(request)
    card = await storage.kv.get(host, name, vcard.STORE, vcard.KEY)
    user.vcard = None if card is None else parse_fragment(card)
    for key in await storage.kv.keys(host, name, private.STORE):
        fragment = await storage.kv.get(host, name, private.STORE, key)
        if fragment is not None:
            user.private.append(parse_fragment(fragment))
    user.offline = [parse_fragment(data) for _, data in await storage.offline.fetch(host, name)]
    return user


async def _export(config: Config, out: BinaryIO) -> int:
    async with _open_storage(config) as storage:
        hosts = [(h, await storage.accounts.list(h)) for h in config.server.domains]
        users = [[await _export_user(storage, h, n) for n in names] for h, names in hosts]
    return write_document(out, zip(config.server.domains, users, strict=True))


def cmd_export(args: argparse.Namespace) -> int:
    """Export every account of every served domain to a XEP-0227 file (SCRAM keys only)."""
    config = load_config(args.config)
    path: Path = args.file
    if str(path) == "-":
        count = asyncio.run(_export(config, sys.stdout.buffer))
    else:
        try:  # the file holds credentials: readable by its owner only (XEP-0227 §7)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise CommandError(
                f"{path} already exists; roost export does not overwrite it", FAILED
            ) from None
        except OSError as exc:
            raise CommandError(f"cannot write {path}: {exc.strerror}", FAILED) from None
        with open(fd, "wb") as out:
            count = asyncio.run(_export(config, out))
        _out(f"exported {count} accounts to {path}")
    return OK


# --- the parser -------------------------------------------------------------------------


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
