"""The store registry: what it holds, and the XEP-0227 import/export it drives, on every backend.

``import_user`` hands each child of a ``<user>`` to the store that claims it (XEP-0227 §4.3
roster and held requests, §4.4 offline messages, §4.5 private XML, §4.6 vCard) and notes
what no store claims; ``export_user`` gathers them back.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from roost.auth.credentials import derive
from roost.storage import AccountExists, Storage
from roost.storage.kv import VCARD_KEY, VCARD_STORE
from roost.storage.private import PrivateStore
from roost.storage.registry import STORES, export_user, import_user
from roost.storage.roster import RosterItem, RosterStore
from roost.storage.schema import check_migrations
from roost.storage.sql import StorageError
from roost.storage.store import SqlStore
from roost.xep0227 import UserData, read_users, user_element, write_document
from roost.xml.element import Element
from roost.xml.parser import parse_fragment
from roost.xml.serializer import serialize

HOST = "capulet.lit"
JULIET = """<server-data xmlns='urn:xmpp:pie:0'><host jid='capulet.lit'>
<user name='juliet' password='s3crEt'>
  <query xmlns='jabber:iq:roster'>
    <item jid='romeo@montague.net' name='Romeo' subscription='both'><group>Friends</group></item>
    <item jid='nurse@capulet.lit' ask='subscribe'/>
    <item jid='@@bad'/>
  </query>
  <presence xmlns='jabber:client' from='benvolio@montague.net/x' type='subscribe'/>
  <presence xmlns='jabber:client' from='@@bad' type='subscribe'/>
  <presence xmlns='jabber:client' from='tybalt@capulet.lit' type='subscribed'/>
  <vCard xmlns='vcard-temp'><FN>Juliet Capulet</FN></vCard>
  <query xmlns='jabber:iq:private'>
    <prefs xmlns='urn:example:prefs'><a>1</a></prefs>
    <storage xmlns='jabber:iq:reserved'/>
  </query>
  <offline-messages>
    <message xmlns='jabber:client' from='romeo@montague.net/orchard' type='chat'>
      <body>Neither, fair saint</body>
    </message>
    <message xmlns='jabber:client' from='romeo@montague.net/orchard'><body>2</body></message>
  </offline-messages>
  <pubsub xmlns='http://jabber.org/protocol/pubsub'/>
