"""Dependencies point one way (DESIGN.md §7): the lower layers never import the upper ones.

Every module under ``src/roost`` is read with ``ast`` (nothing is imported): ``import x``,
``from x import y`` (also relative, and ``from roost import core``) and
``importlib.import_module("x")`` / ``__import__("x")`` with a literal name count.

- ``roost.xml``, ``roost.jid`` and ``roost.stream`` are sans-IO: no ``asyncio``, nothing from
  ``roost.core``, ``roost.transport``, ``roost.modules``, ``roost.server``, ``roost.storage``,
  not even for type checking; ``roost.xml`` does not import ``roost.stream`` either.
- ``roost.core`` imports nothing from ``roost.transport``, ``roost.modules`` or
  ``roost.server`` at run time; under ``if TYPE_CHECKING:`` it may.
- ``roost.modules`` (features) import no transport, neither the server nor the CLI, nor the
  client connection (``roost.core.c2s``), not even for type checking: modules see sessions,
  never connections (docs/architecture.md §2).
- ``roost.storage`` (stores) imports nothing from ``roost.core``, ``roost.modules``,
  ``roost.transport``, ``roost.server`` or ``roost.cli``: stores serve the core, never the
  other way round.

And one rule on what modules call (docs/architecture.md §4: ``router.deliver`` is the only
way out): no module touches a session's ``carrier`` or calls ``send_stanza``,
``send_element`` or ``send_serialized`` on anything, and ``.send(...)`` only on its module
API (``api.send``, ``self.api.send``: a stanza the server routes).
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

SRC: Final = Path(__file__).resolve().parents[2] / "src"

SANS_IO_FORBIDDEN: Final = (
    "asyncio",
    "roost.core",
    "roost.transport",
    "roost.modules",
    "roost.server",
    "roost.storage",
)


@dataclass(frozen=True)
class Rule:
    """Modules under ``layer`` must not import ``forbidden`` (at run time only, if so)."""

    layer: str
    forbidden: tuple[str, ...]
    runtime_only: bool  # True: imports under `if TYPE_CHECKING:` are allowed


RULES: Final = (
    Rule("roost.xml", (*SANS_IO_FORBIDDEN, "roost.stream"), runtime_only=False),
    Rule("roost.jid", SANS_IO_FORBIDDEN, runtime_only=False),
    Rule("roost.stream", SANS_IO_FORBIDDEN, runtime_only=False),
    Rule("roost.core", ("roost.transport", "roost.modules", "roost.server"), runtime_only=True),
    Rule(
        "roost.modules",
        ("roost.transport", "roost.server", "roost.cli", "roost.core.c2s"),
        runtime_only=False,
    ),
    Rule(
        "roost.storage",
        ("roost.core", "roost.modules", "roost.transport", "roost.server", "roost.cli"),
        runtime_only=False,
    ),
)


@dataclass(frozen=True)
class Import:
    """One imported module name, where it is, and whether only type checkers see it."""

    module: str  # dotted name of the importing module
    path: str
    line: int
    target: str  # the dotted name imported (for `from a import b`: "a.b")
    type_checking: bool

    def __str__(self) -> str:
        where = " (under TYPE_CHECKING)" if self.type_checking else ""
        return f"{self.path}:{self.line}: {self.module} imports {self.target}{where}"


def module_name(path: Path, root: Path = SRC) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_type_checking_test(test: ast.expr) -> bool:
    """``TYPE_CHECKING`` or ``typing.TYPE_CHECKING`` (any module alias)."""
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute name of ``from <level dots><name> import ...`` inside ``module``."""
    if level == 0:
        return name or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - (level - 1)]
    return ".".join([*base, name] if name else base)


def imports_in(source: str, module: str, path: str, is_package: bool = False) -> Iterator[Import]:
    """Every import in ``source``, flagged when it sits in an ``if TYPE_CHECKING:`` block."""
    tree = ast.parse(source, filename=path)
    stack: list[tuple[ast.AST, bool]] = [(tree, False)]
    while stack:
        node, type_checking = stack.pop()
        for target in _targets(node, module, is_package):
            yield Import(module, path, getattr(node, "lineno", 0), target, type_checking)
        if isinstance(node, ast.If) and is_type_checking_test(node.test):
            stack.extend((child, True) for child in node.body)
            stack.extend((child, type_checking) for child in node.orelse)
            continue
        stack.extend((child, type_checking) for child in ast.iter_child_nodes(node))


