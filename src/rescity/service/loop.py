"""The closed loop's joint: alarm groups (the alarm book's incident candidates) become
incidents, and the deadlines of open incidents are checked, as time goes on.

:class:`AlarmIncidentBridge` follows the stored alarm events (the contract between
monitoring and response: :class:`rescity.monitor.alarms.AlarmEvent` rows), keeps each
alarm's current level, place and group, and after every step hands each group whose
firing members changed to :meth:`ResponseService.from_alarm_group`. It holds no state
that the events do not give, so a restarted process rebuilds it by reading them again.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rescity.model.incident import Incident, IncidentEvent
from rescity.monitor.alarms import EventKind

from .respond import ResponseService


def _coord(x: Any) -> float | None:
    return float(x) if x is not None and math.isfinite(float(x)) else None


@dataclass
class _AlarmView:
    id: str
    model: str
    asset: str
    network: str
    lon: float | None
    lat: float | None
    level: int
    firing: bool = False
    muted: bool = False
    group: str | None = None


@dataclass
class StepResult:
    incidents: list[Incident] = field(default_factory=list)  # opened or updated
    deadline_events: list[IncidentEvent] = field(default_factory=list)
    alarms: list[dict[str, Any]] = field(default_factory=list)  # alarms that changed, as they are now


class AlarmIncidentBridge:
    """Alarm groups -> incidents, over a monitoring store's alarm events."""

    def __init__(self, svc: ResponseService, monitoring: Any) -> None:
        self.svc = svc
        self.monitoring = monitoring
        self.alarms: dict[str, _AlarmView] = {}
        self.groups: dict[str, list[str]] = {}
        self._seen: dict[str, tuple[tuple[str, int], ...]] = {}
        self._last_seq = 0

    def _apply(self, r: dict[str, Any]) -> str | None:
        kind = EventKind(r["kind"])
        aid = r["alarm_id"]
        d = r["details"] or {}
        if kind == EventKind.OPENED:
            lon, lat = _coord(d.get("lon")), _coord(d.get("lat"))
            self.alarms[aid] = _AlarmView(aid, r["model"], r["asset_uid"], d.get("network", ""), lon, lat,
                                          int(r["level_after"] or 0), d.get("state") == "firing")
            return None
        a = self.alarms.get(aid)
        if a is None:
            return None
        if kind in (EventKind.FIRED, EventKind.ESCALATED, EventKind.DEESCALATED, EventKind.UPDATED,
                    EventKind.REOPENED):
            a.level = int(r["level_after"] or a.level)
        if kind == EventKind.FIRED or (kind == EventKind.REOPENED and d.get("state") == "firing"):
            a.firing = True
        elif kind == EventKind.RESOLVED:
            a.firing = False
        elif kind == EventKind.MUTED:
            a.muted = True
        elif kind == EventKind.UNMUTED:
            a.muted = False
        elif kind == EventKind.GROUPED:
            a.group = str(d["incident"])
            self.groups.setdefault(a.group, [])
            if aid not in self.groups[a.group]:
                self.groups[a.group].append(aid)
        return a.group

    def follow_events(self) -> tuple[set[str], set[str]]:
        """Apply the alarm events stored since the last call; the groups and the alarms
        they touched."""
        touched: set[str] = set()
        changed: set[str] = set()
        for r in self.monitoring.alarm_events(after_seq=self._last_seq):
            self._last_seq = int(r["seq"])
            changed.add(r["alarm_id"])
            g = self._apply(r)
            if g is not None:
                touched.add(g)
        return touched, changed

    def alarm_states(self, ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Alarms as they are now (all known ones, or ``ids``): id, model, asset, level,
        state (firing / quiet), muted, lon, lat."""
        keys = sorted(self.alarms) if ids is None else sorted(ids)
        return [{"id": a.id, "model": a.model, "asset": a.asset, "level": a.level,
                 "state": "firing" if a.firing else "quiet", "muted": a.muted, "lon": a.lon, "lat": a.lat}
                for a in (self.alarms.get(k) for k in keys) if a is not None]

    def step(self, now_ms: int, *, tick: bool = True) -> StepResult:
        """Read the alarm events since the last step; open or update the incidents of the
        groups that changed; then (``tick``) check every open incident's deadlines."""
        touched, changed = self.follow_events()
        out = StepResult(alarms=self.alarm_states(changed))
        for g in sorted(touched):
            members = [self.alarms[a] for a in self.groups.get(g, [])]
            live = [a for a in members if a.firing and not a.muted and a.level > 0]
            sig = tuple(sorted((a.id, a.level) for a in live))
            if not live or self._seen.get(g) == sig:
                continue
            self._seen[g] = sig
            inc = self.svc.from_alarm_group(group_id=g, ts_ms=now_ms, alarms=[
                {"id": a.id, "model": a.model, "asset": a.asset, "network": a.network,
                 "level": a.level, "lon": a.lon, "lat": a.lat} for a in live])
            if inc is not None:
                out.incidents.append(inc)
        if tick:
            out.deadline_events = self.svc.tick(now_ms)
        return out


def follow(store: Any, *, interval_s: float = 5.0, stop: Any = None,
           clock: Any = None, on_step: Any = None) -> int:
    """Run the bridge until ``stop`` (a :class:`threading.Event`) is set: every
    ``interval_s`` seconds, alarm groups -> incidents and the deadline check. This is the
    response worker of a production deployment (``rescity incidents follow``), beside the
    ingestion workers that write the alarm events. Returns the number of steps taken."""
    import threading
    import time

    from rescity.store.monitoring import MonitoringStore

    stop = stop or threading.Event()
    now = clock or (lambda: int(time.time() * 1000))
    bridge = AlarmIncidentBridge(ResponseService(store), MonitoringStore(store.engine))
    steps = 0
    while not stop.is_set():
        res = bridge.step(int(now()))
        steps += 1
        if on_step is not None:
            on_step(res)
        stop.wait(interval_s)
    return steps
