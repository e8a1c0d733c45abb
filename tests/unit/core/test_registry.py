"""The module registry (``roost.core.registry``): built-in modules and the entry points of the
group ``roost.modules``, found through ``importlib.metadata`` as a pip-installed plug-in would
be (a ``*.dist-info`` directory on ``sys.path``), then loaded on a host by the configuration."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from roost.config import ConfigError
from roost.core.module import Module
from roost.core.registry import ENTRY_POINT_GROUP, discover, module_order
from roost.modules import BUILTIN
from tests.unit.harness import Roost

PLUGIN = "roost_motd_plugin"  # the test plug-in's import name
PLUGIN_SOURCE = '''
"""A message of the day over an iq (a tiny third-party module)."""
from dataclasses import dataclass

from roost.core.module import Module, ModuleAPI
from roost.core.stanza import HOST, IqRequest
from roost.xml.element import Element

NS = "urn:test:motd"


@dataclass(frozen=True, slots=True)
class Options:
    text: str = "Welcome"


class MessageOfTheDay(Module):
    name = "motd"
    depends = ("ping",)
    Options = Options

    def setup(self, api: ModuleAPI) -> None:
        api.on_iq("get", HOST, NS, "motd", self.get)

    def get(self, request: IqRequest) -> Element:
        return Element("motd", NS).add_text(self.api.options.text)


class NotAModule:
    name = "broken"


class Impostor(Module):
    name = "ping"
'''


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A distribution declaring ``motd = roost_motd_plugin:MessageOfTheDay``, on sys.path."""
    site = tmp_path / "site"
    info = site / "roost_motd-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: roost-motd\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nmotd = {PLUGIN}:MessageOfTheDay\n"
    )
    (site / f"{PLUGIN}.py").write_text(PLUGIN_SOURCE)
    monkeypatch.syspath_prepend(str(site))
    yield site
    sys.modules.pop(PLUGIN, None)


def test_discover_finds_an_installed_entry_point(plugin: Path) -> None:
    found = discover(BUILTIN)
    motd = found["motd"]
    assert motd.__module__ == PLUGIN
    assert issubclass(motd, Module)
    assert {name: found[name] for name in BUILTIN} == dict(BUILTIN)


def test_without_the_distribution_nothing_extra_is_found() -> None:
    assert "motd" not in discover(BUILTIN)


@pytest.mark.asyncio
async def test_a_config_naming_the_plugin_loads_it_with_its_options(
    plugin: Path, tmp_path: Path
) -> None:
    extra = '[modules]\nenabled = ["motd"]\n\n[modules.motd]\ntext = "Mind the gap"\n'
    roost = await Roost.start(tmp_path / "roost", extra=extra)
    try:
        host = roost.core.hosts["localhost"]
        assert list(host.modules) == ["ping", "motd"]  # its dependency first
        bob = await roost.bound("bob")
        await bob.send("<iq type='get' id='1' to='localhost'><motd xmlns='urn:test:motd'/></iq>")
        reply = await bob.expect("iq", type="result", id="1")
        assert reply.find_text("motd", "urn:test:motd") == "Mind the gap"
    finally:
        await roost.stop()


@pytest.mark.asyncio
async def test_a_config_not_naming_it_does_not_load_it(plugin: Path, tmp_path: Path) -> None:
    roost = await Roost.start(tmp_path / "roost", extra='[modules]\nenabled = ["ping"]\n')
    try:
        assert list(roost.core.hosts["localhost"].modules) == ["ping"]
    finally:
        await roost.stop()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("broken", f"{PLUGIN}:NotAModule", "is not a roost Module class"),
        ("other", f"{PLUGIN}:MessageOfTheDay", "the class's name is 'motd'"),
        ("motd", "roost_no_such_plugin:X", "cannot be loaded"),
        ("ping", f"{PLUGIN}:Impostor", "a module named 'ping' exists already"),
    ],
)
def test_a_bad_entry_point_is_a_configuration_error(
    plugin: Path, name: str, value: str, message: str
) -> None:
    point = EntryPoint(name, value, ENTRY_POINT_GROUP)
    with pytest.raises(ConfigError, match=message) as raised:
        discover(BUILTIN, [point])
    assert value in str(raised.value)


def test_module_order_puts_dependencies_first_and_refuses_unknown_or_circular() -> None:
    class A(Module):
        name = "a"
        depends = ("b",)

    class B(Module):
        name = "b"
        depends = ("c",)

    class C(Module):
        name = "c"

    known: dict[str, type[Module]] = {"a": A, "b": B, "c": C}
    assert module_order(known, ["a", "c"]) == [C, B, A]
    assert module_order(known, None) == [C, B, A]
    with pytest.raises(ConfigError, match="unknown module 'd'"):
        module_order(known, ["d"], "x.toml")

    class Loop(Module):
        name = "c"
        depends = ("a",)

    with pytest.raises(ConfigError, match="circular dependency a -> b -> c"):
        module_order({**known, "c": Loop}, ["a"])
