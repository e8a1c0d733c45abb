"""Fixtures of the `roost` command tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from roost.cli import main


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    """A configuration file written by `roost init` (with its data directory)."""
    path = tmp_path / "roost.toml"
    assert main(["init", "-c", str(path)]) == 0
    return path
