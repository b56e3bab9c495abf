"""Response drills (应急演练): scripted crews that accept, arrive and resolve incidents on a
timetable, played on the same service, accounts and clock as real work, so a command
centre can rehearse — and the demo's day shows — the whole closed loop: alarms -> incidents
-> dispatch -> escalation when a crew is late -> resolution -> review -> closure, with
citizens' reports and public warnings.

The script is data (see ``demo/response.yaml``): accounts, per-type crew timings (minutes
after the dispatch), review and closing delays, which incident types get a public warning,
and citizens' reports placed near incidents.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field

from rescity.model import JurisdictionLevel
from rescity.model.incident import Action, Incident, IncidentState
from rescity.model.levels import WarningLevel
from rescity.respond.access import SYSTEM, Role, User
from rescity.respond.credentials import AuthError

from .respond import ResponseService

MIN_MS = 60_000
S = IncidentState


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AccountSpec(_Strict):
    username: str
    role: Role
    display_name: str = ""
    per: JurisdictionLevel | None = None


class Crew(_Strict):
    accept_min: float = Field(ge=0)
    arrive_min: float = Field(ge=0)
    resolve_min: float = Field(ge=0)


class ReportSpec(_Strict):
    near: str
    minutes_after: float = Field(ge=0)
    east_m: float = 0.0
    north_m: float = 0.0
    category: str
    username: str
    text: str


class DrillScript(_Strict):
    password: str = Field(min_length=8)
    accounts: tuple[AccountSpec, ...] = ()
    operators_per_unit: bool = True
    crews: dict[str, Crew]
    verify_min: float = Field(default=6, ge=0)
    dispatch_min: float = Field(default=3, ge=0)
    review_min: float = Field(default=15, ge=0)
    close_min: float = Field(default=5, ge=0)
    publish: tuple[str, ...] = ()
    citizen_reports: tuple[ReportSpec, ...] = ()

    def crew(self, incident_type: str) -> Crew:
        return self.crews.get(incident_type) or self.crews["default"]


def load_script(path: str | Path) -> DrillScript:
    p = Path(path)
    try:
        return DrillScript.model_validate(yaml.safe_load(p.read_text(encoding="utf-8")))
    except Exception as e:  # pydantic / YAML: name the file
        raise ValueError(f"{p}: {e}") from None


def operator_name(unit_id: str) -> str:
    """The crew account of a unit (``street-station:990101`` -> ``crew-street-station-990101``)."""
    return "crew-" + unit_id.replace(":", "-")


@dataclass
class DrillLog:
    """What the drill did: actions taken, publications, reports, and failures."""

    actions: list[tuple[int, str, str, str]] = field(default_factory=list)  # ts, incident, actor, action
    publications: list[dict[str, Any]] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[tuple[int, str, str]] = field(default_factory=list)  # ts, incident, why (a person acted first)


class Drill:
    """Scripted crews over a :class:`ResponseService`; call :meth:`step` as time goes on."""

    def __init__(self, svc: ResponseService, script: DrillScript, *, ts_ms: int,
                 warnings_dir: Path | None = None) -> None:
        self.svc = svc
        self.script = script
        self.log = DrillLog()
        self.warnings_dir = warnings_dir
        self._done_reports: set[int] = set()
        self._published: dict[str, int] = {}  # incident -> level last published
        self._ensure_accounts(ts_ms)

    # -- accounts -----------------------------------------------------------------------------
    def _ensure_accounts(self, ts_ms: int) -> None:
        svc, sc = self.svc, self.script
        want: list[dict[str, Any]] = []
        for a in sc.accounts:
            if a.per is None:
                want.append({"username": a.username, "role": a.role, "display_name": a.display_name})
                continue
            for j in sorted((j for j in svc.jurisdictions.values() if j.level == a.per), key=lambda j: j.code):
                fmt = {"code": j.code, "name": j.name}
                want.append({"username": a.username.format(**fmt), "role": a.role,
                             "display_name": a.display_name.format(**fmt), "jurisdictions": [j.code]})
        if sc.operators_per_unit:
            for u in svc.router.units.values():
                want.append({"username": operator_name(u.id), "role": Role.OPERATOR, "unit": u.id,
                             "networks": list(u.networks), "display_name": f"{u.name} crew"})
        for w in want:
            try:
                svc.authenticate(w["username"], sc.password)
                continue  # already there (a second run of the demo)
            except AuthError:
                pass
            svc.add_user(SYSTEM, password=sc.password, ts_ms=ts_ms, **w)

    def user(self, username: str) -> User:
        u = self.svc.user(username)
        if u is None:
            raise KeyError(f"drill: no account {username!r}")
        return u

    def _officer(self, inc: Incident) -> User:
        return self.user(f"officer-{inc.district}") if inc.district else SYSTEM

    # -- the timetable ------------------------------------------------------------------------
    def _act(self, user: User, inc: Incident, action: Action, ts: int,
             data: dict[str, Any] | None = None) -> Incident:
        ts = max(ts, inc.updated_ms)
        out = self.svc.act(user, inc.id, action, ts, data)
        self.log.actions.append((ts, inc.id, user.username, action.value))
        return out

    def step(self, now_ms: int) -> None:
        """Everything the script says should have happened by ``now_ms``. On a served
        demo people act too: an incident someone moved first (the scripted step is no
        longer legal) is left as they put it, and the script carries on from there."""
        from rescity.respond.lifecycle import IllegalTransition

        for inc in self.svc.incidents(SYSTEM, open_only=True):
            try:
                self._advance(self.svc.incident(SYSTEM, inc.id), now_ms)
            except IllegalTransition as e:
                self.log.skipped.append((now_ms, inc.id, str(e)))
        self._reports(now_ms)

    def _advance(self, inc: Incident, now: int) -> None:
        sc = self.script
        if inc.state == S.NEW and now >= inc.created_ms + sc.verify_min * MIN_MS:
            grid = self.svc.user(f"grid-{inc.street}") if inc.street else None
            inc = self._act(grid or self._officer(inc), inc, Action.VERIFY,
                            int(inc.created_ms + sc.verify_min * MIN_MS), {"note": "seen on site"})
        if inc.state == S.VERIFIED and inc.dispatched_ms is None \
                and now >= (inc.verified_ms or inc.created_ms) + sc.dispatch_min * MIN_MS:
            inc = self._act(self._officer(inc), inc, Action.DISPATCH,
                            int((inc.verified_ms or inc.created_ms) + sc.dispatch_min * MIN_MS))
        if inc.dispatched_ms is None:
            return
        crew = self.script.crew(inc.type)
        t0 = inc.dispatched_ms
        first = inc.units[0] if inc.units else None
        if first is None:
            return
        self._maybe_publish(inc, now)
        if inc.state == S.DISPATCHED and now >= t0 + crew.accept_min * MIN_MS:
            inc = self._act(self.user(operator_name(first)), inc, Action.ACCEPT,
                            int(t0 + crew.accept_min * MIN_MS))
        if inc.state == S.ACCEPTED and now >= t0 + crew.arrive_min * MIN_MS:
            inc = self._act(self.user(operator_name(inc.accepted_by[0])), inc, Action.ARRIVE,
                            int(t0 + crew.arrive_min * MIN_MS))
        if inc.state == S.ON_SITE and now >= t0 + crew.resolve_min * MIN_MS:
            inc = self._act(self.user(operator_name(inc.accepted_by[0])), inc, Action.RESOLVE,
                            int(t0 + crew.resolve_min * MIN_MS),
                            {"note": f"scripted crew: {inc.type.replace('_', ' ')} made safe"})
        if inc.state == S.RESOLVED and inc.resolved_ms is not None \
                and now >= inc.resolved_ms + self.script.review_min * MIN_MS:
            inc = self._act(self._officer(inc), inc, Action.REVIEW,
                            int(inc.resolved_ms + self.script.review_min * MIN_MS))
        if inc.state == S.REVIEWED and now >= inc.updated_ms + self.script.close_min * MIN_MS:
            inc = self._act(self.user("chief"), inc, Action.CLOSE,
                            int(inc.updated_ms + self.script.close_min * MIN_MS))
            self._maybe_cancel(inc, inc.updated_ms)

    # -- public warnings ----------------------------------------------------------------------
    def _channels(self) -> list[Any]:
        from rescity.respond.publish import FilePublisher

        return [FilePublisher(self.warnings_dir)] if self.warnings_dir is not None else []

    def _publish(self, inc: Incident, ts: int, msg_type: str) -> None:
        from .publication import publish

        res = publish(self.svc, self.user("chief"), inc.id, ts_ms=ts, msg_type=msg_type,
                      channels=self._channels())
        self._published[inc.id] = inc.level
        self.log.publications.append({"incident": inc.id, "identifier": res.warning.identifier,
                                      "msg_type": res.warning.msg_type.value,
                                      "headline": res.warning.en.headline,
                                      "headline_zh": res.warning.zh.headline})

    def _maybe_publish(self, inc: Incident, now: int) -> None:
        """A warning when a red or orange incident of a published type opens; an update
        when its level changes."""
        if inc.type not in self.script.publish:
            return
        ts = max(now, inc.updated_ms)
        if inc.id not in self._published:
            if inc.level <= int(WarningLevel.ORANGE):
                self._publish(inc, ts, "alert")
        elif self._published[inc.id] != inc.level:
            self._publish(inc, ts, "update")

    def _maybe_cancel(self, inc: Incident, ts: int) -> None:
        if inc.id in self._published:
            self._publish(inc, ts, "cancel")

    # -- citizens -----------------------------------------------------------------------------
    def _reports(self, now: int) -> None:
        for k, r in enumerate(self.script.citizen_reports):
            if k in self._done_reports:
                continue
            near = [i for i in self.svc.incidents(SYSTEM) if i.type == r.near and i.lon is not None]
            if not near:
                continue
            target = min(near, key=lambda i: i.created_ms)
            at = target.created_ms + int(r.minutes_after * MIN_MS)
            if now < at or target.lon is None or target.lat is None:
                continue
            self._done_reports.add(k)
            lat = target.lat + r.north_m / 111_132.0
            lon = target.lon + r.east_m / (111_320.0 * math.cos(math.radians(target.lat)))
            rep = self.svc.file_report(self.user(r.username), text=r.text, category=r.category,
                                       lon=lon, lat=lat, ts_ms=at)
            self.log.reports.append(rep)


DEMO_SCRIPT = Path(__file__).resolve().parent.parent / "demo" / "response.yaml"


@dataclass
class DayReport:
    """The scripted day end to end: the monitoring replay, what the response did, and the
    risk map's levels over the day (``risk_levels``: (ms, {colour: cells}) per slice;
    ``risk_changes``: (ms, cell, level) for every change)."""

    replay: Any
    incidents: list[Incident]
    drill: DrillLog
    escalations: int
    audit_ok: bool
    risk_levels: list[tuple[int, dict[str, int]]] = field(default_factory=list)
    risk_changes: list[tuple[int, str, int]] = field(default_factory=list)
    risk_maps: list[Path] = field(default_factory=list)


class ReplayClock:
    """The time of a replayed day, for the API while the day plays (ms since the epoch):
    the last slice replayed; before the first, ``start_ms``; after the last, the end plus
    the wall time since, so the day runs on after the script."""

    def __init__(self, start_ms: int) -> None:
        import threading
        import time

        self._lock = threading.Lock()
        self._wall = time.time
        self.sim_ms = int(start_ms)
        self._done_at: float | None = None

    def set(self, sim_ms: int) -> None:
        with self._lock:
            self.sim_ms = max(self.sim_ms, int(sim_ms))

    def finish(self) -> None:
        with self._lock:
            self._done_at = self._wall()

    def __call__(self) -> int:
        with self._lock:
            if self._done_at is None:
                return self.sim_ms
            return self.sim_ms + int((self._wall() - self._done_at) * 1000)


def play_scripted_day(store: Any, city: Any, *, on_slice: Any = None,
                      warnings_dir: Path | None = None, script: DrillScript | None = None,
                      maps_dir: Path | None = None, map_times_h: tuple[float, ...] = (8.0, 15.5, 23.9)) -> DayReport:
    """Replay the demo's scripted day through monitoring, and play the response drill on
    it: alarm groups become incidents, crews act on the script's timetable, deadlines
    escalate late ones, citizens report, warnings are published and cancelled; the risk
    map (the demo's register, see :mod:`rescity.demo.risk`) re-grades its cells as alarms
    fire and resolve and incidents open and close (PNGs at ``map_times_h`` into
    ``maps_dir``)."""
    from rescity.demo.day import DAY_START_MS
    from rescity.demo.risk import write_register
    from rescity.store.monitoring import MonitoringStore

    from . import monitoring
    from .loop import AlarmIncidentBridge
    from .risk import RiskService

    svc = ResponseService(store, jurisdictions=list(city.jurisdictions.values()))
    svc.rs.reset_demo()
    risk = RiskService(store, city=city, response=svc)
    reg_dir = maps_dir or Path(tempfile.mkdtemp(prefix="rescity-risk-"))
    risk.import_register(SYSTEM, write_register(city, reg_dir / "demo-risk-register.csv"), ts_ms=DAY_START_MS)
    risk.snapshot(DAY_START_MS)
    bridge = AlarmIncidentBridge(svc, MonitoringStore(store.engine))
    drill = Drill(svc, script or load_script(DEMO_SCRIPT), ts_ms=DAY_START_MS,
                  warnings_dir=warnings_dir)
    report = DayReport(None, [], drill.log, 0, False)
    pending_maps = sorted(map_times_h)

    def hook(now: int, res: Any) -> None:
        step = bridge.step(now, tick=False)
        drill.step(now)  # what the crews did by now, before the deadlines are judged
        report.escalations += sum(1 for e in svc.tick(now) if e.action == Action.ESCALATE)
        changed = risk.on_alarms(step.alarms, now) + risk.sync_incidents(now)
        for code in changed:
            report.risk_changes.append((now, code, int(risk.grid.level[risk.index[code]])))
        counts = np.bincount(risk.grid.level.astype(int), minlength=5)
        report.risk_levels.append((now, {c: int(counts[k]) for k, c in ((1, "red"), (2, "orange"),
                                                                       (3, "yellow"), (4, "blue"))}))
        while maps_dir is not None and pending_maps and now >= DAY_START_MS + pending_maps[0] * 3_600_000:
            h = pending_maps.pop(0)
            report.risk_maps.append(risk.render_png(
                maps_dir / f"risk-map-{int(h):02d}{int(h % 1 * 60):02d}.png",
                title=f"{city.name}: risk map at {int(h):02d}:{int(h % 1 * 60):02d} UTC "
                      f"(red {counts[1]}, orange {counts[2]}, yellow {counts[3]}, blue {counts[4]})"))
        if on_slice is not None:
            on_slice(now, res)

    report.replay = monitoring.replay_scripted_day(store, city, on_slice=hook)
    report.incidents = svc.incidents(SYSTEM)
    report.audit_ok = svc.verify_audit().ok
    return report
