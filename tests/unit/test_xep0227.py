"""The XEP-0227 reader and writer (roost.xep0227): files in, UserData out, and back.

What the stores make of a user's children (roster, vCard, ...) is tested with the stores,
on both backends: tests/unit/storage/test_registry.py.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest

from roost.auth.credentials import ScramKeys, derive
from roost.storage.roster import RosterItem, roster_items_in
from roost.xep0227 import (
    NS_PIE,
    UserData,
    Xep0227Error,
    read_users,
    user_element,
    write_document,
)
from roost.xml.element import Element
from roost.xml.ns import NS_CLIENT, NS_PRIVATE, NS_ROSTER, NS_VCARD
from roost.xml.serializer import serialize

JULIET = """<?xml version='1.0' encoding='UTF-8'?>
<!-- a comment is fine -->
<server-data xmlns='urn:xmpp:pie:0'>
  <host jid='Capulet.LIT'>
    <user name='Juliet' password='s3crEt'>
      <query xmlns='jabber:iq:roster'>
        <item jid='romeo@montague.net' name='Romeo' subscription='both'>
          <group>Friends</group><group>Friends</group><group> </group>
        </item>
        <item jid='nurse@capulet.lit' ask='subscribe'/>
        <item jid='tybalt@capulet.lit' subscription='enemy' approved='true'/>
        <item jid='@@bad'/>
      </query>
      <presence xmlns='jabber:client' from='benvolio@montague.net/x' type='subscribe'/>
      <vCard xmlns='vcard-temp'><FN>Juliet Capulet</FN></vCard>
      <query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'><a>1</a></prefs></query>
      <offline-messages>
        <message xmlns='jabber:client' from='romeo@montague.net/orchard' type='chat'>
          <body>Neither, fair saint</body>
        </message>
      </offline-messages>
      <pubsub xmlns='http://jabber.org/protocol/pubsub'/>
    </user>
  </host>
</server-data>
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def one_user(tmp_path: Path, text: str) -> UserData:
    users = list(read_users(write(tmp_path / "data.xml", text)))
    assert len(users) == 1
    return users[0]


def scram_element(mechanism: str, keys: ScramKeys) -> str:
    def b64(value: bytes) -> str:
        return base64.b64encode(value).decode()

    return (
        f"<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='{mechanism}'>"
        f"<server-key>{b64(keys.server_key)}</server-key>"
        f"<stored-key>{b64(keys.stored_key)}</stored-key>"
        f"<iter-count>{keys.iterations}</iter-count><salt>{b64(keys.salt)}</salt>"
        "</scram-credentials>"
    )


def document(users: str, host: str = "localhost") -> str:
    return f"<server-data xmlns='urn:xmpp:pie:0'><host jid='{host}'>{users}</host></server-data>"


# -- reading -------------------------------------------------------------------------------------
def test_user_with_password_and_its_children_read_in_document_order(tmp_path: Path) -> None:
    user = one_user(tmp_path, JULIET)
    assert (user.host, user.name, user.password) == ("capulet.lit", "juliet", "s3crEt")
    assert user.jid == "juliet@capulet.lit"
    assert [(c.xmlns, c.name) for c in user.children] == [
        (NS_ROSTER, "query"),
        (NS_CLIENT, "presence"),
        (NS_VCARD, "vCard"),
        (NS_PRIVATE, "query"),
        (NS_PIE, "offline-messages"),
        ("http://jabber.org/protocol/pubsub", "pubsub"),
    ]
    assert user.children[2].find_text("FN", NS_VCARD) == "Juliet Capulet"
    assert user.notes == []  # what no store claims is noted at import (the registry)


def test_roster_items_read_and_what_is_not_understood_left_out_with_a_note(
    tmp_path: Path,
) -> None:
    user = one_user(tmp_path, JULIET)
    notes: list[str] = []
    assert roster_items_in(user.children[0], user.jid, notes) == [
        RosterItem("romeo@montague.net", "Romeo", "both", groups=("Friends",)),
        RosterItem("nurse@capulet.lit", None, "none", ask=True),
        RosterItem("tybalt@capulet.lit", None, "none", approved=True),
    ]
    assert len(notes) == 2
    assert "juliet@capulet.lit: roster item '@@bad' left out" in notes[1]
    assert "subscription 'enemy'" in notes[0]


