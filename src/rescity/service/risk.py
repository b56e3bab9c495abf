"""Use cases of the risk register and the live four-colour risk map (风险清单, 四色风险图).

:class:`RiskService` holds the city's grid cells as a :class:`~rescity.risk.grid.RiskGrid`:
the static part from the register (risk points graded likelihood x consequence by the
policy's matrix), exposure (residents, critical facilities) and vulnerability (asset
attributes, by the policy's rules), and the live part from firing alarms, open incidents
and the rain. Alarm events re-grade only the cells they touch; every level change of a
cell is appended to its history. Risk points and their re-gradings are records on the
audit chain. Hidden hazards (隐患) are incidents of type ``hidden_hazard`` with the
rectification deadlines of the response policy, so they escalate when overdue.

Access: a district officer or grid worker sees the details (score, contributing risks,
risk points) of the cells in their jurisdictions only, and the colour of the others;
commanders and auditors see everything; others see colours.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa
from shapely.geometry import mapping

from rescity.model import City, JurisdictionLevel
from rescity.model.incident import IncidentSource
from rescity.model.risk import RISK_COLOUR, RISK_LEVEL_EN, RISK_LEVEL_ZH, RiskPoint
from rescity.respond.access import SYSTEM as SYSTEM_USER
from rescity.respond.access import AccessDenied, Role, User, in_place
from rescity.risk.grid import RiskGrid
from rescity.risk.policy import RiskPolicy, load_risk_policy
from rescity.risk.register import RowError, read_register
from rescity.store.respond import ResponseStore
from rescity.store.risk_schema import risk_cell_history_table, risk_cell_table, risk_point_table

from .respond import NotFound, ResponseService

_LIVE_ALARM_KINDS = {"opened", "fired", "escalated", "deescalated", "updated", "reopened", "resolved",
                     "muted", "unmuted"}


def _details_ok(user: User, codes: Sequence[str]) -> bool:
    if user.role in (Role.COMMANDER, Role.AUDITOR):
        return True
    if user.role in (Role.DISTRICT_OFFICER, Role.GRID_WORKER):
        return in_place(user, tuple(codes))
    return False


def asset_vulnerability(policy: RiskPolicy, network_type: str, attrs: Mapping[str, Any]) -> float | None:
    """The largest vulnerability (0..1) the policy's rules give an asset (None: no rule applies)."""
    best: float | None = None
    for rule in policy.vulnerability:
        if rule.network is not None and rule.network != network_type:
            continue
        v = rule.value(attrs.get(rule.attr))
        if v is not None and (best is None or v > best):
            best = v
    return best


@dataclass
class _Live:
    cell: int
    weight: float
    label: str


