"""``roost import`` and ``roost export``: accounts and their data in XEP-0227 files.

XEP-0227 §4 (the document), §7 (the file holds credentials: readable by its owner only).
Import reads and checks every file before anything is written. What a user carries besides
the account goes to and comes from the stores through the store registry
(roost.storage.registry: ``import_user``, ``export_user``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, Final

from roost.auth.credentials import PasswordError, derive
from roost.cli.command import FAILED, OK, CommandError, _err, _open_storage, _out
from roost.config import Config, load_config
from roost.storage import AccountExists, StorageError
from roost.storage.registry import export_user, import_user
from roost.xep0227 import UserData, Xep0227Error, read_users, write_document

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
                        left_out = await import_user(
                            storage, user, creds, offline_limit=config.limits.offline_messages
                        )
                    except PasswordError as exc:
                        notes.append(f"{user.jid} not imported: {exc}")
                    except AccountExists:
                        notes.append(f"{user.jid} not imported: the account exists already")
                    else:
                        imported += 1
                        notes.extend(user.notes + left_out)
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
    _out(f"imported {imported} of {len(users)} accounts")
    return OK if imported == len(users) else FAILED


async def _export(config: Config, out: BinaryIO) -> int:
    async with _open_storage(config) as storage:
        hosts = [(h, await storage.accounts.list(h)) for h in config.server.domains]
        users = [[await export_user(storage, h, n) for n in names] for h, names in hosts]
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
