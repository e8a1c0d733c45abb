"""The generic key-value store (Prosody's "keyval") for modules without tables of their own.

``store`` names a module's data ("vcard", ...), ``key`` an item in it. One of its stores is
portable (XEP-0227 1.1): the vCard (§4.6, ``vcard-temp``, stored by modules/vcard.py under
VCARD_STORE/VCARD_KEY); its storage keys are defined here, so that export and import find
what the module wrote. (Private XML and last activity, kept here until they got stores of
their own, moved to storage/private.py and storage/last.py with their first migrations.)
"""

from __future__ import annotations

from typing import Final, Protocol

from roost.storage.schema import Migration
from roost.storage.sql import Queries
from roost.storage.store import ImportContext, SqlStore
from roost.xml.element import Element
from roost.xml.ns import NS_VCARD
from roost.xml.parser import parse_fragment
from roost.xml.serializer import serialize

VCARD_STORE: Final = "vcard"
VCARD_KEY: Final = NS_VCARD  # one vcard-temp vCard per account


class KeyValueStore(Protocol):
    """A generic per-user store: ``store`` names the module's data, ``key`` an item in it.

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


SCHEMA: Final = (
    Migration(
        1,
        "initial",
        """
        CREATE TABLE kv (
            host     TEXT    NOT NULL,
            username TEXT    NOT NULL,
            store    TEXT    NOT NULL,
            key      TEXT    NOT NULL,
            value    {bytes} NOT NULL,
            PRIMARY KEY (host, username, store, key)
        );
        """,
    ),
)


class SqlKeyValueStore(SqlStore):
    """KeyValueStore in SQL."""

    name = "kv"
    protocol = KeyValueStore
    schema = SCHEMA

    async def get(self, host: str, user: str, store: str, key: str) -> bytes | None:
        value = await self.db.fetchval(
            "SELECT value FROM kv WHERE host = ? AND username = ? AND store = ? AND key = ?",
            host,
            user,
            store,
            key,
        )
        return None if value is None else bytes(value)

    async def set(self, host: str, user: str, store: str, key: str, value: bytes) -> None:
        await self.db.execute(
            "INSERT INTO kv (host, username, store, key, value) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (host, username, store, key) DO UPDATE SET value = excluded.value",
            host,
            user,
            store,
            key,
            value,
        )

    async def delete(self, host: str, user: str, store: str, key: str) -> None:
        await self.db.execute(
            "DELETE FROM kv WHERE host = ? AND username = ? AND store = ? AND key = ?",
            host,
            user,
            store,
            key,
        )

    async def keys(self, host: str, user: str, store: str) -> list[str]:
        rows = await self.db.fetch(
            "SELECT key FROM kv WHERE host = ? AND username = ? AND store = ?", host, user, store
        )
        return sorted(str(row[0]) for row in rows)

    async def delete_user(self, tx: Queries, host: str, user: str) -> None:
        await tx.execute("DELETE FROM kv WHERE host = ? AND username = ?", host, user)

    # -- XEP-0227 §4.6: <vCard xmlns='vcard-temp'/> -------------------------------------------

    def xep0227_claims(self, element: Element) -> bool:
        return (element.xmlns, element.name) == (NS_VCARD, "vCard")

    async def xep0227_export(self, host: str, user: str) -> list[Element]:
        card = await self.get(host, user, VCARD_STORE, VCARD_KEY)
        return [] if card is None else [parse_fragment(card)]

    async def xep0227_import(
        self, host: str, user: str, elements: list[Element], context: ImportContext
    ) -> None:
        for element in elements:  # one vCard per account: the last one wins
            await self.set(host, user, VCARD_STORE, VCARD_KEY, serialize(element))
