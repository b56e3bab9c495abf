"""The incident state machine: pure functions over :mod:`rescity.model.incident`.

:func:`decide` checks that an action is legal in the incident's current state and has what
it needs (a dismissal needs a reason, a dispatch needs units, ...) and returns the event;
:func:`apply` folds one event into the incident; :func:`replay` rebuilds an incident from
its events. Nothing here reads a clock or a database: time comes in with the action.

Deadlines are policy (:mod:`rescity.respond.deadlines`); the service puts the computed
``due`` times into the data of the events that start a clock (create, dispatch, escalate),
so the fold needs no policy and a replay gives the same incident.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from rescity.model.incident import (
    Action,
    Incident,
    IncidentEvent,
    IncidentSource,
    IncidentState,
    Task,
    Tier,
)
from rescity.model.levels import WarningLevel

S = IncidentState
_OPEN = tuple(s for s in S if s.is_open)

TRANSITIONS: dict[Action, tuple[tuple[IncidentState, ...], IncidentState | None]] = {
    Action.VERIFY: ((S.NEW,), S.VERIFIED),
    Action.DISMISS: ((S.NEW, S.VERIFIED), S.DISMISSED),
    Action.DISPATCH: ((S.VERIFIED, S.DISPATCHED, S.ACCEPTED, S.ON_SITE), S.DISPATCHED),
    Action.ACCEPT: ((S.DISPATCHED, S.ACCEPTED, S.ON_SITE), None),
    Action.ARRIVE: ((S.ACCEPTED,), S.ON_SITE),
    Action.RESOLVE: ((S.ON_SITE,), S.RESOLVED),
    Action.REJECT: ((S.RESOLVED,), S.ON_SITE),
    Action.REVIEW: ((S.RESOLVED,), S.REVIEWED),
    Action.CLOSE: ((S.REVIEWED,), S.CLOSED),
    Action.REOPEN: ((S.RESOLVED, S.REVIEWED, S.CLOSED, S.DISMISSED), S.VERIFIED),
    Action.MERGE: (_OPEN, S.MERGED),
    # no state change (None: the state stays)
    Action.ESCALATE: (_OPEN, None),
    Action.DEADLINE_MISSED: (_OPEN, None),
    Action.LINK: (tuple(S), None),
    Action.NOTE: (tuple(S), None),
    Action.ATTACH: (tuple(S), None),
    Action.ADD_TASK: (_OPEN, None),
    Action.COMPLETE_TASK: (_OPEN, None),
    Action.SET_LEVEL: (_OPEN, None),
    Action.ADD_ALARMS: (_OPEN, None),
    Action.ABSORB: (_OPEN, None),
    Action.REPLY: (tuple(S), None),
    Action.ADD_REPORT: (_OPEN, None),
}
"""action -> (states it is allowed in, state after; None keeps the state)."""

STATE_ACTIONS = (Action.VERIFY, Action.DISMISS, Action.DISPATCH, Action.ACCEPT, Action.ARRIVE,
                 Action.RESOLVE, Action.REJECT, Action.REVIEW, Action.CLOSE, Action.REOPEN,
                 Action.MERGE)
"""Actions that move an incident along the loop."""

_REQUIRED: dict[Action, tuple[str, ...]] = {
    Action.DISMISS: ("reason",),
    Action.DISPATCH: ("units",),
    Action.RESOLVE: ("note",),
    Action.REJECT: ("reason",),
    Action.MERGE: ("into",),
    Action.ESCALATE: ("tier",),
    Action.DEADLINE_MISSED: ("milestone",),
    Action.LINK: ("other",),
    Action.NOTE: ("text",),
    Action.ATTACH: ("name",),
    Action.ADD_TASK: ("unit", "text"),
    Action.COMPLETE_TASK: ("task",),
    Action.SET_LEVEL: ("level",),
    Action.ADD_ALARMS: ("alarms",),
    Action.ABSORB: ("other",),
    Action.REPLY: ("text",),
    Action.ADD_REPORT: ("ref",),
}


class IllegalTransition(ValueError):
    """An action the incident's state or its data does not allow."""


def allowed_actions(inc: Incident) -> list[Action]:
    """The actions legal in the incident's current state (for the UI's buttons)."""
    return [a for a, (frm, _) in TRANSITIONS.items() if inc.state in frm]


