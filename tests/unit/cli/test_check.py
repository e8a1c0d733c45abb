"""`roost check`: configuration, certificates, storage and ports, run in-process."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.unit.cli.clihelpers import roost_cmd


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
