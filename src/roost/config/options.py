"""Per-module options: a module's frozen ``Options`` dataclass read from its
``[modules.NAME]`` table (docs/architecture.md).

A module says what it accepts with a frozen dataclass; the field types say what a key may
hold, ``dataclasses.field(metadata=...)`` adds bounds and one line of documentation::

    @dataclass(frozen=True, slots=True)
    class Options:
        quota: int = field(default=1000, metadata={"min": 0, "doc": "messages kept per user"})
        policy: Literal["store", "bounce"] = "store"
        exempt: tuple[str, ...] = ()

Field types: ``int``, ``float`` (an integer is accepted too), ``bool``, ``str``,
``Literal[...]`` (one of the values given), and ``tuple[X, ...]`` / ``list[X]`` of any of
those (a TOML array). ``"min"`` / ``"max"`` bound a number, or each number of an array. An
absent key takes the dataclass default; a field without a default is required. Mistakes are
ConfigErrors in the format of ``roost.config.load``, naming the file, the key path and what
is allowed: ``roost.toml: [modules.offline].quota: expected an integer, got a string
("ten")``; an unknown key names the known ones.

The loader cannot know which modules exist, so it keeps the tables as they are
(``Config.modules.options``). The server builds each loaded module's options with
``module_options`` and tells about tables no loaded module reads with
``module_table_warnings``: a warning, not an error, as §8 asks of features not built yet.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar, cast

from roost.config.schema import RELEASE
from roost.config.table import Table, kind_of, show, toml_key

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class NoOptions:
    """The options of a module that has none: any key in its table is an error."""


@dataclass(frozen=True, slots=True)
class _Scalar:
    """A TOML value kind an option may hold."""

    types: tuple[type, ...]  # what the TOML parser gives for it
    noun: str  # "an integer"
    plural: str  # "integers"


_INT: Final = _Scalar((int,), "an integer", "integers")
_FLOAT: Final = _Scalar((int, float), "a number", "numbers")
_SCALARS: Final[Mapping[object, _Scalar]] = {
    bool: _Scalar((bool,), "a boolean", "booleans"),
    int: _INT,
    float: _FLOAT,
    str: _Scalar((str,), "a string", "strings"),
}
SUPPORTED: Final = "int, float, bool, str, Literal[...], tuple[X, ...], list[X]"


@dataclass(frozen=True, slots=True)
class Option:
    """One key of a module's table, as a field of its Options declares it."""

    name: str
    scalar: _Scalar | None  # None: one of ``choices``
    choices: tuple[object, ...]
    sequence: Callable[[list[object]], object] | None  # tuple or list: an array of values
    minimum: int | float | None
    maximum: int | float | None
    doc: str
    required: bool

    @property
    def allowed(self) -> str:
        """What the key accepts, in words: "an integer, 0-100", "an array of strings"."""
        bounds = _bounds(self.minimum, self.maximum)
        if self.scalar is None:
            one = f"one of {_choices(self.choices)}"
            return f"an array, each {one}" if self.sequence else one
        if self.sequence:
            return f"an array of {self.scalar.plural}{', each ' + bounds if bounds else ''}"
        return f"{self.scalar.noun}{', ' + bounds if bounds else ''}"


def _choices(choices: tuple[object, ...]) -> str:
    """``debug, info, 2``: as ``[server].log_level`` lists what it allows."""
    return ", ".join(c if isinstance(c, str) else show(c) for c in choices)


