"""What every SASL mechanism of ``roost.stream.sasl`` shares: the steps it answers, and the
keys an unknown user is given (RFC 6120 §6.4, §6.5).

A mechanism answers each call with one ``SaslStep``: a ``Challenge`` to send, the credentials
it needs (``NeedCredentials``: storage is asynchronous), a password to check off the event loop
(``VerifyPassword``: PLAIN's PBKDF2), or the end (``Success`` / ``Failure``). An unknown user
gets ``fake_keys``: a salt stable per PRECIS-normalised username (RFC 8265 §3.3), so the
server's answers do not tell which accounts exist.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Final

from precis_i18n import get_profile

from roost.auth.credentials import DEFAULT_ITERATIONS, ScramKeys, hashlib_name
from roost.stream.events import VerifyPassword  # the step is also the driver's action

__all__ = [
    "FAKE_SALT_LENGTH",
    "Challenge",
    "Failure",
    "NeedCredentials",
    "SaslStep",
    "Success",
    "VerifyPassword",
    "fake_keys",
]

FAKE_SALT_LENGTH: Final = 16  # as credentials.derive
_USERNAME_PROFILE = get_profile("UsernameCaseMapped")


@dataclass(frozen=True, slots=True)
class Challenge:
    """Send ``<challenge/>`` with this data."""

    data: bytes


@dataclass(frozen=True, slots=True)
class NeedCredentials:
    """Look up ``username`` (raw authcid; normalise it first) and call ``credentials()``."""

    username: str


@dataclass(frozen=True, slots=True)
class Success:
    """Send ``<success/>`` (with ``data`` when not None); the driver must check ``authzid``."""

    data: bytes | None
    username: str
    authzid: str | None


@dataclass(frozen=True, slots=True)
class Failure:
    """Send ``<failure/>`` with an RFC 6120 §6.5 condition."""

    condition: str
    text: str | None = None


SaslStep = Challenge | NeedCredentials | VerifyPassword | Success | Failure


def fake_keys(hash_name: str, username: str, secret: bytes) -> ScramKeys:
    """Keys for an unknown user: a salt that is stable per (normalised) name, no password."""
    try:
        canonical: str = _USERNAME_PROFILE.enforce(username)
    except UnicodeError:
        canonical = username
    seed = hmac.new(secret, f"{hash_name}\x00{canonical}".encode(), "sha512").digest()
    name = hashlib_name(hash_name)
    stored_key = hashlib.new(name, seed[32:]).digest()
    server_key = hmac.new(seed[32:], b"Server Key", name).digest()
    return ScramKeys(seed[:FAKE_SALT_LENGTH], DEFAULT_ITERATIONS, stored_key, server_key)
