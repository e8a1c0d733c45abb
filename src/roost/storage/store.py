"""What every store is to the registry: a schema, a user's rows, a share of XEP-0227 data.

A store is one file (accounts.py, roster.py, ...) holding its Protocol (what modules call),
its records, its SQL implementation (a ``SqlStore`` subclass over the dialect layer) and
its migrations. ``registry.STORES`` lists the implementations, one line each; the Storage
builds them in that order on its database and answers ``storage.store(Protocol)``.

The registry asks each store for three things:

- ``delete_user``: remove the user's rows, inside the one transaction that deletes an
  account (every per-user table has (host, user) columns; docs/architecture.md);
- ``xep0227_claims`` / ``xep0227_export`` / ``xep0227_import``: its children of a user's
  ``<user>`` element in XEP-0227 1.1 (roster, vCard, offline messages, ...). A store with
  nothing portable keeps the defaults (claims nothing, exports nothing).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, TypeVar, cast

from roost.storage.schema import Migration
from roost.storage.sql import Database, Queries
from roost.xml.element import Element

T = TypeVar("T")


@dataclass(slots=True)
class ImportContext:
    """What an import gives each store beside the elements it claimed."""

    jid: str  # the account's bare JID, to name it in notes
    offline_limit: int  # [limits].offline_messages
    notes: list[str] = field(default_factory=list)  # what was left out, and why


class SqlStore(ABC):
    """The base of every store's SQL implementation."""

    name: ClassVar[str]  # the store's name in store_schema ("roster")
    protocol: ClassVar[type]  # what storage.store() is asked for (RosterStore)
    schema: ClassVar[tuple[Migration, ...]]  # its migrations, numbered 1, 2, ...

    def __init__(self, db: Database, stores: StoreSet) -> None:
        self.db = db
        self.stores = stores

    @abstractmethod
    async def delete_user(self, tx: Queries, host: str, user: str) -> None:
        """Remove every row of the user, inside the account deletion's transaction."""

    def xep0227_claims(self, element: Element) -> bool:
        """Whether this child of a XEP-0227 ``<user>`` is this store's to import."""
        return False

    async def xep0227_export(self, host: str, user: str) -> list[Element]:
        """This store's children of the user's XEP-0227 ``<user>`` element."""
        return []

    async def xep0227_import(
        self, host: str, user: str, elements: list[Element], context: ImportContext
    ) -> None:
        """Store the children this store claimed (in document order), for a new account."""
        return  # a store without portable data claims nothing, so there is nothing to store


class StoreSet:
    """The stores of one Storage, built in registry order, found by protocol or class."""

    def __init__(self, db: Database, classes: Sequence[type[SqlStore]]) -> None:
        self._ordered: list[SqlStore] = []
        self._by_kind: dict[type, SqlStore] = {}
        for cls in classes:
            store = cls(db, self)
            self._ordered.append(store)
            self._by_kind[cls.protocol] = self._by_kind[cls] = store

    def __iter__(self) -> Iterator[SqlStore]:
        return iter(self._ordered)

    def get(self, kind: type[T]) -> T:
        """The store implementing ``kind`` (its Protocol, or its class)."""
        try:
            return cast(T, self._by_kind[kind])
        except KeyError:
            raise LookupError(f"no store for {kind.__name__} is registered") from None
