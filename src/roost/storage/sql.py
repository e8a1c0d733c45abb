"""The SQL dialect layer: each statement is written once, for SQLite and PostgreSQL alike.

A store writes its SQL with ``?`` placeholders and a few ``{macros}`` for what the two
dialects spell differently; ``Dialect.translate`` turns it into the dialect's text once
(cached): ``?`` becomes ``$1, $2, ...`` on PostgreSQL, and the macros become

========================  ===============================  ==================================
macro                     SQLite                           PostgreSQL
========================  ===============================  ==================================
``{bytes}``               ``BLOB``                         ``BYTEA``
``{bool}``                ``INTEGER`` (0/1)                ``BOOLEAN``
``{int64}``               ``INTEGER``                      ``BIGINT``
``{serial}``              ``INTEGER PRIMARY KEY            ``BIGINT GENERATED ALWAYS AS
                          AUTOINCREMENT``                  IDENTITY PRIMARY KEY``
``{timestamp}``           ``REAL`` (Unix time)             ``TIMESTAMPTZ``
``{now}``                 the Unix time, as ``REAL``       ``now()``
``{time_param}``          ``?`` (Unix time)                ``to_timestamp(?)``
``{text_list}``           ``TEXT`` (a JSON array)          ``TEXT[]``
``{empty_list}``          ``'[]'``                         ``'{}'``
``{greatest}``            ``MAX`` (the scalar one)         ``GREATEST``
``{for_update}``          nothing (see below)              ``FOR UPDATE``
========================  ===============================  ==================================

What both spell the same is written plainly: ``INSERT ... ON CONFLICT (...) DO UPDATE SET
c = excluded.c`` (upsert; qualify the table's own columns in the SET expressions),
``RETURNING``, ``true``/``false``, row values ``(a, b) > (?, ?)``. Values of ``{text_list}``
columns go through ``Dialect.encode_list``/``decode_list``.

Transactions (``async with db.transaction() as tx``) and row locking: on SQLite a
transaction is ``BEGIN IMMEDIATE``, which takes the database's one write lock up front, so
every write transaction is serialized and ``{for_update}`` and ``tx.lock()`` have nothing
left to do; on PostgreSQL it is one pooled connection in a READ COMMITTED transaction, where
``SELECT ... {for_update}`` locks the rows read and ``tx.lock(scope, key)`` takes a
transaction-scoped advisory lock (for what has no row to lock, such as "the offline queue of
this user"). Reads outside a transaction see each statement's own snapshot.

``sqlite_db.py`` and ``postgres_db.py`` connect the two drivers to these protocols.
"""

from __future__ import annotations

import itertools
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

Row = Sequence[Any]  # a result row: indexable by column position (tuples, asyncpg Records)


class StorageError(Exception):
    """The backend failed, or this database cannot be used by this version of roost."""


# What translate() looks at: comments and string literals (left as written), ? and {macro}.
_TOKENS: Final = re.compile(r"--[^\n]*|'(?:[^']|'')*'|\?|\{(\w+)\}")


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one database engine spells what the stores write once (see the module docstring)."""

    name: str  # "sqlite" or "postgresql", as in [storage].backend
    macros: Mapping[str, str]
    numbered_params: bool  # $1, $2, ... instead of ?
    json_lists: bool  # {text_list} holds a JSON array of strings
    _cache: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def translate(self, sql: str) -> str:
        """The statement in this dialect's text (placeholders numbered, macros expanded)."""
        done = self._cache.get(sql)
        if done is None:
            done = self._cache[sql] = self._translate(sql)
        return done

    def _translate(self, sql: str) -> str:
        numbers = itertools.count(1)

        def token(match: re.Match[str]) -> str:
            text, macro = match[0], match[1]
            if macro is not None:
                if macro not in self.macros:
                    raise KeyError(f"unknown SQL macro {{{macro}}} in {sql!r}")
                return _TOKENS.sub(token, self.macros[macro])
            if text == "?":
                return f"${next(numbers)}" if self.numbered_params else "?"
            return text  # a comment or a string literal

        return _TOKENS.sub(token, sql)

    def encode_list(self, values: Iterable[str]) -> object:
        """A parameter for a ``{text_list}`` column."""
        return json.dumps(list(values)) if self.json_lists else list(values)

    def decode_list(self, value: object) -> tuple[str, ...]:
        """A ``{text_list}`` column's value as a tuple of strings."""
        items = json.loads(str(value)) if self.json_lists else value
        if not isinstance(items, list):
            raise StorageError(f"not a list of strings: {value!r}")
        return tuple(str(item) for item in items)


