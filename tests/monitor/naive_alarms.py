"""The alarm book as it was before indexing (quadratic inhibition, linear scans over all
alarms and incidents), kept verbatim as the reference the indexed book must equal."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any, Protocol

from rescity.monitor.engine import Transition, TransitionKind
from rescity.monitor.specs import GroupingRule, InhibitRule, SilenceRule

if TYPE_CHECKING:
    from rescity.model import City, JurisdictionLevel

__all__ = [
    "Alarm",
    "AlarmBook",
    "AlarmEvent",
    "AlarmSink",
    "AlarmState",
    "EventKind",
    "IllegalTransition",
    "IncidentCandidate",
    "city_locator",
]


class AlarmState(StrEnum):
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


class EventKind(StrEnum):
    OPENED = "opened"  # a new alarm, pending or firing (details: identity, place, state)
    FIRED = "fired"  # pending -> firing
    ESCALATED = "escalated"  # more severe level (smaller level number)
    DEESCALATED = "deescalated"
    UPDATED = "updated"  # same level; value or details changed (a cluster's members)
    RESOLVED = "resolved"  # condition ended, or cleared by a person (details: by)
    REOPENED = "reopened"  # resolved -> pending/firing within the reopen window
    ACKNOWLEDGED = "acknowledged"  # details: by, note
    MUTED = "muted"  # details: reason ("silence:<id>", "maintenance:<id>", "inhibit:<alarm id>")
    UNMUTED = "unmuted"
    GROUPED = "grouped"  # joined an incident candidate (details: incident, new)
    SILENCE_ADDED = "silence_added"  # book-level (alarm_id ""): details: the rule
    SILENCE_REMOVED = "silence_removed"  # book-level: details: id


class IllegalTransition(ValueError):
    """A request the lifecycle refuses (acknowledge a resolved alarm, twice, ...)."""


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """One change of one alarm (``alarm_id`` is ``""`` for book-level events)."""

    alarm_id: str
    ts_ms: int
    kind: EventKind
    level_before: int
    level_after: int
    value: float
    details: dict[str, Any] = field(default_factory=dict)
    model: str = ""
    asset: str = ""


class AlarmSink(Protocol):
    """Where events go (the lead persists them): called once per batch of events."""

    def __call__(self, events: list[AlarmEvent]) -> None: ...


@dataclass
class Alarm:
    """Current state of one alarm (derived from its events)."""

    id: str
    model: str
    asset: str
    sensor: str
    network: str
    lon: float
    lat: float
    jurisdiction: str | None
    state: AlarmState
    level: int  # national: 1 red .. 4 blue
    value: float
    opened_ms: int
    updated_ms: int
    fired_ms: int | None = None
    resolved_ms: int | None = None
    acknowledged_by: str | None = None
    acknowledged_ms: int | None = None
    muted_by: set[str] = field(default_factory=set)
    incident: str | None = None
    sources: dict[str, list[Any]] = field(default_factory=dict)  # sensor -> [state, severity]
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return (self.model, self.asset)

    @property
    def is_open(self) -> bool:
        return self.state != AlarmState.RESOLVED

    @property
    def muted(self) -> bool:
        return bool(self.muted_by)

    @property
    def severity(self) -> int:
        return 0 if self.level == 0 else 5 - self.level


@dataclass
class IncidentCandidate:
    """Firing alarms folded together by place, time and network (a lead for ``respond``)."""

    id: str
    alarm_ids: list[str]
    networks: set[str]
    jurisdictions: set[str]
    first_ms: int
    last_ms: int
    level: int  # most severe member level at grouping time (national)


def _sev(level: int) -> int:
    return 0 if level == 0 else 5 - level


def _lvl(sev: int) -> int:
    return 0 if sev == 0 else 5 - sev


def _dist_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    k = math.pi / 180.0
    x = (lon2 - lon1) * k * math.cos((lat1 + lat2) / 2.0 * k)
    y = (lat2 - lat1) * k
    return 6371008.8 * math.hypot(x, y)


class AlarmBook:
    """The alarms of a deployment, their incident candidates, silences and inhibitions.

    ``inhibit``/``grouping``: policy (usually ``Catalogue.inhibit`` / ``Catalogue.grouping``);
    ``sink``: receives each batch of new events; ``locate(lon, lat) -> jurisdiction code``
    (see :func:`city_locator`); ``downstream(asset) -> assets`` for ``downstream``
    inhibition scopes; ``reopen_window_s``: a trigger this soon after resolution reopens
    the alarm instead of opening a new one.
    """

    def __init__(self, *, inhibit: Iterable[InhibitRule] = (), grouping: GroupingRule | None = None,
                 sink: AlarmSink | None = None, locate: Callable[[float, float], str | None] | None = None,
                 downstream: Callable[[str], set[str]] | None = None, reopen_window_s: float = 600.0) -> None:
        self.inhibit = list(inhibit)
        self.grouping = grouping or GroupingRule()
        self.sink = sink
        self.locate = locate
        self.downstream = downstream
        self.reopen_ms = int(round(reopen_window_s * 1000))
        self.events: list[AlarmEvent] = []
        self.alarms: dict[str, Alarm] = {}
        self.latest: dict[tuple[str, str], str] = {}  # key -> id of its latest alarm
        self.silences: dict[str, SilenceRule] = {}
        self.incidents: dict[str, IncidentCandidate] = {}
        self.stats = {"ignored": 0}
        self._pending_out: list[AlarmEvent] = []
        self._replaying = False

    # -- queries -------------------------------------------------------------------------------------
    def get(self, alarm_id: str) -> Alarm:
        try:
            return self.alarms[alarm_id]
        except KeyError:
            raise IllegalTransition(f"no alarm {alarm_id!r}") from None

    def open_alarm(self, model: str, asset: str) -> Alarm | None:
        """The open alarm of ``(model, asset)``, if any."""
        aid = self.latest.get((model, asset))
        a = self.alarms.get(aid) if aid else None
        return a if a is not None and a.is_open else None

    def open_alarms(self) -> list[Alarm]:
        return [a for a in self.alarms.values() if a.is_open]

    # -- event plumbing --------------------------------------------------------------------------------
    def _emit(self, alarm_id: str, ts: int, kind: EventKind, before: int, after: int, value: float,
              details: dict[str, Any], model: str = "", asset: str = "") -> AlarmEvent:
        ev = AlarmEvent(alarm_id, int(ts), kind, before, after, float(value), details, model, asset)
        self._apply(ev)
        self.events.append(ev)
        self._pending_out.append(ev)
        return ev

    def _flush(self) -> list[AlarmEvent]:
        out, self._pending_out = self._pending_out, []
        if out and self.sink is not None:
            self.sink(out)
        return out

    def _apply(self, ev: AlarmEvent) -> None:
        """The one place state changes: apply an event (also used to restore)."""
        d = ev.details
        k = ev.kind
        if k == EventKind.SILENCE_ADDED:
            rule = SilenceRule.model_validate(d["rule"])
            self.silences[rule.id] = rule
            return
        if k == EventKind.SILENCE_REMOVED:
            self.silences.pop(d["id"], None)
            return
        if k == EventKind.OPENED:
            a = Alarm(id=ev.alarm_id, model=ev.model, asset=ev.asset, sensor=d.get("sensor", ""),
                      network=d.get("network", ""), lon=float(d.get("lon", math.nan)),
                      lat=float(d.get("lat", math.nan)), jurisdiction=d.get("jurisdiction"),
                      state=AlarmState(d["state"]), level=ev.level_after, value=ev.value,
                      opened_ms=ev.ts_ms, updated_ms=ev.ts_ms)
            if a.state == AlarmState.FIRING:
                a.fired_ms = ev.ts_ms
            self.alarms[a.id] = a
            self.latest[a.key] = a.id
        a = self.alarms[ev.alarm_id]
        a.updated_ms = ev.ts_ms
        if "sources" in d:
            a.sources = {s: list(v) for s, v in d["sources"].items()}
        if "extra" in d:
            a.details = dict(d["extra"])
        if k in (EventKind.FIRED, EventKind.ESCALATED, EventKind.DEESCALATED, EventKind.UPDATED,
                 EventKind.REOPENED):
            a.level = ev.level_after
            a.value = ev.value
        if k == EventKind.FIRED:
            a.state = AlarmState.FIRING
            a.fired_ms = ev.ts_ms
        elif k == EventKind.REOPENED:
            a.state = AlarmState(d["state"])
            a.resolved_ms = None
            a.acknowledged_by = a.acknowledged_ms = None
            if a.state == AlarmState.FIRING:
                a.fired_ms = ev.ts_ms
        elif k == EventKind.ESCALATED:
            if d.get("ack_cleared"):
                a.acknowledged_by = a.acknowledged_ms = None
        elif k == EventKind.RESOLVED:
            a.state = AlarmState.RESOLVED
            a.resolved_ms = ev.ts_ms
            a.sources = {}
            a.muted_by = set()
        elif k == EventKind.ACKNOWLEDGED:
            a.acknowledged_by = d.get("by", "")
            a.acknowledged_ms = ev.ts_ms
        elif k == EventKind.MUTED:
            a.muted_by.add(d["reason"])
        elif k == EventKind.UNMUTED:
            a.muted_by.discard(d["reason"])
        elif k == EventKind.GROUPED:
            inc_id = d["incident"]
            inc = self.incidents.get(inc_id)
            if inc is None:
                inc = IncidentCandidate(inc_id, [], set(), set(), ev.ts_ms, ev.ts_ms, a.level)
                self.incidents[inc_id] = inc
            inc.alarm_ids.append(a.id)
            inc.networks.add(a.network)
            if a.jurisdiction:
                inc.jurisdictions.add(a.jurisdiction)
            inc.last_ms = max(inc.last_ms, ev.ts_ms)
            inc.level = _lvl(max(_sev(inc.level), a.severity))
            a.incident = inc_id

    # -- engine transitions ------------------------------------------------------------------------------
    def ingest(self, transitions: Iterable[Transition]) -> list[AlarmEvent]:
        """Apply the engine's transitions (in time order); returns the new events.

        A transition for a (model, asset) with no open alarm opens one only if it starts a
        condition (pending / firing); others are ignored (counted in ``stats["ignored"]``)."""
        last_ts: int | None = None
        sources = {r.source for r in self.inhibit}
        for tr in sorted(transitions, key=lambda t: t.ts_ms):
            self._transition(tr)
            last_ts = tr.ts_ms
            if tr.model in sources:  # an inhibiting alarm changed: re-check its targets now
                targets = {r.target for r in self.inhibit if r.source == tr.model}
                for a in sorted(self.open_alarms(), key=lambda a: a.id):
                    if a.model in targets:
                        self._mute_check(a, tr.ts_ms)
        if last_ts is not None:
            self._refresh(last_ts)
        return self._flush()

    def _transition(self, tr: Transition) -> None:
        a = self.open_alarm(tr.model, tr.asset)
        sources = {s: list(v) for s, v in a.sources.items()} if a else {}
        sev = _sev(tr.level_after)
        if tr.kind == TransitionKind.RESOLVED:
            sources.pop(tr.sensor, None)
        elif tr.kind == TransitionKind.PENDING:
            sources[tr.sensor] = ["pending", sev]
        elif tr.kind == TransitionKind.FIRING:
            sources[tr.sensor] = ["firing", sev]
        elif tr.sensor in sources:
            sources[tr.sensor][1] = sev
        elif a is None:
            self.stats["ignored"] += 1
            return
        else:  # a level / update for a source the alarm does not know: take it as pending
            sources[tr.sensor] = ["pending", sev]
        firing = [s for st, s in sources.values() if st == "firing"]
        if sources:
            # an alarm that fired stays firing while any of its sources is active
            if firing or (a is not None and a.state == AlarmState.FIRING):
                state = AlarmState.FIRING
                level = _lvl(max(firing) if firing else max(s for _, s in sources.values()))
            else:
                state = AlarmState.PENDING
                level = _lvl(max(s for _, s in sources.values()))
        else:
            state, level = AlarmState.RESOLVED, 0
        extra = dict(tr.details) if tr.details else None
        base = {"sources": sources, "sensor": tr.sensor, "reading": tr.reading}
        if extra is not None:
            base["extra"] = extra
        if a is None:
            if state == AlarmState.RESOLVED:
                self.stats["ignored"] += 1
                return
            prev_id = self.latest.get(tr.key)
            prev = self.alarms.get(prev_id) if prev_id else None
            if prev is not None and prev.resolved_ms is not None and tr.ts_ms - prev.resolved_ms <= self.reopen_ms:
                self._emit(prev.id, tr.ts_ms, EventKind.REOPENED, 0, level, tr.value,
                           {**base, "state": state.value}, tr.model, tr.asset)
                a = prev
            else:
                aid = f"{tr.model}@{tr.asset}@{tr.ts_ms}"
                n = 1
                while aid in self.alarms:
                    n += 1
                    aid = f"{tr.model}@{tr.asset}@{tr.ts_ms}#{n}"
                juris = self.locate(tr.lon, tr.lat) if self.locate and tr.lon == tr.lon else None
                self._emit(aid, tr.ts_ms, EventKind.OPENED, 0, level, tr.value,
                           {**base, "state": state.value, "network": tr.network, "lon": tr.lon,
                            "lat": tr.lat, "jurisdiction": juris}, tr.model, tr.asset)
                a = self.alarms[aid]
            self._mute_check(a, tr.ts_ms)
            if a.state == AlarmState.FIRING:
                self._group(a, tr.ts_ms)
            return
        before = a.level
        if state == AlarmState.RESOLVED:
            self._emit(a.id, tr.ts_ms, EventKind.RESOLVED, before, 0, tr.value,
                       {**base, "was": a.state.value}, a.model, a.asset)
            return
        if state == AlarmState.FIRING and a.state == AlarmState.PENDING:
            self._emit(a.id, tr.ts_ms, EventKind.FIRED, before, level, tr.value, base, a.model, a.asset)
            self._group(a, tr.ts_ms)
        elif _sev(level) > _sev(before):
            self._emit(a.id, tr.ts_ms, EventKind.ESCALATED, before, level, tr.value,
                       {**base, "ack_cleared": a.acknowledged_by is not None}, a.model, a.asset)
        elif _sev(level) < _sev(before):
            self._emit(a.id, tr.ts_ms, EventKind.DEESCALATED, before, level, tr.value, base, a.model, a.asset)
        elif state == a.state and (sources != a.sources or extra is not None and extra != a.details):
            self._emit(a.id, tr.ts_ms, EventKind.UPDATED, before, level, tr.value, base, a.model, a.asset)

    # -- people -------------------------------------------------------------------------------------------
    def acknowledge(self, alarm_id: str, by: str, ts_ms: int, note: str = "") -> AlarmEvent:
        """``by`` takes the alarm in hand. Refused for resolved or already acknowledged alarms."""
        a = self.get(alarm_id)
        if not a.is_open:
            raise IllegalTransition(f"alarm {alarm_id!r} is resolved; it cannot be acknowledged")
        if a.acknowledged_by is not None:
            raise IllegalTransition(f"alarm {alarm_id!r} is already acknowledged by {a.acknowledged_by!r}")
        if not by:
            raise IllegalTransition("acknowledge needs the name of who acknowledges")
        ev = self._emit(a.id, ts_ms, EventKind.ACKNOWLEDGED, a.level, a.level, a.value,
                        {"by": by, "note": note}, a.model, a.asset)
        self._flush()
        return ev

    def clear(self, alarm_id: str, by: str, ts_ms: int, reason: str = "") -> AlarmEvent:
        """A person closes an open alarm (the engine's later transitions of the same condition
        are ignored until it starts again)."""
        a = self.get(alarm_id)
        if not a.is_open:
            raise IllegalTransition(f"alarm {alarm_id!r} is already resolved")
        ev = self._emit(a.id, ts_ms, EventKind.RESOLVED, a.level, 0, a.value,
                        {"by": by, "reason": reason, "was": a.state.value, "sources": {}}, a.model, a.asset)
        self._refresh(ts_ms)
        self._flush()
        return ev

    # -- silences and maintenance windows ------------------------------------------------------------------
    def add_silence(self, rule: SilenceRule, ts_ms: int) -> list[AlarmEvent]:
        if rule.id in self.silences:
            raise IllegalTransition(f"silence {rule.id!r} exists")
        self._emit("", ts_ms, EventKind.SILENCE_ADDED, 0, 0, math.nan, {"rule": rule.model_dump()})
        self._refresh(ts_ms)
        return self._flush()

    def remove_silence(self, silence_id: str, ts_ms: int) -> list[AlarmEvent]:
        if silence_id not in self.silences:
            raise IllegalTransition(f"no silence {silence_id!r}")
        self._emit("", ts_ms, EventKind.SILENCE_REMOVED, 0, 0, math.nan, {"id": silence_id})
        self._refresh(ts_ms)
        return self._flush()

    def tick(self, now_ms: int) -> list[AlarmEvent]:
        """Time-driven changes: silences and maintenance windows starting or ending."""
        self._refresh(now_ms)
        return self._flush()

    def _silence_reasons(self, a: Alarm, ts: int) -> set[str]:
        out = set()
        for r in self.silences.values():
            if not r.start_ms <= ts < r.end_ms:
                continue
            for m in r.matchers:
                if ((m.model is None or fnmatchcase(a.model, m.model))
                        and (m.asset is None or fnmatchcase(a.asset, m.asset))
                        and (m.network is None or fnmatchcase(a.network, m.network))):
                    out.add(f"{r.kind}:{r.id}")
                    break
        return out

    def _inhibit_reasons(self, a: Alarm) -> set[str]:
        out = set()
        for rule in self.inhibit:
            if rule.target != a.model:
                continue
            for src in self.alarms.values():
                if (src.model != rule.source or src.state != AlarmState.FIRING or src.id == a.id
                        or src.severity < 5 - rule.min_level):
                    continue
                if self._in_scope(rule, src, a):
                    out.add(f"inhibit:{src.id}")
        return out

    def _in_scope(self, rule: InhibitRule, src: Alarm, a: Alarm) -> bool:
        if rule.scope == "same_asset":
            return src.asset == a.asset
        if rule.scope == "members":
            return a.asset in (src.details.get("members") or []) or a.asset == src.asset
        if rule.scope == "within_m":
            return _dist_m(src.lon, src.lat, a.lon, a.lat) <= (rule.within_m or 0.0)
        if rule.scope == "downstream":
            return self.downstream is not None and a.asset in self.downstream(src.asset)
        return False

    def _mute_check(self, a: Alarm, ts: int) -> None:
        want = self._silence_reasons(a, ts) | self._inhibit_reasons(a)
        for r in sorted(want - a.muted_by):
            self._emit(a.id, ts, EventKind.MUTED, a.level, a.level, a.value, {"reason": r}, a.model, a.asset)
        for r in sorted(a.muted_by - want):
            self._emit(a.id, ts, EventKind.UNMUTED, a.level, a.level, a.value, {"reason": r}, a.model, a.asset)
        if not a.muted and a.state == AlarmState.FIRING and a.incident is None:
            self._group(a, ts)

    def _refresh(self, ts: int) -> None:
        for a in sorted(self.open_alarms(), key=lambda a: a.id):
            self._mute_check(a, ts)

    # -- grouping into incident candidates -------------------------------------------------------------------
    def _group(self, a: Alarm, ts: int) -> None:
        if a.incident is not None or a.muted or a.state != AlarmState.FIRING:
            return
        g = self.grouping
        window = int(g.window_s * 1000)
        best: IncidentCandidate | None = None
        key = None
        for order, inc in enumerate(self.incidents.values()):
            if ts - inc.last_ms > window:
                continue
            if g.same_network and a.network not in inc.networks:
                continue
            ds = [d for d in (_dist_m(self.alarms[mid].lon, self.alarms[mid].lat, a.lon, a.lat)
                              for mid in inc.alarm_ids) if d <= g.distance_m]
            by_place = g.same_jurisdiction and a.jurisdiction is not None and a.jurisdiction in inc.jurisdictions
            if not ds and not by_place:
                continue
            k = (min(ds) if ds else math.inf, inc.first_ms, order)  # the nearest, then the oldest
            if key is None or k < key:
                best, key = inc, k
        if best is None:
            self._emit(a.id, ts, EventKind.GROUPED, a.level, a.level, a.value,
                       {"incident": f"IC-{a.id}", "new": True}, a.model, a.asset)
        else:
            self._emit(a.id, ts, EventKind.GROUPED, a.level, a.level, a.value,
                       {"incident": best.id, "new": False}, a.model, a.asset)

    # -- restore -----------------------------------------------------------------------------------------------
    @classmethod
    def restore(cls, events: Iterable[AlarmEvent], **kwargs: Any) -> AlarmBook:
        """A book rebuilt from its events (same ids, states, silences and incident candidates);
        new transitions for its open alarms update them instead of opening duplicates.
        ``kwargs`` are the constructor's (policy, sink, locator)."""
        book = cls(**kwargs)
        for ev in events:
            book._apply(ev)
            book.events.append(ev)
        return book


def city_locator(city: City, level: JurisdictionLevel | str = "grid") -> Callable[[float, float], str | None]:
    """``(lon, lat) -> code`` of the jurisdiction of ``level`` containing the point (None outside)."""
    import shapely
    from shapely.geometry import Point

    from rescity.model import JurisdictionLevel

    lev = JurisdictionLevel(level)
    js = city.level(lev)
    tree = shapely.STRtree([j.geometry for j in js])
    cache: dict[tuple[float, float], str | None] = {}

    def locate(lon: float, lat: float) -> str | None:
        key = (lon, lat)
        if key not in cache:
            hits = tree.query(Point(lon, lat), predicate="intersects")
            cache[key] = js[int(min(hits))].code if len(hits) else None
        return cache[key]

    return locate
