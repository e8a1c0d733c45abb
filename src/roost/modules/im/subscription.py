"""The presence subscription state machine of RFC 6121 Appendix A, as pure logic.

Theory of operation. The state of a contact on a user's roster (Appendix A.1) is a
subscription ("none", "to": the user sees the contact's presence, "from": the contact sees
the user's, "both") and two pending flags: *pending out* (the user asked the contact and no
answer came yet: ``ask='subscribe'`` on the roster item) and *pending in* (the contact asked
the user, who has not answered yet). Of the sixteen combinations, the nine named in A.1 exist
("To + Pending Out" and the like cannot: a request is not pending once it was approved).
Pre-approval (§3.4) adds one more flag, ``approved``, meaningful without "from".

An *event* is one of the four subscription presence types, *outbound* (the user's client sent
it to the contact, tables A.2.1-A.2.4: does the user's server route it, what is the new state)
or *inbound* (it arrived for the user from the contact, tables A.3.1-A.3.4: does the server
deliver it to the user's available resources, what is the new state). ``outbound()`` and
``inbound()`` return an ``Outcome``: the new state and what the server must do besides. The
tables below are the RFC's rows, literally; the extra rules are:

- §3.4 pre-approval: an outbound "subscribed" the table does not route, in a state without
  "from" and without a pending request (None, None + Pending Out, To), records approved=True;
  a later inbound "subscribe" is then approved at once (state gains "from", the server replies
  "subscribed" on the user's behalf, the request is not delivered); an outbound "unsubscribed"
  withdraws a pre-approval.
- A.3.1 note: an inbound "subscribe" in a state with "from" is answered by the server with
  "subscribed" on the user's behalf (the contact's view was out of sync); like Prosody, the
  user's current presence follows it.
- §3.1.5: after the user approves (outbound "subscribed" routed), the server sends the user's
  current presence to the contact.
- §3.2.1 and §3.3.3: when the contact loses its subscription to the user ("from" removed by an
  outbound "unsubscribed" or an inbound "unsubscribe"), the server sends unavailable presence
  from the user's available resources to the contact.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

SUBSCRIPTION_TYPES: Final = frozenset({"subscribe", "subscribed", "unsubscribe", "unsubscribed"})


@dataclass(frozen=True, slots=True)
class State:
    """A contact's subscription state on the user's roster (RFC 6121 Appendix A.1)."""

    subscription: str = "none"  # "none", "to", "from", "both"
    pending_out: bool = False  # the user's request to the contact awaits an answer (ask)
    pending_in: bool = False  # the contact's request to the user awaits an answer
    approved: bool = False  # the user pre-approved the contact's request (§3.4)

    @property
    def has_to(self) -> bool:
        """The user is subscribed to the contact's presence."""
        return self.subscription in ("to", "both")

    @property
    def has_from(self) -> bool:
        """The contact is subscribed to the user's presence."""
        return self.subscription in ("from", "both")

    @property
    def name(self) -> str:
        """The state's name in Appendix A ("None + Pending Out+In", "Both", ...)."""
        base = self.subscription.capitalize()
        pending = ("Out" if self.pending_out else "") + (
            ("+In" if self.pending_out else "In") if self.pending_in else ""
        )
        name = f"{base} + Pending {pending}" if pending else base
        return name + " (approved)" if self.approved else name


NONE: Final = State()
NONE_OUT: Final = State("none", pending_out=True)
NONE_IN: Final = State("none", pending_in=True)
NONE_OUT_IN: Final = State("none", pending_out=True, pending_in=True)
TO: Final = State("to")
TO_IN: Final = State("to", pending_in=True)
FROM: Final = State("from")
FROM_OUT: Final = State("from", pending_out=True)
BOTH: Final = State("both")

STATES: Final = (NONE, NONE_OUT, NONE_IN, NONE_OUT_IN, TO, TO_IN, FROM, FROM_OUT, BOTH)
BY_NAME: Final = {state.name: state for state in STATES}

Row = tuple[bool, State]  # (route / deliver?, new state)

# A.2: the user's server, on a subscription stanza the user's client sends: (route?, new state)
OUTBOUND: Final[dict[str, dict[State, Row]]] = {
    "subscribe": {  # A.2.1
        NONE: (True, NONE_OUT),
        NONE_OUT: (True, NONE_OUT),
        NONE_IN: (True, NONE_OUT_IN),
        NONE_OUT_IN: (True, NONE_OUT_IN),
        TO: (True, TO),
        TO_IN: (True, TO_IN),
        FROM: (True, FROM_OUT),
        FROM_OUT: (True, FROM_OUT),
        BOTH: (True, BOTH),
    },
    "subscribed": {  # A.2.2
        NONE: (False, NONE),
        NONE_OUT: (False, NONE_OUT),
        NONE_IN: (True, FROM),
        NONE_OUT_IN: (True, FROM_OUT),
        TO: (False, TO),
        TO_IN: (True, BOTH),
        FROM: (False, FROM),
        FROM_OUT: (False, FROM_OUT),
        BOTH: (False, BOTH),
    },
    "unsubscribe": {  # A.2.3
        NONE: (True, NONE),
        NONE_OUT: (True, NONE),
        NONE_IN: (True, NONE_IN),
        NONE_OUT_IN: (True, NONE_IN),
        TO: (True, NONE),
        TO_IN: (True, NONE_IN),
        FROM: (True, FROM),
        FROM_OUT: (True, FROM),
        BOTH: (True, FROM),
    },
    "unsubscribed": {  # A.2.4
        NONE: (False, NONE),
        NONE_OUT: (False, NONE_OUT),
        NONE_IN: (True, NONE),
        NONE_OUT_IN: (True, NONE_OUT),
        TO: (False, TO),
        TO_IN: (True, TO),
        FROM: (True, NONE),
        FROM_OUT: (True, NONE_OUT),
        BOTH: (True, TO),
    },
}

