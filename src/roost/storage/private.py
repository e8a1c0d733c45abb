"""Private XML storage: the fragments each user keeps on the server (XEP-0049).

A fragment is stored under its qualified name in Clark notation, ``{namespace}name``
(``fragment_name``; Prosody's key), as the serialized element. ``change`` applies one
request's puts and removals in one transaction under a per-user lock, so concurrent
requests never take a user past the limit of fragments.

In XEP-0227 (§4.5) a user's fragments are one ``<query xmlns='jabber:iq:private'/>``;
fragments in ``jabber:*`` namespaces (reserved, XEP-0049 §3) are left out of an import.

Until this store existed the fragments lived in the generic key-value store (``kv``, store
"private", one key per fragment: the same names); the first migration moves them here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Protocol

from roost.storage.schema import Migration
from roost.storage.sql import Queries
from roost.storage.store import ImportContext, SqlStore
from roost.xml.element import Element
from roost.xml.ns import NS_PRIVATE
from roost.xml.parser import parse_fragment
from roost.xml.serializer import serialize

RESERVED_PREFIX: Final = "jabber:"  # namespaces a client may not store in (XEP-0049 §3)


def fragment_name(element: Element) -> str:
    """The name a fragment is stored under: its qualified name in Clark notation."""
    return "{" + element.xmlns + "}" + element.name


class PrivateStore(Protocol):
    """Each user's private XML fragments, by qualified name (XEP-0049)."""

    async def get(self, host: str, user: str, name: str) -> bytes | None:
        """The stored fragment of that name, or None."""
        ...

    async def names(self, host: str, user: str) -> list[str]:
        """The names of the user's fragments, sorted by code point."""
        ...

    async def change(
        self, host: str, user: str, changes: Mapping[str, bytes | None], *, limit: int
    ) -> bool:
        """Store each fragment (None: remove it), all or nothing; False (nothing changed)
        when the fragments stored and the new ones together exceed ``limit``."""
        ...


SCHEMA: Final = (
    Migration(
        1,
        "initial",
        """
        CREATE TABLE private_xml (
            host     TEXT    NOT NULL,
            username TEXT    NOT NULL,
            name     TEXT    NOT NULL,
            fragment {bytes} NOT NULL,
            PRIMARY KEY (host, username, name)
        );
        INSERT INTO private_xml (host, username, name, fragment)
            SELECT host, username, key, value FROM kv WHERE store = 'private';
        DELETE FROM kv WHERE store = 'private';
        """,
    ),
)

_USER: Final = "host = ? AND username = ?"


class SqlPrivateStore(SqlStore):
    """PrivateStore in SQL."""

    name = "private"
    protocol = PrivateStore
    schema = SCHEMA

    async def get(self, host: str, user: str, name: str) -> bytes | None:
        value = await self.db.fetchval(
            f"SELECT fragment FROM private_xml WHERE {_USER} AND name = ?", host, user, name
        )
        return None if value is None else bytes(value)

    async def names(self, host: str, user: str) -> list[str]:
        rows = await self.db.fetch(f"SELECT name FROM private_xml WHERE {_USER}", host, user)
        return sorted(str(row[0]) for row in rows)

    async def change(
        self, host: str, user: str, changes: Mapping[str, bytes | None], *, limit: int
    ) -> bool:
        async with self.db.transaction() as tx:
            await tx.lock("private", f"{user}@{host}")
            rows = await tx.fetch(f"SELECT name FROM private_xml WHERE {_USER}", host, user)
            stored = {str(row[0]) for row in rows}
            new = {name for name, f in changes.items() if f is not None} - stored
            if len(stored) + len(new) > limit:
                return False
            for name, fragment in changes.items():
                if fragment is None:
                    await tx.execute(
                        f"DELETE FROM private_xml WHERE {_USER} AND name = ?", host, user, name
                    )
                else:
                    await tx.execute(
                        "INSERT INTO private_xml (host, username, name, fragment)"
                        " VALUES (?, ?, ?, ?) ON CONFLICT (host, username, name)"
                        " DO UPDATE SET fragment = excluded.fragment",
                        host,
                        user,
                        name,
                        fragment,
                    )
        return True

    async def delete_user(self, tx: Queries, host: str, user: str) -> None:
        await tx.execute(f"DELETE FROM private_xml WHERE {_USER}", host, user)

    # -- XEP-0227 §4.5: <query xmlns='jabber:iq:private'/> -------------------------------------

    def xep0227_claims(self, element: Element) -> bool:
        return (element.xmlns, element.name) == (NS_PRIVATE, "query")

    async def xep0227_export(self, host: str, user: str) -> list[Element]:
        rows = await self.db.fetch(
            f"SELECT name, fragment FROM private_xml WHERE {_USER}", host, user
        )
        rows.sort(key=lambda row: str(row[0]))  # by code point, whatever the collation
        fragments: list[Element | str] = [parse_fragment(bytes(row[1])) for row in rows]
        return [Element("query", NS_PRIVATE, {}, fragments)] if fragments else []

    async def xep0227_import(
        self, host: str, user: str, elements: list[Element], context: ImportContext
    ) -> None:
        changes: dict[str, bytes | None] = {}
        for element in elements:
            for fragment in element.elements():
                if fragment.xmlns.startswith(RESERVED_PREFIX):
                    context.notes.append(
                        f"{context.jid}: private XML in {fragment.xmlns} left out (reserved)"
                    )
                else:
                    changes[fragment_name(fragment)] = serialize(fragment)
        if changes:
            await self.change(host, user, changes, limit=len(changes))
