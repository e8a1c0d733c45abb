"""The generic archive: stanzas kept in order, paged with RSM, searchable by text.

Shared by the user archive (XEP-0313 MAM), MUC history and PubSub items (docs/architecture.md).
An archive is named by an ArchiveKey (host, kind, owner): ``host`` is the domain holding it
(a user host or a service), ``kind`` says whose archive it is ("mam", "muc", "pubsub",
"pep:<node>", ...), ``owner`` the owner within them (a username, a room's local part, a
node). Deleting an account deletes every archive of (its host, its username), whatever the
kind, so an archive owned by a user must use the username as owner.

Each entry has a stanza id (server-assigned, random, unique per archive and stable: the
XEP-0359 stanza-id and the RSM key), a time (microseconds since the epoch, UTC), the bare
JID of the other party (``with_jid``), a ``direction`` of the archive's choosing ("in",
"out", ...), the payload bytes and an optional text to search. Entries are ordered by time,
then by arrival (an internal sequence ``seq``), so entries imported with old times sort in
their place.

Queries (XEP-0313 §4.1, XEP-0059): with, start and end (inclusive), ``after``/``before`` an
id (UnknownArchiveId when the id is not in the archive: item-not-found), ``last`` for the
last page (RSM ``<before/>``), a limit, and full-text words. A page lists entries oldest
first, says whether it reached the end in its direction (``complete``) and how many entries
match the filters (``count``, RSM ``<count/>``).

Full-text search is simple and the same on both backends: the text is stored casefolded
(Unicode), and each word of the query (casefolded) must occur in it as a substring (LIKE
with the wildcards escaped). It scans the owner's entries; no FTS index.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from roost.storage.schema import Migration
from roost.storage.sql import Queries, Row
from roost.storage.store import SqlStore

MAX_SEARCH_WORDS: Final = 8
_COLUMNS: Final = "id, ts, with_jid, direction, payload"
_KEY: Final = "host = ? AND owner = ? AND kind = ?"


class UnknownArchiveId(LookupError):  # noqa: N818 (the API names it so)
    """An RSM after/before id that is not in the archive (XEP-0313 §6.1: item-not-found)."""


@dataclass(frozen=True, slots=True)
class ArchiveKey:
    """Which archive: the domain holding it, whose archive it is, and its owner there."""

    host: str
    kind: str
    owner: str


@dataclass(frozen=True, slots=True)
class ArchiveEntry:
    """One archived stanza."""

    id: str
    timestamp: int  # microseconds since the epoch
    with_jid: str
    direction: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class ArchiveQuery:
    """Filters and one RSM page (XEP-0313 §4.1, XEP-0059 §2)."""

    with_jid: str | None = None
    start: int | None = None  # microseconds, inclusive
    end: int | None = None  # microseconds, inclusive
    after: str | None = None  # the page after this id
    before: str | None = None  # the page before this id
    last: bool = False  # the last page (RSM <before/> without an id)
    limit: int = 50
    text: str | None = None  # words that must all occur in the entry's text


@dataclass(frozen=True, slots=True)
class ArchivePage:
    """One page of a query: entries oldest first."""

    entries: list[ArchiveEntry]
    complete: bool  # nothing more in the paging direction (forward, or backward with before/last)
    count: int  # entries matching the filters, regardless of paging


class ArchiveStore(Protocol):
    """Archives of stanzas (see the module docstring)."""

    async def append(
        self,
        key: ArchiveKey,
        payload: bytes,
        *,
        with_jid: str,
        direction: str = "",
        timestamp: int | None = None,
        text: str | None = None,
        entry_id: str | None = None,
        replace: bool = False,
    ) -> str:
        """Store an entry, committed before it returns; its id (``entry_id``, or a new one).

        ``timestamp`` defaults to now. An ``entry_id`` already in the archive raises
        ValueError, unless ``replace``: then the old entry is deleted (PubSub item ids)."""
        ...

    async def get(self, key: ArchiveKey, entry_id: str) -> ArchiveEntry | None:
        """The entry with that id, or None."""
        ...

    async def query(self, key: ArchiveKey, query: ArchiveQuery) -> ArchivePage:
        """One page of the entries matching the query."""
        ...

    async def delete(self, key: ArchiveKey, entry_ids: Sequence[str]) -> int:
        """Delete entries by id; how many were deleted."""
        ...

    async def expire(self, host: str, kind: str, before: int, *, owner: str | None = None) -> int:
        """Delete the entries older than ``before`` (microseconds) of every archive of that
        kind on the host (or only the owner's); how many were deleted."""
        ...


SCHEMA: Final = (
    Migration(
        1,
        "initial",
        """
        CREATE TABLE archive (
            seq       {serial},
            host      TEXT    NOT NULL,
            kind      TEXT    NOT NULL,
            owner     TEXT    NOT NULL,
            id        TEXT    NOT NULL,  -- the stanza id, unique per archive
            ts        {int64} NOT NULL,  -- microseconds since the epoch
            with_jid  TEXT    NOT NULL,  -- the other party's bare JID
            direction TEXT    NOT NULL,
            payload   {bytes} NOT NULL,
            search    TEXT               -- the text to search, casefolded; NULL: none
        );
        CREATE UNIQUE INDEX archive_by_id ON archive (host, owner, kind, id);
        CREATE INDEX archive_by_time ON archive (host, owner, kind, ts, seq);
        CREATE INDEX archive_by_with ON archive (host, owner, kind, with_jid, ts, seq);
        CREATE INDEX archive_for_expiry ON archive (host, kind, ts);
        """,
    ),
)


def new_entry_id() -> str:
    """A fresh stanza id: 96 random bits, URL-safe (16 characters)."""
    return secrets.token_urlsafe(12)


def _like_pattern(word: str) -> str:
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _entry(row: Row) -> ArchiveEntry:
    return ArchiveEntry(str(row[0]), int(row[1]), str(row[2]), str(row[3]), bytes(row[4]))


def _filters(key: ArchiveKey, query: ArchiveQuery) -> tuple[list[str], list[object]]:
    """The WHERE conditions and parameters of the query's filters (paging aside)."""
    where: list[str] = [_KEY]
    params: list[object] = [key.host, key.owner, key.kind]
    filters: tuple[tuple[str, object], ...] = (
        ("with_jid = ?", query.with_jid),
        ("ts >= ?", query.start),
        ("ts <= ?", query.end),
    )
    for condition, value in filters:
        if value is not None:
            where.append(condition)
            params.append(value)
    words = (query.text or "").casefold().split()
    if len(words) > MAX_SEARCH_WORDS:
        raise ValueError(f"at most {MAX_SEARCH_WORDS} words can be searched for at once")
    for word in words:
        where.append("search LIKE ? ESCAPE '\\'")
        params.append(_like_pattern(word))
    return where, params


class SqlArchiveStore(SqlStore):
    """ArchiveStore in SQL."""

    name = "archive"
    protocol = ArchiveStore
    schema = SCHEMA

    async def append(
        self,
        key: ArchiveKey,
        payload: bytes,
        *,
        with_jid: str,
        direction: str = "",
        timestamp: int | None = None,
        text: str | None = None,
        entry_id: str | None = None,
        replace: bool = False,
    ) -> str:
        entry_id = new_entry_id() if entry_id is None else entry_id
        when = time.time_ns() // 1000 if timestamp is None else timestamp
        search = None if text is None else text.casefold()
        async with self.db.transaction() as tx:
            if replace:
                await tx.execute(
                    f"DELETE FROM archive WHERE {_KEY} AND id = ?", *_key(key), entry_id
                )
            inserted = await tx.execute(
                "INSERT INTO archive (host, kind, owner, id, ts, with_jid, direction, payload,"
                " search) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (host, owner, kind, id) DO NOTHING",
                key.host,
                key.kind,
                key.owner,
                entry_id,
                when,
                with_jid,
                direction,
                payload,
                search,
            )
        if not inserted:
            raise ValueError(f"archive entry {entry_id} exists already")
        return entry_id

    async def get(self, key: ArchiveKey, entry_id: str) -> ArchiveEntry | None:
        row = await self.db.fetchrow(
            f"SELECT {_COLUMNS} FROM archive WHERE {_KEY} AND id = ?", *_key(key), entry_id
        )
        return None if row is None else _entry(row)

    async def _position(self, key: ArchiveKey, entry_id: str) -> tuple[int, int]:
        row = await self.db.fetchrow(
            f"SELECT ts, seq FROM archive WHERE {_KEY} AND id = ?", *_key(key), entry_id
        )
        if row is None:
            raise UnknownArchiveId(entry_id)
        return int(row[0]), int(row[1])

    async def query(self, key: ArchiveKey, query: ArchiveQuery) -> ArchivePage:
        where, params = _filters(key, query)
        count = int(
            await self.db.fetchval(
                f"SELECT COUNT(*) FROM archive WHERE {' AND '.join(where)}", *params
            )
        )
        for operator, anchor in ((">", query.after), ("<", query.before)):
            if anchor is not None:
                where.append(f"(ts, seq) {operator} (?, ?)")
                params.extend(await self._position(key, anchor))
        backward = query.before is not None or query.last
        order = "ts DESC, seq DESC" if backward else "ts, seq"
        limit = max(query.limit, 0)
        rows = await self.db.fetch(
            f"SELECT {_COLUMNS} FROM archive WHERE {' AND '.join(where)} ORDER BY {order} LIMIT ?",
            *params,
            limit + 1,
        )
        entries = [_entry(row) for row in rows[:limit]]
        if backward:
            entries.reverse()
        return ArchivePage(entries, complete=len(rows) <= limit, count=count)

    async def delete(self, key: ArchiveKey, entry_ids: Sequence[str]) -> int:
        deleted = 0
        async with self.db.transaction() as tx:
            for entry_id in entry_ids:
                deleted += await tx.execute(
                    f"DELETE FROM archive WHERE {_KEY} AND id = ?", *_key(key), entry_id
                )
        return deleted

    async def expire(self, host: str, kind: str, before: int, *, owner: str | None = None) -> int:
        if owner is None:
            return await self.db.execute(
                "DELETE FROM archive WHERE host = ? AND kind = ? AND ts < ?", host, kind, before
            )
        return await self.db.execute(
            f"DELETE FROM archive WHERE {_KEY} AND ts < ?", host, owner, kind, before
        )

    async def delete_user(self, tx: Queries, host: str, user: str) -> None:
        await tx.execute("DELETE FROM archive WHERE host = ? AND owner = ?", host, user)


def _key(key: ArchiveKey) -> tuple[str, str, str]:
    """The parameters of _KEY."""
    return key.host, key.owner, key.kind
