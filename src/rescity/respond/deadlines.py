"""Deadlines of the response and what happens when they pass (时限与逐级上报).

For an incident of level L the policy gives ``acknowledge_s``, ``arrive_s`` and
``resolve_s``. The clock starts at the dispatch at the current tier (for a new incident, at
its creation; after an escalation, at the escalation):

    due[m] = start_ms + 1000 * deadline_L[m]   for m in (acknowledge, arrive, resolve)

A milestone is met by: acknowledge — a unit accepts (for a new incident: it is verified
and dispatched); arrive — a unit is on site; resolve — it is resolved. When ``now`` passes
``due[m]`` with ``m`` unmet, the incident escalates one tier (street -> district -> city ->
specialist), the next tier's units join, and the clocks restart from ``now``. At the top
tier a missed deadline is recorded and notified, once per milestone.
"""

from __future__ import annotations

from rescity.model.incident import Incident, IncidentState

from .policy import Policy

MILESTONES = ("acknowledge", "arrive", "resolve")

S = IncidentState
_MET: dict[str, tuple[IncidentState, ...]] = {
    "acknowledge": (S.ACCEPTED, S.ON_SITE, S.RESOLVED, S.REVIEWED, S.CLOSED),
    "arrive": (S.ON_SITE, S.RESOLVED, S.REVIEWED, S.CLOSED),
    "resolve": (S.RESOLVED, S.REVIEWED, S.CLOSED),
}


def due_times(policy: Policy, level: int, start_ms: int,
              milestones: tuple[str, ...] = MILESTONES, incident_type: str | None = None) -> dict[str, int]:
    """``{milestone: due ms}`` for an incident of ``level`` (and type: a type may have its
    own deadlines, as hidden hazards' rectification) whose clock starts at ``start_ms``."""
    d = policy.deadline(level, incident_type)
    secs = {"acknowledge": d.acknowledge_s, "arrive": d.arrive_s, "resolve": d.resolve_s}
    return {m: int(start_ms + round(secs[m] * 1000)) for m in milestones}


def pending_milestones(inc: Incident) -> tuple[str, ...]:
    """The milestones the incident has not met yet."""
    return tuple(m for m in MILESTONES if inc.state not in _MET[m])


def overdue(inc: Incident, now_ms: int) -> list[str]:
    """Milestones whose deadline has passed at ``now_ms`` without being met, earliest
    first, not yet recorded as missed at this tier."""
    if not inc.is_open or inc.state == S.RESOLVED or inc.state == S.REVIEWED:
        return []
    pend = pending_milestones(inc)
    late = [(inc.due[m], m) for m in pend if m in inc.due and inc.due[m] <= now_ms
            and m not in inc.missed]
    return [m for _, m in sorted(late)]


def next_due(inc: Incident) -> int | None:
    """The earliest deadline :func:`overdue` could report (None: no clock runs), kept
    indexed in the store so a deadline check reads only the incidents that are due."""
    if not inc.is_open or inc.state in (S.RESOLVED, S.REVIEWED):
        return None
    pend = pending_milestones(inc)
    dues = [v for m, v in inc.due.items() if m in pend and m not in inc.missed]
    return min(dues) if dues else None