SQLITE: Final = Dialect(
    "sqlite",
    {
        "bytes": "BLOB",
        "bool": "INTEGER",
        "int64": "INTEGER",
        "serial": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "timestamp": "REAL",
        "now": "((julianday('now') - 2440587.5) * 86400.0)",
        "time_param": "?",
        "text_list": "TEXT",
        "empty_list": "'[]'",
        "greatest": "MAX",
        "for_update": "",
    },
    numbered_params=False,
    json_lists=True,
)

POSTGRESQL: Final = Dialect(
    "postgresql",
    {
        "bytes": "BYTEA",
        "bool": "BOOLEAN",
        "int64": "BIGINT",
        "serial": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        "timestamp": "TIMESTAMPTZ",
        "now": "now()",
        "time_param": "to_timestamp(CAST(? AS double precision))",
        "text_list": "TEXT[]",
        "empty_list": "'{}'",
        "greatest": "GREATEST",
        "for_update": "FOR UPDATE",
    },
    numbered_params=True,
    json_lists=False,
)


class Queries(Protocol):
    """Statements in the stores' SQL (``?`` and macros); what a database and a transaction run.

    Outside a transaction each write statement is committed on its own before it returns.
    """

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        """Every row of the query."""
        ...

    async def fetchrow(self, sql: str, *args: object) -> Row | None:
        """The first row, or None."""
        ...

    async def fetchval(self, sql: str, *args: object) -> Any:
        """The first column of the first row, or None."""
        ...

    async def execute(self, sql: str, *args: object) -> int:
        """Run one statement; the number of rows it changed."""
        ...

    async def executemany(self, sql: str, args: Iterable[Sequence[object]]) -> None:
        """Run one statement once per parameter tuple."""
        ...


class Transaction(Queries, Protocol):
    """Statements on one connection inside one transaction, committed when the block ends."""

    async def lock(self, scope: str, key: str) -> None:
        """Hold a lock on (scope, key) until the transaction ends (see the module docstring)."""
        ...

    async def run_script(self, script: str) -> None:
        """Run several statements (a schema migration); no parameters."""
        ...


class Database(Queries, Protocol):
    """One database of one engine: open, close, statements and transactions."""

    dialect: Dialect
    where: str  # names the database in messages (a path, or the dsn without its password)

    async def open(self) -> None:
        """Connect; StorageError if the database cannot be reached or opened."""
        ...

    async def close(self) -> None:
        """Close every connection (harmless when closed)."""
        ...

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        ...


class StatementsThrough(ABC):
    """The Queries methods of a Database, each run on what ``_reading()`` yields (reads) or
    ``_writing()`` yields (single writes); a base class for the two drivers."""

    @abstractmethod
    def _reading(self) -> AbstractAsyncContextManager[Queries]:
        """A connection to read on (the driver's choice: shared, or from the pool)."""

    @abstractmethod
    def _writing(self) -> AbstractAsyncContextManager[Queries]:
        """A connection for one write, committed when the block ends."""

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        async with self._reading() as db:
            return await db.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: object) -> Row | None:
        async with self._reading() as db:
            return await db.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: object) -> Any:
        async with self._reading() as db:
            return await db.fetchval(sql, *args)

    async def execute(self, sql: str, *args: object) -> int:
        async with self._writing() as db:
            return await db.execute(sql, *args)

    async def executemany(self, sql: str, args: Iterable[Sequence[object]]) -> None:
        async with self._writing() as db:
            await db.executemany(sql, args)
