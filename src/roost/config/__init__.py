"""The configuration: one TOML file validated into frozen dataclasses (docs/configuration.md).

- ``schema``: the typed sections, their defaults, and the keys of features not built yet;
- ``load``: TOML → ``Config``, errors naming the file and the key path;
- ``table``: reading one TOML table (keys, types, values), shared by ``load`` and ``options``;
- ``options``: a module's frozen ``Options`` from its ``[modules.NAME]`` table;
- ``default``: the file ``roost init`` writes (``default.toml``, package data).

Everything the rest of roost uses is re-exported here: ``from roost.config import Config``.
"""

from roost.config.default import default_config_text
from roost.config.load import load_config
from roost.config.options import (
    NoOptions,
    Option,
    module_options,
    module_table_warnings,
    options_of,
)
from roost.config.schema import (
    LOG_LEVELS,
    MIN_STANZA_SIZE,
    RELEASE,
    SECTIONS,
    SQLITE_FILE,
    STORAGE_BACKENDS,
    UNBUILT_FEATURES,
    ComponentSection,
    Config,
    ConfigError,
    Endpoint,
    HttpSection,
    LimitsSection,
    ListenSection,
    ModulesSection,
    RegistrationSection,
    ServerSection,
    ServicesSection,
    StorageSection,
    TLSSection,
    config_warnings,
)

__all__ = [
    "LOG_LEVELS",
    "MIN_STANZA_SIZE",
    "RELEASE",
    "SECTIONS",
    "SQLITE_FILE",
    "STORAGE_BACKENDS",
    "UNBUILT_FEATURES",
    "ComponentSection",
    "Config",
    "ConfigError",
    "Endpoint",
    "HttpSection",
    "LimitsSection",
    "ListenSection",
    "ModulesSection",
    "NoOptions",
    "Option",
    "RegistrationSection",
    "ServerSection",
    "ServicesSection",
    "StorageSection",
    "TLSSection",
    "config_warnings",
    "default_config_text",
    "load_config",
    "module_options",
    "module_table_warnings",
    "options_of",
]