</user></host></server-data>"""


def juliet(tmp_path: Path) -> UserData:
    path = tmp_path / "juliet.xml"
    path.write_text(JULIET, encoding="utf-8")
    (user,) = read_users(path)
    return user


def test_every_store_has_a_unique_name_and_protocol_and_numbered_migrations() -> None:
    assert len({s.name for s in STORES}) == len({s.protocol for s in STORES}) == len(STORES)
    for store in STORES:
        check_migrations(store.name, store.schema)
        assert store.schema
    assert STORES[0].name == "accounts"  # import creates the account first


def test_badly_numbered_migrations_are_refused() -> None:
    (first,) = STORES[0].schema
    with pytest.raises(StorageError, match="numbered 1, 2"):
        check_migrations("x", (first, first))


@pytest.mark.asyncio
async def test_stores_are_found_by_protocol_and_by_class(storage: Storage) -> None:
    roster = storage.store(RosterStore)
    assert roster is storage.roster
    assert [type(s) for s in storage.stores] == list(STORES)
    assert storage.store(type(roster)) is roster
    with pytest.raises(LookupError, match="no store for SqlStore"):
        storage.store(SqlStore)


@pytest.mark.asyncio
async def test_import_gives_each_store_its_children_and_notes_the_rest(
    storage: Storage, tmp_path: Path
) -> None:
    user = juliet(tmp_path)
    notes = await import_user(storage, user, derive("s3crEt"), offline_limit=1)
    assert await storage.accounts.exists(HOST, "juliet")
    roster = await storage.roster.get(HOST, "juliet")
    assert list(roster.items.values()) == [
        RosterItem("nurse@capulet.lit", ask=True),
        RosterItem("romeo@montague.net", "Romeo", "both", groups=("Friends",)),
    ]
    pending = await storage.roster.pending_in(HOST, "juliet")
    assert list(pending) == ["benvolio@montague.net"]
    assert parse_fragment(pending["benvolio@montague.net"]).get("type") == "subscribe"
    card = await storage.kv.get(HOST, "juliet", VCARD_STORE, VCARD_KEY)
    assert card is not None
    assert parse_fragment(card).find_text("FN") == "Juliet Capulet"
    private = storage.store(PrivateStore)
    assert await private.names(HOST, "juliet") == ["{urn:example:prefs}prefs"]
    fragment = await private.get(HOST, "juliet", "{urn:example:prefs}prefs")
    assert fragment is not None
    assert parse_fragment(fragment).find_text("a") == "1"
    offline = await storage.offline.fetch(HOST, "juliet")
    assert [parse_fragment(m).find_text("body") for _, m in offline] == ["Neither, fair saint"]
    text = "\n".join(notes)
    for expected in (
        "roster item '@@bad' left out",
        "held subscription request left out",
        "{jabber:client}presence not understood",  # type='subscribed': no store's
        "{http://jabber.org/protocol/pubsub}pubsub not understood",
        "private XML in jabber:iq:reserved left out (reserved)",
        "offline messages beyond 1 left out",
    ):
        assert expected in text
    assert len(notes) == 6
    assert all(note.startswith("juliet@capulet.lit: ") for note in notes)


@pytest.mark.asyncio
async def test_export_reads_back_as_imported(storage: Storage, tmp_path: Path) -> None:
    user = juliet(tmp_path)
    creds = derive("s3crEt")
    await import_user(storage, user, creds, offline_limit=10)
    exported = await export_user(storage, HOST, "juliet")
    path = tmp_path / "again.xml"
    with path.open("wb") as out:
        assert write_document(out, [(HOST, [exported])]) == 1
    (again,) = read_users(path)
    assert (again.name, again.password, again.scram) == ("juliet", None, creds)
    names = [(c.xmlns, c.name) for c in again.children]
    assert names == [
        ("jabber:iq:roster", "query"),
        ("jabber:client", "presence"),
        ("vcard-temp", "vCard"),
        ("jabber:iq:private", "query"),
        ("urn:xmpp:pie:0", "offline-messages"),
    ]
    # imported again under another name, the same data is exported
    again.name = "juliet2"
    assert await import_user(storage, again, creds, offline_limit=10) == []
    second = await export_user(storage, HOST, "juliet2")
    second.attrs["name"] = "juliet"
    assert serialize(second) == serialize(exported)


@pytest.mark.asyncio
async def test_account_without_data_exports_only_its_credentials(storage: Storage) -> None:
    await storage.accounts.create(HOST, "nurse", {})
    assert serialize(await export_user(storage, HOST, "nurse")) == serialize(
        user_element(UserData(HOST, "nurse"))
    )


@pytest.mark.asyncio
async def test_importing_an_existing_account_writes_nothing(
    storage: Storage, tmp_path: Path
) -> None:
    await storage.accounts.create(HOST, "juliet", {})
    with pytest.raises(AccountExists):
        await import_user(storage, juliet(tmp_path), {}, offline_limit=10)
    assert (await storage.roster.get(HOST, "juliet")).items == {}
    assert await storage.offline.count(HOST, "juliet") == 0
    assert await storage.accounts.get_credentials(HOST, "juliet") == {}


@pytest.mark.asyncio
async def test_stores_without_portable_data_claim_nothing(storage: Storage) -> None:
    unknown = Element("blocklist", "urn:xmpp:blocking")
    assert [s.name for s in storage.stores if s.xep0227_claims(unknown)] == []
    await storage.accounts.create(HOST, "nurse", {})
    await storage.blocking.add(HOST, "nurse", ["tybalt@capulet.lit"])
    assert (await export_user(storage, HOST, "nurse")).children == []
