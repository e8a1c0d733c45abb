"""Protocol errors as values: stream errors (RFC 6120 §4.9) and stanza errors (§8.3).

A handler raises; the framework turns the exception into the right XML. Nothing in this
module does I/O, so every layer may import it.
"""

from __future__ import annotations

from typing import Final

# RFC 6120 §4.9.3: every defined stream error condition.
STREAM_CONDITIONS: Final = frozenset(
    {
        "bad-format", "bad-namespace-prefix", "conflict", "connection-timeout",
        "host-gone", "host-unknown", "improper-addressing", "internal-server-error",
        "invalid-from", "invalid-namespace", "invalid-xml", "not-authorized",
        "not-well-formed", "policy-violation", "remote-connection-failed", "reset",
        "resource-constraint", "restricted-xml", "see-other-host", "system-shutdown",
        "undefined-condition", "unsupported-encoding", "unsupported-feature",
        "unsupported-stanza-type", "unsupported-version",
    }
)  # fmt: skip

# RFC 6120 §8.3.3: condition -> default error type (§8.3.2).
STANZA_CONDITIONS: Final[dict[str, str]] = {
    "bad-request": "modify",
    "conflict": "cancel",
    "feature-not-implemented": "cancel",
    "forbidden": "auth",
    "gone": "cancel",
    "internal-server-error": "cancel",
    "item-not-found": "cancel",
    "jid-malformed": "modify",
    "not-acceptable": "modify",
    "not-allowed": "cancel",
    "not-authorized": "auth",
    "policy-violation": "modify",
    "recipient-unavailable": "wait",
    "redirect": "modify",
    "registration-required": "auth",
    "remote-server-not-found": "cancel",
    "remote-server-timeout": "wait",
    "resource-constraint": "wait",
    "service-unavailable": "cancel",
    "subscription-required": "auth",
    "undefined-condition": "cancel",
    "unexpected-request": "wait",
}


class StreamError(Exception):
    """A stream-level error: the stream is closed after ``<stream:error/>`` is sent."""

    __slots__ = ("condition", "text")

    def __init__(self, condition: str, text: str | None = None) -> None:
        if condition not in STREAM_CONDITIONS:
            raise ValueError(f"unknown stream error condition {condition!r}")
        super().__init__(condition if text is None else f"{condition}: {text}")
        self.condition = condition
        self.text = text


class StanzaError(Exception):
    """A stanza-level error: the stanza is answered with ``type='error'``."""

    __slots__ = ("condition", "text", "type")

    def __init__(self, condition: str, text: str | None = None, type_: str | None = None) -> None:
        default_type = STANZA_CONDITIONS.get(condition)
        if default_type is None:
            raise ValueError(f"unknown stanza error condition {condition!r}")
        super().__init__(condition if text is None else f"{condition}: {text}")
        self.condition = condition
        self.text = text
        self.type = type_ or default_type