def test_scram_credentials_read_as_stored(tmp_path: Path) -> None:
    keys = derive("secret")
    users = scram_element("SCRAM-SHA-1", keys["SHA-1"]) + scram_element(
        "SCRAM-SHA-256-PLUS", keys["SHA-256"]
    )
    user = one_user(tmp_path, document(f"<user name='romeo'>{users}</user>"))
    assert user.password is None
    assert user.scram == {"SHA-1": keys["SHA-1"], "SHA-256": keys["SHA-256"]}


@pytest.mark.parametrize(
    ("element", "why"),
    [
        ("<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-MD5'/>", "not supp"),
        (
            "<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'>"
            "<iter-count>many</iter-count></scram-credentials>",
            "malformed",
        ),
        (
            "<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'>"
            "<iter-count>4096</iter-count><salt>c2FsdA==</salt><server-key>AAAA</server-key>"
            "<stored-key>AAAA</stored-key></scram-credentials>",
            "incomplete",
        ),
    ],
)
def test_unusable_scram_credentials_left_out(tmp_path: Path, element: str, why: str) -> None:
    user = one_user(tmp_path, document(f"<user name='romeo'>{element}</user>"))
    assert user.scram == {}
    assert why in user.notes[0]


def test_prosody_style_export_read(tmp_path: Path) -> None:
    """What Prosody's mod_storage_xep0227 writes: SCRAM, roster version, held requests."""
    keys = derive("pw")["SHA-1"]
    text = (
        "<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'><user name='mercutio'>"
        f"{scram_element('SCRAM-SHA-1', keys)}"
        "<query xmlns='jabber:iq:roster' version='3'>"
        "<item jid='romeo@localhost' subscription='from'/></query>"
        "<presence xmlns='jabber:client' from='tybalt@localhost' type='subscribe'/>"
        "</user></host></server-data>"
    )
    user = one_user(tmp_path, text)
    assert user.scram["SHA-1"] == keys
    query, held = user.children
    assert roster_items_in(query, user.jid, []) == [
        RosterItem("romeo@localhost", subscription="from")
    ]
    assert (held.name, held.get("from")) == ("presence", "tybalt@localhost")


def test_legacy_namespace_read(tmp_path: Path) -> None:
    text = (
        "<server-data xmlns='http://www.xmpp.org/extensions/xep-0227.html#ns'>"
        "<host jid='localhost'><user name='a' password='p'/><user name='b'/></host>"
        "</server-data>"
    )
    assert [u.jid for u in read_users(write(tmp_path / "old.xml", text))] == [
        "a@localhost",
        "b@localhost",
    ]


def test_xincludes_followed_in_document_order(tmp_path: Path) -> None:
    xi = "xmlns:xi='http://www.w3.org/2001/XInclude'"
    write(
        tmp_path / "main.xml",
        f"<server-data xmlns='urn:xmpp:pie:0' {xi}><xi:include href='hosts/a.xml'/>"
        "<host jid='b.example'><user name='first'/></host></server-data>",
    )
    (tmp_path / "hosts" / "a.example").mkdir(parents=True)
    write(
        tmp_path / "hosts" / "a.xml",
        f"<host xmlns='urn:xmpp:pie:0' {xi} jid='a.example'>"
        "<xi:include href='a.example/juliet.xml'/><user name='nurse'/></host>",
    )
    write(
        tmp_path / "hosts" / "a.example" / "juliet.xml",
        "<user xmlns='urn:xmpp:pie:0' name='juliet' password='x'/>",
    )
    users = [u.jid for u in read_users(tmp_path / "main.xml")]
    assert users == ["juliet@a.example", "nurse@a.example", "first@b.example"]


