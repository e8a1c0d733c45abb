"""The generic key-value store (Prosody's "keyval") for modules without tables of their own.

``store`` names a module's data ("private", "vcard", "last", ...), ``key`` an item in it.
Two of its stores are portable (XEP-0227 1.1): the vCard (§4.6, ``vcard-temp``, stored by
modules/vcard.py under VCARD_STORE/VCARD_KEY) and private XML (§4.5, ``jabber:iq:private``,
stored by modules/private.py under PRIVATE_STORE, one key per fragment: private_key()).
Their storage keys are defined here, so that export and import find what the modules wrote.
"""

from __future__ import annotations

from typing import Final, Protocol

from roost.storage.schema import Migration
from roost.storage.sql import Queries
from roost.storage.store import ImportContext, SqlStore
from roost.xml.element import Element
from roost.xml.ns import NS_PRIVATE, NS_VCARD
from roost.xml.parser import parse_fragment
from roost.xml.serializer import serialize

VCARD_STORE: Final = "vcard"
VCARD_KEY: Final = NS_VCARD  # one vcard-temp vCard per account
PRIVATE_STORE: Final = "private"
PRIVATE_RESERVED_PREFIX: Final = "jabber:"  # namespaces a client may not store (XEP-0049 §3)


def private_key(element: Element) -> str:
    """The storage key of a private XML fragment: its qualified name in Clark notation."""
    return "{" + element.xmlns + "}" + element.name


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

    # -- XEP-0227: <vCard xmlns='vcard-temp'/> and <query xmlns='jabber:iq:private'/> ----------

    def xep0227_claims(self, element: Element) -> bool:
        return (element.xmlns, element.name) in ((NS_VCARD, "vCard"), (NS_PRIVATE, "query"))

    async def xep0227_export(self, host: str, user: str) -> list[Element]:
        found = []
        card = await self.get(host, user, VCARD_STORE, VCARD_KEY)
        if card is not None:
            found.append(parse_fragment(card))
        fragments: list[Element | str] = []
        for key in await self.keys(host, user, PRIVATE_STORE):
            fragment = await self.get(host, user, PRIVATE_STORE, key)
            if fragment is not None:
                fragments.append(parse_fragment(fragment))
        if fragments:
            found.append(Element("query", NS_PRIVATE, {}, fragments))
        return found

    async def xep0227_import(
        self, host: str, user: str, elements: list[Element], context: ImportContext
    ) -> None:
        for element in elements:
            if element.name == "vCard":
                await self.set(host, user, VCARD_STORE, VCARD_KEY, serialize(element))
                continue
            for fragment in element.elements():
                if fragment.xmlns.startswith(PRIVATE_RESERVED_PREFIX):
                    context.notes.append(
                        f"{context.jid}: private XML in {fragment.xmlns} left out (reserved)"
                    )
                else:
                    key = private_key(fragment)
                    await self.set(host, user, PRIVATE_STORE, key, serialize(fragment))