def decide(inc: Incident, action: Action | str, actor: str, ts_ms: int,
           data: Mapping[str, Any] | None = None) -> IncidentEvent:
    """The event of ``actor`` doing ``action`` to ``inc`` at ``ts_ms`` (ms since the epoch),
    or :class:`IllegalTransition` naming what is wrong."""
    try:
        act = Action(action)
    except ValueError:
        raise IllegalTransition(f"unknown action {action!r}; expected one of "
                                f"{', '.join(a.value for a in Action if a != Action.CREATE)}") from None
    if act == Action.CREATE:
        raise IllegalTransition("an incident is created once (use open_incident)")
    frm, to = TRANSITIONS[act]
    if inc.state not in frm:
        raise IllegalTransition(f"incident {inc.id}: cannot {act.value} an incident that is "
                                f"{inc.state.value} (allowed from: {', '.join(s.value for s in frm)})")
    d = dict(data or {})
    for key in _REQUIRED.get(act, ()):
        v = d.get(key)
        if v is None or (isinstance(v, str | list | tuple) and len(v) == 0):
            raise IllegalTransition(f"incident {inc.id}: {act.value} needs {key!r}")
    if ts_ms < inc.updated_ms:
        raise IllegalTransition(f"incident {inc.id}: {act.value} at {ts_ms} is before its last "
                                f"change at {inc.updated_ms} (time runs forward)")
    if act == Action.MERGE and d["into"] == inc.id:
        raise IllegalTransition(f"incident {inc.id}: cannot merge into itself")
    if act in (Action.LINK, Action.ABSORB) and d["other"] == inc.id:
        raise IllegalTransition(f"incident {inc.id}: cannot {act.value} itself")
    if act == Action.ESCALATE:
        tier = Tier(d["tier"])
        if tier.rank <= inc.tier.rank:
            raise IllegalTransition(f"incident {inc.id}: escalation must go up from {inc.tier.value}")
    if act == Action.SET_LEVEL:
        d["level"] = int(WarningLevel.parse(d["level"]))
        if d["level"] == 0:
            raise IllegalTransition(f"incident {inc.id}: level must be 1 (red) .. 4 (blue)")
    if act == Action.ACCEPT:
        unit = d.get("unit")
        if unit is not None and unit not in inc.units:
            raise IllegalTransition(f"incident {inc.id}: unit {unit!r} was not dispatched to it")
    if act == Action.COMPLETE_TASK and not any(t.id == d["task"] and t.done_ms is None
                                              for t in inc.tasks):
        raise IllegalTransition(f"incident {inc.id}: no open task {d['task']!r}")
    if act == Action.DISMISS:
        d.setdefault("false_alarm", True)
    after = to if to is not None else inc.state
    if act == Action.ACCEPT and inc.state == S.DISPATCHED:
        after = S.ACCEPTED
    return IncidentEvent(inc.id, int(ts_ms), actor, act, inc.state, after, d)


def open_incident(incident_id: str, ts_ms: int, actor: str, data: Mapping[str, Any]) -> IncidentEvent:
    """The event that creates an incident. ``data`` holds its fields: title, type, level,
    source, and optionally lon/lat, grid/street/district, network, asset, owner,
    description, alarm_ids, models, reporter, report_refs, due."""
    d = dict(data)
    for key in ("title", "type", "level"):
        if d.get(key) in (None, ""):
            raise IllegalTransition(f"a new incident needs {key!r}")
    lvl = WarningLevel.parse(d["level"])
    if lvl == WarningLevel.NORMAL:
        raise IllegalTransition("a new incident needs a level 1 (red) .. 4 (blue)")
    d["level"] = int(lvl)
    d["source"] = IncidentSource(d.get("source", IncidentSource.MANUAL)).value
    return IncidentEvent(incident_id, int(ts_ms), actor, Action.CREATE, None, S.NEW, d)


_CREATE_FIELDS = ("lon", "lat", "grid", "street", "district", "network", "asset", "owner",
                  "description", "title_zh", "reporter")


