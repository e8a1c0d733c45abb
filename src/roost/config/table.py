"""Reading one TOML table of the configuration: keys, types and values checked, every error
naming the file and the key path, e.g. ``roost.toml: [limits].depth: expected an integer,
got a string ("64")``. Used by ``roost.config.load`` and ``roost.config.options``.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import fields
from pathlib import Path
from typing import Any, Final, TypeVar

from roost.config.schema import ConfigError, Endpoint
from roost.jid import JIDError, normalize_domain

_T = TypeVar("_T")
_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")


def toml_key(name: str) -> str:
    """``name`` as a TOML key path writes it: bare, or quoted (``"gw.example.org"``)."""
    return name if _BARE_KEY.fullmatch(name) else json.dumps(name, ensure_ascii=False)


def show(value: object) -> str:
    """A value as TOML writes it (``true``, ``"text"``, ``3``), for error messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


def kind_of(value: object) -> str:
    """What a TOML value is, in words: "an integer", "a table", ..."""
    kinds: list[tuple[type, str]] = [(bool, "a boolean"), (int, "an integer"), (float, "a float")]
    kinds += [(str, "a string"), (list, "an array"), (dict, "a table")]
    return next((name for t, name in kinds if isinstance(value, t)), "a date/time")


class Table:
    """One TOML table being read: checks keys and types, names the key path in errors."""

    __slots__ = ("data", "file", "section")

    def __init__(self, file: str, section: str, data: object, known: tuple[str, ...]) -> None:
        self.file, self.section = file, section
        if not isinstance(data, dict):
            raise ConfigError(f"{file}: {section}: expected a table, got {kind_of(data)}")
        self.data: dict[str, Any] = data
        for name in data:
            if name not in known:
                raise self.error(name, f"unknown key (known keys: {', '.join(known) or 'none'})")

    def error(self, name: str, message: str) -> ConfigError:
        return ConfigError(f"{self.file}: {self.section}.{toml_key(name)}: {message}")

    def typed(self, name: str, kind: type[_T], default: _T) -> _T:
        value = self.data.get(name, default)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            expected = kind_of(kind())
            raise self.error(name, f"expected {expected}, got {kind_of(value)} ({show(value)})")
        return value

    def integer(self, name: str, default: int, minimum: int = 1) -> int:
        value = self.typed(name, int, default)
        if value < minimum:
            raise self.error(name, f"{value} is too small (minimum {minimum})")
        return value

    def strings(self, name: str) -> list[str] | None:
        if name not in self.data:
            return None
        value = self.typed(name, list, [])
        for item in value:
            if not isinstance(item, str):
                raise self.error(name, f"expected an array of strings, got {show(item)}")
        return value

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.typed(name, str, default)
        if value.lower() not in allowed:
            raise self.error(name, f"{show(value)} is not one of {', '.join(allowed)}")
        return value.lower()

    def domain(self, name: str, value: str) -> str:
        try:
            return normalize_domain(value)
        except JIDError as exc:
            raise self.error(name, f"{show(value)} is not a valid domain: {exc}") from None

    def path(self, name: str, base: Path, default: str) -> Path | None:
        value = self.typed(name, str, default)
        return base / Path(value).expanduser() if value else None

    def endpoint(self, name: str, default: str) -> Endpoint | None:
        value = self.typed(name, str, default)
        if not value:
            return None
        host, sep, port = value.rpartition(":")
        if not sep or not host:
            raise self.error(name, f'{show(value)} is not "host:port" (e.g. "127.0.0.1:5222")')
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
            try:
                ipaddress.IPv6Address(host)
            except ValueError:
                raise self.error(name, f"{show(value)}: {host} is not an IPv6 address") from None
        elif ":" in host:
            raise self.error(name, f'{show(value)}: write IPv6 addresses in brackets, "[::1]:5222"')
        elif any(c.isspace() for c in host):
            raise self.error(name, f"{show(value)} is not a valid host")
        if not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise self.error(name, f"{show(value)} is not a valid port (1-65535)")
        return Endpoint(host, int(port))


def known_keys(cls: type) -> tuple[str, ...]:
    """The keys of a section: the field names of its dataclass."""
    return tuple(f.name for f in fields(cls))
