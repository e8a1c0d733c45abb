"""Server side of SASL for c2s streams: PLAIN and SCRAM(-PLUS), sans-IO.

Implements RFC 6120 §6.3-§6.5 (the exchange and its failure conditions), RFC 4616 (PLAIN),
RFC 5802 (SCRAM-SHA-1), RFC 7677 (SCRAM-SHA-256), SCRAM-SHA-512, and the -PLUS variants with
RFC 5929 ``tls-server-end-point`` channel binding (RFC 5056, RFC 5802 §6), and XEP-0474
(SASL SCRAM Downgrade Protection, "SSDP", version 0.5.0, 2025-10-25) on every SCRAM exchange.

Theory of operation
-------------------
The c2s machine makes one ``SaslServer`` per ``<auth/>`` and feeds it the base64-decoded
payloads; every call returns one ``SaslStep`` and nothing here raises on client input::

    START ──start(None)──► FIRST ──respond(msg)──┐           Challenge(b"")
    START ──start(msg)───────────────────────────┴─► CREDENTIALS   NeedCredentials(username)
    CREDENTIALS ──credentials(c)──► VERIFY ──password_checked(ok)──► DONE
                                                    PLAIN: VerifyPassword, then Success | Failure
    CREDENTIALS ──credentials(c)──► FINAL ──respond()──► DONE  SCRAM: Challenge(server-first),
                                                                 then Success(v=...) | Failure

A Failure or Success ends the exchange (``done``); a call out of this order, or after the
end, is ``Failure("malformed-request")``. ``abort()`` (the client's ``<abort/>``) ends it with
``aborted``.

Credentials come from storage, which is asynchronous, so the mechanism names whom it needs
(``NeedCredentials``: the authcid as sent, SCRAM-unescaped) and the driver normalises that
name, looks it up and calls ``credentials(creds or None)``. An unknown user (or one without
keys for the selected hash) goes on with fake keys derived from the PRECIS-normalised username
and a secret, so the salt is stable per name, and fails at the end with ``not-authorized``,
exactly like a wrong password. Secrets are compared with ``hmac.compare_digest``.

PLAIN's check derives the salted password (PBKDF2, thousands of iterations: milliseconds of
CPU), so it is not done here either: ``VerifyPassword`` hands the stored (or fake) keys and
the password to the driver, which runs ``roost.auth.credentials.verify_password`` off the
event loop and calls ``password_checked(valid)``, so one login never stalls the others.
SCRAM needs no such step: the client did the PBKDF2.

``Success.authzid`` is the authorization identity the client asked for (None if absent).
This layer does not know the domain: the driver MUST accept it only when it equals the
authenticated ``username@domain`` and otherwise fail with ``invalid-authzid`` (RFC 6120
§6.4.6). A syntactically bad authzid already fails here with ``invalid-authzid``.

SCRAM itself, with XEP-0474 downgrade protection, is ``roost.stream.scram``; the steps and
the fake keys every mechanism shares are ``roost.stream.mechanism``.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Sequence
from typing import Final, TypeVar

from roost.auth.credentials import Credentials
from roost.stream.mechanism import (
    Challenge,
    Failure,
    NeedCredentials,
    SaslStep,
    Success,
    VerifyPassword,
    fake_keys,
)
from roost.stream.scram import (
    PLUS,
    SCRAM_HASHES,
    ScramMechanism,
    downgrade_protection_hash,
    scram_mechanism,
)

__all__ = [
    "Challenge",
    "Failure",
    "NeedCredentials",
    "SaslServer",
    "SaslStep",
    "Success",
    "VerifyPassword",
    "downgrade_protection_hash",
    "offered_mechanisms",
]

_End = TypeVar("_End", bound=Success | Failure)
_PROCESS_SECRET: Final = secrets.token_bytes(32)


def offered_mechanisms(*, tls: bool, channel_binding: bool) -> list[str]:
    """Mechanisms to advertise, most preferred first (PLAIN only over TLS, RFC 6120 §13.8)."""
    mechanisms = [m + PLUS for m in SCRAM_HASHES] if channel_binding else []
    mechanisms += list(SCRAM_HASHES)
    if tls:
        mechanisms.append("PLAIN")
    return mechanisms


class _State(enum.Enum):
    START = enum.auto()
    FIRST = enum.auto()  # sent an empty challenge, waiting for the initial message
    CREDENTIALS = enum.auto()
    VERIFY = enum.auto()  # PLAIN: waiting for the password check
    FINAL = enum.auto()  # SCRAM: sent server-first, waiting for client-final
    DONE = enum.auto()


class SaslServer:
    """One SASL exchange with one client (see the module docstring)."""

    __slots__ = ("_mechanism", "_setup_failure", "_state")

    def __init__(
        self,
        mechanism: str,
        *,
        offered: Sequence[str],
        cb_type: str = "tls-server-end-point",
        cb_data: bytes | None = None,
        tls: bool,
        unknown_user_secret: bytes | None = None,
    ) -> None:
        """Prepare the exchange; a mechanism we cannot run fails at ``start()``.

        ``unknown_user_secret`` keys the fake salts of unknown users; pass one shared by all
        processes of a cluster (else each process's random secret gives another salt).
        """
        self._state = _State.START
        self._mechanism: _Plain | ScramMechanism | None = None
        self._setup_failure: Failure | None = None
        secret = unknown_user_secret or _PROCESS_SECRET
        if mechanism == "PLAIN" and not tls:
            self._setup_failure = Failure("encryption-required", "PLAIN needs TLS")
        elif mechanism not in offered:
            self._setup_failure = Failure("invalid-mechanism")
        elif mechanism == "PLAIN":
            self._mechanism = _Plain(secret)
        else:
            self._mechanism = scram_mechanism(mechanism, offered, cb_type, cb_data, secret)
            if self._mechanism is None:
                self._setup_failure = Failure("invalid-mechanism")

    @property
    def done(self) -> bool:
        """True once Success or Failure has been returned."""
        return self._state is _State.DONE

    def start(self, initial: bytes | None) -> SaslStep:
        """Handle ``<auth/>``: None = no initial response, b"" = an empty one ("=")."""
        if self._state is not _State.START:
            return self._out_of_order()
        if self._mechanism is None:
            return self._end(self._setup_failure or Failure("invalid-mechanism"))
        if initial is None:
            self._state = _State.FIRST
            return Challenge(b"")
        return self._first(self._mechanism, initial)

    def respond(self, data: bytes) -> SaslStep:
        """Handle ``<response/>``."""
        if self._mechanism is None:
            return self._out_of_order()
        if self._state is _State.FIRST:
            return self._first(self._mechanism, data)
        if self._state is _State.FINAL and isinstance(self._mechanism, ScramMechanism):
            return self._end(self._mechanism.final(data))
        return self._out_of_order()

    def credentials(self, creds: Credentials | None) -> SaslStep:
        """Continue after ``NeedCredentials`` with the user's keys, or None if unknown."""
        if self._state is not _State.CREDENTIALS or self._mechanism is None:
            return self._out_of_order()
        step = self._mechanism.credentials(creds)
        if isinstance(step, Challenge):
            self._state = _State.FINAL
            return step
        if isinstance(step, VerifyPassword):
            self._state = _State.VERIFY
            return step
        return self._end(step)

    def password_checked(self, valid: bool) -> Success | Failure:
        """Continue after ``VerifyPassword`` with the result of the check."""
        if self._state is not _State.VERIFY or not isinstance(self._mechanism, _Plain):
            return self._out_of_order()
        return self._end(self._mechanism.checked(valid))

    def abort(self) -> Failure:
        """Handle ``<abort/>`` (RFC 6120 §6.4.4)."""
        if self._state is _State.DONE:
            return self._out_of_order()
        return self._end(Failure("aborted"))

    def _first(self, mechanism: _Plain | ScramMechanism, data: bytes) -> SaslStep:
        step = mechanism.first(data)
        if isinstance(step, NeedCredentials):
            self._state = _State.CREDENTIALS
            return step
        return self._end(step)

    def _out_of_order(self) -> Failure:
        return self._end(Failure("malformed-request", "unexpected SASL step"))

    def _end(self, step: _End) -> _End:
        self._state = _State.DONE
        return step


# --- PLAIN (RFC 4616) ---------------------------------------------------------------------


class _Plain:
    """message = [authzid] NUL authcid NUL passwd, UTF-8, no other NUL."""

    __slots__ = ("_authzid", "_known", "_password", "_secret", "_username")

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._username = ""
        self._password = ""
        self._authzid: str | None = None
        self._known = False

    def first(self, data: bytes) -> NeedCredentials | Failure:
        fields = data.split(b"\x00")
        if len(fields) != 3 or not fields[1] or not fields[2]:
            return Failure("malformed-request", "PLAIN wants [authzid] NUL authcid NUL passwd")
        try:
            self._username = fields[1].decode()
            self._password = fields[2].decode()
        except UnicodeDecodeError:
            return Failure("malformed-request", "PLAIN fields must be UTF-8")
        try:
            self._authzid = fields[0].decode() or None
        except UnicodeDecodeError:
            return Failure("invalid-authzid", "the authzid must be UTF-8")
        return NeedCredentials(self._username)

    def credentials(self, creds: Credentials | None) -> VerifyPassword:
        # An unknown user costs the same PBKDF2 as a known one.
        keys = creds or {"SHA-256": fake_keys("SHA-256", self._username, self._secret)}
        self._known = bool(creds)
        password, self._password = self._password, ""
        return VerifyPassword(keys, password)

    def checked(self, valid: bool) -> Success | Failure:
        if not (valid and self._known):
            return Failure("not-authorized")
        return Success(None, self._username, self._authzid)
