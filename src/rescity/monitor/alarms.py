"""Alarm lifecycle: pure, in memory, event-sourced.

An alarm's identity is ``(model, asset)``. The engine's :class:`~rescity.monitor.engine.Transition`
objects drive it; people acknowledge and clear it; silences, maintenance windows and
inhibition rules mute it; firing alarms that are close in place, time and network fold into
one *incident candidate*.

Every change is an :class:`AlarmEvent` (appended to :attr:`AlarmBook.events` and handed to
the optional sink). The book's state is *derived* from its events: every mutation goes
through :meth:`AlarmBook._apply`, and :meth:`AlarmBook.restore` rebuilds a book from a list
of events, so a restarted worker continues the same alarms instead of opening duplicates.

States: ``pending -> firing -> resolved`` (``pending -> resolved`` when the condition ends
before its minimum duration). A repeated trigger of an open alarm updates it (escalate,
de-escalate, update); a trigger within ``reopen_window_s`` of its resolution reopens it;
otherwise a new alarm (new id) is opened. Levels are national: 0 normal, 1 red (highest)
.. 4 blue. An escalation clears the acknowledgement (the more severe alarm needs a new one).

Indexes (derived from the events too, rebuilt by :meth:`AlarmBook.restore`) keep the book
near-linear in its open alarms: open alarms by id and model; per inhibition rule, the
firing source alarms by the key their scope matches on (asset, member asset, downstream
asset, or a grid cell of ``within_m``) and the open target alarms by grid cell; which
alarms each source or silence mutes; which open alarms each silence's matchers match;
incident candidates by jurisdiction and by grid cell (``distance_m``) of their members.
An inhibited alarm is found by looking its keys up instead of scanning every alarm, and a
source's change re-checks only the alarms it mutes or could mute.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any, Protocol

from rescity.model.geo import EARTH_RADIUS_M, local_distance_m
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


_EARTH_M = EARTH_RADIUS_M
_DEG_M = _EARTH_M * math.pi / 180.0  # metres per degree of latitude (the sphere of local_distance_m)


Cell = tuple[int, int]


class _Grid:
    """Points (lon, lat in degrees) bucketed in square cells of ``d`` metres of latitude:
    every point within ``d`` metres of a query point (by :func:`~rescity.model.geo.local_distance_m`) is in the cells
    :meth:`near` returns (a superset: callers check the distance)."""

    def __init__(self, d_m: float) -> None:
        self.deg = max(d_m, 1.0) / _DEG_M * (1.0 + 1e-9)  # cell side in degrees (a hair over d)
        self.cells: dict[Cell, dict[str, None]] = {}

    def cell(self, lon: float, lat: float) -> Cell | None:
        if not (math.isfinite(lon) and math.isfinite(lat)):
            return None
        return (math.floor(lon / self.deg), math.floor(lat / self.deg))

    def add(self, key: str, lon: float, lat: float) -> Cell | None:
        c = self.cell(lon, lat)
        if c is not None:
            self.cells.setdefault(c, {})[key] = None
        return c

    def remove(self, key: str, c: Cell | None) -> None:
        if c is not None:
            got = self.cells.get(c)
            if got is not None:
                got.pop(key, None)
                if not got:
                    del self.cells[c]

    def around(self, lon: float, lat: float) -> list[Cell]:
        """The cells that can hold a point within ``d`` of (lon, lat)."""
        c = self.cell(lon, lat)
        if c is None:
            return []
        # within d: |dlat| <= d (one cell either side); |dlon| <= d / cos(mean lat), the mean
        # latitude being within one cell of lat: ceil(1 / cos) cells either side
        cosl = math.cos(math.radians(min(89.0, abs(lat) + self.deg)))
        kx = math.ceil(1.0 / max(cosl, 1e-3))
        return [(c[0] + dx, c[1] + dy) for dx in range(-kx, kx + 1) for dy in (-1, 0, 1)]

    def near(self, lon: float, lat: float) -> list[str]:
        out: list[str] = []
        for c in self.around(lon, lat):
            got = self.cells.get(c)
            if got:
                out.extend(got)
        return out


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
        # -- indexes (derived from the events, see the module docstring)
        self._seq: dict[str, int] = {}  # alarm id -> creation order
        self._open: dict[str, Alarm] = {}
        self._open_by_model: dict[str, dict[str, Alarm]] = {}
        self._rules_of_target: dict[str, list[int]] = {}
        self._rules_of_source: dict[str, list[int]] = {}
        for i, r in enumerate(self.inhibit):
            self._rules_of_target.setdefault(r.target, []).append(i)
            self._rules_of_source.setdefault(r.source, []).append(i)
        # per rule: scope key -> firing source alarms; the keys each source is filed under
        self._src_index: list[dict[Any, dict[str, Alarm]]] = [{} for _ in self.inhibit]
        self._src_keys: dict[str, list[tuple[int, Any]]] = {}
        self._src_grid: list[_Grid | None] = [_Grid(r.within_m or 0.0) if r.scope == "within_m" else None
                                              for r in self.inhibit]
        # per within_m rule: open target alarms by cell
        self._tgt_grid: list[_Grid | None] = [_Grid(r.within_m or 0.0) if r.scope == "within_m" else None
                                              for r in self.inhibit]
        self._tgt_cells: dict[tuple[int, str], Cell | None] = {}
        self._downstream_cache: dict[str, set[str]] = {}
        self._muted_by_reason: dict[str, set[str]] = {}  # "inhibit:<id>" / "silence:<id>" -> alarm ids
        self._silence_match: dict[str, set[str]] = {}  # silence id -> open alarms its matchers match
        self._inc_seq: dict[str, int] = {}
        self._inc_by_juris: dict[str, dict[str, None]] = {}
        self._inc_grid = _Grid(self.grouping.distance_m)  # cells only: see _inc_cells
        self._inc_cells: dict[Cell, dict[str, list[Alarm]]] = {}  # cell -> incident -> its members there
        self._member_cells: dict[str, Cell | None] = {}
        self._stale = False  # a restored book re-checks every open alarm once

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
        """The open alarms, in the order they were created."""
        return sorted(self._open.values(), key=lambda a: self._seq[a.id])

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
            self._silence_match[rule.id] = {a.id for a in self._open.values() if self._matches(rule, a)}
            return
        if k == EventKind.SILENCE_REMOVED:
            self.silences.pop(d["id"], None)
            self._silence_match.pop(d["id"], None)
            return
        if k == EventKind.OPENED:
            a = Alarm(id=ev.alarm_id, model=ev.model, asset=ev.asset, sensor=d.get("sensor", ""),
                      network=d.get("network", ""), lon=_coord(d.get("lon")),
                      lat=_coord(d.get("lat")), jurisdiction=d.get("jurisdiction"),
                      state=AlarmState(d["state"]), level=ev.level_after, value=ev.value,
                      opened_ms=ev.ts_ms, updated_ms=ev.ts_ms)
            if a.state == AlarmState.FIRING:
                a.fired_ms = ev.ts_ms
            self.alarms[a.id] = a
            self.latest[a.key] = a.id
            self._seq[a.id] = len(self._seq)
        a = self.alarms[ev.alarm_id]
        was_open = a.id in self._open
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
            for r in a.muted_by:
                self._unfile_mute(r, a.id)
            a.muted_by = set()
        elif k == EventKind.ACKNOWLEDGED:
            a.acknowledged_by = d.get("by", "")
            a.acknowledged_ms = ev.ts_ms
        elif k == EventKind.MUTED:
            a.muted_by.add(d["reason"])
            self._muted_by_reason.setdefault(d["reason"], set()).add(a.id)
        elif k == EventKind.UNMUTED:
            a.muted_by.discard(d["reason"])
            self._unfile_mute(d["reason"], a.id)
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
            self._file_member(inc, a)
        self._index(a, was_open)

    # -- index maintenance -----------------------------------------------------------------------------
    def _unfile_mute(self, reason: str, alarm_id: str) -> None:
        got = self._muted_by_reason.get(reason)
        if got is not None:
            got.discard(alarm_id)
            if not got:
                del self._muted_by_reason[reason]

    def _index(self, a: Alarm, was_open: bool) -> None:
        """File ``a`` after one of its events: open set, target grids, silence matches and,
        for source models, the inhibition index of each rule it is a source of."""
        if a.is_open and not was_open:
            self._open[a.id] = a
            self._open_by_model.setdefault(a.model, {})[a.id] = a
            for sid, rule in self.silences.items():
                if self._matches(rule, a):
                    self._silence_match[sid].add(a.id)
            for i in self._rules_of_target.get(a.model, ()):
                g = self._tgt_grid[i]
                if g is not None:
                    self._tgt_cells[(i, a.id)] = g.add(a.id, a.lon, a.lat)
        elif was_open and not a.is_open:
            self._open.pop(a.id, None)
            by = self._open_by_model.get(a.model)
            if by is not None:
                by.pop(a.id, None)
            for got in self._silence_match.values():
                got.discard(a.id)
            for i in self._rules_of_target.get(a.model, ()):
                g = self._tgt_grid[i]
                if g is not None:
                    g.remove(a.id, self._tgt_cells.pop((i, a.id), None))
        if a.model in self._rules_of_source:
            self._index_source(a)

    def _index_source(self, a: Alarm) -> None:
        for i, key in self._src_keys.pop(a.id, []):
            if key[0] == "cell":
                g = self._src_grid[i]
                assert g is not None
                g.remove(a.id, key[1])
            else:
                got = self._src_index[i].get(key[1])
                if got is not None:
                    got.pop(a.id, None)
                    if not got:
                        del self._src_index[i][key[1]]
        if a.state != AlarmState.FIRING:
            return
        keys: list[tuple[int, Any]] = []
        for i in self._rules_of_source[a.model]:
            rule = self.inhibit[i]
            if rule.scope == "within_m":
                g = self._src_grid[i]
                assert g is not None
                keys.append((i, ("cell", g.add(a.id, a.lon, a.lat))))
                continue
            if rule.scope == "same_asset":
                assets = {a.asset}
            elif rule.scope == "members":
                assets = {a.asset, *(a.details.get("members") or [])}
            else:  # downstream
                assets = set(self._downstream_of(a.asset))
            for asset in assets:
                self._src_index[i].setdefault(asset, {})[a.id] = a
                keys.append((i, ("asset", asset)))
        self._src_keys[a.id] = keys

    def _downstream_of(self, asset: str) -> set[str]:
        if self.downstream is None:
            return set()
        got = self._downstream_cache.get(asset)
        if got is None:
            got = self._downstream_cache[asset] = set(self.downstream(asset))
        return got

    def _file_member(self, inc: IncidentCandidate, a: Alarm) -> None:
        if inc.id not in self._inc_seq:
            self._inc_seq[inc.id] = len(self._inc_seq)
        if a.jurisdiction:
            self._inc_by_juris.setdefault(a.jurisdiction, {})[inc.id] = None
        c = self._inc_grid.cell(a.lon, a.lat)  # members by place
        if c is not None:
            self._inc_cells.setdefault(c, {}).setdefault(inc.id, []).append(a)

    # -- engine transitions ------------------------------------------------------------------------------
    def ingest(self, transitions: Iterable[Transition]) -> list[AlarmEvent]:
        """Apply the engine's transitions (in time order); returns the new events.

        A transition for a (model, asset) with no open alarm opens one only if it starts a
        condition (pending / firing); others are ignored (counted in ``stats["ignored"]``)."""
        last_ts: int | None = None
        for tr in sorted(transitions, key=lambda t: t.ts_ms):
            self._transition(tr)
            last_ts = tr.ts_ms
            if tr.model in self._rules_of_source:  # an inhibiting alarm changed: re-check its targets now
                for a in self._affected_by_source(tr):
                    self._mute_check(a, tr.ts_ms)
        if last_ts is not None:
            self._refresh(last_ts)
        return self._flush()

    def _affected_by_source(self, tr: Transition) -> list[Alarm]:
        """Open target alarms whose muting may change because the source alarm of ``tr``
        changed, in id order: those it mutes and those in its scope; every open alarm of
        the target models while silences exist (their windows move with time)."""
        rules = self._rules_of_source[tr.model]
        targets = {self.inhibit[i].target for i in rules}
        if self.silences or self._stale:
            found = {aid: a for m in targets for aid, a in self._open_by_model.get(m, {}).items()}
            return [found[k] for k in sorted(found)]
        sid = self.latest.get(tr.key)
        src = self.alarms.get(sid) if sid else None
        if src is None:
            return []
        ids = set(self._muted_by_reason.get(f"inhibit:{src.id}", ()))
        if src.state == AlarmState.FIRING:
            for i in rules:
                rule = self.inhibit[i]
                if rule.scope == "within_m":
                    g = self._tgt_grid[i]
                    assert g is not None
                    ids.update(g.near(src.lon, src.lat))
                    continue
                if rule.scope == "same_asset":
                    assets: Iterable[str] = (src.asset,)
                elif rule.scope == "members":
                    assets = {src.asset, *(src.details.get("members") or [])}
                else:
                    assets = self._downstream_of(src.asset)
                for asset in assets:
                    a = self.open_alarm(rule.target, asset)
                    if a is not None:
                        ids.add(a.id)
        out = [self._open[k] for k in sorted(ids) if k in self._open]
        return [a for a in out if a.model in targets]

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

    @staticmethod
    def _matches(r: SilenceRule, a: Alarm) -> bool:
        for m in r.matchers:
            if ((m.model is None or fnmatchcase(a.model, m.model))
                    and (m.asset is None or fnmatchcase(a.asset, m.asset))
                    and (m.network is None or fnmatchcase(a.network, m.network))):
                return True
        return False

    def _silence_reasons(self, a: Alarm, ts: int) -> set[str]:
        out = set()
        is_open = a.id in self._open
        for sid, r in self.silences.items():
            if r.start_ms <= ts < r.end_ms:
                hit = a.id in self._silence_match.get(sid, ()) if is_open else self._matches(r, a)
                if hit:
                    out.add(f"{r.kind}:{r.id}")
        return out

    def _inhibit_reasons(self, a: Alarm) -> set[str]:
        """``inhibit:<source id>`` for every firing source alarm whose rule mutes ``a``; the
        candidates come from the rule's index (by asset, or by grid cell for within_m)."""
        out = set()
        for i in self._rules_of_target.get(a.model, ()):
            rule = self.inhibit[i]
            if rule.scope == "within_m":
                g = self._src_grid[i]
                assert g is not None
                cands = [self.alarms[k] for k in g.near(a.lon, a.lat)]
            else:
                cands = list(self._src_index[i].get(a.asset, {}).values())
            for src in cands:
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
            return local_distance_m(src.lon, src.lat, a.lon, a.lat) <= (rule.within_m or 0.0)
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
        """Re-check the open alarms whose muting can have changed since their last check
        without a source's transition: those muted now and those a silence active at ``ts``
        matches (every open alarm once after a restore), in id order."""
        if self._stale:
            ids: Iterable[str] = list(self._open)
            self._stale = False
        else:
            got: set[str] = set()
            for muted in self._muted_by_reason.values():
                got.update(muted)
            for sid, r in self.silences.items():
                if r.start_ms <= ts < r.end_ms:
                    got.update(self._silence_match.get(sid, ()))
            ids = got
        for aid in sorted(ids):
            a = self._open.get(aid)
            if a is not None:
                self._mute_check(a, ts)

    # -- grouping into incident candidates -------------------------------------------------------------------
    def _group(self, a: Alarm, ts: int) -> None:
        if a.incident is not None or a.muted or a.state != AlarmState.FIRING:
            return
        g = self.grouping
        window = int(g.window_s * 1000)
        best: IncidentCandidate | None = None
        # the near candidates: same jurisdiction, or a member within distance_m (by the grid)
        # the distance to its nearest member within distance_m (inf: near by jurisdiction only)
        near: dict[str, float] = {}
        if g.same_jurisdiction and a.jurisdiction is not None:
            near.update(dict.fromkeys(self._inc_by_juris.get(a.jurisdiction, {}), math.inf))
        for c in self._inc_grid.around(a.lon, a.lat):
            for inc_id, members in self._inc_cells.get(c, {}).items():
                for m in members:
                    d = local_distance_m(m.lon, m.lat, a.lon, a.lat)
                    if d <= g.distance_m and d < near.get(inc_id, math.inf):
                        near[inc_id] = d
        # the nearest candidate, then the oldest (an alarm between two joins the one it is beside)
        key: tuple[float, int, int] | None = None
        for inc_id in sorted(near, key=self._inc_seq.__getitem__):  # the order the incidents were made
            inc = self.incidents[inc_id]
            if ts - inc.last_ms > window:
                continue
            if g.same_network and a.network not in inc.networks:
                continue
            k = (near[inc_id], inc.first_ms, self._inc_seq[inc_id])
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
        book._stale = bool(book._open)
        return book


def _coord(x: Any) -> float:
    """A stored coordinate: an alarm without a place has NaN, which JSON stores as null."""
    return math.nan if x is None else float(x)


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
