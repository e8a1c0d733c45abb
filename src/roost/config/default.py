"""The commented configuration file that ``roost init`` writes (docs/configuration.md).

The text is ``default.toml`` beside this file (package data), with ``@DOMAIN@`` standing
for the served domain; an empty file and this one load to the same configuration.
"""

from __future__ import annotations

from importlib import resources
from typing import Final

from roost.config.schema import ConfigError
from roost.jid import JIDError, normalize_domain

DEFAULT_FILE: Final = "default.toml"


def default_config_text(domain: str = "localhost") -> str:
    """The commented configuration file that `roost init` writes, serving ``domain``."""
    try:
        domain = normalize_domain(domain)
    except JIDError as exc:
        raise ConfigError(f"{domain!r} is not a valid domain: {exc}") from None
    text = resources.files("roost.config").joinpath(DEFAULT_FILE)
    return text.read_text(encoding="utf-8").replace("@DOMAIN@", domain)
