"""The storage interface: one protocol per concern, its errors, and the schema migrations.

Backends (``sqlite.py``, ``postgres.py``) implement the same protocols over the same schema
semantics, and run the same test suite (DESIGN.md §4). Hosts and usernames arrive already
normalised by the JID rules (RFC 7622): the stores compare them byte for byte and never
normalise again.

Schema migrations are numbered SQL files per backend (``migrations/<dialect>/0001_initial.sql``,
``0002_....sql``, ...), packaged with the code. ``Storage.open()`` applies the missing ones in
one transaction and records each in the ``schema_version`` table; a database whose version is
newer than the newest file is refused with a StorageError (an older roost must not write to a
schema it does not know).
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Final, Protocol

from roost.auth.credentials import Credentials, ScramKeys


class StorageError(Exception):
    """The backend failed, or this database cannot be used by this version of roost."""


class AccountExists(StorageError):  # noqa: N818 (the API names it so)
    """create() was asked for an account that already exists."""


class AccountNotFound(StorageError):  # noqa: N818 (the API names it so)
    """The account does not exist."""


class AccountStore(Protocol):
    """Accounts of each virtual host and their SCRAM credentials (never a password)."""

    async def create(self, host: str, user: str, creds: Credentials) -> None:
        """Create the account; raise AccountExists if it is already there."""
        ...

    async def set_credentials(self, host: str, user: str, creds: Credentials) -> None:
        """Replace all stored credentials; raise AccountNotFound if there is no account."""
        ...

    async def get_credentials(self, host: str, user: str) -> Credentials | None:
        """The stored credentials, or None if there is no such account."""
        ...

    async def exists(self, host: str, user: str) -> bool:
        """Whether the account exists."""
        ...

    async def delete(self, host: str, user: str) -> bool:
        """Delete the account and every row of that user in every table; True if it existed."""
        ...

    async def list(self, host: str) -> builtins.list[str]:
        """The usernames of the host, sorted by code point."""
        ...


class KeyValueStore(Protocol):
    """A generic per-user store (Prosody's "keyval") for modules that need no tables of their
    own: ``store`` names the module's data ("private", "vcard", ...), ``key`` an item in it.

    The (host, user) pair need not be an account; an account's rows are removed with it.
    """

    async def get(self, host: str, user: str, store: str, key: str) -> bytes | None:
        """The value, or None if the key is not set."""
        ...

    async def set(self, host: str, user: str, store: str, key: str, value: bytes) -> None:
        """Set or overwrite the value."""
        ...

    async def delete(self, host: str, user: str, store: str, key: str) -> None:
        """Remove the key; nothing happens if it is not set."""
        ...

    async def keys(self, host: str, user: str, store: str) -> list[str]:
        """The keys set in that store of that user, sorted by code point."""
        ...


class Storage(Protocol):
    """One database: the stores for every concern, opened and closed together."""

    accounts: AccountStore
    kv: KeyValueStore

    async def open(self) -> None:
        """Connect and migrate the schema to the newest version."""
        ...

    async def close(self) -> None:
        """Close every connection; the stores cannot be used afterwards."""
        ...

    @property
    def schema_version(self) -> int:
        """The schema version of the open database (0 before open())."""
        ...


def open_storage(backend: str, *, path: Path | None = None, dsn: str = "") -> Storage:
    """Make the storage named by the configuration ([storage].backend); open() connects.

    "sqlite" needs ``path`` (the database file), "postgresql" a ``dsn``
    (``postgresql://user@host:port/database``). Raise ValueError otherwise.
    """
    if backend == "sqlite":
        if path is None:
            raise ValueError("the sqlite storage backend needs the path of the database file")
        from roost.storage.sqlite import SqliteStorage

        return SqliteStorage(path)
    if backend == "postgresql":
        if not dsn:
            raise ValueError("the postgresql storage backend needs a dsn (postgresql://...)")
        from roost.storage.postgres import PostgresStorage

        return PostgresStorage(dsn)
    raise ValueError(f"unknown storage backend {backend!r} (known: 'sqlite', 'postgresql')")


# Tables holding per-user rows keyed by (host, username) without a foreign key to accounts:
# AccountStore.delete() clears them explicitly. A migration adding a per-user table either
# references accounts ON DELETE CASCADE (as credentials does) or is added here.
USER_DATA_TABLES: Final = ("kv",)


# -- credentials <-> rows ------------------------------------------------------------------

CredentialRow = tuple[str, bytes, int, bytes, bytes]


def credential_rows(creds: Credentials) -> list[CredentialRow]:
    """(hash name, salt, iterations, stored_key, server_key) for each hash, in a stable order."""
    return [
        (name, keys.salt, keys.iterations, keys.stored_key, keys.server_key)
        for name, keys in sorted(creds.items())
    ]


def credentials_from_rows(rows: Iterable[Sequence[Any]]) -> Credentials:
    """Rebuild Credentials from rows shaped like credential_rows(); rows of NULLs are skipped."""
    return {
        str(row[0]): ScramKeys(bytes(row[1]), int(row[2]), bytes(row[3]), bytes(row[4]))
        for row in rows
        if row[0] is not None
    }


# -- schema migrations ---------------------------------------------------------------------

_MIGRATION_NAME: Final = re.compile(r"(\d{4})_(\w+)\.sql")


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered schema change: the SQL brings version - 1 to version."""

    version: int
    name: str
    sql: str


@cache
def load_migrations(dialect: str) -> tuple[Migration, ...]:
    """The packaged migrations of one dialect ("sqlite", "postgresql"), numbered 1..N."""
    folder = resources.files("roost.storage") / "migrations" / dialect
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.fullmatch(entry.name)
        if match is not None:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        numbers = ", ".join(f"{m.version:04d}" for m in found) or "none"
        raise StorageError(f"{dialect} migrations must be numbered 0001, 0002, ...: {numbers}")
    return tuple(found)


def pending_migrations(dialect: str, current: int, where: str) -> tuple[Migration, ...]:
    """The migrations to apply to a database at version ``current``.

    Raise StorageError if the database is newer than this code (``where`` names it).
    """
    migrations = load_migrations(dialect)
    newest = migrations[-1].version if migrations else 0
    if current > newest:
        raise StorageError(
            f"{where}: the database schema is at version {current}, newer than this roost "
            f"knows (up to {newest}); upgrade roost, or use a database it created"
        )
    return tuple(m for m in migrations if m.version > current)


def newest_schema_version(dialect: str) -> int:
    """The version a database of that dialect has after open()."""
    migrations = load_migrations(dialect)
    return migrations[-1].version if migrations else 0
