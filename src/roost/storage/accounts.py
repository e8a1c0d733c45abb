"""Accounts of each virtual host and their SCRAM credentials (RFC 5802 §3; never a password).

Deleting an account deletes the user's rows in every registered store, in one transaction
(``delete`` asks each store of the registry). Credentials go with their account through
the foreign key (ON DELETE CASCADE). In XEP-0227 the account is the ``<user>`` element
itself, with its password or SCRAM keys: roost.xep0227 reads and writes those.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from typing import Final, Protocol

from roost.auth.credentials import Credentials, ScramKeys
from roost.storage.schema import Migration
from roost.storage.sql import Queries, Row, StorageError
from roost.storage.store import SqlStore


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
        """Delete the account and the user's rows in every store; True if it existed."""
        ...

    async def list(self, host: str) -> builtins.list[str]:
        """The usernames of the host, sorted by code point."""
        ...


SCHEMA: Final = (
    Migration(
        1,
        "initial",
        """
        CREATE TABLE accounts (
            host       TEXT        NOT NULL,
            username   TEXT        NOT NULL,
            created_at {timestamp} NOT NULL DEFAULT {now},
            PRIMARY KEY (host, username)
        );
        -- The SCRAM secret per hash function (RFC 5802 §3): never a password.
        CREATE TABLE credentials (
            host       TEXT    NOT NULL,
            username   TEXT    NOT NULL,
            hash_name  TEXT    NOT NULL,  -- 'SHA-1', 'SHA-256', 'SHA-512'
            salt       {bytes} NOT NULL,
            iterations INTEGER NOT NULL CHECK (iterations > 0),
            stored_key {bytes} NOT NULL,
            server_key {bytes} NOT NULL,
            PRIMARY KEY (host, username, hash_name),
            FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
        );
        """,
    ),
)

_INSERT_CREDENTIALS: Final = (
    "INSERT INTO credentials (host, username, hash_name, salt, iterations, stored_key,"
    " server_key) VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def credential_rows(host: str, user: str, creds: Credentials) -> list[tuple[object, ...]]:
    """One credentials row per hash, in a stable order."""
    return [
        (host, user, name, keys.salt, keys.iterations, keys.stored_key, keys.server_key)
        for name, keys in sorted(creds.items())
    ]


def credentials_from_rows(rows: Iterable[Row]) -> Credentials:
    """Credentials from rows (hash_name, salt, iterations, stored_key, server_key); rows of
    NULLs (an account without credentials, through a LEFT JOIN) are skipped."""
    return {
        str(row[0]): ScramKeys(bytes(row[1]), int(row[2]), bytes(row[3]), bytes(row[4]))
        for row in rows
        if row[0] is not None
    }


class SqlAccountStore(SqlStore):
    """AccountStore in SQL."""

    name = "accounts"
    protocol = AccountStore
    schema = SCHEMA

    async def create(self, host: str, user: str, creds: Credentials) -> None:
        async with self.db.transaction() as tx:
            inserted = await tx.execute(
                "INSERT INTO accounts (host, username) VALUES (?, ?) ON CONFLICT DO NOTHING",
                host,
                user,
            )
            if not inserted:
                raise AccountExists(f"account {user}@{host} already exists")
            await tx.executemany(_INSERT_CREDENTIALS, credential_rows(host, user, creds))

    async def set_credentials(self, host: str, user: str, creds: Credentials) -> None:
        async with self.db.transaction() as tx:
            # FOR UPDATE: a concurrent delete() of the account waits for this transaction.
            found = await tx.fetchval(
                "SELECT 1 FROM accounts WHERE host = ? AND username = ? {for_update}", host, user
            )
            if found is None:
                raise AccountNotFound(f"account {user}@{host} does not exist")
            await tx.execute("DELETE FROM credentials WHERE host = ? AND username = ?", host, user)
            await tx.executemany(_INSERT_CREDENTIALS, credential_rows(host, user, creds))

    async def get_credentials(self, host: str, user: str) -> Credentials | None:
        rows = await self.db.fetch(
            "SELECT c.hash_name, c.salt, c.iterations, c.stored_key, c.server_key"
            " FROM accounts AS a LEFT JOIN credentials AS c"
            " ON c.host = a.host AND c.username = a.username"
            " WHERE a.host = ? AND a.username = ?",
            host,
            user,
        )
        return credentials_from_rows(rows) if rows else None

    async def exists(self, host: str, user: str) -> bool:
        found = await self.db.fetchval(
            "SELECT 1 FROM accounts WHERE host = ? AND username = ?", host, user
        )
        return found is not None

    async def delete(self, host: str, user: str) -> bool:
        async with self.db.transaction() as tx:
            existed = await tx.fetchval(
                "SELECT 1 FROM accounts WHERE host = ? AND username = ? {for_update}", host, user
            )
            for store in self.stores:  # this one included: the account row itself
                await store.delete_user(tx, host, user)
        return existed is not None

    async def delete_user(self, tx: Queries, host: str, user: str) -> None:
        # credentials go with the account: ON DELETE CASCADE
        await tx.execute("DELETE FROM accounts WHERE host = ? AND username = ?", host, user)

    async def list(self, host: str) -> builtins.list[str]:
        rows = await self.db.fetch("SELECT username FROM accounts WHERE host = ?", host)
        # sorted here, by code point: ORDER BY would follow PostgreSQL's collation
        return sorted(str(row[0]) for row in rows)