def apply(inc: Incident | None, ev: IncidentEvent) -> Incident:
    """The incident after ``ev`` (a new object; ``inc`` is not changed)."""
    if ev.action == Action.CREATE:
        d = ev.data
        new = Incident(id=ev.incident_id, title=d["title"], type=d["type"], level=int(d["level"]),
                       state=S.NEW, source=IncidentSource(d["source"]), created_ms=ev.ts_ms,
                       updated_ms=ev.ts_ms)
        for key in _CREATE_FIELDS:
            if d.get(key) is not None:
                setattr(new, key, d[key])
        new.alarm_ids = list(d.get("alarm_ids", []))
        new.alarm_groups = list(d.get("alarm_groups", []))
        new.models = list(d.get("models", []))
        new.report_refs = list(d.get("report_refs", []))
        new.due = dict(d.get("due", {}))
        new.timeline = [ev]
        return new
    if inc is None:
        raise IllegalTransition(f"event {ev.action.value} for unknown incident {ev.incident_id}")
    out = copy.copy(inc)
    for name in ("alarm_ids", "alarm_groups", "models", "report_refs", "units", "accepted_by", "attachments",
                 "related", "merged", "missed", "replies", "timeline"):
        setattr(out, name, list(getattr(inc, name)))
    out.tasks = [copy.copy(t) for t in inc.tasks]
    out.due = dict(inc.due)
    d, a, ts = ev.data, ev.action, ev.ts_ms
    out.state = ev.after
    out.updated_ms = ts
    out.timeline.append(ev)
    if a == Action.VERIFY:
        out.verified_ms = ts
    elif a == Action.DISMISS:
        out.dismissed_reason = str(d["reason"])
        out.false_alarm = bool(d.get("false_alarm", True))
        out.due = {}
    elif a == Action.DISPATCH:
        for u in d["units"]:
            if u not in out.units:
                out.units.append(u)
        if out.dispatched_ms is None:
            out.dispatched_ms = ts
        out.due.update(d.get("due", {}))
    elif a == Action.ACCEPT:
        unit = d.get("unit") or ev.actor
        if unit not in out.accepted_by:
            out.accepted_by.append(unit)
        if out.accepted_ms is None:
            out.accepted_ms = ts
        out.due.pop("acknowledge", None)
    elif a == Action.ARRIVE:
        out.arrived_ms = ts
        out.due.pop("arrive", None)
    elif a == Action.RESOLVE:
        out.resolved_ms = ts
        out.due = {}
    elif a == Action.REJECT:
        out.resolved_ms = None
        out.due.update(d.get("due", {}))
    elif a == Action.CLOSE:
        out.closed_ms = ts
    elif a == Action.REOPEN:
        out.closed_ms = out.resolved_ms = None
        out.dismissed_reason = None
        out.false_alarm = False
        out.due = dict(d.get("due", {}))
    elif a == Action.MERGE:
        out.merged_into = str(d["into"])
        out.due = {}
    elif a == Action.ABSORB:
        if d["other"] not in out.merged:
            out.merged.append(str(d["other"]))
        for key in ("alarm_ids", "models", "report_refs"):
            for x in d.get(key, []):
                if x not in getattr(out, key):
                    getattr(out, key).append(x)
    elif a == Action.ESCALATE:
        out.tier = Tier(d["tier"])
        for u in d.get("units", []):
            if u not in out.units:
                out.units.append(u)
        out.missed = []
        out.due.update(d.get("due", {}))
    elif a == Action.DEADLINE_MISSED:
        if d["milestone"] not in out.missed:
            out.missed.append(str(d["milestone"]))
    elif a == Action.LINK:
        if d["other"] not in out.related:
            out.related.append(str(d["other"]))
    elif a == Action.ATTACH:
        out.attachments.append({k: d[k] for k in ("name", "content_type", "size", "sha256", "url")
                                if k in d})
    elif a == Action.ADD_TASK:
        out.tasks.append(Task(id=str(d.get("task") or f"T{len(out.tasks) + 1}"), unit=str(d["unit"]),
                              text=str(d["text"])))
    elif a == Action.COMPLETE_TASK:
        for t in out.tasks:
            if t.id == d["task"]:
                t.done_ms = ts
    elif a == Action.SET_LEVEL:
        out.level = int(d["level"])
        out.due.update(d.get("due", {}))
    elif a == Action.ADD_ALARMS:
        for x in d["alarms"]:
            if x not in out.alarm_ids:
                out.alarm_ids.append(x)
        for m in d.get("models", []):
            if m not in out.models:
                out.models.append(m)
        g = d.get("group")
        if g is not None and g not in out.alarm_groups:
            out.alarm_groups.append(str(g))
    elif a == Action.ADD_REPORT:
        if d["ref"] not in out.report_refs:
            out.report_refs.append(str(d["ref"]))
    elif a == Action.REPLY:
        out.replies.append({"ts_ms": ts, "by": ev.actor, "text": str(d["text"]),
                            "to": d.get("to")})
    return out


