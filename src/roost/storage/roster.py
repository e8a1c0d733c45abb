"""Rosters with versions (RFC 6121 §2, §2.6) and held inbound subscription requests (§3.1.3).

Tables: ``roster_versions`` holds each user's counter (one increment per put or remove) and
the oldest version ``changes_since`` can still answer; ``roster_items`` one row per contact
ever on the roster with the version of its latest change (a removed contact stays as a
tombstone, its data cleared, until pruned); ``roster_pending_in`` the held requests;
``roster_version_floors`` per host, one above the last version of every deleted roster.

Versions never go back for a (host, user): a roster created after an account was deleted
starts above that floor, and versions below it are not answerable, so a client that cached
the deleted account's roster at version N gets the whole new roster, never "no changes"
(RFC 6121 §2.6). Writers of one roster are serialized on its roster_versions row (an upsert or
``{for_update}`` on PostgreSQL, the write lock on SQLite).

In XEP-0227 (§4.3) the roster is a ``<query xmlns='jabber:iq:roster'>`` child of ``<user>``,
and held requests are ``<presence xmlns='jabber:client' type='subscribe'/>`` children (what
Prosody writes).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Final, Protocol

from roost.jid import JID, JIDError
from roost.storage.schema import Migration
from roost.storage.sql import Queries, Row, Transaction
from roost.storage.store import ImportContext, SqlStore
from roost.xml.element import Element
from roost.xml.ns import NS_CLIENT, NS_ROSTER
from roost.xml.parser import parse_fragment
from roost.xml.serializer import serialize

# The subscription states of a roster item (RFC 6121 §2.1.2.5).
SUBSCRIPTIONS: Final = frozenset({"none", "to", "from", "both"})

# Tombstones (removed contacts) kept per user for changes_since(); beyond this the oldest are
# dropped and clients with older versions get the whole roster.
ROSTER_TOMBSTONES_KEPT: Final = 1000


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
        """The whole roster (version 0 and no items for a user who has none)."""
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


def roster_groups(groups: Iterable[str]) -> tuple[str, ...]:
    """The groups as an ordered set: duplicates after the first dropped, order kept."""
    return tuple(dict.fromkeys(groups))


def checked_roster_item(item: RosterItem) -> RosterItem:
    """The item as the store keeps it (groups deduplicated); ValueError if it is invalid."""
    if item.subscription not in SUBSCRIPTIONS:
        raise ValueError(f"roster item {item.jid}: unknown subscription {item.subscription!r}")
    groups = roster_groups(item.groups)
    return item if groups == item.groups else replace(item, groups=groups)


SCHEMA: Final = (
    Migration(
        1,
        "initial",
        """
        CREATE TABLE roster_versions (
            host           TEXT    NOT NULL,
            username       TEXT    NOT NULL,
            version        {int64} NOT NULL CHECK (version >= 0),
            oldest_version {int64} NOT NULL DEFAULT 0 CHECK (oldest_version >= 0),
            PRIMARY KEY (host, username)
        );
        CREATE TABLE roster_items (
            host         TEXT        NOT NULL,
            username     TEXT        NOT NULL,
            jid          TEXT        NOT NULL,  -- the contact's bare JID
            name         TEXT,
            subscription TEXT        NOT NULL DEFAULT 'none'
                         CHECK (subscription IN ('none', 'to', 'from', 'both')),
            ask          {bool}      NOT NULL DEFAULT false,
            approved     {bool}      NOT NULL DEFAULT false,
            groups       {text_list} NOT NULL DEFAULT {empty_list},  -- in order
            removed      {bool}      NOT NULL DEFAULT false,
            version      {int64}     NOT NULL,
            PRIMARY KEY (host, username, jid)
        );
        CREATE INDEX roster_items_by_version ON roster_items (host, username, version);
        CREATE TABLE roster_pending_in (
            host     TEXT    NOT NULL,
            username TEXT    NOT NULL,
            jid      TEXT    NOT NULL,  -- the requesting contact's bare JID
            stanza   {bytes} NOT NULL,  -- the serialized <presence type='subscribe'/>
            PRIMARY KEY (host, username, jid)
        );
        """,
    ),
    Migration(
        2,
        "version_floors",
        """
        CREATE TABLE roster_version_floors (
            host    TEXT    NOT NULL PRIMARY KEY,
            version {int64} NOT NULL CHECK (version >= 0)
        );
        """,
    ),
)

_ITEM_COLUMNS: Final = "i.jid, i.name, i.subscription, i.ask, i.approved, i.groups"
_FLOOR: Final = "(SELECT COALESCE(MAX(version), 0) FROM roster_version_floors WHERE host = ?)"
_USER: Final = "host = ? AND username = ?"
# (host, user, host, host): the next version, or the first one above the host's floor
_NEXT_VERSION: Final = (
    "INSERT INTO roster_versions (host, username, version, oldest_version)"
    f" VALUES (?, ?, {_FLOOR} + 1, {_FLOOR}) ON CONFLICT (host, username)"
    " DO UPDATE SET version = roster_versions.version + 1 RETURNING version"
)
_PUT_ITEM: Final = (
    "INSERT INTO roster_items (host, username, jid, name, subscription, ask, approved, groups,"
    " removed, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, false, ?)"
    " ON CONFLICT (host, username, jid) DO UPDATE SET name = excluded.name,"
    " subscription = excluded.subscription, ask = excluded.ask, approved = excluded.approved,"
    " groups = excluded.groups, removed = false, version = excluded.version"
)
_TOMBSTONE: Final = (  # (empty groups, version, host, user, jid)
    "UPDATE roster_items SET removed = true, name = NULL, subscription = 'none', ask = false,"
    f" approved = false, groups = ?, version = ? WHERE {_USER} AND jid = ? AND NOT removed"
)
_RAISE_FLOOR: Final = (  # (host, user): one above the user's last version
    "INSERT INTO roster_version_floors (host, version)"
    f" SELECT host, version + 1 FROM roster_versions WHERE {_USER} ON CONFLICT (host)"
    " DO UPDATE SET version = {greatest}(roster_version_floors.version, excluded.version)"
)


class SqlRosterStore(SqlStore):
    """RosterStore in SQL. ``tombstones_kept``: ROSTER_TOMBSTONES_KEPT (smaller in tests)."""

    name = "roster"
    protocol = RosterStore
    schema = SCHEMA
    tombstones_kept = ROSTER_TOMBSTONES_KEPT

    def _item(self, row: Row) -> RosterItem:
        """A RosterItem from a row starting with _ITEM_COLUMNS."""
        name, groups = row[1], self.db.dialect.decode_list(row[5])
        return RosterItem(str(row[0]), None if name is None else str(name), str(row[2]),
                          bool(row[3]), bool(row[4]), groups)  # fmt: skip

    async def get(self, host: str, user: str) -> Roster:
        rows = await self.db.fetch(
            f"SELECT {_ITEM_COLUMNS}, v.version FROM roster_versions AS v"
            " LEFT JOIN roster_items AS i"
            " ON i.host = v.host AND i.username = v.username AND NOT i.removed"
            " WHERE v.host = ? AND v.username = ?",
            host,
            user,
        )
        version = int(rows[0][6]) if rows else 0
        # sorted here, by code point: ORDER BY would follow PostgreSQL's collation
        items = sorted((self._item(row) for row in rows if row[0] is not None), key=_by_jid)
        return Roster(version, {item.jid: item for item in items})

    async def put(self, host: str, user: str, item: RosterItem) -> int:
        item = checked_roster_item(item)
        groups = self.db.dialect.encode_list(item.groups)
        async with self.db.transaction() as tx:
            # the upsert locks the counter row: a concurrent change of this roster waits here
            version = int(await tx.fetchval(_NEXT_VERSION, host, user, host, host))
            await tx.execute(_PUT_ITEM, host, user, item.jid, item.name, item.subscription,
                             item.ask, item.approved, groups, version)  # fmt: skip
        return version

    async def remove(self, host: str, user: str, jid: str) -> int | None:
        empty = self.db.dialect.encode_list(())
        async with self.db.transaction() as tx:
            current = await tx.fetchval(
                f"SELECT version FROM roster_versions WHERE {_USER} {{for_update}}", host, user
            )
            if current is None:
                return None
            version = int(current) + 1
            if not await tx.execute(_TOMBSTONE, empty, version, host, user, jid):
                return None
            await tx.execute(
                f"UPDATE roster_versions SET version = ? WHERE {_USER}", version, host, user
            )
            await self._prune_tombstones(tx, host, user)
        return version

    async def _prune_tombstones(self, tx: Transaction, host: str, user: str) -> None:
        cutoff = await tx.fetchval(
            f"SELECT version FROM roster_items WHERE {_USER} AND removed"
            " ORDER BY version DESC LIMIT 1 OFFSET ?",
            host,
            user,
            self.tombstones_kept,
        )
        if cutoff is None:
            return
        # the newest tombstone beyond the ones kept: versions up to it are no longer answerable
        await tx.execute(
            f"DELETE FROM roster_items WHERE {_USER} AND removed AND version <= ?",
            host,
            user,
            cutoff,
        )
        await tx.execute(
            f"UPDATE roster_versions SET oldest_version = ? WHERE {_USER}", cutoff, host, user
        )

    async def changes_since(self, host: str, user: str, version: int) -> list[RosterChange] | None:
        rows = await self.db.fetch(
            f"SELECT {_ITEM_COLUMNS}, i.removed, i.version, v.version, v.oldest_version"
            " FROM roster_versions AS v LEFT JOIN roster_items AS i"
            " ON i.host = v.host AND i.username = v.username AND i.version > ?"
            " WHERE v.host = ? AND v.username = ? ORDER BY i.version",
            version,
            host,
            user,
        )
        current, oldest = (int(rows[0][8]), int(rows[0][9])) if rows else (0, 0)
        if not oldest <= version <= current:
            return None
        return [
            RosterChange(str(row[0]), None if row[6] else self._item(row), int(row[7]))
            for row in rows
            if row[0] is not None
        ]

    async def pending_in(self, host: str, user: str) -> dict[str, bytes]:
        rows = await self.db.fetch(
            f"SELECT jid, stanza FROM roster_pending_in WHERE {_USER}", host, user
        )
        return dict(sorted((str(row[0]), bytes(row[1])) for row in rows))

    async def set_pending_in(self, host: str, user: str, jid: str, stanza: bytes | None) -> None:
        if stanza is None:
            await self.db.execute(
                f"DELETE FROM roster_pending_in WHERE {_USER} AND jid = ?", host, user, jid
            )
            return
        await self.db.execute(
            "INSERT INTO roster_pending_in (host, username, jid, stanza) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (host, username, jid) DO UPDATE SET stanza = excluded.stanza",
            host,
            user,
            jid,
            stanza,
        )

    async def delete_user(self, tx: Queries, host: str, user: str) -> None:
        await tx.execute(_RAISE_FLOOR, host, user)
        for table in ("roster_versions", "roster_items", "roster_pending_in"):
            await tx.execute(f"DELETE FROM {table} WHERE {_USER}", host, user)

    # -- XEP-0227 §4.3: <query xmlns='jabber:iq:roster'/>, <presence type='subscribe'/> -------

    def xep0227_claims(self, element: Element) -> bool:
        key = (element.xmlns, element.name)
        return key == (NS_ROSTER, "query") or (
            key == (NS_CLIENT, "presence") and element.get("type") == "subscribe"
        )

    async def xep0227_export(self, host: str, user: str) -> list[Element]:
        found = []
        roster = await self.get(host, user)
        if roster.items:
            found.append(roster_query(roster.items.values()))
        for contact, stanza in (await self.pending_in(host, user)).items():
            request = Element("presence", NS_CLIENT, {"from": contact, "type": "subscribe"})
            request.children = list(parse_fragment(stanza).children)
            found.append(request)
        return found

    async def xep0227_import(
        self, host: str, user: str, elements: list[Element], context: ImportContext
    ) -> None:
        requests = [e for e in elements if e.name == "presence"]
        for query in (e for e in elements if e.name == "query"):
            for item in roster_items_in(query, context.jid, context.notes):
                await self.put(host, user, item)
        for request in requests:
            try:
                sender = JID.parse(request.get("from") or "").bare
            except JIDError as exc:
                context.notes.append(f"{context.jid}: held subscription request left out: {exc}")
                continue
            await self.set_pending_in(host, user, str(sender), serialize(request))


def _by_jid(item: RosterItem) -> str:
    return item.jid


def roster_items_in(query: Element, jid: str, notes: list[str]) -> list[RosterItem]:
    """The items of a ``<query xmlns='jabber:iq:roster'>``; what cannot be read is left out
    (or, for an unknown subscription, read as 'none') with a note naming ``jid``."""
    items = []
    for item in query.elements():
        if (item.xmlns, item.name) != (NS_ROSTER, "item"):
            continue
        raw = item.get("jid") or ""
        try:
            contact = JID.parse(raw)
        except JIDError as exc:
            notes.append(f"{jid}: roster item {raw!r} left out: {exc}")
            continue
        subscription = item.get("subscription") or "none"
        if subscription not in SUBSCRIPTIONS:
            notes.append(f"{jid}: roster item {raw}: subscription {subscription!r} → none")
            subscription = "none"
        groups = (g.text.strip() for g in item.elements() if g.name == "group")
        items.append(
            RosterItem(
                jid=str(contact.bare),
                name=item.get("name") or None,
                subscription=subscription,
                ask=item.get("ask") == "subscribe",
                approved=item.get("approved") in ("true", "1"),
                groups=roster_groups(g for g in groups if g),
            )
        )
    return items


def roster_query(items: Iterable[RosterItem]) -> Element:
    """A ``<query xmlns='jabber:iq:roster'>`` with these items (XEP-0227 §4.3)."""
    query = Element("query", NS_ROSTER)
    query.children.extend(roster_item_element(item) for item in items)
    return query


def roster_item_element(item: RosterItem) -> Element:
    """The ``<item/>`` of a roster (RFC 6121 §2.1.2)."""
    el = Element("item", NS_ROSTER, {"jid": item.jid, "subscription": item.subscription})
    if item.name is not None:
        el.attrs["name"] = item.name
    if item.ask:
        el.attrs["ask"] = "subscribe"
    if item.approved:
        el.attrs["approved"] = "true"
    for group in item.groups:
        el.sub("group", NS_ROSTER, text=group)
    return el
