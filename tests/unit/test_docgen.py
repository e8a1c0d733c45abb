"""The generated module page is committed and current."""

from __future__ import annotations

from pathlib import Path

from roost.docgen import modules_page

PAGE = Path(__file__).parents[2] / "docs" / "modules.md"


def test_committed_modules_page_matches_module_metadata() -> None:
    assert PAGE.read_text() == modules_page(), "run: python -m roost.docgen > docs/modules.md"


def test_every_builtin_module_declares_what_it_implements() -> None:
    page = modules_page()
    for name in ("disco", "ping", "version", "time", "session", "presence", "message"):
        assert f"| `{name}` |" in page