class RiskService:
    """The risk map of a city store (``city`` given, or loaded from the store)."""

    def __init__(self, store: Any, *, city: City | None = None, policy: RiskPolicy | None = None,
                 response: ResponseService | None = None) -> None:
        self.store = store
        self.policy = policy or load_risk_policy()
        self.city = city if city is not None else store.load_city()
        self.rs = ResponseStore(store.engine)
        self.response = response or ResponseService(store, jurisdictions=list(self.city.jurisdictions.values()))
        js = self.city.jurisdictions
        self.cells = sorted(self.city.level(JurisdictionLevel.GRID), key=lambda j: j.code)
        self.codes = [c.code for c in self.cells]
        self.index = {c: i for i, c in enumerate(self.codes)}
        self.street_of = [c.parent for c in self.cells]
        self.district_of = [js[c.parent].parent if c.parent in js else None for c in self.cells]
        self._tree = shapely.STRtree([c.geometry for c in self.cells])
        pop = np.array([c.population for c in self.cells], dtype=float)
        fac = np.zeros(len(self.cells))
        fi = self.locate_geoms([f.geometry for f in self.city.facilities.values()])
        np.add.at(fac, fi[fi >= 0], 1.0)
        self.grid = RiskGrid(self.policy, pop, fac, self._vulnerability())
        self.points: dict[str, RiskPoint] = {}
        self._point_cell: dict[str, int] = {}
        self.live: dict[str, _Live] = {}  # "alarm:<id>" / "incident:<id>" -> contribution
        self._follower: Any = None
        self.hazards_opened: list[str] = []  # hidden hazards derived from alarms
        self._load_points()

    # -- places -----------------------------------------------------------------------------
    def locate_geoms(self, geoms: Sequence[Any]) -> np.ndarray:
        """Cell index of each geometry's representative point (-1 outside every cell)."""
        out = np.full(len(geoms), -1, dtype=np.int64)
        if not len(geoms):
            return out
        pts = shapely.point_on_surface(np.asarray(geoms, dtype=object))
        src, dst = self._tree.query(pts, predicate="intersects")
        out[src[::-1]] = dst[::-1]  # the first (smallest index) cell wins on a shared edge
        return out

    def locate(self, lons: Sequence[float], lats: Sequence[float]) -> np.ndarray:
        return self.locate_geoms(list(shapely.points(np.asarray(lons, float), np.asarray(lats, float))))

    def _vulnerability(self) -> np.ndarray:
        """Mean vulnerability of each cell's assets that a rule applies to (0 for none)."""
        geoms, vals = [], []
        for net in self.city.networks.values():
            for el in list(net.links.values()) + list(net.nodes.values()):
                v = asset_vulnerability(self.policy, net.type.value, el.attrs)
                if v is not None:
                    geoms.append(el.geometry)
                    vals.append(v)
        n = len(self.cells)
        if not geoms:
            return np.zeros(n)
        idx = self.locate_geoms(geoms)
        ok = idx >= 0
        s = np.bincount(idx[ok], weights=np.asarray(vals)[ok], minlength=n)
        c = np.bincount(idx[ok], minlength=n)
        return np.divide(s, c, out=np.zeros(n), where=c > 0)

    # -- the register -------------------------------------------------------------------------
    def _load_points(self) -> None:
        with self.store.engine.connect() as conn:
            rows = conn.execute(sa.select(risk_point_table)).all()
        for r in rows:
            d = r.doc
            self.points[r.id] = RiskPoint(
                id=r.id, name=r.name, hazard=r.hazard, geometry=shapely.from_wkt(d["wkt"]),
                likelihood=r.likelihood, consequence=r.consequence, level=r.level,
                owner=d.get("owner", ""), controls=d.get("controls", ""), assets=d.get("assets", []),
                name_zh=d.get("name_zh"))
        self._set_points()

    def _set_points(self) -> np.ndarray:
        pts = list(self.points.values())
        cells = self.locate_geoms([p.geometry for p in pts])
        self._point_cell = {p.id: int(c) for p, c in zip(pts, cells, strict=True)}
        flood = set(self.policy.score.flood_hazards)
        return self.grid.set_points(cells, np.array([p.rating for p in pts]),
                                    np.array([p.hazard in flood for p in pts], dtype=bool))

    def _place(self, cell: int) -> dict[str, str | None]:
        if cell < 0:
            return {"grid": None, "street": None, "district": None}
        return {"grid": self.codes[cell], "street": self.street_of[cell], "district": self.district_of[cell]}

    def _write_point(self, tx: Any, p: RiskPoint, ts_ms: int) -> None:
        cell = self._point_cell.get(p.id, -1)
        c = p.geometry.representative_point()
        vals = dict(name=p.name, hazard=p.hazard, likelihood=p.likelihood, consequence=p.consequence,
                    level=p.level, lon=c.x, lat=c.y, updated_ms=ts_ms, **self._place(cell),
                    doc={"wkt": p.geometry.wkt, "owner": p.owner, "controls": p.controls,
                         "assets": p.assets, "name_zh": p.name_zh})
        n = tx.conn.execute(risk_point_table.update().where(risk_point_table.c.id == p.id)
                            .values(**vals)).rowcount
        if n == 0:
            tx.conn.execute(risk_point_table.insert().values(id=p.id, **vals))

    def _check_manager(self, user: User) -> None:
        if user.role not in (Role.COMMANDER, Role.DISTRICT_OFFICER):
            raise AccessDenied(f"{user.username} ({user.role.value}) may not change the risk register")

    def import_register(self, user: User, path: str | Path, *, ts_ms: int) -> tuple[int, list[RowError]]:
        """Import a CSV/GeoJSON register: good rows are stored (new points and
        re-gradings on the audit chain), bad rows returned with line and field. A district
        officer may import only points inside their districts (others are reported)."""
        self._check_manager(user)
        good, errors = read_register(path, self.policy)
        cells = self.locate_geoms([p.geometry for p in good])
        keep: list[RiskPoint] = []
        for p, c in zip(good, cells, strict=True):
            place = self._place(int(c))
            line = int(p.attrs.pop("line", 0))
            if c < 0:
                errors.append(RowError(str(path), line, "place", f"risk point {p.id!r} lies outside every grid cell"))
            elif user.role != Role.COMMANDER and not in_place(user, tuple(v for v in place.values() if v)):
                errors.append(RowError(str(path), line, "place", f"risk point {p.id!r} lies outside your jurisdictions"))
            else:
                keep.append(p)
        with self.rs.tx() as tx:
            for p in keep:
                old = self.points.get(p.id)
                before = None if old is None else {"likelihood": old.likelihood, "consequence": old.consequence,
                                                   "level": old.level}
                tx.audit(ts_ms=ts_ms, actor=user.username, action="import" if old is None else "regrade",
                         entity="risk_point", entity_id=p.id, before=before,
                         after={"likelihood": p.likelihood, "consequence": p.consequence, "level": p.level,
                                "name": p.name, "hazard": p.hazard})
                self.points[p.id] = p
            changed = self._set_points()
            for p in keep:
                self._write_point(tx, p, ts_ms)
            self._persist(tx, changed, ts_ms)
        return len(keep), errors

    def regrade(self, user: User, point_id: str, *, likelihood: int, consequence: int, reason: str,
                ts_ms: int) -> RiskPoint:
        """Re-grade a risk point (the matrix gives its new level); the chain keeps the old one."""
        self._check_manager(user)
        p = self.points.get(point_id)
        if p is None:
            raise NotFound(f"no risk point {point_id!r}")
        place = self._place(self._point_cell.get(point_id, -1))
        if user.role != Role.COMMANDER and not in_place(user, tuple(v for v in place.values() if v)):
            raise NotFound(f"no risk point {point_id!r}")
        if not reason.strip():
            raise ValueError("reason: a re-grading needs a reason")
        level = self.policy.grade(likelihood, consequence)
        new = RiskPoint(**{**p.__dict__, "likelihood": likelihood, "consequence": consequence, "level": level})
        with self.rs.tx() as tx:
            tx.audit(ts_ms=ts_ms, actor=user.username, action="regrade", entity="risk_point", entity_id=p.id,
                     before={"likelihood": p.likelihood, "consequence": p.consequence, "level": p.level},
                     after={"likelihood": likelihood, "consequence": consequence, "level": level},
                     data={"reason": reason})
            self.points[p.id] = new
            changed = self._set_points()
            self._write_point(tx, new, ts_ms)
            self._persist(tx, changed, ts_ms)
        return new

    def point_history(self, user: User, point_id: str) -> list[dict[str, Any]]:
        """Every grading of a risk point, oldest first (from the audit chain)."""
        place = self._place(self._point_cell.get(point_id, -1))
        if point_id not in self.points or not _details_ok(user, [v for v in place.values() if v]):
            raise NotFound(f"no risk point {point_id!r}")
        return [{"ts_ms": r.ts_ms, "actor": r.actor, "action": r.action, "before": r.before,
                 "after": r.after, **r.data} for r in self.rs.audit_records(entity="risk_point", entity_id=point_id)]

    # -- the live part -----------------------------------------------------------------------
    def _set_live(self, key: str, cell: int, weight: float, label: str) -> tuple[list[int], list[float]]:
        old = self.live.pop(key, None)
        cells: list[int] = []
        deltas: list[float] = []
        if old is not None:
            cells.append(old.cell)
            deltas.append(-old.weight)
        if weight > 0 and cell >= 0:
            self.live[key] = _Live(cell, weight, label)
            cells.append(cell)
            deltas.append(weight)
        return cells, deltas

    def on_alarms(self, alarms: Iterable[Mapping[str, Any]], ts_ms: int) -> list[str]:
        """Alarms as they are now (dicts with ``id``, ``model``, ``state``, ``level``,
        ``lon``, ``lat``, ``muted``): firing, unmuted alarms weigh by their level, others
        weigh nothing. Returns the codes of the cells whose level changed."""
        rows = list(alarms)
        self._hazards_from(rows, ts_ms)
        cells_of = self.locate([_f(a.get("lon")) for a in rows], [_f(a.get("lat")) for a in rows])
        cells: list[int] = []
        deltas: list[float] = []
        for a, cell in zip(rows, cells_of, strict=True):
            w = 0.0
            if a.get("state") == "firing" and not a.get("muted"):
                w = self.policy.score.level_weight("alarm", int(a.get("level") or 0))
            c, d = self._set_live(f"alarm:{a['id']}", int(cell), w, f"alarm {a.get('model')} on {a.get('asset', '')}")
            cells += c
            deltas += d
        return self._apply(cells, deltas, ts_ms)

    def load_live(self, ts_ms: int) -> list[str]:
        """Bring the live part up to what the store has now: the alarms (following their
        stored events since the last call) and the open incidents. Cheap when nothing
        happened; the API calls it before answering."""
        from rescity.store.monitoring import MonitoringStore

        from .loop import AlarmIncidentBridge

        if self._follower is None:
            self._follower = AlarmIncidentBridge(self.response, MonitoringStore(self.store.engine))
        _, changed = self._follower.follow_events()
        return self.on_alarms(self._follower.alarm_states(changed), ts_ms) + self.sync_incidents(ts_ms)

    def _hazards_from(self, alarms: list[Mapping[str, Any]], ts_ms: int) -> None:
        """Open a hidden-hazard investigation at the risk point of an asset on which an
        alarm of a deterioration model fires (policy ``hidden_hazards_from_alarms``)."""
        models = set(self.policy.hidden_hazards_from_alarms.models)
        if not models:
            return
        for a in alarms:
            if a.get("state") != "firing" or a.get("model") not in models:
                continue
            asset = str(a.get("asset") or "")
            for p in self.points.values():
                if asset not in p.assets:
                    continue
                open_ids = self.rs.incidents_by_key("group", [f"hazard:{p.id}"])
                if self.rs.incident_docs(ids=open_ids, states=["new", "verified", "dispatched", "accepted",
                                                                "on_site", "resolved", "reviewed"]):
                    continue
                net = asset.split(":", 1)[0]
                inc = self.report_hidden_hazard(
                    SYSTEM_USER, point_id=p.id, ts_ms=ts_ms,
                    network=self.response.network_types.get(net, net),
                    text=f"alarm {a.get('model')} (level {a.get('level')}) on {asset}: investigate {p.name}",
                    groups=[f"hazard:{p.id}"])
                self.hazards_opened.append(inc.id)

    def sync_incidents(self, ts_ms: int) -> list[str]:
        """Open incidents weigh by their level; closed, dismissed and merged ones nothing."""
        docs = self.rs.incident_docs()
        cells_of = self.locate([_f(d.get("lon")) for d in docs], [_f(d.get("lat")) for d in docs])
        cells: list[int] = []
        deltas: list[float] = []
        open_states = {"new", "verified", "dispatched", "accepted", "on_site", "resolved", "reviewed"}
        for d, cell in zip(docs, cells_of, strict=True):
            w = self.policy.score.level_weight("incident", int(d["level"])) if d["state"] in open_states else 0.0
            key = f"incident:{d['id']}"
            have = self.live.get(key)
            if have is not None and have.weight == w and have.cell == int(cell):
                continue
            c, dl = self._set_live(key, int(cell), w, f"incident {d['id']}: {d['title']}")
            cells += c
            deltas += dl
        return self._apply(cells, deltas, ts_ms)

    def set_rain(self, intensity_mm_h: float, ts_ms: int) -> list[str]:
        """The city's rain (observed or forecast, mm/h): raises the flood-prone cells."""
        changed = self.grid.set_rain(intensity_mm_h)
        with self.rs.tx() as tx:
            self._persist(tx, changed, ts_ms)
        return [self.codes[i] for i in changed]

    def _apply(self, cells: list[int], deltas: list[float], ts_ms: int) -> list[str]:
        if not cells:
            return []
        changed = self.grid.add_live(np.array(cells), np.array(deltas))
        if len(changed):
            with self.rs.tx() as tx:
                self._persist(tx, changed, ts_ms)
        return [self.codes[i] for i in changed]

    def _persist(self, tx: Any, changed: np.ndarray, ts_ms: int) -> None:
        """Upsert the changed cells and append their new levels to the history."""
        if not len(changed):
            return
        rows = [{"cell": self.codes[i], "score": float(self.grid.score[i]), "level": int(self.grid.level[i]),
                 "updated_ms": ts_ms} for i in changed]
        codes = [r["cell"] for r in rows]
        tx.conn.execute(risk_cell_table.delete().where(risk_cell_table.c.cell.in_(codes)))
        tx.conn.execute(risk_cell_table.insert(), rows)
        tx.conn.execute(risk_cell_history_table.insert(),
                        [{"cell": r["cell"], "ts_ms": ts_ms, "score": r["score"], "level": r["level"]} for r in rows])

    def snapshot(self, ts_ms: int) -> None:
        """Store every cell's current level (the start of the history)."""
        with self.rs.tx() as tx:
            self._persist(tx, np.arange(len(self.codes)), ts_ms)

    def history(self, user: User, cell: str) -> list[dict[str, Any]]:
        i = self.index.get(cell)
        if i is None or not _details_ok(user, [c for c in self._place(i).values() if c]):
            raise NotFound(f"no cell {cell!r}")
        t = risk_cell_history_table
        with self.store.engine.connect() as conn:
            return [{"ts_ms": r.ts_ms, "score": r.score, "level": r.level}
                    for r in conn.execute(sa.select(t).where(t.c.cell == cell).order_by(t.c.ts_ms, t.c.seq))]

    # -- outputs ------------------------------------------------------------------------------
    def contributions(self, i: int, top: int = 3) -> list[dict[str, Any]]:
        """The cell's largest contributors: its risk points by rating, its live items by weight."""
        pts = sorted((p for pid, p in self.points.items() if self._point_cell.get(pid) == i),
                     key=lambda p: -p.rating)
        items = [{"kind": "risk_point", "id": p.id, "name": p.name, "hazard": p.hazard, "level": p.level,
                  "rating": round(p.rating, 3)} for p in pts[:top]]
        live = sorted(((k, v) for k, v in self.live.items() if v.cell == i), key=lambda kv: -kv[1].weight)
        items += [{"kind": k.split(":")[0], "id": k.split(":", 1)[1], "name": v.label, "weight": v.weight}
                  for k, v in live[:top]]
        return items

    def _feature(self, user: User, i: int) -> dict[str, Any]:
        lv = int(self.grid.level[i])
        place = self._place(i)
        props: dict[str, Any] = {"code": self.codes[i], "level": RISK_COLOUR[lv], "level_n": lv,
                                 "level_zh": RISK_LEVEL_ZH[lv], "street": place["street"],
                                 "district": place["district"]}
        if _details_ok(user, [c for c in place.values() if c]):
            props.update(score=round(float(self.grid.score[i]), 2),
                         static=round(float(self.grid.static[i]), 4),
                         exposure=round(float(self.grid.exposure[i]), 4),
                         vulnerability=round(float(self.grid.vulnerability[i]), 4),
                         live=round(float(self.grid.live[i]), 4), top_risks=self.contributions(i))
        return {"type": "Feature", "geometry": mapping(self.cells[i].geometry), "properties": props}

    def cells_geojson(self, user: User, *, bbox: tuple[float, float, float, float] | None = None,
                      level: JurisdictionLevel | str = JurisdictionLevel.GRID) -> dict[str, Any]:
        """The map as a FeatureCollection: one feature per grid cell (or street / district:
        the worst of its cells, and how many of its cells are at each level)."""
        lev = JurisdictionLevel(level)
        if lev == JurisdictionLevel.GRID:
            idx: Iterable[int] = range(len(self.cells))
            if bbox is not None:
                idx = sorted(int(k) for k in self._tree.query(shapely.box(*bbox)))
            return {"type": "FeatureCollection", "features": [self._feature(user, i) for i in idx]}
        key = self.street_of if lev == JurisdictionLevel.STREET else self.district_of
        feats = []
        for j in sorted(self.city.level(lev), key=lambda j: j.code):
            members = [i for i, k in enumerate(key) if k == j.code]
            if bbox is not None and not j.geometry.intersects(shapely.box(*bbox)):
                continue
            lv = int(min((self.grid.level[i] for i in members), default=4))
            props: dict[str, Any] = {"code": j.code, "name": j.name, "name_zh": j.name_zh, "level": RISK_COLOUR[lv],
                                     "level_n": lv, "level_zh": RISK_LEVEL_ZH[lv],
                                     "cells": {RISK_COLOUR[k]: int(sum(1 for i in members if self.grid.level[i] == k))
                                               for k in (1, 2, 3, 4)}}
            if _details_ok(user, [j.code, j.parent or ""]):
                props["score"] = round(float(max((self.grid.score[i] for i in members), default=0.0)), 2)
            feats.append({"type": "Feature", "geometry": mapping(j.geometry), "properties": props})
        return {"type": "FeatureCollection", "features": feats}

    def top_risks(self, user: User, *, jurisdiction: str | None = None, n: int = 10) -> dict[str, Any]:
        """The most severe risk points and the highest-scoring cells in a jurisdiction
        (default: all the user may see in detail)."""
        def visible(i: int) -> bool:
            place = [c for c in self._place(i).values() if c]
            return _details_ok(user, place) and (jurisdiction is None or jurisdiction in place)

        if jurisdiction is not None and jurisdiction not in self.city.jurisdictions:
            raise NotFound(f"no jurisdiction {jurisdiction!r}")
        cells = sorted((i for i in range(len(self.cells)) if visible(i)), key=lambda i: -self.grid.score[i])[:n]
        pts = sorted((p for pid, p in self.points.items() if self._point_cell.get(pid, -1) >= 0
                      and visible(self._point_cell[pid])), key=lambda p: (p.level, -p.rating, p.id))[:n]
        return {
            "cells": [{"code": self.codes[i], "score": round(float(self.grid.score[i]), 2),
                       "level": RISK_COLOUR[int(self.grid.level[i])], "top_risks": self.contributions(i)}
                      for i in cells],
            "points": [{"id": p.id, "name": p.name, "name_zh": p.name_zh, "hazard": p.hazard,
                        "likelihood": p.likelihood, "consequence": p.consequence, "level": RISK_COLOUR[p.level],
                        "level_en": RISK_LEVEL_EN[p.level], "level_zh": RISK_LEVEL_ZH[p.level],
                        "owner": p.owner, "controls": p.controls, "cell": self.codes[self._point_cell[p.id]]}
                       for p in pts],
        }

    def render_png(self, path: str | Path, *, title: str = "") -> Path:
        """The four-colour map as a PNG (matplotlib): cells by level, districts outlined."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch

        colours = {1: "#d7191c", 2: "#fdae61", 3: "#ffe541", 4: "#2b83ba"}
        fig, ax = plt.subplots(figsize=(8, 8), dpi=110)
        for i, c in enumerate(self.cells):
            geoms = getattr(c.geometry, "geoms", [c.geometry])
            for g in geoms:
                x, y = g.exterior.xy
                ax.fill(x, y, color=colours[int(self.grid.level[i])], alpha=0.85, lw=0.3, ec="white")
        for d in self.city.level(JurisdictionLevel.DISTRICT):
            for g in getattr(d.geometry, "geoms", [d.geometry]):
                x, y = g.exterior.xy
                ax.plot(x, y, color="black", lw=1.2)
        for p in self.points.values():
            c = p.geometry.representative_point()
            ax.plot(c.x, c.y, marker="^" if p.level <= 2 else ".", color="black", ms=4 if p.level <= 2 else 2)
        counts = np.bincount(self.grid.level.astype(int), minlength=5)
        ax.legend(handles=[Patch(color=colours[k], label=f"{RISK_COLOUR[k]} ({counts[k]})") for k in (1, 2, 3, 4)],
                  loc="lower right", fontsize=8, title="risk level")
        ax.set_title(title or f"{self.city.name}: four-colour risk map ({len(self.cells)} grid cells)", fontsize=10)
        ax.set_aspect(1 / math.cos(math.radians(self.city.center[1])))
        ax.set_xlabel("longitude")
        ax.set_ylabel("latitude")
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, bbox_inches="tight")
        plt.close(fig)
        return out

    # -- hidden hazards ------------------------------------------------------------------------
    def report_hidden_hazard(self, user: User, *, text: str, ts_ms: int, point_id: str | None = None,
                             lon: float | None = None, lat: float | None = None,
                             network: str | None = None, level: int | None = None,
                             groups: Sequence[str] = ()) -> Any:
        """A hidden hazard found on inspection (隐患排查): an incident of type
        ``hidden_hazard`` (at a risk point, or a place) with the rectification deadlines
        of the response policy; it is routed, escalated when overdue and closed like any
        incident. Its level is the risk point's unless given."""
        if point_id is not None:
            p = self.points.get(point_id)
            if p is None:
                raise NotFound(f"no risk point {point_id!r}")
            c = p.geometry.representative_point()
            lon, lat = c.x, c.y
            level = level or p.level
            title = f"Hidden hazard at {p.name}"
            title_zh = f"隐患：{p.name_zh or p.name}"
        else:
            title, title_zh = "Hidden hazard", "隐患"
        if lon is None or lat is None:
            raise ValueError("give a risk point or lon and lat")
        src = IncidentSource.INSPECTION if user.role == Role.GRID_WORKER else IncidentSource.MANUAL
        return self.response.open_incident(
            user, title=title, title_zh=title_zh, type="hidden_hazard", level=level or 3, ts_ms=ts_ms,
            lon=lon, lat=lat, network=network, asset=f"risk:{point_id}" if point_id else None,
            source=IncidentSource.ALARM if groups else src, description=text, alarm_groups=groups,
            dispatch=user.role in (Role.COMMANDER, Role.DISTRICT_OFFICER))


def _f(x: Any) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return math.nan
    return v if math.isfinite(v) else math.nan
