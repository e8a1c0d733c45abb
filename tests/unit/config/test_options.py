"""Per-module options: a module's frozen Options dataclass read from its [modules.NAME] table."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from roost.config import (
    ConfigError,
    NoOptions,
    load_config,
    module_options,
    module_table_warnings,
    options_of,
)


@dataclass(frozen=True, slots=True)
class OfflineOptions:
    """Every kind of option a module may declare."""

    quota: int = field(default=1000, metadata={"min": 0, "max": 100_000, "doc": "kept per user"})
    ratio: float = field(default=0.5, metadata={"min": 0.0, "max": 1.0})
    store_errors: bool = False
    label: str = "offline"
    policy: Literal["store", "bounce", "drop"] = "store"
    exempt: tuple[str, ...] = ()
    hosts: list[str] = field(default_factory=list)
    ports: tuple[int, ...] = field(default=(5222,), metadata={"min": 1, "max": 65535})
    kinds: tuple[Literal["chat", "normal"], ...] = ("chat", "normal")
    retries: int = field(default=3, metadata={"min": 1})
    delay: float = field(default=2.0, metadata={"max": 60})


@dataclass(frozen=True)
class LevelOptions:
    level: Literal[1, 2, 3] = 1


@dataclass(frozen=True)
class RequiredOptions:
    url: str
    timeout: int = field(default=10, metadata={"min": 1, "max": 60})


def options(table: dict[str, Any] | None, cls: type[Any] = OfflineOptions) -> Any:
    return module_options(cls, table, file="roost.toml", module="offline")


def error_of(table: dict[str, Any], cls: type[Any] = OfflineOptions) -> str:
    with pytest.raises(ConfigError) as info:
        options(table, cls)
    return str(info.value)


# --- good values --------------------------------------------------------------------------


@pytest.mark.parametrize("table", [None, {}])
def test_absent_table_and_keys_take_the_dataclass_defaults(table: dict[str, Any] | None) -> None:
    assert options(table) == OfflineOptions()


def test_every_kind_of_value_is_read() -> None:
    table = {
        "quota": 50, "ratio": 0.25, "store_errors": True, "label": "later",
        "policy": "bounce", "exempt": ["admin@localhost"], "hosts": ["a", "b"],
        "ports": [1, 65535], "kinds": ["chat"], "retries": 7, "delay": 60,
    }  # fmt: skip
    assert options(table) == OfflineOptions(
        quota=50, ratio=0.25, store_errors=True, label="later", policy="bounce",
        exempt=("admin@localhost",), hosts=["a", "b"], ports=(1, 65535), kinds=("chat",),
        retries=7, delay=60.0,
    )  # fmt: skip


def test_arrays_become_the_declared_sequence_type() -> None:
    built = options({"exempt": ["x"], "hosts": ["y"]})
    assert type(built.exempt) is tuple
    assert type(built.hosts) is list
    assert options({"exempt": []}).exempt == ()


def test_an_integer_is_a_float_option_and_becomes_a_float() -> None:
    built = options({"ratio": 1})
    assert built.ratio == 1.0
    assert type(built.ratio) is float


def test_bounds_are_inclusive() -> None:
    assert options({"quota": 0}).quota == 0
    assert options({"quota": 100_000}).quota == 100_000
    assert options({"ratio": 0.0, "delay": 60.0}).delay == 60.0


def test_only_the_given_keys_change() -> None:
    assert options({"label": "x"}) == dataclasses.replace(OfflineOptions(), label="x")


def test_the_options_are_frozen() -> None:
    built = options({"quota": 1})
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.quota = 2


def test_a_required_option_is_read() -> None:
    assert options({"url": "https://x"}, RequiredOptions) == RequiredOptions("https://x")


# --- bad values ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"quota": "ten"}, 'quota: expected an integer, got a string ("ten")'),
        ({"quota": True}, "quota: expected an integer, got a boolean (true)"),
        ({"quota": 1.5}, "quota: expected an integer, got a float (1.5)"),
        ({"quota": [1]}, "quota: expected an integer, got an array ([1])"),
        ({"ratio": "0.5"}, 'ratio: expected a number, got a string ("0.5")'),
        ({"ratio": False}, "ratio: expected a number, got a boolean (false)"),
        ({"store_errors": 1}, "store_errors: expected a boolean, got an integer (1)"),
        ({"store_errors": "yes"}, 'store_errors: expected a boolean, got a string ("yes")'),
        ({"label": 3}, "label: expected a string, got an integer (3)"),
        ({"label": {"a": 1}}, "label: expected a string, got a table ({'a': 1})"),
        ({"policy": "keep"}, 'policy: "keep" is not one of store, bounce, drop'),
        ({"policy": "Store"}, 'policy: "Store" is not one of store, bounce, drop'),
        ({"policy": 1}, "policy: 1 is not one of store, bounce, drop"),
        ({"exempt": "admin@localhost"},
         'exempt: expected an array, got a string ("admin@localhost")'),
        ({"exempt": ["a", 2]}, "exempt: expected an array of strings, got an integer (2)"),
        ({"hosts": [True]}, "hosts: expected an array of strings, got a boolean (true)"),
        ({"ports": [5222, "5223"]}, 'ports: expected an array of integers, got a string ("5223")'),
        ({"kinds": ["chat", "groupchat"]}, 'kinds: "groupchat" is not one of chat, normal'),
    ],
)  # fmt: skip
def test_a_value_of_the_wrong_kind_names_file_key_path_and_what_is_allowed(
    table: dict[str, Any], message: str
) -> None:
    assert error_of(table) == f"roost.toml: [modules.offline].{message}"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"quota": -1}, "quota: -1 is too small (minimum 0)"),
        ({"quota": 100_001}, "quota: 100001 is too large (maximum 100000)"),
        ({"ratio": 1.5}, "ratio: 1.5 is too large (maximum 1.0)"),
        ({"ratio": -1}, "ratio: -1 is too small (minimum 0.0)"),
        ({"ports": [5222, 0]}, "ports: 0 is too small (minimum 1)"),
        ({"ports": [70000]}, "ports: 70000 is too large (maximum 65535)"),
        ({"retries": 0}, "retries: 0 is too small (minimum 1)"),
        ({"delay": 61}, "delay: 61 is too large (maximum 60)"),
    ],
)
def test_a_value_out_of_bounds_names_the_bound(table: dict[str, Any], message: str) -> None:
    assert error_of(table) == f"roost.toml: [modules.offline].{message}"


@pytest.mark.parametrize("value", [True, 2.0, "2"])
def test_a_choice_must_have_the_type_of_the_choices(value: object) -> None:
    assert options({"level": 2}, LevelOptions) == LevelOptions(2)
    assert error_of({"level": value}, LevelOptions).endswith(" is not one of 1, 2, 3")


def test_an_unknown_key_names_the_known_ones() -> None:
    assert error_of({"qouta": 5}) == (
        "roost.toml: [modules.offline].qouta: unknown key (known keys: quota, ratio, "
        "store_errors, label, policy, exempt, hosts, ports, kinds, retries, delay)"
    )


def test_a_module_without_options_refuses_every_key() -> None:
    assert options(None, NoOptions) == NoOptions()
    assert error_of({"quota": 5}, NoOptions) == (
        "roost.toml: [modules.offline].quota: unknown key (known keys: none)"
    )


def test_a_required_option_that_is_absent_is_an_error() -> None:
    assert error_of({"timeout": 5}, RequiredOptions) == (
        "roost.toml: [modules.offline].url: required (a string)"
    )


def test_the_error_names_the_file_and_module_given() -> None:
    with pytest.raises(ConfigError) as info:
        module_options(OfflineOptions, {"quota": "x"}, file="/etc/roost.toml", module="mam")
    assert str(info.value).startswith("/etc/roost.toml: [modules.mam].quota: ")


def test_options_from_a_loaded_file(tmp_path: Path) -> None:
    path = tmp_path / "roost.toml"
    path.write_text('[modules.offline]\nquota = 5\npolicy = "drop"\n[modules.mam]\nx = 1\n')
    config = load_config(path)
    built = module_options(
        OfflineOptions, config.modules.options.get("offline"), file=str(path), module="offline"
    )
    assert (built.quota, built.policy) == (5, "drop")
    with pytest.raises(ConfigError, match=r"\[modules\.mam\]\.x: unknown key"):
        module_options(NoOptions, config.modules.options["mam"], file=str(path), module="mam")


# --- declarations -------------------------------------------------------------------------


def test_options_of_describes_each_key_for_the_documentation() -> None:
    described = {o.name: (o.allowed, o.doc, o.required) for o in options_of(OfflineOptions)}
    assert described["quota"] == ("an integer, 0-100000", "kept per user", False)
    assert described["ratio"][0] == "a number, 0.0-1.0"
    assert described["store_errors"][0] == "a boolean"
    assert described["policy"][0] == "one of store, bounce, drop"
    assert described["exempt"][0] == "an array of strings"
    assert described["ports"][0] == "an array of integers, each 1-65535"
    assert described["kinds"][0] == "an array, each one of chat, normal"
    assert described["retries"][0] == "an integer, at least 1"
    assert described["delay"][0] == "a number, at most 60"
    assert [o.required for o in options_of(RequiredOptions)] == [True, False]


class NotADataclass:
    quota: int = 5


@dataclass
class NotFrozen:
    quota: int = 5


@dataclass(frozen=True)
class Unsupported:
    limits: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class OptionalValue:
    quota: int | None = None


@dataclass(frozen=True)
class BoundedString:
    label: str = field(default="x", metadata={"min": 1})


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (NotADataclass, "NotADataclass is not a frozen dataclass"),
        (NotFrozen, "NotFrozen is not a frozen dataclass"),
        (Unsupported, "Unsupported.limits: option type dict[str, int] is not one of int, float"),
        (OptionalValue, "OptionalValue.quota: option type int | None is not one of"),
        (BoundedString, "BoundedString.label: min/max bound numbers only"),
    ],
)
def test_a_bad_declaration_is_a_programming_error(cls: type[Any], message: str) -> None:
    with pytest.raises(TypeError) as info:
        options_of(cls)
    assert str(info.value).startswith(message)
    with pytest.raises(TypeError):
        module_options(cls, None, file="roost.toml", module="offline")


# --- tables no module reads ---------------------------------------------------------------


def test_a_table_for_a_module_not_built_is_a_warning() -> None:
    assert module_table_warnings(
        ["mam"], built=("roster", "offline"), loaded=("roster", "offline")
    ) == [
        "[modules.mam] is set but no module mam is built in roost 0.1 (built: offline, roster); "
        "it is ignored"
    ]


def test_a_table_for_a_module_not_loaded_is_a_warning() -> None:
    assert module_table_warnings(["offline"], built=("roster", "offline"), loaded=("roster",)) == [
        "[modules.offline] is set but the module offline is not in [modules].enabled; it is ignored"
    ]


def test_no_warning_for_tables_of_loaded_modules() -> None:
    assert module_table_warnings(["offline"], built=("offline",), loaded=("offline",)) == []
    assert module_table_warnings([], built=(), loaded=()) == []
