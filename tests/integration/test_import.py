"""``roost import`` and ``roost export`` (XEP-0227) against a real server.

Imported accounts log in with their password or with the SCRAM keys the file carried, see
the roster the file gave them and get the offline messages it held; an export reads back as
what was imported; files that cannot be imported whole import nothing.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
import slixmpp

from roost.auth.credentials import derive
from roost.storage.roster import roster_items_in
from roost.xep0227 import read_users
from tests.integration.harness import (
    DOMAIN,
    ServerProcess,
    disconnect,
    make_server,
    next_stanza,
    roost_cli,
    slix_client,
)

BOB_PASSWORD = "bobs-secret"
BOB_KEYS = derive(BOB_PASSWORD)["SHA-1"]


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


DATA = f"""<?xml version='1.0' encoding='UTF-8'?>
<server-data xmlns='urn:xmpp:pie:0'>
  <host jid='{DOMAIN}'>
    <user name='alice' password='alices-secret'>
      <query xmlns='jabber:iq:roster'>
        <item jid='bob@{DOMAIN}' name='Bob' subscription='both'><group>Friends</group></item>
        <item jid='carol@example.org' ask='subscribe'/>
      </query>
      <offline-messages>
        <message xmlns='jabber:client' from='bob@{DOMAIN}/home' to='alice@{DOMAIN}' type='chat'>
          <body>sent before the move</body>
          <delay xmlns='urn:xmpp:delay' from='{DOMAIN}' stamp='2024-01-02T03:04:05Z'/>
        </message>
      </offline-messages>
    </user>
    <user name='bob'>
      <scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'>
        <iter-count>{BOB_KEYS.iterations}</iter-count>
        <salt>{_b64(BOB_KEYS.salt)}</salt>
        <server-key>{_b64(BOB_KEYS.server_key)}</server-key>
        <stored-key>{_b64(BOB_KEYS.stored_key)}</stored-key>
      </scram-credentials>
      <query xmlns='jabber:iq:roster'>
        <item jid='alice@{DOMAIN}' subscription='both'/>
      </query>
    </user>
  </host>
</server-data>
"""


def import_files(server: ServerProcess, *files: Path) -> tuple[int, str]:
    done = roost_cli("import", "-c", str(server.config), *(str(f) for f in files))
    return done.returncode, done.stdout + done.stderr


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "export.xml"
    path.write_text(DATA, encoding="utf-8")
    return path


@pytest.fixture
def imported(tmp_path: Path, data_file: Path) -> Iterator[ServerProcess]:
    """A server that got DATA through ``roost import`` before it started."""
    server = make_server(tmp_path / "roost")
    code, output = import_files(server, data_file)
    assert code == 0, output
    assert "imported 2 of 2 accounts" in output
    server.start()
    yield server
    server.stop()


@pytest.mark.asyncio
async def test_imported_password_logs_in_and_sees_its_roster(imported: ServerProcess) -> None:
    alice = await slix_client(imported, f"alice@{DOMAIN}", "alices-secret", presence=False)
    try:
        await alice.get_roster()
        roster = alice.client_roster
        bob = roster[f"bob@{DOMAIN}"]
        assert (bob["name"], bob["subscription"], bob["groups"]) == ("Bob", "both", ["Friends"])
        carol = roster["carol@example.org"]
        assert (carol["subscription"], carol["pending_out"]) == ("none", True)
    finally:
        await disconnect(alice)


@pytest.mark.asyncio
async def test_imported_scram_keys_log_in(imported: ServerProcess) -> None:
    bob = await slix_client(imported, f"bob@{DOMAIN}", BOB_PASSWORD, mechanism="SCRAM-SHA-1")
    await disconnect(bob)


@pytest.mark.asyncio
async def test_imported_offline_message_delivered_at_login(imported: ServerProcess) -> None:
    alice = await slix_client(imported, f"alice@{DOMAIN}", "alices-secret", presence=False)
    try:
        arrived = next_stanza(alice, "message")
        alice.send_presence()
        message: slixmpp.Message = await arrived
        assert message["body"] == "sent before the move"
        assert str(message["from"]) == f"bob@{DOMAIN}/home"
    finally:
        await disconnect(alice)


def test_export_reads_back_as_imported(imported: ServerProcess, tmp_path: Path) -> None:
    out = tmp_path / "again.xml"
    done = roost_cli("export", "-c", str(imported.config), str(out))
    assert done.returncode == 0, done.stderr
    assert out.stat().st_mode & 0o077 == 0  # credentials: the owner's only
    users = {u.name: u for u in read_users(out)}
    assert sorted(users) == ["alice", "bob"]
    assert users["bob"].scram == {"SHA-1": BOB_KEYS}
    assert users["bob"].password is None
    assert sorted(users["alice"].scram) == ["SHA-1", "SHA-256", "SHA-512"]
    roster, offline = users["alice"].children  # the roster store's, then the offline store's
    assert [i.jid for i in roster_items_in(roster, "alice", [])] == [
        "bob@localhost",
        "carol@example.org",
    ]
    assert [m.find_text("body") for m in offline.elements()] == ["sent before the move"]
    again = roost_cli("export", "-c", str(imported.config), str(out))
    assert again.returncode == 1
    assert "already exists" in again.stderr


def test_import_again_skips_existing_accounts(imported: ServerProcess, data_file: Path) -> None:
    code, output = import_files(imported, data_file)
    assert code == 1
    assert "alice@localhost not imported: the account exists already" in output
    assert "imported 0 of 2 accounts" in output


def test_unserved_host_imports_nothing(tmp_path: Path, data_file: Path) -> None:
    server = make_server(tmp_path / "roost")
    other = tmp_path / "other.xml"
    other.write_text(
        "<server-data xmlns='urn:xmpp:pie:0'><host jid='elsewhere.example'>"
        "<user name='eve' password='x'/></host></server-data>"
    )
    code, output = import_files(server, data_file, other)
    assert code == 1
    assert "elsewhere.example not served here" in output
    assert "nothing was imported" in output
    listing = roost_cli("user", "list", "-c", str(server.config))
    assert listing.stdout == ""


def test_broken_file_imports_nothing(tmp_path: Path, data_file: Path) -> None:
    server = make_server(tmp_path / "roost")
    broken = tmp_path / "broken.xml"
    broken.write_text(DATA.replace("</server-data>", ""))
    code, output = import_files(server, data_file, broken)
    assert code == 1
    assert f"{broken}:" in output
    assert roost_cli("user", "list", "-c", str(server.config)).stdout == ""
