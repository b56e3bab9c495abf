"""Use cases of the response loop (闭环处置): incidents from alarms, reports and people;
routing, deadlines and escalation on an explicit clock; the audit chain; citizen reports;
users and their rights; response metrics.

Every call takes the acting :class:`~rescity.respond.access.User` and the time
(``ts_ms``/``now_ms``, ms since the epoch UTC) explicitly, checks the user's rights before
it reads or writes, and writes each change as an event on the audit chain together with
the projections it changes, in one transaction.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import median
from typing import Any

from rescity.model import Jurisdiction, JurisdictionLevel
from rescity.model.geo import local_distance_m
from rescity.model.incident import Action, Incident, IncidentEvent, IncidentSource, Tier
from rescity.model.levels import WarningLevel
from rescity.respond import lifecycle
from rescity.respond.access import (
    SYSTEM,
    AccessDenied,
    Role,
    User,
    can_audit,
    can_create,
    can_read,
    check_act,
    check_read,
)
from rescity.respond.audit import Verdict, verify
from rescity.respond.credentials import AuthError, hash_password, verify_password
from rescity.respond.deadlines import due_times, overdue, pending_milestones
from rescity.respond.policy import Policy, expand_units, load_policy
from rescity.respond.routing import Router
from rescity.store.respond import ResponseStore, Tx, event_of

__all__ = ["AccessDenied", "AuthError", "Notification", "NotFound", "ResponseService"]


class NotFound(LookupError):
    """No such incident or report (or none the user may know of)."""


@dataclass(frozen=True, slots=True)
class Notification:
    """A message to a unit: dispatched to it, escalated to it, a deadline missed."""

    unit: str
    incident: str
    kind: str  # dispatched | escalated | deadline_missed
    ts_ms: int
    text: str
    text_zh: str


Notifier = Callable[[Notification], None]

_PLATFORM_ONLY = frozenset({Action.CREATE, Action.DEADLINE_MISSED, Action.ABSORB, Action.ADD_REPORT})
"""Actions only the platform takes (through open_incident, tick, merge and reports)."""

_TIER_ZH = {"street": "街镇", "district": "区县", "city": "市级", "specialist": "专业队伍"}
_MILESTONE_ZH = {"acknowledge": "响应", "arrive": "到场", "resolve": "处置完成"}


def _day(ts_ms: int) -> str:
    return dt.datetime.fromtimestamp(ts_ms / 1000, dt.UTC).strftime("%Y%m%d")


def user_from_row(row: Mapping[str, Any]) -> User:
    return User(username=row["username"], role=Role(row["role"]),
                jurisdictions=tuple(row.get("jurisdictions") or ()),
                networks=tuple(row.get("networks") or ()), unit=row.get("unit"),
                display_name=row.get("display_name") or "")


class ResponseService:
    """The response loop over a city store (``store``: :class:`rescity.store.Store`)."""

    def __init__(self, store: Any, policy: Policy | None = None,
                 jurisdictions: Sequence[Jurisdiction] | None = None) -> None:
        self.store = store
        self.rs = ResponseStore(store.engine)
        self.policy = policy or load_policy()
        js = list(jurisdictions) if jurisdictions is not None else store.get_jurisdictions()
        self.jurisdictions = {j.code: j for j in js}
        self.router = Router(self.policy, expand_units(self.policy, js))
        # alarms name networks; routing and rights speak of network types (gas, water, ...)
        self.network_types = {n["name"]: n["type"] for n in store.network_summaries()}
        self.notifiers: list[Notifier] = []
        self.outbox: list[Notification] = []

    # -- place ------------------------------------------------------------------------------
    def place_of(self, lon: float | None, lat: float | None,
                 code: str | None = None) -> dict[str, str | None]:
        """``{grid, street, district}`` codes of a point (or of a jurisdiction code)."""
        out: dict[str, str | None] = {"grid": None, "street": None, "district": None}
        if code is None and lon is not None and lat is not None:
            for level in (JurisdictionLevel.GRID, JurisdictionLevel.STREET, JurisdictionLevel.DISTRICT):
                code = self.store.jurisdiction_at(lon, lat, level)
                if code is not None:
                    break
        while code is not None:
            j = self.jurisdictions.get(code)
            if j is None:
                raise ValueError(f"unknown jurisdiction code {code!r}")
            out[j.level.value] = j.code
            code = j.parent
        return out

    # -- reading ----------------------------------------------------------------------------
    def _load(self, incident_id: str) -> Incident:
        events = self.rs.incident_events(incident_id)
        if not events:
            raise NotFound(f"no incident {incident_id!r}")
        return lifecycle.replay(events)

    def incident(self, user: User, incident_id: str) -> Incident:
        """One incident with its timeline; :class:`NotFound` if it does not exist or the
        user may not see it (a scoped user cannot learn what lies outside their scope)."""
        inc = self._load(incident_id)
        if not can_read(user, inc):
            raise NotFound(f"no incident {incident_id!r}")
        return inc

    def incidents(self, user: User, *, states: Sequence[str] | None = None,
                  open_only: bool = False, limit: int | None = None) -> list[Incident]:
        """The incidents the user may see, newest first."""
        if user.role in (Role.CITIZEN,):
            return []
        if open_only:
            states = [s.value for s in lifecycle.S if s.is_open]
        places = None
        if user.role in (Role.DISTRICT_OFFICER, Role.GRID_WORKER):
            places = list(user.jurisdictions)
        docs = self.rs.incident_docs(states=states, places=places)
        out = [lifecycle.incident_from_doc(d) for d in docs]
        out = [i for i in out if can_read(user, i)]
        return out[:limit] if limit is not None else out

    # -- writing ----------------------------------------------------------------------------
    def _notify(self, notes: Iterable[Notification]) -> None:
        """Record each notification on the audit chain (the unit's inbox: who was told
        what, when) and hand it to the notifiers (webhooks, SMS gateways, the dashboard)."""
        notes = list(notes)
        if not notes:
            return
        with self.rs.tx() as tx:
            for n in notes:
                tx.audit(ts_ms=n.ts_ms, actor=SYSTEM.username, action=f"notify_{n.kind}",
                         entity="notification", entity_id=n.unit,
                         data={"incident": n.incident, "text": n.text, "text_zh": n.text_zh})
        for n in notes:
            self.outbox.append(n)
            for f in self.notifiers:
                f(n)

    def notifications(self, user: User, *, limit: int = 200) -> list[dict[str, Any]]:
        """The notifications of the units the user answers for, newest first: an
        operator's unit; the units of a district officer's or grid worker's incidents;
        everything for commanders and auditors."""
        if user.role == Role.CITIZEN:
            return []
        out = []
        for rec in self.rs.audit_records(entity="notification"):
            if user.role == Role.OPERATOR and rec.entity_id != user.unit:
                continue
            out.append({"unit": rec.entity_id, "ts_ms": rec.ts_ms, "kind": rec.action.removeprefix("notify_"),
                        **rec.data})
        if user.role in (Role.DISTRICT_OFFICER, Role.GRID_WORKER):
            seen = {i.id for i in self.incidents(user)}
            out = [n for n in out if n["incident"] in seen]
        out.sort(key=lambda n: n["ts_ms"], reverse=True)
        return out[:limit]

    def _commit(self, tx: Tx, inc: Incident, events: Iterable[IncidentEvent]) -> Incident:
        for ev in events:
            inc = lifecycle.apply(inc, ev)
            tx.event(ev)
        tx.put_incident(inc)
        return inc

    def open_incident(self, user: User, *, title: str, type: str, level: int | str,
                      ts_ms: int, lon: float | None = None, lat: float | None = None,
                      jurisdiction: str | None = None, network: str | None = None,
                      asset: str | None = None, owner: str | None = None,
                      source: IncidentSource | str = IncidentSource.MANUAL,
                      description: str = "", title_zh: str | None = None,
                      alarm_ids: Sequence[str] = (), models: Sequence[str] = (),
                      alarm_groups: Sequence[str] = (), reporter: str | None = None, report_refs: Sequence[str] = (),
                      dispatch: bool = False) -> Incident:
        """Open an incident at a place (a point or a jurisdiction code). With
        ``dispatch`` it is verified and routed at once (alarm rules, the command centre)."""
        if lon is not None and not (-180 <= lon <= 180 and -90 <= (lat or 0) <= 90):
            raise ValueError(f"lon/lat out of range: {lon}, {lat}")
        if (lon is None) != (lat is None):
            raise ValueError("give both lon and lat, or neither")
        place = self.place_of(lon, lat, jurisdiction)
        codes = tuple(c for c in (place["grid"], place["street"], place["district"]) if c)
        if not codes:
            raise ValueError("the incident's place is outside every jurisdiction of the city")
        if not can_create(user, codes, network):
            raise AccessDenied(f"{user.username} ({user.role.value}) may not open an incident "
                               f"at {', '.join(codes)}" + (f" on {network}" if network else ""))
        lvl = int(WarningLevel.parse(level))
        data: dict[str, Any] = {
            "title": title, "type": type, "level": lvl, "source": IncidentSource(source).value,
            "lon": lon, "lat": lat, **place, "network": network, "asset": asset, "owner": owner,
            "description": description, "title_zh": title_zh, "alarm_ids": list(alarm_ids),
            "alarm_groups": list(alarm_groups),
            "models": list(models), "reporter": reporter, "report_refs": list(report_refs),
        }
        if lvl:
            data["due"] = due_times(self.policy, lvl, ts_ms, ("acknowledge",), type)
        with self.rs.tx() as tx:
            prefix = f"INC-{_day(ts_ms)}-"
            iid = f"{prefix}{tx.count_with_prefix('incident', prefix) + 1:04d}"
            ev = lifecycle.open_incident(iid, ts_ms, user.username, data)
            inc = lifecycle.apply(None, ev)
            tx.event(ev)
            tx.put_incident(inc)
            if dispatch:
                inc, notes = self._dispatch_events(tx, inc, user, ts_ms, verify=True)
            else:
                notes = []
        self._notify(notes)
        return inc

    def _dispatch_events(self, tx: Tx, inc: Incident, user: User, ts_ms: int, *,
                         units: Sequence[str] | None = None, verify: bool = False,
                         note: str = "") -> tuple[Incident, list[Notification]]:
        evs: list[IncidentEvent] = []
        if verify:
            ev = lifecycle.decide(inc, Action.VERIFY, user.username, ts_ms, {"note": "auto"})
            inc = lifecycle.apply(inc, ev)
            tx.event(ev)
        route = None
        if not units:
            a = self.router.route(inc)
            units, route = list(a.units), a.route
        unknown = [u for u in units if u not in self.router.units]
        if unknown:
            raise ValueError(f"unknown unit(s): {', '.join(unknown)}")
        due = due_times(self.policy, inc.level, ts_ms, incident_type=inc.type)
        ev = lifecycle.decide(inc, Action.DISPATCH, user.username, ts_ms,
                              {"units": list(units), "route": route, "due": due, "note": note})
        evs.append(ev)
        inc = self._commit(tx, inc, evs)
        notes = [Notification(u, inc.id, "dispatched", ts_ms,
                              f"Incident {inc.id} ({WarningLevel(inc.level).colour}): {inc.title}",
                              f"事件 {inc.id}（{WarningLevel(inc.level).label_zh}）：{inc.title_zh or inc.title}")
                 for u in units]
        return inc, notes

    def act(self, user: User, incident_id: str, action: Action | str, ts_ms: int,
            data: Mapping[str, Any] | None = None) -> Incident:
        """``user`` does ``action`` to the incident at ``ts_ms`` (see
        :data:`rescity.respond.lifecycle.TRANSITIONS`). ``dispatch`` without ``units``
        routes by the policy; ``merge`` needs ``into`` (another incident the user may act
        on); ``link`` links both ways."""
        try:
            act = Action(action)
        except ValueError:
            raise lifecycle.IllegalTransition(f"unknown action {action!r}") from None
        if act in _PLATFORM_ONLY:
            raise lifecycle.IllegalTransition(f"{act.value} is done by the platform, not by hand")
        inc = self.incident(user, incident_id)
        check_act(user, inc, act)
        d = dict(data or {})
        if act == Action.ACCEPT and user.role == Role.OPERATOR:
            d["unit"] = user.unit
        notes: list[Notification] = []
        with self.rs.tx() as tx:
            if act == Action.DISPATCH:
                inc, notes = self._dispatch_events(tx, inc, user, ts_ms,
                                                   units=list(d.get("units") or []),
                                                   note=str(d.get("note", "")))
                out = inc
            elif act == Action.ESCALATE:
                out, notes = self._escalate(tx, inc, user.username, ts_ms, str(d.get("reason", "by hand")),
                                            Tier(d["tier"]) if d.get("tier") else None)
            elif act in (Action.MERGE, Action.LINK):
                other_id = str(d.get("into") if act == Action.MERGE else d.get("other") or "")
                other = self.incident(user, other_id)
                check_act(user, other, act)
                ev = lifecycle.decide(inc, act, user.username, ts_ms, d)
                out = self._commit(tx, inc, [ev])
                if act == Action.MERGE:
                    back = lifecycle.decide(other, Action.ABSORB, user.username, ts_ms, {
                        "other": inc.id, "alarm_ids": inc.alarm_ids, "models": inc.models,
                        "report_refs": inc.report_refs})
                else:
                    back = lifecycle.decide(other, Action.LINK, user.username, ts_ms, {"other": inc.id})
                self._commit(tx, other, [back])
                if act == Action.MERGE:
                    for ref in inc.report_refs:
                        self._move_report(tx, ref, other.id)
            else:
                if act in (Action.SET_LEVEL,):
                    lvl = int(WarningLevel.parse(d["level"]))
                    if inc.dispatched_ms is not None:
                        d["due"] = {m: v for m, v in due_times(self.policy, lvl, ts_ms,
                                                               incident_type=inc.type).items()
                                    if m in pending_milestones(inc)}
                if act == Action.REOPEN:
                    d["due"] = due_times(self.policy, inc.level, ts_ms, ("acknowledge",), inc.type)
                if act == Action.REJECT:
                    d["due"] = due_times(self.policy, inc.level, ts_ms, ("resolve",), inc.type)
                ev = lifecycle.decide(inc, act, user.username, ts_ms, d)
                out = self._commit(tx, inc, [ev])
        self._notify(notes)
        return out

    def _move_report(self, tx: Tx, ref: str, incident_id: str) -> None:
        row = self.rs.report(ref)
        if row is not None:
            tx.put_report(ref, row["username"], incident_id, row["category"], row["created_ms"],
                          {**row["doc"], "incident": incident_id})

    def _escalate(self, tx: Tx, inc: Incident, actor: str, ts_ms: int, reason: str,
                  tier: Tier | None = None) -> tuple[Incident, list[Notification]]:
        nxt = tier or inc.tier.next
        if nxt is None:
            raise lifecycle.IllegalTransition(f"incident {inc.id} is already at the top tier")
        units = list(self.router.escalation(inc, nxt))
        due = due_times(self.policy, inc.level, ts_ms, pending_milestones(inc), inc.type)
        ev = lifecycle.decide(inc, Action.ESCALATE, actor, ts_ms,
                              {"tier": nxt.value, "units": units, "due": due, "reason": reason})
        out = self._commit(tx, inc, [ev])
        notes = [Notification(u, inc.id, "escalated", ts_ms,
                              f"Incident {inc.id} escalated to the {nxt.value} tier: {reason}",
                              f"事件 {inc.id} 已升级至{_TIER_ZH[nxt.value]}：{reason}")
                 for u in out.units]
        return out, notes

    def tick(self, now_ms: int) -> list[IncidentEvent]:
        """Check every open incident's deadlines at ``now_ms``: record each missed
        milestone and escalate one tier (once per tick and incident). Returns the events."""
        out: list[IncidentEvent] = []
        notes: list[Notification] = []
        for doc in self.rs.incident_docs(due_by_ms=now_ms):
            light = lifecycle.incident_from_doc(doc)
            late = overdue(light, now_ms)
            if not late:
                continue
            inc = self._load(light.id)
            with self.rs.tx() as tx:
                n0 = len(inc.timeline)
                for m in late:
                    ev = lifecycle.decide(inc, Action.DEADLINE_MISSED, SYSTEM.username, now_ms,
                                          {"milestone": m, "due_ms": inc.due[m]})
                    inc = self._commit(tx, inc, [ev])
                    if inc.tier.next is None:
                        notes.extend(Notification(u, inc.id, "deadline_missed", now_ms,
                                                  f"Incident {inc.id}: the {m} deadline passed",
                                                  f"事件 {inc.id}：{_MILESTONE_ZH[m]}时限已过")
                                     for u in inc.units)
                if inc.tier.next is not None:
                    inc, more = self._escalate(tx, inc, SYSTEM.username, now_ms,
                                               f"{late[0]} deadline missed at the {inc.tier.value} tier")
                    notes.extend(more)
                out.extend(inc.timeline[n0:])
        self._notify(notes)
        return out

    # -- from alarms ------------------------------------------------------------------------
    def from_alarm_group(self, *, group_id: str, alarms: Sequence[Mapping[str, Any]],
                         ts_ms: int) -> Incident | None:
        """Open (or update) the incident of an alarm group (an incident candidate of the
        alarm book). ``alarms``: dicts with id, model, asset, network, level, lon, lat.
        Groups less severe than the policy's ``auto_incident_level`` open nothing; a group
        that already has an incident adds its new alarms and raises its level; a group whose
        incident is closed opens another only when a new alarm joins or it becomes more
        severe than that incident was (the same alarms still firing, or easing, are the
        closed incident's, not a new one)."""
        if not alarms:
            return None
        head = min(alarms, key=lambda a: (int(a["level"]), str(a["id"])))
        itype, cap = self.policy.incident_type(str(head["model"]))
        level = min(int(a["level"]) for a in alarms if int(a["level"]) > 0)
        if cap is not None:
            level = max(level, cap)
        ids = [str(a["id"]) for a in alarms]
        models = sorted({str(a["model"]) for a in alarms})
        cand = self.rs.incidents_by_key("group", [group_id]) + self.rs.incidents_by_key("alarm", ids)
        existing = sorted(self.rs.incident_docs(ids=sorted(set(cand)),
                                                states=[s.value for s in lifecycle.S if s.is_open]),
                          key=lambda d: d["created_ms"])
        if existing:
            inc = self._load(existing[0]["id"])
            new = [i for i in ids if i not in inc.alarm_ids]
            with self.rs.tx() as tx:
                if new:
                    inc = self._commit(tx, inc, [lifecycle.decide(
                        inc, Action.ADD_ALARMS, SYSTEM.username, ts_ms,
                        {"alarms": new, "models": models, "group": group_id})])
                if level < inc.level:
                    inc = self._commit(tx, inc, [lifecycle.decide(
                        inc, Action.SET_LEVEL, SYSTEM.username, ts_ms, {"level": level})])
            return inc
        if cand:
            # the group's incident was closed while its alarms still fire: a new incident only
            # if a new alarm joined or the group got more severe than that incident was
            done = max(self.rs.incident_docs(ids=sorted(set(cand))), key=lambda d: d["created_ms"], default=None)
            if done is not None and set(ids) <= set(done["alarm_ids"]) and level >= int(done["level"]):
                return None
        if cap is None and level > self.policy.auto_incident_level:
            return None  # (a type rule with a level always opens its incident)
        networks = sorted({self.network_types.get(str(a["network"]), str(a["network"]))
                           for a in alarms if a.get("network")})
        head_net = self.network_types.get(str(head.get("network")), head.get("network"))
        colour = WarningLevel(level)
        more = f" (+{len(alarms) - 1} alarms)" if len(alarms) > 1 else ""
        title = f"{itype.replace('_', ' ').capitalize()} at {head.get('asset')}: {head['model']}{more}"
        return self.open_incident(
            SYSTEM, title=title, title_zh=f"{colour.label_zh}预警：{head.get('asset')}（{head['model']}）",
            type=itype, level=level, ts_ms=ts_ms,
            lon=head.get("lon"), lat=head.get("lat"), network=head_net or (networks[0] if networks else None),
            asset=head.get("asset"), source=IncidentSource.ALARM, alarm_ids=ids, models=models,
            alarm_groups=[group_id],
            description=f"alarm group {group_id}: " + ", ".join(f"{a['model']}@{a['asset']}" for a in alarms),
            dispatch=True)

    # -- citizen reports (12345) ------------------------------------------------------------
    def file_report(self, user: User, *, text: str, category: str, lon: float, lat: float,
                    contact: str = "", ts_ms: int) -> dict[str, Any]:
        """A citizen's report: joins an open incident of the same category nearby (within
        ``report_dedup_m`` metres and ``report_dedup_s`` seconds) or opens a new one.
        Returns the report (its ``ref`` is what the citizen follows)."""
        if not text.strip():
            raise ValueError("text: a report needs a description")
        if not category.strip():
            raise ValueError("category: a report needs a category")
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise ValueError(f"lon/lat out of range: {lon}, {lat}")
        place = self.place_of(lon, lat)
        if not any(place.values()):
            raise ValueError("the reported place is outside every jurisdiction of the city")
        pol = self.policy
        near = None
        dlat = pol.report_dedup_m / 111_132.0
        dlon = dlat / max(0.01, math.cos(math.radians(lat)))
        for d in self.rs.incident_docs(states=[s.value for s in lifecycle.S if s.is_open],
                                       types=[category], bbox=(lon - dlon, lat - dlat, lon + dlon, lat + dlat)):
            if ts_ms - int(d["created_ms"]) > pol.report_dedup_s * 1000:
                continue
            dist = local_distance_m(lon, lat, float(d["lon"]), float(d["lat"]))
            if dist <= pol.report_dedup_m and (near is None or dist < near[0]):
                near = (dist, d["id"])
        with self.rs.tx() as tx:
            prefix = f"R{_day(ts_ms)}"
            ref = f"{prefix}{tx.count_with_prefix('report', prefix) + 1:05d}"
        if near is None:
            inc = self.open_incident(SYSTEM, title=f"Citizen report: {category}",
                                     title_zh=f"市民报告：{category}", type=category, level=4,
                                     ts_ms=ts_ms, lon=lon, lat=lat, source=IncidentSource.CITIZEN,
                                     description=text, reporter=user.username, report_refs=[ref])
            joined = False
        else:
            inc = self._load(near[1])
            joined = True
        doc = {"ref": ref, "text": text, "category": category, "lon": lon, "lat": lat,
               "contact": contact, "created_ms": ts_ms, "incident": inc.id, "joined": joined}
        with self.rs.tx() as tx:
            tx.audit(ts_ms=ts_ms, actor=user.username, action="file_report", entity="report",
                     entity_id=ref, after=doc)
            if joined:
                self._commit(tx, inc, [lifecycle.decide(inc, Action.ADD_REPORT, SYSTEM.username,
                                                        max(ts_ms, inc.updated_ms), {"ref": ref})])
            tx.put_report(ref, user.username, inc.id, category, ts_ms, doc)
        return self.report(user, ref)

    def report(self, user: User, ref: str) -> dict[str, Any]:
        """A report as its citizen follows it: status and the replies addressed to it.
        A citizen sees only their own reports; staff the reports of incidents they see."""
        row = self.rs.report(ref)
        if row is None:
            raise NotFound(f"no report {ref!r}")
        inc = self._load(row["incident_id"])
        if user.role == Role.CITIZEN:
            if row["username"] != user.username:
                raise NotFound(f"no report {ref!r}")
        elif not can_read(user, inc):
            raise NotFound(f"no report {ref!r}")
        d = row["doc"]
        replies = [r for r in inc.replies if r.get("to") in (None, ref)]
        status = inc.state.value
        return {"ref": ref, "category": d["category"], "text": d["text"], "lon": d["lon"],
                "lat": d["lat"], "created_ms": d["created_ms"], "status": status,
                "status_zh": inc.state.label_zh, "replies": replies,
                **({"incident": inc.id, "contact": d.get("contact"), "username": row["username"]}
                   if user.role != Role.CITIZEN else {})}

    def my_reports(self, user: User) -> list[dict[str, Any]]:
        return [self.report(user, r["ref"]) for r in self.rs.reports(username=user.username)]

    # -- users ------------------------------------------------------------------------------
    def add_user(self, by: User, *, username: str, role: Role | str, password: str,
                 jurisdictions: Sequence[str] = (), networks: Sequence[str] = (),
                 unit: str | None = None, display_name: str = "", ts_ms: int) -> User:
        """Create or update an account (commanders only; citizens may register themselves
        as citizens)."""
        r = Role(role)
        if by.role != Role.COMMANDER and not (r == Role.CITIZEN and by.username == username):
            raise AccessDenied(f"{by.username} ({by.role.value}) may not manage accounts")
        if not username or len(username) > 100 or any(c.isspace() for c in username):
            raise ValueError("username: 1-100 characters, no spaces")
        for c in jurisdictions:
            if c not in self.jurisdictions:
                raise ValueError(f"jurisdictions: unknown code {c!r}")
        if r in (Role.DISTRICT_OFFICER, Role.GRID_WORKER) and not jurisdictions:
            raise ValueError(f"jurisdictions: a {r.value} needs at least one jurisdiction")
        if r == Role.OPERATOR and not (networks or unit):
            raise ValueError("an operator needs networks or a unit")
        if unit is not None and unit not in self.router.units:
            raise ValueError(f"unit: unknown unit {unit!r}")
        row = {"username": username, "role": r.value, "jurisdictions": list(jurisdictions),
               "networks": list(networks), "unit": unit, "display_name": display_name or username,
               "password_hash": hash_password(password), "created_ms": ts_ms, "disabled": False}
        before = self.rs.user_row(username)
        with self.rs.tx() as tx:
            public = {k: v for k, v in row.items() if k != "password_hash"}
            tx.audit(ts_ms=ts_ms, actor=by.username, action="put_user", entity="user",
                     entity_id=username,
                     before=None if before is None else {k: v for k, v in before.items() if k != "password_hash"},
                     after=public)
            tx.put_user(row)
        return user_from_row(row)

    def user(self, username: str) -> User | None:
        row = self.rs.user_row(username)
        return None if row is None or row["disabled"] else user_from_row(row)

    def authenticate(self, username: str, password: str) -> User:
        row = self.rs.user_row(username)
        if row is None or row["disabled"] or not verify_password(password, row["password_hash"]):
            raise AuthError("wrong username or password")
        return user_from_row(row)

    # -- audit ------------------------------------------------------------------------------
    def _events_by_incident(self) -> dict[str, list[IncidentEvent]]:
        """Every incident's events from the chain, in order (one pass over the log)."""
        events: dict[str, list[IncidentEvent]] = {}
        for rec in self.rs.audit_records(entity="incident"):
            events.setdefault(rec.entity_id, []).append(event_of(rec))
        return events

    def verify_audit(self, user: User = SYSTEM) -> Verdict:
        """Check the chain (:func:`rescity.respond.audit.verify`) and that every incident
        row agrees with the fold of its events (an incident edited in its table, not
        through the chain, is caught here)."""
        if not can_audit(user):
            raise AccessDenied(f"{user.username} ({user.role.value}) may not verify the audit chain")
        verdict = verify(self.rs.audit_records(), head=self.rs.head())
        if not verdict.ok:
            return verdict
        events = self._events_by_incident()
        rows = {r["id"]: r for r in self.rs.incident_rows()}
        for iid in sorted(set(rows) | set(events)):
            if iid not in events:
                return Verdict(False, verdict.records, None,
                               f"incident {iid} has a row but no events in the chain")
            if iid not in rows:
                return Verdict(False, verdict.records, None, f"incident {iid} has events but no row")
            want = lifecycle.incident_to_doc(lifecycle.replay(events[iid]), timeline=False)
            row = rows[iid]
            for key in ("state", "level", "tier", "units", "district", "street", "grid", "network"):
                for where, got in (("row", row.get(key, want[key])), ("document", row["doc"].get(key))):
                    if want[key] != got:
                        return Verdict(False, verdict.records, None,
                                       f"incident {iid}: {key} is {got!r} in its {where} but "
                                       f"{want[key]!r} by its events (the {where} was edited)")
        return verdict

    def audit_trail(self, user: User, incident_id: str) -> list[dict[str, Any]]:
        inc = self.incident(user, incident_id)
        check_read(user, inc)
        return [r.content() | {"hash": r.hash, "prev_hash": r.prev_hash}
                for r in self.rs.audit_records(entity="incident", entity_id=incident_id)]

    # -- metrics ----------------------------------------------------------------------------
    def metrics(self, user: User) -> dict[str, Any]:
        """Per unit and per warning model: incidents, median and mean seconds to
        acknowledge (dispatch -> accept), arrive (dispatch -> on site) and resolve
        (dispatch -> resolved); per model the share dismissed as false alarms —
        the feedback a city uses to tune its models. Over the incidents the user sees."""
        events = self._events_by_incident()
        incs = [i for i in (lifecycle.replay(evs) for evs in events.values()) if can_read(user, i)]
        return {"units": _unit_metrics(incs), "models": _model_metrics(incs),
                "incidents": len(incs)}


def _summ(xs: list[float]) -> dict[str, float | None]:
    return {"median_s": median(xs) if xs else None, "mean_s": sum(xs) / len(xs) if xs else None,
            "n": len(xs)}


def _unit_metrics(incs: Sequence[Incident]) -> dict[str, Any]:
    per: dict[str, dict[str, list[float]]] = {}
    for inc in incs:
        t0: dict[str, int] = {}
        acc: dict[str, int] = {}
        for ev in inc.timeline:
            if ev.action in (Action.DISPATCH, Action.ESCALATE):
                for u in ev.data.get("units", []):
                    t0.setdefault(u, ev.ts_ms)
            elif ev.action == Action.ACCEPT:
                acc.setdefault(str(ev.data.get("unit") or ev.actor), ev.ts_ms)
        for u, start in t0.items():
            m = per.setdefault(u, {"acknowledge": [], "arrive": [], "resolve": [], "n": []})
            m["n"].append(1)
            if u in acc:
                m["acknowledge"].append((acc[u] - start) / 1000)
            if inc.arrived_ms is not None and inc.arrived_ms >= start:
                m["arrive"].append((inc.arrived_ms - start) / 1000)
            if inc.resolved_ms is not None and inc.resolved_ms >= start:
                m["resolve"].append((inc.resolved_ms - start) / 1000)
    return {u: {"incidents": len(m["n"]), "acknowledge": _summ(m["acknowledge"]),
                "arrive": _summ(m["arrive"]), "resolve": _summ(m["resolve"])}
            for u, m in sorted(per.items())}


def _model_metrics(incs: Sequence[Incident]) -> dict[str, Any]:
    per: dict[str, dict[str, Any]] = {}
    for inc in incs:
        for model in inc.models:
            m = per.setdefault(model, {"incidents": 0, "false_alarms": 0, "decided": 0,
                                       "acknowledge": [], "arrive": [], "resolve": []})
            m["incidents"] += 1
            if inc.false_alarm:
                m["false_alarms"] += 1
            if inc.false_alarm or inc.resolved_ms is not None:
                m["decided"] += 1
            if inc.dispatched_ms is not None:
                for key, t in (("acknowledge", inc.accepted_ms), ("arrive", inc.arrived_ms),
                               ("resolve", inc.resolved_ms)):
                    if t is not None:
                        m[key].append((t - inc.dispatched_ms) / 1000)
    return {k: {"incidents": m["incidents"], "false_alarms": m["false_alarms"],
                "false_alarm_share": (m["false_alarms"] / m["decided"]) if m["decided"] else None,
                "acknowledge": _summ(m["acknowledge"]), "arrive": _summ(m["arrive"]),
                "resolve": _summ(m["resolve"])}
            for k, m in sorted(per.items())}