# A.3: the user's server, on a subscription stanza arriving from the contact: (deliver?, new state)
INBOUND: Final[dict[str, dict[State, Row]]] = {
    "subscribe": {  # A.3.1 (in From, From + Pending Out and Both: auto-reply "subscribed")
        NONE: (True, NONE_IN),
        NONE_OUT: (True, NONE_OUT_IN),
        NONE_IN: (False, NONE_IN),
        NONE_OUT_IN: (False, NONE_OUT_IN),
        TO: (True, TO_IN),
        TO_IN: (False, TO_IN),
        FROM: (False, FROM),
        FROM_OUT: (False, FROM_OUT),
        BOTH: (False, BOTH),
    },
    "subscribed": {  # A.3.2
        NONE: (False, NONE),
        NONE_OUT: (True, TO),
        NONE_IN: (False, NONE_IN),
        NONE_OUT_IN: (True, TO_IN),
        TO: (False, TO),
        TO_IN: (False, TO_IN),
        FROM: (False, FROM),
        FROM_OUT: (True, BOTH),
        BOTH: (False, BOTH),
    },
    "unsubscribe": {  # A.3.3
        NONE: (False, NONE),
        NONE_OUT: (False, NONE_OUT),
        NONE_IN: (True, NONE),
        NONE_OUT_IN: (True, NONE_OUT),
        TO: (False, TO),
        TO_IN: (True, TO),
        FROM: (True, NONE),
        FROM_OUT: (True, NONE_OUT),
        BOTH: (True, TO),
    },
    "unsubscribed": {  # A.3.4
        NONE: (False, NONE),
        NONE_OUT: (True, NONE),
        NONE_IN: (False, NONE_IN),
        NONE_OUT_IN: (True, NONE_IN),
        TO: (True, NONE),
        TO_IN: (True, NONE_IN),
        FROM: (False, FROM),
        FROM_OUT: (True, FROM),
        BOTH: (True, FROM),
    },
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the server does with one subscription stanza."""

    state: State  # the new state (equal to the old one: no change, no roster push)
    forward: bool  # outbound: route it to the contact; inbound: deliver it to the user
    reply: str | None = None  # inbound: the type the server answers with on the user's behalf
    send_presence: bool = False  # send the user's current presence to the contact
    send_unavailable: bool = False  # send unavailable from the user's resources to the contact


def _lookup(table: dict[str, dict[State, Row]], state: State, kind: str) -> Row:
    if kind not in table:
        raise ValueError(f"not a subscription presence type: {kind!r}")
    forward, new = table[kind][replace(state, approved=False)]
    return forward, replace(new, approved=state.approved)


def outbound(state: State, kind: str) -> Outcome:
    """The user's client sent ``kind`` to the contact (tables A.2.1-A.2.4, §3.4)."""
    forward, new = _lookup(OUTBOUND, state, kind)
    if kind == "subscribed":
        if forward:  # an approval (§3.1.5): the contact gets the user's presence now
            return Outcome(replace(new, approved=False), True, send_presence=True)
        if not state.has_from:  # pre-approval (§3.4)
            return Outcome(replace(new, approved=True), False)
        return Outcome(new, False)
    if kind == "unsubscribed":  # also withdraws a pre-approval
        lost_from = state.has_from and not new.has_from
        return Outcome(replace(new, approved=False), forward, send_unavailable=lost_from)
    return Outcome(new, forward)


def inbound(state: State, kind: str) -> Outcome:
    """The contact sent ``kind`` to the user (tables A.3.1-A.3.4, §3.4)."""
    forward, new = _lookup(INBOUND, state, kind)
    if kind == "subscribe":
        if state.has_from:  # A.3.1: already subscribed, the server answers for the user
            return Outcome(new, False, reply="subscribed", send_presence=True)
        if state.approved:  # §3.4: pre-approved, the subscription is granted at once
            granted = "both" if state.has_to else "from"
            approved = State(granted, pending_out=state.pending_out)
            return Outcome(approved, False, reply="subscribed", send_presence=True)
        return Outcome(new, forward)
    if kind == "unsubscribe":
        lost_from = state.has_from and not new.has_from
        return Outcome(new, forward, send_unavailable=lost_from)
    return Outcome(new, forward)
