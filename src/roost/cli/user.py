"""``roost user add | passwd | del | list``: accounts in the configured storage.

See "Accounts" in docs/configuration.md.

They open the storage named by the configuration directly, so they work whether the server
runs or not (SQLite lets both write, one after the other).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Callable, Coroutine
from typing import Any, Final

from roost.auth.credentials import Credentials, PasswordError, derive
from roost.cli.command import FAILED, OK, USAGE, CommandError, _open_storage, _out
from roost.config import Config, load_config
from roost.jid import JID, JIDError, normalize_domain
from roost.storage import AccountExists, AccountNotFound


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
