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
from dataclasses import dataclass, replace
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


@dataclass(frozen=True, slots=True)
class RosterItem:
    """One contact on a user's roster (RFC 6121 §2.1.2), with its subscription state.

    ``subscription`` is "none", "to", "from" or "both"; ``ask`` is True while the user's
    outbound subscription request is pending ("ask='subscribe'", the "Pending Out" states of
    RFC 6121 Appendix A); ``approved`` records a pre-approval (§3.4). Contacts with neither a
    subscription, an ask nor a pre-approval can still be on the roster (user-added items).
    """

    jid: str  # the contact's bare JID, normalised
    name: str | None = None
    subscription: str = "none"
    ask: bool = False
    approved: bool = False
    groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Roster:
    """A user's whole roster and its version (RFC 6121 §2.6: one integer per change)."""

    version: int
    items: dict[str, RosterItem]


@dataclass(frozen=True, slots=True)
class RosterChange:
    """One change since a version: the item as it is now, or None when it was removed."""

    jid: str
    item: RosterItem | None
    version: int


class RosterStore(Protocol):
    """Rosters with versions (RFC 6121 §2.6) and the inbound requests held (§3.1.3).

    Every put or remove increments the user's roster version by one and records the change
    with that version (removals as tombstones), so ``changes_since`` can answer a client that
    has an older version with one push per change (§2.6.3). The increment and the change are
    one transaction: concurrent changes of one user's roster get distinct versions.

    The whole history is kept until a user has more than ROSTER_TOMBSTONES_KEPT tombstones;
    then the oldest are dropped and versions before the newest dropped one are no longer
    answerable (``changes_since`` says None). An item's groups are an ordered set: ``put``
    keeps the first of duplicate names (roster_groups()).
    """

    async def get(self, host: str, user: str) -> Roster:
        """The whole roster (version 0 and no items for a user who never had one)."""
        ...

    async def put(self, host: str, user: str, item: RosterItem) -> int:
        """Add or replace the item for ``item.jid``; the new roster version.

        Raise ValueError if ``item.subscription`` is not one of SUBSCRIPTIONS."""
        ...

    async def remove(self, host: str, user: str, jid: str) -> int | None:
        """Remove the item; the new roster version, or None if there was no such item."""
        ...

    async def changes_since(self, host: str, user: str, version: int) -> list[RosterChange] | None:
        """The changes after ``version``, oldest first, one per contact (its latest state);
        None when ``version`` is unknown (newer than the current one, or older than the
        history kept), in which case the client gets the whole roster."""
        ...

    async def pending_in(self, host: str, user: str) -> dict[str, bytes]:
        """Inbound subscription requests not yet answered: contact bare JID → the
        serialized ``<presence type='subscribe'/>`` to redeliver (§3.1.3)."""
        ...

    async def set_pending_in(self, host: str, user: str, jid: str, stanza: bytes | None) -> None:
        """Hold (or, with None, forget) the inbound request from ``jid``."""
        ...


class OfflineStore(Protocol):
    """Messages held for a user who has no available resource (XEP-0160).

    ``push`` commits before it returns, so the sender may be told the message was accepted.
    Delivery is at least once: ``fetch``, deliver, then ``delete`` the delivered ids. Ids
    increase with each push and are never reused, so deleting ids fetched earlier can never
    remove a message pushed since.
    """

    async def push(self, host: str, user: str, stanza: bytes, *, limit: int) -> bool:
        """Store one serialized message (with its <delay/>); False when the user already has
        ``limit`` messages stored (nothing is stored then). The check and the insert are one
        transaction: concurrent pushes never exceed the limit."""
        ...

    async def fetch(self, host: str, user: str) -> list[tuple[int, bytes]]:
        """The stored messages, oldest first, with their ids."""
        ...

    async def delete(self, host: str, user: str, ids: Sequence[int]) -> None:
        """Forget delivered messages."""
        ...

    async def count(self, host: str, user: str) -> int:
        """How many messages are stored for the user."""
        ...

    async def expire(self, before: float) -> int:
        """Delete messages stored before this Unix time (all users); how many were deleted."""
        ...


class BlockingStore(Protocol):
    """Each user's block list (XEP-0191): JIDs as given (bare, full or domain), normalised."""

    async def list(self, host: str, user: str) -> builtins.list[str]:
        """The blocked JIDs, sorted by code point."""
        ...

    async def add(self, host: str, user: str, jids: Sequence[str]) -> None:
        """Block these JIDs (already blocked ones are fine)."""
        ...

    async def remove(self, host: str, user: str, jids: Sequence[str]) -> None:
        """Unblock these JIDs (absent ones are fine)."""
        ...

    async def clear(self, host: str, user: str) -> None:
        """Unblock everyone."""
        ...


class Storage(Protocol):
    """One database: the stores for every concern, opened and closed together."""

    accounts: AccountStore
    kv: KeyValueStore
    roster: RosterStore
    offline: OfflineStore
    blocking: BlockingStore

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
USER_DATA_TABLES: Final = (
    "kv",
    "roster_versions",
    "roster_items",
    "roster_pending_in",
    "offline_messages",
    "blocked_jids",
)


# -- rosters -------------------------------------------------------------------------------

# The subscription states of a roster item (RFC 6121 §2.1.2.5).
SUBSCRIPTIONS: Final = frozenset({"none", "to", "from", "both"})

# Tombstones (removed contacts) kept per user for RosterStore.changes_since(); beyond this
# the oldest are dropped and clients with older versions get the whole roster.
ROSTER_TOMBSTONES_KEPT: Final = 1000


def roster_groups(groups: Iterable[str]) -> tuple[str, ...]:
    """The groups as an ordered set: duplicates after the first dropped, order kept."""
    return tuple(dict.fromkeys(groups))


def checked_roster_item(item: RosterItem) -> RosterItem:
    """The item as the stores keep it (groups deduplicated); ValueError if it is invalid."""
    if item.subscription not in SUBSCRIPTIONS:
        raise ValueError(f"roster item {item.jid}: unknown subscription {item.subscription!r}")
    groups = roster_groups(item.groups)
    return item if groups == item.groups else replace(item, groups=groups)


def roster_item_from_row(row: Sequence[Any], groups: Iterable[str]) -> RosterItem:
    """A RosterItem from a row that starts (jid, name, subscription, ask, approved)."""
    name = row[1]
    return RosterItem(
        jid=str(row[0]),
        name=None if name is None else str(name),
        subscription=str(row[2]),
        ask=bool(row[3]),
        approved=bool(row[4]),
        groups=tuple(groups),
    )


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
