"""`roost init` and `roost run`, run in-process."""

from __future__ import annotations

import logging
import sys
import types
from pathlib import Path

import pytest

import roost
from roost.cli import main
from roost.config import Config, load_config
from tests.unit.cli.clihelpers import roost_cmd

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


# --- run ----------------------------------------------------------------------------------


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
