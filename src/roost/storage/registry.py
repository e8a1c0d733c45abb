"""The store registry: every store of roost, one line each, and what it drives.

``STORES`` lists the SQL implementation of every store. A Storage builds them in this order
on its database and migrates each store's schema at open (schema.py); modules reach a store
by its Protocol (``storage.store(RosterStore)``, ``api.store``). The registry drives:

- account deletion: AccountStore.delete() asks every store to delete the user's rows, in
  one transaction (SqlStore.delete_user);
- XEP-0227 export and import (``roost export``/``roost import``): ``export_user`` builds a
  user's ``<user>`` element from the account's credentials and every store's children;
  ``import_user`` creates the account and hands each child to the store that claims it.

A new store is one file (its Protocol, records, SqlStore subclass and migrations) and one
line here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from roost.auth.credentials import Credentials
from roost.storage.accounts import SqlAccountStore
from roost.storage.archive import SqlArchiveStore
from roost.storage.blocking import SqlBlockingStore
from roost.storage.kv import SqlKeyValueStore
from roost.storage.last import SqlLastActivityStore
from roost.storage.offline import SqlOfflineStore
from roost.storage.private import SqlPrivateStore
from roost.storage.roster import SqlRosterStore
from roost.storage.store import ImportContext, SqlStore
from roost.xep0227 import UserData, user_element
from roost.xml.element import Element

if TYPE_CHECKING:
    from roost.storage.base import Storage

STORES: Final[tuple[type[SqlStore], ...]] = (
    SqlAccountStore,  # first: an import creates the account before the others fill it
    SqlRosterStore,
    SqlKeyValueStore,
    SqlPrivateStore,  # after kv: its first migration moves the fragments kept there
    SqlOfflineStore,
    SqlBlockingStore,
    SqlArchiveStore,
    SqlLastActivityStore,  # after kv: its first migration moves the logouts kept there
)


async def export_user(storage: Storage, host: str, user: str) -> Element:
    """The user's ``<user>`` element (XEP-0227 §4): SCRAM keys, then each store's children."""
    creds = await storage.accounts.get_credentials(host, user) or {}
    children: list[Element] = []
    for store in storage.stores:
        children.extend(await store.xep0227_export(host, user))
    return user_element(UserData(host, user, scram=creds, children=children))


async def import_user(
    storage: Storage, user: UserData, creds: Credentials, *, offline_limit: int
) -> list[str]:
    """Create the account with ``creds`` and store what the stores claim of its children;
    the notes on what was left out. AccountExists if the account exists (nothing written)."""
    context = ImportContext(user.jid, offline_limit)
    claimed: dict[SqlStore, list[Element]] = {}
    for child in user.children:
        store = next((s for s in storage.stores if s.xep0227_claims(child)), None)
        if store is None:
            context.notes.append(
                f"{user.jid}: {{{child.xmlns}}}{child.name} not understood, left out"
            )
        else:
            claimed.setdefault(store, []).append(child)
    await storage.accounts.create(user.host, user.name, creds)
    for store in storage.stores:
        if store in claimed:
            await store.xep0227_import(user.host, user.name, claimed[store], context)
    return context.notes
