"""`roost user add | passwd | del | list`, run in-process."""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from roost.auth.credentials import verify_password
from roost.cli import main
from roost.config import load_config
from roost.storage import open_storage
from tests.unit.cli.clihelpers import roost_cmd


def stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))


def password_of(path: Path, host: str, user: str, password: str) -> bool:
    """True if the stored credentials of the account accept ``password``."""
    config = load_config(path)

    async def credentials() -> object:
        storage = open_storage("sqlite", path=config.sqlite_path)
        await storage.open()
        try:
            return await storage.accounts.get_credentials(host, user)
        finally:
            await storage.close()

    creds = asyncio.run(credentials())
    assert isinstance(creds, dict)
    return verify_password(creds, password)


# --- user ---------------------------------------------------------------------------------


def test_user_add_list_passwd_del(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = str(config_path)
    assert roost_cmd(capsys, "user", "add", "-c", c, "alice@localhost", "pw1") == (
        0, "user alice@localhost created\n", ""
    )  # fmt: skip
    assert roost_cmd(capsys, "user", "add", "-c", c, "Bob@LocalHost", "pw2")[0] == 0
    assert password_of(config_path, "localhost", "alice", "pw1")
    assert roost_cmd(capsys, "user", "list", "-c", c) == (
        0, "alice@localhost\nbob@localhost\n", ""
    )  # fmt: skip
    assert roost_cmd(capsys, "user", "passwd", "-c", c, "alice@localhost", "new")[0] == 0
    assert password_of(config_path, "localhost", "alice", "new")
    assert not password_of(config_path, "localhost", "alice", "pw1")
    assert roost_cmd(capsys, "user", "del", "-c", c, "alice@localhost") == (
        0, "user alice@localhost deleted\n", ""
    )  # fmt: skip
    assert roost_cmd(capsys, "user", "list", "-c", c, "localhost")[1] == "bob@localhost\n"


def test_user_add_of_an_existing_user_fails(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c = str(config_path)
    assert main(["user", "add", "-c", c, "alice@localhost", "pw"]) == 0
    assert roost_cmd(capsys, "user", "add", "-c", c, "alice@localhost", "other") == (
        1, "", "user alice@localhost already exists\n"
    )  # fmt: skip
    assert password_of(config_path, "localhost", "alice", "pw")


@pytest.mark.parametrize("action", ["passwd", "del"])
def test_user_passwd_and_del_of_a_missing_user_fail(
    config_path: Path, capsys: pytest.CaptureFixture[str], action: str
) -> None:
    argv = ["user", action, "-c", str(config_path), "nobody@localhost"]
    assert roost_cmd(capsys, *argv, *(["pw"] if action == "passwd" else [])) == (
        1, "", "user nobody@localhost does not exist\n"
    )  # fmt: skip


def test_user_password_is_read_from_stdin(
    config_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stdin(monkeypatch, "correct horse battery\n")
    assert roost_cmd(capsys, "user", "add", "-c", str(config_path), "alice@localhost")[0] == 0
    assert password_of(config_path, "localhost", "alice", "correct horse battery")
    stdin(monkeypatch, "second\r\nignored\n")
    assert roost_cmd(capsys, "user", "passwd", "-c", str(config_path), "alice@localhost")[0] == 0
    assert password_of(config_path, "localhost", "alice", "second")


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def prompts(monkeypatch: pytest.MonkeyPatch, *answers: str) -> list[str]:
    """Make stdin a terminal and getpass return ``answers``; return the prompts shown."""
    shown: list[str] = []
    replies: Iterator[str] = iter(answers)

    def fake_getpass(prompt: str = "Password: ") -> str:
        shown.append(prompt)
        return next(replies)

    monkeypatch.setattr(sys, "stdin", FakeTerminal())
    monkeypatch.setattr("getpass.getpass", fake_getpass)
    return shown


def test_user_password_is_asked_twice_on_a_terminal(
    config_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    shown = prompts(monkeypatch, "typed", "typed")
    assert roost_cmd(capsys, "user", "add", "-c", str(config_path), "alice@localhost")[0] == 0
    assert shown == ["Password: ", "Password (again): "]
    assert password_of(config_path, "localhost", "alice", "typed")


def test_user_passwords_typed_differently_are_refused(
    config_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    prompts(monkeypatch, "one", "two")
    assert roost_cmd(capsys, "user", "add", "-c", str(config_path), "alice@localhost") == (
        2, "", "the passwords do not match\n"
    )  # fmt: skip
    assert roost_cmd(capsys, "user", "list", "-c", str(config_path))[1] == ""


def test_user_empty_password_is_refused(
    config_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stdin(monkeypatch, "\n")
    assert roost_cmd(capsys, "user", "add", "-c", str(config_path), "alice@localhost") == (
        2, "", "the password is empty\n"
    )  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["add", "alice@example.org", "pw"], "example.org is not served here (served: localhost"),
        (["add", "alice@localhost/phone", "pw"], "give the account without a resource"),
        (["add", "localhost", "pw"], "localhost has no user name; write user@domain"),
        (["add", "a@b@c", "pw"], "'a@b@c' is not a valid JID"),
        (["del", "alice@example.org"], "example.org is not served here"),
        (["list", "example.org"], "example.org is not served here"),
        (["list", "not a domain"], "'not a domain' is not a valid domain"),
    ],
)
def test_user_command_with_a_bad_address_is_a_usage_error(
    config_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = roost_cmd(capsys, "user", argv[0], "-c", str(config_path), *argv[1:])
    assert (code, out) == (2, "")
    assert message in err


def test_user_command_with_a_bad_config_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "roost.toml"
    path.write_text('[server]\nlog_level = "loud"\n')
    assert roost_cmd(capsys, "user", "list", "-c", str(path)) == (
        2, "", f'{path}: [server].log_level: "loud" is not one of debug, info, warning, error\n'
    )  # fmt: skip