def test_xinclude_loop_refused(tmp_path: Path) -> None:
    xi = "xmlns:xi='http://www.w3.org/2001/XInclude'"
    write(tmp_path / "a.xml", f"<server-data xmlns='urn:xmpp:pie:0' {xi}>"
          "<xi:include href='b.xml'/></server-data>")  # fmt: skip
    write(tmp_path / "b.xml", f"<server-data xmlns='urn:xmpp:pie:0' {xi}>"
          "<xi:include href='a.xml'/></server-data>")  # fmt: skip
    with pytest.raises(Xep0227Error, match="XInclude loop"):
        list(read_users(tmp_path / "a.xml"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<roster xmlns='jabber:iq:roster'/>", "not XEP-0227 data"),
        ("<server-data xmlns='urn:xmpp:pie:0'><host><user name='a'/></host></server-data>",
         "without a jid"),
        ("<server-data xmlns='urn:xmpp:pie:0'><user name='a'/></server-data>", "outside a <host>"),
        (document("<user password='p'/>"), "without a name"),
        (document("<user name='a b'/>"), "not allowed"),
        (document("<user name='a'>"), "mismatched tag"),
        ("<server-data xmlns='urn:xmpp:pie:0'>", "no element found"),
        ("<!DOCTYPE x [<!ENTITY a 'aaaa'>]><server-data xmlns='urn:xmpp:pie:0'/>", "DTD"),
        ("<server-data xmlns='urn:xmpp:pie:0' xmlns:xi='http://www.w3.org/2001/XInclude'>"
         "<xi:include href='/etc/passwd'/></server-data>", "relative href"),
    ],
)  # fmt: skip
def test_unreadable_files_refused_with_file_and_line(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path / "bad.xml", text)
    with pytest.raises(Xep0227Error, match=message) as caught:
        list(read_users(path))
    assert str(caught.value).startswith(f"{path}:")


def test_missing_file_refused(tmp_path: Path) -> None:
    with pytest.raises(Xep0227Error, match="cannot read"):
        list(read_users(tmp_path / "absent.xml"))


# -- writing -------------------------------------------------------------------------------------
def test_written_users_read_back_equal(tmp_path: Path) -> None:
    keys = derive("secret")
    vcard = Element("vCard", NS_VCARD)
    vcard.sub("FN", text="O'Brien & <Sons>")
    held = Element("presence", NS_CLIENT, {"type": "subscribe", "from": "x@y"})
    message = Element("message", NS_CLIENT, {"from": "x@y/z", "type": "chat"})
    message.sub("body", text="hi")
    roster = Element("query", NS_ROSTER)
    item = Element("item", NS_ROSTER, {"jid": "bob@localhost", "name": 'Bob "B" & co'})
    roster.add(item).sub("group", text="a")
    children = [
        roster,
        held,
        vcard,
        Element("query", NS_PRIVATE, {}, [Element("prefs", "urn:example:prefs")]),
        Element("offline-messages", NS_PIE, {}, [message]),
    ]
    written = [
        UserData("localhost", "alice", scram=keys, children=children),
        UserData("localhost", "bob", password="pass word"),
    ]
    out = io.BytesIO()
    elements = [user_element(u) for u in written]
    assert write_document(out, [("localhost", elements), ("empty.example", [])]) == 2
    path = tmp_path / "export.xml"
    path.write_bytes(out.getvalue())
    read = list(read_users(path))
    assert [(u.jid, u.password, u.scram) for u in read] == [
        (u.jid, u.password, u.scram) for u in written
    ]
    assert [serialize(c) for c in read[0].children] == [serialize(c) for c in children]
    assert read[1].children == []
    assert [u.notes for u in read] == [[], []]


def test_user_element_is_in_the_pie_namespace() -> None:
    el = user_element(UserData("localhost", "a", password="p"))
    assert (el.xmlns, el.name, el.attrs) == (NS_PIE, "user", {"name": "a", "password": "p"})
