"""The `roost` command, run in-process: init, user add/passwd/del/list, check, run, version."""

from __future__ import annotations

import asyncio
import io
import logging
import socket
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

import roost
from roost.auth.credentials import verify_password
from roost.cli import main
from roost.config import Config, load_config
from roost.storage import open_storage


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "roost.toml"
    assert main(["init", "-c", str(path)]) == 0
    return path


def roost_cmd(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


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


# --- init ---------------------------------------------------------------------------------


def test_init_writes_config_data_dir_and_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "etc/roost.toml"
    code, out, _ = roost_cmd(capsys, "init", "-c", str(path), "--domain", "example.org")
    assert code == 0
    config = load_config(path)
    assert config.server.domains == ("example.org",)
    assert (tmp_path / "etc/data/roost.crt").exists()
    assert (tmp_path / "etc/data/roost.key").stat().st_mode & 0o777 == 0o600
    assert f"wrote {path}" in out


def test_init_refuses_to_overwrite_an_existing_file(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path.write_text("# mine\n")
    code, _, err = roost_cmd(capsys, "init", "-c", str(config_path))
    assert code == 1
    assert f"{config_path} already exists; roost init does not overwrite it" in err
    assert config_path.read_text() == "# mine\n"


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


# --- check --------------------------------------------------------------------------------


def write_config(tmp_path: Path, c2s: str) -> Path:
    path = tmp_path / "check.toml"
    path.write_text(f'[listen]\nc2s = "{c2s}"\nc2s_tls = ""\n')
    return path


def test_check_reports_a_port_in_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, _ = roost_cmd(
            capsys, "check", "-c", str(write_config(tmp_path, f"127.0.0.1:{port}"))
        )
    assert code == 1
    assert f"PROBLEM  [listen].c2s 127.0.0.1:{port} is in use (is roost already running?)" in out
    assert "1 problem(s) found" in out


def test_check_passes_on_a_fresh_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, out, _ = roost_cmd(
        capsys, "check", "-c", str(write_config(tmp_path, f"127.0.0.1:{port}"))
    )
    assert code == 0, out
    assert "PROBLEM" not in out
    assert "WARNING  [listen].s2s is set but server-to-server federation is not built" in out
    assert "a self-signed certificate will be generated at start" in out
    assert "will be created" in out
    assert out.endswith("no problem found\n")


def test_check_reports_a_bad_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, "127.0.0.1:99999")
    assert roost_cmd(capsys, "check", "-c", str(path)) == (
        1, f'PROBLEM  {path}: [listen].c2s: "127.0.0.1:99999" is not a valid port (1-65535)\n', ""
    )  # fmt: skip


def test_check_reports_a_configured_certificate_that_does_not_cover_the_domain(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = config_path.parent / "data"
    text = (
        config_path.read_text()
        .replace('cert = ""', f'cert = "{data / "roost.crt"}"')
        .replace('key = ""', f'key = "{data / "roost.key"}"')
    )
    config_path.write_text(text.replace('domains = ["localhost"]', 'domains = ["example.org"]'))
    code, out, _ = roost_cmd(capsys, "check", "-c", str(config_path))
    assert code == 1
    assert f"PROBLEM  the certificate {data / 'roost.crt'} does not cover example.org" in out


# --- run, version, usage ------------------------------------------------------------------


def test_run_with_a_bad_config_exits_2_with_the_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert roost_cmd(capsys, "run", "-c", str(tmp_path / "none.toml")) == (
        2, "", f"{tmp_path / 'none.toml'}: file not found (`roost init -c "
        f"{tmp_path / 'none.toml'}` writes one)\n"
    )  # fmt: skip


def test_run_logs_warnings_and_runs_the_server(
    config_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    started: list[Config] = []

    def fake_run(config: Config) -> int:
        started.append(config)
        return 0

    fake = types.ModuleType("roost.server")
    fake.run = fake_run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "roost.server", fake)
    monkeypatch.setattr(roost, "server", fake, raising=False)
    with caplog.at_level(logging.WARNING, logger="roost"):
        assert main(["run", "-c", str(config_path)]) == 0
    assert [c.path for c in started] == [config_path]
    assert "[listen].s2s is set but server-to-server federation" in caplog.text


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = roost_cmd(capsys)
    assert code == 2
    assert "usage: roost" in err


def test_unknown_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert roost_cmd(capsys, "user", "add", "--bogus")[0] == 2


def test_version_runs_as_a_program() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "roost", "version"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    lines = result.stdout.splitlines()
    assert lines[0] == f"roost {roost.__version__}"
    assert lines[1].startswith("Python ")
    assert lines[2].startswith("expat ")
    assert lines[3].startswith("OpenSSL ")