def _targets(node: ast.AST, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        base = resolve(module, is_package, node.level, node.module)
        # `from roost import core` imports the module roost.core: report both forms.
        return [base, *(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")]
    if isinstance(node, ast.Call) and node.args:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        first = node.args[0]
        literal = first.value if isinstance(first, ast.Constant) else None
        if name in ("import_module", "__import__") and isinstance(literal, str):
            return [literal]
    return []


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def violations(rule: Rule, found: list[Import]) -> list[str]:
    return [
        str(imp)
        for imp in sorted(found, key=lambda i: (i.path, i.line, i.target))
        if within(imp.module, rule.layer)
        and any(within(imp.target, bad) for bad in rule.forbidden)
        and not (rule.runtime_only and imp.type_checking)
    ]


def all_imports(src: Path = SRC) -> list[Import]:
    """The imports of every module of the ``roost`` package under ``src``."""
    found: list[Import] = []
    for path in sorted((src / "roost").rglob("*.py")):
        found.extend(
            imports_in(
                path.read_text(encoding="utf-8"),
                module_name(path, src),
                str(path.relative_to(src.parent)),
                is_package=path.name == "__init__.py",
            )
        )
    return found


# What bypasses router.deliver: a session's carrier, and the carrier's (or a transport's) writes.
SESSION_OUTPUT: Final = frozenset({"carrier", "send_stanza", "send_element", "send_serialized"})


def receiver_is_api(node: ast.expr) -> bool:
    """``api``, ``self.api``, ``self._api``: the module's own API object."""
    name = node.id if isinstance(node, ast.Name) else getattr(node, "attr", "")
    return name.lstrip("_") == "api"


def session_writes(source: str, path: str) -> list[str]:
    """Where a module writes to a session or a connection other than through its API."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename=path)):
        if isinstance(node, ast.Attribute) and node.attr in SESSION_OUTPUT:
            found.append(f"{path}:{node.lineno}: .{node.attr}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "send"
            and not receiver_is_api(node.func.value)
        ):
            found.append(f"{path}:{node.lineno}: {ast.unparse(node.func)}(...)")
    return found


def module_sources(src: Path = SRC) -> list[tuple[str, str]]:
    """(path, source) of every file of ``roost.modules``."""
    return [
        (str(path.relative_to(src.parent)), path.read_text(encoding="utf-8"))
        for path in sorted((src / "roost" / "modules").rglob("*.py"))
    ]


# --- the rules on the source tree -----------------------------------------------------------


@functools.cache
def tree_imports() -> list[Import]:
    """``all_imports()`` of the source tree, read once for all the rules."""
    return all_imports()


@pytest.mark.parametrize("rule", RULES, ids=[r.layer for r in RULES])
def test_layer_imports_point_one_way(rule: Rule) -> None:
    found = tree_imports()
    assert any(within(imp.module, rule.layer) for imp in found), f"no module in {rule.layer}"
    bad = violations(rule, found)
    assert not bad, f"{rule.layer} must not import {', '.join(rule.forbidden)}:\n" + "\n".join(bad)


def test_no_module_writes_to_a_session_but_through_deliver() -> None:
    sources = module_sources()
    assert len(sources) > 5
    bad = [hit for path, source in sources for hit in session_writes(source, path)]
    assert not bad, "modules must use api.deliver / api.send:\n" + "\n".join(bad)


def test_the_walk_sees_the_source_tree() -> None:
    modules = {imp.module for imp in tree_imports()}
    assert {"roost.stream.c2s", "roost.xml.parser", "roost.jid", "roost.core.session"} <= modules


# --- the checker itself ---------------------------------------------------------------------


def check(source: str, module: str, *, is_package: bool = False) -> dict[str, list[str]]:
    found = list(imports_in(source, module, "x.py", is_package))
    return {rule.layer: violations(rule, found) for rule in RULES if violations(rule, found)}


@pytest.mark.parametrize(
    "source",
    [
        "import asyncio",
        "import asyncio.events",
        "from asyncio import Queue",
        "from roost.core.router import Router",
        "from roost import core",
        "from roost import server",
        "import roost.storage.base",
        "from ..core import router",
        "from .. import transport",
        "import importlib\nimportlib.import_module('roost.modules.roster')",
        "def f():\n    from roost.core import hooks",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from roost.core import hooks",
    ],
)
def test_checker_catches_forbidden_imports_in_the_stream_layer(source: str) -> None:
    assert check(source, "roost.stream.c2s")["roost.stream"]


@pytest.mark.parametrize(
    "source",
    [
        "from roost.xml.element import Element",
        "from roost.errors import StreamError",
        "from . import events",
        "from .sasl import SaslServer",
        "import roost.jid",
        "from roost.core_extras import x",  # a different package that starts alike
        "from roost import errors",
    ],
)
def test_checker_allows_lower_layer_imports_in_the_stream_layer(source: str) -> None:
    assert check(source, "roost.stream.c2s") == {}


def test_checker_allows_upper_layers_in_core_only_under_type_checking() -> None:
    allowed = (
        "import typing\n"
        "if typing.TYPE_CHECKING:\n"
        "    from roost.transport.tcp import C2SProtocol\n"
        "    from roost.server import Server\n"
        "import asyncio\n"
        "from roost.core.server import ServerCore\n"  # roost.core.server is not roost.server
    )
    assert check(allowed, "roost.core.session") == {}
    runtime = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    pass\n"
        "else:\n"
        "    from roost.modules import roster\n"
    )
    assert check(runtime, "roost.core.session") == {
        "roost.core": [
            "x.py:5: roost.core.session imports roost.modules",
            "x.py:5: roost.core.session imports roost.modules.roster",
        ]
    }


@pytest.mark.parametrize(
    ("module", "is_package", "level", "name", "expected"),
    [
        ("roost.stream.c2s", False, 1, "sasl", "roost.stream.sasl"),
        ("roost.stream.c2s", False, 1, None, "roost.stream"),
        ("roost.stream.c2s", False, 2, "core", "roost.core"),
        ("roost.stream", True, 1, "events", "roost.stream.events"),
        ("roost.stream", True, 2, "core", "roost.core"),
        ("roost.stream", False, 0, "asyncio", "asyncio"),
    ],
)
def test_checker_resolves_relative_imports(
    module: str, is_package: bool, level: int, name: str | None, expected: str
) -> None:
    assert resolve(module, is_package, level, name) == expected


def test_checker_catches_a_relative_import_from_a_package_init() -> None:
    assert check("from ..transport import tcp", "roost.core", is_package=True) == {
        "roost.core": [
            "x.py:1: roost.core imports roost.transport",
            "x.py:1: roost.core imports roost.transport.tcp",
        ]
    }


def test_checker_finds_a_violation_in_a_source_tree(tmp_path: Path) -> None:
    stream = tmp_path / "src" / "roost" / "stream"
    stream.mkdir(parents=True)
    (stream / "__init__.py").write_text('"""Streams."""\n')
    (stream / "bad.py").write_text("import json\n\nimport asyncio\n")
    found = all_imports(tmp_path / "src")
    assert violations(RULES[2], found) == [
        "src/roost/stream/bad.py:3: roost.stream.bad imports asyncio"
    ]


def test_failure_message_names_the_offending_import() -> None:
    (message,) = check("from roost.core.hooks import HookBus", "roost.xml.parser")["roost.xml"][:1]
    assert message == "x.py:1: roost.xml.parser imports roost.core.hooks"


# --- the session-output check -----------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "session.carrier.send_stanza(stanza, None)",
        "carrier = session.carrier",
        "other.send_stanza(iq, data)",
        "conn.send_element(iq)",
        "self._conn.send_serialized(b'')",
        "session.send(stanza)",
        "self.session.send(iq)",
        "sessions[0].send(iq)",
        "self.apiary.send(iq)",
    ],
)
def test_session_check_catches_writes_around_deliver(source: str) -> None:
    assert session_writes(source, "m.py")


@pytest.mark.parametrize(
    "source",
    [
        "api.send(stanza)",
        "self.api.send(stanza)",
        "self._api.send(probe)",
        "self.api.deliver(session, stanza)",
        "deliver_all(self.api.server.router, targets, stanza, data)",
        "session.jid_str",
        "send(stanza)",
    ],
)
def test_session_check_allows_the_module_api(source: str) -> None:
    assert session_writes(source, "m.py") == []


def test_session_check_names_the_place() -> None:
    assert session_writes("x = 1\nsession.carrier.close()\n", "m.py") == ["m.py:2: .carrier"]
    assert session_writes("s.send(x)", "m.py") == ["m.py:1: s.send(...)"]


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("roost.modules.presence", "from roost.transport.tcp import C2SProtocol"),
        ("roost.modules.presence", "import roost.server"),
        ("roost.modules.im.roster", "from ...core.c2s import C2SConnection"),
        (
            "roost.modules.presence",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from roost.cli import run",
        ),
        ("roost.storage.roster", "from roost.core.session import Session"),
        ("roost.storage.roster", "from ..core import hooks"),
        (
            "roost.storage.kv",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import roost.modules.api",
        ),
    ],
)
def test_checker_keeps_modules_and_stores_in_their_layers(module: str, source: str) -> None:
    layer = ".".join(module.split(".")[:2])  # roost.modules, roost.storage
    assert check(source, module)[layer]


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("roost.modules.presence", "from roost.core.router import deliver_all"),
        ("roost.modules.presence", "from roost.storage.roster import RosterItem"),
        ("roost.modules.presence", "from roost.stream.c2s import C2SStream"),
        ("roost.storage.roster", "from roost.storage.sql import SqlStore"),
        ("roost.storage.roster", "from roost.xml.element import Element"),
    ],
)
def test_checker_allows_what_modules_and_stores_may_use(module: str, source: str) -> None:
    assert check(source, module) == {}
