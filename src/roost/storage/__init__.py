"""Durable storage: accounts, the generic key-value store, and later every other concern.

``open_storage(backend, path=..., dsn=...)`` makes a Storage for the configured backend
(SQLite or PostgreSQL); ``await storage.open()`` connects and migrates the schema.
"""

from roost.storage.base import (
    AccountExists,
    AccountNotFound,
    AccountStore,
    KeyValueStore,
    Storage,
    StorageError,
    open_storage,
)

__all__ = [
    "AccountExists",
    "AccountNotFound",
    "AccountStore",
    "KeyValueStore",
    "Storage",
    "StorageError",
    "open_storage",
]
