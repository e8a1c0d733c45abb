"""``roost import`` and ``roost export``: accounts and their data in XEP-0227 files.

XEP-0227 §4 (the document), §7 (the file holds credentials: readable by its owner only).
Import reads and checks every file before anything is written.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, Final

from roost.auth.credentials import Credentials, PasswordError, derive
from roost.cli.command import FAILED, OK, CommandError, _err, _open_storage, _out
from roost.config import Config, load_config
from roost.storage import AccountExists, Storage, StorageError
from roost.xep0227 import UserData, Xep0227Error, read_users, write_document
from roost.xml.parser import parse_fragment
from roost.xml.serializer import serialize

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
