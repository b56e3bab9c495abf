"""The incident state machine: every state reachable, illegal transitions refused
(hypothesis stateful testing), a replay of the events gives the same incident."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from rescity.model.incident import Action, IncidentState, Tier
from rescity.respond import lifecycle
from rescity.respond.lifecycle import IllegalTransition, apply, decide, open_incident, replay

S = IncidentState
T0 = 1_700_000_000_000

# the expected machine, written out independently of lifecycle.TRANSITIONS
EXPECTED = {
    "verify": ({S.NEW}, S.VERIFIED),
    "dismiss": ({S.NEW, S.VERIFIED}, S.DISMISSED),
    "dispatch": ({S.VERIFIED, S.DISPATCHED, S.ACCEPTED, S.ON_SITE}, S.DISPATCHED),
    "arrive": ({S.ACCEPTED}, S.ON_SITE),
    "resolve": ({S.ON_SITE}, S.RESOLVED),
    "reject": ({S.RESOLVED}, S.ON_SITE),
    "review": ({S.RESOLVED}, S.REVIEWED),
    "close": ({S.REVIEWED}, S.CLOSED),
    "reopen": ({S.RESOLVED, S.REVIEWED, S.CLOSED, S.DISMISSED}, S.VERIFIED),
}
DATA = {"dismiss": {"reason": "false alarm: sensor fault"}, "dispatch": {"units": ["u1", "u2"]},
        "resolve": {"note": "valve closed, pipe clamped"}, "reject": {"reason": "still leaking"},
        "accept": {"unit": "u1"}, "merge": {"into": "INC-2"}}


def new(level: int = 1):
    return apply(None, open_incident("INC-1", T0, "alice", {"title": "gas in manhole",
                                                            "type": "gas_leak", "level": level}))


def walk(*actions: str):
    inc = new()
    t = T0
    for a in actions:
        t += 60_000
        inc = apply(inc, decide(inc, a, "bob", t, DATA.get(a)))
    return inc


def test_the_full_loop_reaches_every_state_in_order():
    seen = [new().state]
    inc = new()
    t = T0
    for a in ("verify", "dispatch", "accept", "arrive", "resolve", "review", "close"):
        t += 60_000
        inc = apply(inc, decide(inc, a, "bob", t, DATA.get(a)))
        seen.append(inc.state)
    assert seen == [S.NEW, S.VERIFIED, S.DISPATCHED, S.ACCEPTED, S.ON_SITE, S.RESOLVED,
                    S.REVIEWED, S.CLOSED]
    assert inc.units == ["u1", "u2"] and inc.accepted_by == ["u1"]
    assert inc.closed_ms == t and inc.resolved_ms == t - 120_000
    assert replay(inc.timeline) == inc


def test_dismiss_needs_a_reason_and_marks_a_false_alarm():
    inc = walk("verify")
    with pytest.raises(IllegalTransition, match="needs 'reason'"):
        decide(inc, "dismiss", "bob", T0 + 1e6, {})
    inc = apply(inc, decide(inc, "dismiss", "bob", T0 + 1e6, DATA["dismiss"]))
    assert inc.state == S.DISMISSED and inc.false_alarm and not inc.is_open
    assert inc.dismissed_reason.startswith("false alarm")


def test_dispatch_needs_units_and_accept_only_by_a_dispatched_unit():
    inc = walk("verify")
    with pytest.raises(IllegalTransition, match="needs 'units'"):
        decide(inc, "dispatch", "bob", T0 + 1e6, {"units": []})
    inc = walk("verify", "dispatch")
    with pytest.raises(IllegalTransition, match="was not dispatched"):
        decide(inc, "accept", "bob", T0 + 1e6, {"unit": "elsewhere"})


def test_rework_and_reopen():
    inc = walk("verify", "dispatch", "accept", "arrive", "resolve", "reject")
    assert inc.state == S.ON_SITE and inc.resolved_ms is None
    inc = walk("verify", "dispatch", "accept", "arrive", "resolve", "review", "close", "reopen")
    assert inc.state == S.VERIFIED and inc.closed_ms is None


def test_time_runs_forward_and_unknown_actions_are_refused():
    inc = walk("verify")
    with pytest.raises(IllegalTransition, match="time runs forward"):
        decide(inc, "dispatch", "bob", T0, DATA["dispatch"])
    with pytest.raises(IllegalTransition, match="unknown action 'explode'"):
        decide(inc, "explode", "bob", T0 + 1e6)
    with pytest.raises(IllegalTransition, match="created once"):
        decide(inc, "create", "bob", T0 + 1e6)


def test_escalation_only_goes_up():
    inc = walk("verify", "dispatch")
    inc = apply(inc, decide(inc, "escalate", "system", T0 + 1e6, {"tier": "district", "units": ["d1"]}))
    assert inc.tier == Tier.DISTRICT and inc.units == ["u1", "u2", "d1"]
    with pytest.raises(IllegalTransition, match="must go up"):
        decide(inc, "escalate", "system", T0 + 2e6, {"tier": "street"})


def test_a_new_incident_needs_title_type_and_a_level():
    with pytest.raises(IllegalTransition, match="'title'"):
        open_incident("X", T0, "a", {"type": "t", "level": 1})
    with pytest.raises(IllegalTransition, match="level"):
        open_incident("X", T0, "a", {"title": "x", "type": "t", "level": 0})
    with pytest.raises(ValueError, match="unknown warning level"):
        open_incident("X", T0, "a", {"title": "x", "type": "t", "level": "purple"})
    assert apply(None, open_incident("X", T0, "a", {"title": "x", "type": "t", "level": "红色"})).level == 1


def test_doc_round_trip():
    inc = walk("verify", "dispatch", "accept")
    inc = apply(inc, decide(inc, "add_task", "bob", T0 + 1e7, {"unit": "u1", "text": "close valve V12"}))
    doc = lifecycle.incident_to_doc(inc)
    assert lifecycle.incident_from_doc(doc) == inc
    assert "arrive" in doc["allowed_actions"] and "close" not in doc["allowed_actions"]


NEEDS_DATA = {"dismiss", "dispatch", "resolve", "reject", "merge", "escalate", "deadline_missed",
              "link", "note", "attach", "add_task", "complete_task", "set_level", "add_alarms",
              "absorb", "reply", "add_report"}
SEMANTIC = {"escalate", "complete_task"}  # already at the top tier; no such open task
ACTIONS = sorted(a.value for a in Action if a != Action.CREATE)


class IncidentMachine(RuleBasedStateMachine):
    """Random actions against the machine: the legal ones move it exactly as EXPECTED
    says, the illegal ones are refused and change nothing; a replay always agrees."""

    def __init__(self) -> None:
        super().__init__()
        self.inc = new()
        self.t = T0

    @rule(action=st.sampled_from(ACTIONS), with_data=st.booleans(), dt=st.integers(0, 3_600_000))
    def act(self, action: str, with_data: bool, dt: int) -> None:
        self.t += dt
        data = dict(DATA.get(action, {})) if with_data else {}
        if action == "escalate" and with_data:
            nxt = self.inc.tier.next
            data = {"tier": (nxt or Tier.SPECIALIST).value}
        for key, val in (("other", "INC-9"), ("milestone", "arrive"), ("text", "t"), ("name", "p.jpg"),
                         ("level", 2), ("alarms", ["A1"]), ("unit", "u1"), ("task", "T1"), ("ref", "R1")):
            if with_data:
                data.setdefault(key, val)
        before = self.inc
        state = before.state
        try:
            ev = decide(before, action, "bob", self.t, data)
        except IllegalTransition:
            legal_state = state in lifecycle.TRANSITIONS[Action(action)][0]
            if legal_state:  # refused only for missing data or a semantic check
                assert (action in NEEDS_DATA and not with_data) or action in SEMANTIC, action
            assert self.inc is before
            return
        self.inc = apply(before, ev)
        exp = EXPECTED.get(action)
        if exp is not None:
            assert state in exp[0], f"{action} allowed from {state}"
            assert self.inc.state == exp[1]
        elif action == "accept":
            assert state in (S.DISPATCHED, S.ACCEPTED, S.ON_SITE)
            assert self.inc.state == (S.ACCEPTED if state == S.DISPATCHED else state)
        elif action == "merge":
            assert state.is_open and self.inc.state == S.MERGED
        else:
            assert self.inc.state == state  # no state change

    @precondition(lambda self: self.inc.is_open)
    @rule()
    def open_has_allowed_actions(self) -> None:
        assert lifecycle.allowed_actions(self.inc)

    @invariant()
    def replay_agrees(self) -> None:
        assert replay(self.inc.timeline) == self.inc

    @invariant()
    def terminal_states_stay_terminal_except_reopen(self) -> None:
        if self.inc.state in (S.MERGED,):
            assert lifecycle.allowed_actions(self.inc) == [a for a in lifecycle.allowed_actions(self.inc)
                                                           if a in (Action.LINK, Action.NOTE, Action.ATTACH, Action.REPLY)]


TestIncidentMachine = IncidentMachine.TestCase
TestIncidentMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
