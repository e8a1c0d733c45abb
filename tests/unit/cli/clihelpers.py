"""Running the `roost` command in-process and reading what it printed."""

from __future__ import annotations

import pytest

from roost.cli import main


def roost_cmd(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run `roost ARGV...`; (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err