def replay(events: Iterable[IncidentEvent]) -> Incident:
    """The incident its events describe (they must start with its creation)."""
    inc: Incident | None = None
    for ev in events:
        inc = apply(inc, ev)
    if inc is None:
        raise IllegalTransition("no events")
    return inc


def event_to_doc(ev: IncidentEvent) -> dict[str, Any]:
    """A JSON-able dict of an event (for the audit chain and the API)."""
    return {"incident": ev.incident_id, "ts_ms": ev.ts_ms, "actor": ev.actor,
            "action": ev.action.value, "before": ev.before.value if ev.before else None,
            "after": ev.after.value, "data": ev.data}


def event_from_doc(doc: Mapping[str, Any]) -> IncidentEvent:
    return IncidentEvent(str(doc["incident"]), int(doc["ts_ms"]), str(doc["actor"]),
                         Action(doc["action"]), S(doc["before"]) if doc.get("before") else None,
                         S(doc["after"]), dict(doc.get("data") or {}))


def incident_to_doc(inc: Incident, *, timeline: bool = True) -> dict[str, Any]:
    """A JSON-able dict of an incident, as the API and ``rescity incidents show`` print it."""
    lvl = WarningLevel(inc.level)
    doc: dict[str, Any] = {
        "id": inc.id, "title": inc.title, "title_zh": inc.title_zh, "type": inc.type,
        "level": inc.level, "colour": lvl.colour, "colour_zh": lvl.label_zh,
        "state": inc.state.value, "state_zh": inc.state.label_zh, "source": inc.source.value,
        "created_ms": inc.created_ms, "updated_ms": inc.updated_ms, "lon": inc.lon, "lat": inc.lat,
        "grid": inc.grid, "street": inc.street, "district": inc.district, "network": inc.network,
        "asset": inc.asset, "owner": inc.owner, "description": inc.description,
        "alarm_ids": inc.alarm_ids, "alarm_groups": inc.alarm_groups, "models": inc.models, "report_refs": inc.report_refs,
        "tier": inc.tier.value, "units": inc.units, "accepted_by": inc.accepted_by,
        "tasks": [{"id": t.id, "unit": t.unit, "text": t.text, "done_ms": t.done_ms} for t in inc.tasks],
        "attachments": inc.attachments, "related": inc.related, "merged_into": inc.merged_into,
        "merged": inc.merged, "due": inc.due, "missed": inc.missed,
        "dispatched_ms": inc.dispatched_ms, "verified_ms": inc.verified_ms,
        "accepted_ms": inc.accepted_ms, "arrived_ms": inc.arrived_ms,
        "resolved_ms": inc.resolved_ms, "closed_ms": inc.closed_ms,
        "dismissed_reason": inc.dismissed_reason, "false_alarm": inc.false_alarm,
        "replies": inc.replies, "allowed_actions": [a.value for a in allowed_actions(inc)],
    }
    if timeline:
        doc["timeline"] = [event_to_doc(e) for e in inc.timeline]
    return doc


def incident_from_doc(doc: Mapping[str, Any]) -> Incident:
    """Inverse of :func:`incident_to_doc` (the timeline, if present, is read too)."""
    inc = Incident(id=doc["id"], title=doc["title"], type=doc["type"], level=int(doc["level"]),
                   state=S(doc["state"]), source=IncidentSource(doc["source"]),
                   created_ms=int(doc["created_ms"]), updated_ms=int(doc["updated_ms"]))
    for key in ("lon", "lat", "grid", "street", "district", "network", "asset", "owner",
                "title_zh", "dispatched_ms", "verified_ms", "accepted_ms", "arrived_ms",
                "resolved_ms", "closed_ms", "dismissed_reason", "merged_into"):
        setattr(inc, key, doc.get(key))
    inc.description = doc.get("description") or ""
    for key in ("alarm_ids", "alarm_groups", "models", "report_refs", "units", "accepted_by",
                "attachments", "related", "merged", "missed", "replies"):
        setattr(inc, key, list(doc.get(key) or []))
    inc.tier = Tier(doc.get("tier", "street"))
    inc.due = {k: int(v) for k, v in (doc.get("due") or {}).items()}
    inc.false_alarm = bool(doc.get("false_alarm"))
    inc.tasks = [Task(t["id"], t["unit"], t["text"], t.get("done_ms")) for t in doc.get("tasks") or []]
    inc.timeline = [event_from_doc(e) for e in doc.get("timeline") or []]
    return inc
