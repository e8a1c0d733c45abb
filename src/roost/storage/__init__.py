"""Durable storage by concern: one file per store over one SQL dialect layer (docs/architecture.md).

``open_storage(backend, path=..., dsn=...)`` makes a Storage for the configured backend
(SQLite or PostgreSQL); ``await storage.open()`` connects and migrates every store's schema.
``storage.store(Protocol)`` gives a store; registry.py lists the stores and drives account
deletion and XEP-0227 export/import (``export_user``, ``import_user``).
"""

from roost.storage.base import (
    AccountExists,
    AccountNotFound,
    AccountStore,
    ArchiveStore,
    BlockingStore,
    KeyValueStore,
    OfflineStore,
    RosterStore,
    Storage,
    StorageError,
    open_storage,
)

__all__ = [
    "AccountExists",
    "AccountNotFound",
    "AccountStore",
    "ArchiveStore",
    "BlockingStore",
    "KeyValueStore",
    "OfflineStore",
    "RosterStore",
    "Storage",
    "StorageError",
    "open_storage",
]
