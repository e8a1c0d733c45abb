"""The `roost` program: usage errors, help, and `python -m roost version`."""

from __future__ import annotations

import subprocess
import sys

import pytest

import roost
from tests.unit.cli.clihelpers import roost_cmd


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
