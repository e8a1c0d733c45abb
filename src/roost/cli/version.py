"""``roost version``: the versions of roost and of what it runs on."""

from __future__ import annotations

import argparse
import platform
import pyexpat
import ssl

from roost import __version__
from roost.cli.command import OK, _out


def cmd_version(args: argparse.Namespace) -> int:
    """Print the versions of roost and of what it runs on."""
    _out(f"roost {__version__}")
    _out(f"Python {platform.python_version()} ({platform.python_implementation()})")
    _out(f"expat {pyexpat.EXPAT_VERSION.removeprefix('expat_')}")
    _out(ssl.OPENSSL_VERSION)
    return OK
