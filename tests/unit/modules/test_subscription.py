"""The subscription state machine, row by row against RFC 6121 Appendix A.

The tables below are copied from the RFC's text (A.2.1-A.2.4 and A.3.1-A.3.4), independently
of the module's own tables, and every row is one test case.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from roost.modules.im.subscription import (
    BOTH,
    BY_NAME,
    FROM,
    FROM_OUT,
    NONE,
    NONE_IN,
    NONE_OUT,
    NONE_OUT_IN,
    STATES,
    TO,
    TO_IN,
    State,
    inbound,
    outbound,
)

# "EXISTING STATE | ROUTE? / DELIVER? | NEW STATE", as in the RFC ("no state change" kept).
RFC_OUTBOUND = {
    "subscribe": """
        None                  | MUST     | None + Pending Out
        None + Pending Out    | MUST     | no state change
        None + Pending In     | MUST     | None + Pending Out+In
        None + Pending Out+In | MUST     | no state change
        To                    | MUST     | no state change
        To + Pending In       | MUST     | no state change
        From                  | MUST     | From + Pending Out
        From + Pending Out    | MUST     | no state change
        Both                  | MUST     | no state change
    """,
    "subscribed": """
        None                  | MUST NOT | no state change
        None + Pending Out    | MUST NOT | no state change
        None + Pending In     | MUST     | From
        None + Pending Out+In | MUST     | From + Pending Out
        To                    | MUST NOT | no state change
        To + Pending In       | MUST     | Both
        From                  | MUST NOT | no state change
        From + Pending Out    | MUST NOT | no state change
        Both                  | MUST NOT | no state change
    """,
    "unsubscribe": """
        None                  | MUST     | no state change
        None + Pending Out    | MUST     | None
        None + Pending In     | MUST     | no state change
        None + Pending Out+In | MUST     | None + Pending In
        To                    | MUST     | None
        To + Pending In       | MUST     | None + Pending In
        From                  | MUST     | no state change
        From + Pending Out    | MUST     | From
        Both                  | MUST     | From
    """,
    "unsubscribed": """
        None                  | MUST NOT | no state change
        None + Pending Out    | MUST NOT | no state change
        None + Pending In     | MUST     | None
        None + Pending Out+In | MUST     | None + Pending Out
        To                    | MUST NOT | no state change
        To + Pending In       | MUST     | To
        From                  | MUST     | None
        From + Pending Out    | MUST     | None + Pending Out
        Both                  | MUST     | To
    """,
}

RFC_INBOUND = {
    "subscribe": """
        None                  | yes | None + Pending In
        None + Pending Out    | yes | None + Pending Out+In
        None + Pending In     | no  | no state change
        None + Pending Out+In | no  | no state change
        To                    | yes | To + Pending In
        To + Pending In       | no  | no state change
        From                  | no  | no state change
        From + Pending Out    | no  | no state change
        Both                  | no  | no state change
    """,
    "subscribed": """
        None                  | no  | no state change
        None + Pending Out    | yes | To
        None + Pending In     | no  | no state change
        None + Pending Out+In | yes | To + Pending In
        To                    | no  | no state change
        To + Pending In       | no  | no state change
        From                  | no  | no state change
        From + Pending Out    | yes | Both
        Both                  | no  | no state change
    """,
    "unsubscribe": """
        None                  | no  | no state change
        None + Pending Out    | no  | no state change
        None + Pending In     | yes | None
        None + Pending Out+In | yes | None + Pending Out
        To                    | no  | no state change
        To + Pending In       | yes | To
        From                  | yes | None
        From + Pending Out    | yes | None + Pending Out
        Both                  | yes | To
    """,
    "unsubscribed": """
        None                  | no  | no state change
        None + Pending Out    | yes | None
        None + Pending In     | no  | no state change
        None + Pending Out+In | yes | None + Pending In
        To                    | yes | None
        To + Pending In       | yes | None + Pending In
        From                  | no  | no state change
        From + Pending Out    | yes | From
        Both                  | yes | From
    """,
}

Case = tuple[str, str, bool, str]  # (event, existing state, forwarded?, new state)


def rows(tables: dict[str, str]) -> list[Case]:
    """Every row of the tables as (event, existing, forwarded, new)."""
    found = []
    for event, table in tables.items():
        for line in table.strip().splitlines():
            existing, forward, new = (cell.strip() for cell in line.split("|"))
            new = existing if new == "no state change" else new
            found.append((event, existing, forward in ("MUST", "yes"), new))
    return found


def test_the_tables_have_every_state_for_every_event() -> None:
    for tables in (RFC_OUTBOUND, RFC_INBOUND):
        cases = rows(tables)
        assert len(cases) == 36
        for event in tables:
            assert {c[1] for c in cases if c[0] == event} == set(BY_NAME)


def test_the_nine_states_are_named_as_in_appendix_a1() -> None:
    assert [s.name for s in STATES] == [
        "None",
        "None + Pending Out",
        "None + Pending In",
        "None + Pending Out+In",
        "To",
        "To + Pending In",
        "From",
        "From + Pending Out",
        "Both",
    ]


@pytest.mark.parametrize(("event", "existing", "route", "new"), rows(RFC_OUTBOUND))
def test_outbound_row(event: str, existing: str, route: bool, new: str) -> None:
    outcome = outbound(BY_NAME[existing], event)
    assert outcome.forward is route
    assert replace(outcome.state, approved=False).name == new
    assert outcome.reply is None


@pytest.mark.parametrize(("event", "existing", "deliver", "new"), rows(RFC_INBOUND))
def test_inbound_row(event: str, existing: str, deliver: bool, new: str) -> None:
    outcome = inbound(BY_NAME[existing], event)
    assert outcome.forward is deliver
    assert outcome.state.name == new


@pytest.mark.parametrize("existing", [FROM, FROM_OUT, BOTH])
def test_inbound_subscribe_while_subscribed_is_answered_by_the_server(existing: State) -> None:
    outcome = inbound(existing, "subscribe")
    assert (outcome.forward, outcome.reply, outcome.state) == (False, "subscribed", existing)
    assert outcome.send_presence


@pytest.mark.parametrize("existing", [NONE, NONE_OUT, NONE_IN, NONE_OUT_IN, TO, TO_IN])
def test_inbound_subscribe_without_from_is_not_answered_by_the_server(existing: State) -> None:
    assert inbound(existing, "subscribe").reply is None


@pytest.mark.parametrize(
    ("existing", "approved"), [(NONE, NONE), (NONE_OUT, NONE_OUT), (TO, TO)], ids=lambda s: s.name
)
def test_outbound_subscribed_without_request_is_a_pre_approval(
    existing: State, approved: State
) -> None:
    outcome = outbound(existing, "subscribed")
    assert not outcome.forward
    assert outcome.state == replace(approved, approved=True)
    assert not outcome.send_presence


@pytest.mark.parametrize("existing", [FROM, FROM_OUT, BOTH])
def test_outbound_subscribed_with_from_is_no_pre_approval(existing: State) -> None:
    assert outbound(existing, "subscribed").state == existing


@pytest.mark.parametrize(
    ("existing", "granted"),
    [(NONE, FROM), (NONE_OUT, FROM_OUT), (TO, BOTH)],
    ids=lambda s: s.name,
)
def test_pre_approved_subscribe_is_granted_at_once(existing: State, granted: State) -> None:
    outcome = inbound(replace(existing, approved=True), "subscribe")
    assert outcome.state == granted
    assert not outcome.forward
    assert outcome.reply == "subscribed"
    assert outcome.send_presence


def test_outbound_unsubscribed_withdraws_a_pre_approval() -> None:
    outcome = outbound(replace(NONE, approved=True), "unsubscribed")
    assert outcome.state == NONE
    assert not outcome.forward


def test_pre_approval_survives_other_events() -> None:
    approved = replace(NONE, approved=True)
    assert outbound(approved, "subscribe").state == replace(NONE_OUT, approved=True)
    assert inbound(replace(NONE_OUT, approved=True), "subscribed").state == replace(
        TO, approved=True
    )


@pytest.mark.parametrize(
    ("existing", "new"), [(NONE_IN, FROM), (NONE_OUT_IN, FROM_OUT), (TO_IN, BOTH)]
)
def test_approval_sends_the_users_presence(existing: State, new: State) -> None:
    outcome = outbound(existing, "subscribed")
    assert (outcome.forward, outcome.state, outcome.send_presence) == (True, new, True)


@pytest.mark.parametrize("existing", STATES, ids=lambda s: s.name)
def test_unavailable_follows_when_the_contact_loses_its_subscription(existing: State) -> None:
    cancelled = outbound(existing, "unsubscribed")
    assert cancelled.send_unavailable is (existing.has_from and not cancelled.state.has_from)
    unsubscribed = inbound(existing, "unsubscribe")
    assert unsubscribed.send_unavailable is (existing.has_from and not unsubscribed.state.has_from)
    for event in ("subscribe", "subscribed", "unsubscribe"):
        assert not outbound(existing, event).send_unavailable
    for event in ("subscribe", "subscribed", "unsubscribed"):
        assert not inbound(existing, event).send_unavailable


def test_unknown_event_is_refused() -> None:
    with pytest.raises(ValueError, match="not a subscription"):
        outbound(NONE, "probe")
    with pytest.raises(ValueError, match="not a subscription"):
        inbound(NONE, "available")