def _bounds(minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f"{show(minimum)}-{show(maximum)}"
    if minimum is not None:
        return f"at least {show(minimum)}"
    return "" if maximum is None else f"at most {show(maximum)}"


def _option(owner: str, f: dataclasses.Field[Any], hint: object) -> Option:
    sequence: Callable[[list[object]], object] | None = None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        sequence, hint = tuple, args[0]
    elif origin is list and len(args) == 1:
        sequence, hint = list, args[0]
    if typing.get_origin(hint) is Literal:
        scalar, choices = None, typing.get_args(hint)
    elif hint in _SCALARS:
        scalar, choices = _SCALARS[hint], ()
    else:
        raise TypeError(f"{owner}.{f.name}: option type {hint!r} is not one of {SUPPORTED}")
    minimum, maximum = f.metadata.get("min"), f.metadata.get("max")
    if (minimum is not None or maximum is not None) and scalar not in (_INT, _FLOAT):
        raise TypeError(f"{owner}.{f.name}: min/max bound numbers only")
    required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    doc = str(f.metadata.get("doc", ""))
    return Option(f.name, scalar, choices, sequence, minimum, maximum, doc, required)


def options_of(cls: type) -> tuple[Option, ...]:
    """The keys an Options class accepts, in field order (for checks and documentation).

    TypeError if ``cls`` is not a frozen dataclass whose fields have the supported types.
    """
    params = getattr(cls, "__dataclass_params__", None)
    if not dataclasses.is_dataclass(cls) or not getattr(params, "frozen", False):
        raise TypeError(f"{cls.__qualname__} is not a frozen dataclass")
    hints = typing.get_type_hints(cls)
    return tuple(
        _option(cls.__qualname__, f, hints[f.name]) for f in dataclasses.fields(cls) if f.init
    )


def _value(option: Option, t: Table, value: object, *, in_array: bool) -> object:
    """One value (or one item of an array) checked against what ``option`` allows."""
    name, scalar = option.name, option.scalar
    if scalar is None:
        if not any(type(value) is type(c) and value == c for c in option.choices):
            raise t.error(name, f"{show(value)} is not one of {_choices(option.choices)}")
        return value
    if not isinstance(value, scalar.types) or (
        isinstance(value, bool) and bool not in scalar.types
    ):
        expected = f"an array of {scalar.plural}" if in_array else scalar.noun
        raise t.error(name, f"expected {expected}, got {kind_of(value)} ({show(value)})")
    number = cast(float, value)
    if option.minimum is not None and number < option.minimum:
        raise t.error(name, f"{show(value)} is too small (minimum {show(option.minimum)})")
    if option.maximum is not None and number > option.maximum:
        raise t.error(name, f"{show(value)} is too large (maximum {show(option.maximum)})")
    return float(number) if scalar is _FLOAT else value


def _read(option: Option, t: Table) -> object:
    value = t.data[option.name]
    if option.sequence is None:
        return _value(option, t, value, in_array=False)
    if not isinstance(value, list):
        raise t.error(option.name, f"expected an array, got {kind_of(value)} ({show(value)})")
    return option.sequence([_value(option, t, item, in_array=True) for item in value])


def module_options(cls: type[T], table: Mapping[str, Any] | None, *, file: str, module: str) -> T:
    """The options of ``module`` built from its ``[modules.NAME]`` table (None: no table).

    ``cls`` is the module's frozen Options dataclass; absent keys take its defaults. Raise
    ConfigError naming ``file``, the key path and what is allowed when a key is unknown, of
    the wrong type, out of bounds, or required and absent.
    """
    options = options_of(cls)
    section = f"[modules.{toml_key(module)}]"
    t = Table(file, section, dict(table or {}), tuple(o.name for o in options))
    values: dict[str, object] = {}
    for option in options:
        if option.name in t.data:
            values[option.name] = _read(option, t)
        elif option.required:
            raise t.error(option.name, f"required ({option.allowed})")
    return cls(**values)


def module_table_warnings(
    tables: Collection[str], *, built: Collection[str], loaded: Collection[str]
) -> list[str]:
    """One plain-words warning per ``[modules.NAME]`` table that no loaded module reads.

    ``tables`` are the names of ``Config.modules.options``, ``built`` the modules this
    version has, ``loaded`` those the server loads (enabled and their dependencies).
    """
    warnings = []
    for name in tables:
        table = f"[modules.{toml_key(name)}]"
        if name not in built:
            warnings.append(
                f"{table} is set but no module {name} is built in roost {RELEASE} "
                f"(built: {', '.join(sorted(built))}); it is ignored"
            )
        elif name not in loaded:
            warnings.append(
                f"{table} is set but the module {name} is not in [modules].enabled; it is ignored"
            )
    return warnings
