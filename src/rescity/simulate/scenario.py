"""One scenario end to end: hazard -> damage -> repair schedule -> cascade -> service
curves -> resilience metrics and consequences.

* **earthquake**: intensities at every exposed asset (WNTR attenuation), damage sampled
  from the fragility data (one realization per seed); pipe repairs become leaks (orifice
  of ``LEAK_AREA_FRACTION`` of the pipe's section) or breaks; fragility assets in state
  ``moderate`` or worse are out (buses: outages; bridges: closures) until repaired;
* **rainstorm**: the design storm's hyetograph into the cascade (floods, closures,
  flooded substations, the assets they feed);
* **pipe burst** at a chosen pipe, **power outage** at a chosen substation or feeder.

Repairs: crews start at the city's fire stations and treatment works (``crew_bases``),
travel on the road graph (free-flow times, with the road segments and bridges the
hazard closed at the start shut: :func:`~rescity.simulate.restoration.road_travel`;
the straight line at 30 km/h x 1.3 where the city has no roads or ``travel="straight"``),
and take jobs by a policy (:mod:`rescity.simulate.restoration`); a component's condition
ends at its repair's finish. The curves come from the engines' service levels (water:
served over expected demand; power: load served; roads: share of segments open), in
percent over hours; the city curve weighs networks equally. Consequences per district
and street (:mod:`rescity.simulate.consequences`) and the affected assets (for maps)
come with the result.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rescity.model import City, FacilityKind, NetworkType

from . import metrics as M
from .cascade import Cascade, CascadeParams, CascadeResult
from .engines.conditions import Break, Closure, Condition, Leak, Outage
from .restoration import (
    POLICIES,
    Crew,
    Job,
    Schedule,
    TravelFn,
    asset_xy,
    road_travel,
    schedule_repairs,
    straight_line,
)

LEAK_AREA_FRACTION = 0.03
"""A shaking leak's orifice as a share of the pipe's section (assumption; breaks take the
full section)."""

Progress = Callable[[str, float], None]


@dataclass
class ScenarioResult:
    kind: str
    conditions: list[Condition]
    schedule: Schedule | None
    cascade: CascadeResult
    curves: dict[str, M.Curve]
    city: M.Curve
    metrics: dict[str, M.ResilienceMetrics]
    consequences: dict[str, Any] = field(default_factory=dict)
    affected: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Metrics per network and for the city, consequences, counts (JSON-able)."""
        return {"kind": self.kind, "conditions": len(self.conditions),
                "repairs": 0 if self.schedule is None else len(self.schedule.assignments),
                "metrics": {k: v.to_dict() for k, v in self.metrics.items()},
                "consequences": self.consequences,
                "events": len(self.cascade.events)}


_CASCADES: dict[int, tuple[City, Cascade]] = {}
_FROZEN: list[bool] = []


def freeze_long_lived() -> bool:
    """After the first scenario of a process: move every object alive then (the city
    model, its cascade's indexes and engine models) out of the cyclic garbage
    collector's generations (``gc.collect(); gc.freeze()``), so the collections that
    every run's allocations trigger no longer rescan the hundreds of thousands of
    long-lived objects of the twin (about 8 % of a realization's time on the demo city).
    Once per process (a frozen object that becomes cyclic garbage is not reclaimed);
    ``RESCITY_GC_FREEZE=0`` turns it off. Returns whether it froze now."""
    import gc
    import os

    if _FROZEN or os.environ.get("RESCITY_GC_FREEZE", "1") == "0":
        return False
    _FROZEN.append(True)
    gc.collect()
    gc.freeze()
    return True


def cascade_for(city: City) -> Cascade:
    """The city's :class:`Cascade` (spatial indexes and engine models built once per city
    object and process: every realization of an ensemble in a worker shares it)."""
    hit = _CASCADES.get(id(city))
    if hit is None or hit[0] is not city:
        if len(_CASCADES) > 4:
            _CASCADES.clear()
        hit = (city, Cascade(city, CascadeParams()))
        _CASCADES[id(city)] = hit
    return hit[1]


def crew_bases(city: City, n_per_base: int = 2) -> list[Crew]:
    """Crews at the city's fire stations and water works (``n_per_base`` each)."""
    crews = []
    for f in sorted(city.facilities.values(), key=lambda f: f.id):
        if f.kind in (FacilityKind.FIRE_STATION, FacilityKind.TREATMENT_PLANT, FacilityKind.PUMPING_STATION):
            c = f.geometry.representative_point()
            for k in range(n_per_base):
                crews.append(Crew(id=f"{f.id}-{k + 1}", base=(c.x, c.y)))
    if not crews:
        crews.append(Crew(id="crew-1", base=city.center))
    return crews


def _network(city: City, t: NetworkType) -> Any:
    return next((n for n in city.networks.values() if n.type == t), None)


def crew_travel(city: City, conditions: Sequence[Condition], casc: Cascade, mode: str = "roads") -> TravelFn:
    """The crews' travel time: on the road graph with the road segments and bridge spans
    that ``conditions`` close at the start (t = 0) shut, or the straight line (30 km/h x
    1.3) with ``mode="straight"`` or without a road network."""
    graph = casc.road_graph() if mode == "roads" else None
    if graph is None:
        return straight_line(30.0, detour=1.3)
    names = {graph.roads.name, graph.bridges.name if graph.bridges is not None else None}
    at_start = [c for c in conditions if c.network in names and isinstance(c, (Closure, Outage))
                and c.start_s <= 0.0]
    return road_travel(graph, graph.closed_links(at_start))


def earthquake_conditions(city: City, quake: Any, seed: int) -> tuple[list[Condition], list[Job]]:
    """Damage of one realization as engine conditions (without end times) and repair jobs."""
    from .damage import PIPE, sample_damage

    quake.check_city(city)
    exp = cascade_for(city).exposure()
    ims = quake.intensities(exp.lon, exp.lat)
    dmg = sample_damage(exp, ims, seed)
    conds: list[Condition] = []
    jobs: list[Job] = []
    for i, uid in enumerate(exp.uids):
        uid = str(uid)
        st = int(dmg.state[0, i])
        if st == 0:
            continue
        el = city.asset(uid)
        net = uid.split(":", 1)[0]
        if exp.model[i] == PIPE:
            d = float(getattr(el, "attrs", {}).get("diameter_m") or 0.1)
            area = math.pi * d * d / 4
            if int(dmg.breaks[0, i]) > 0:
                conds.append(Break(uid, 0.0, None))
            else:
                conds.append(Leak(uid, max(area * LEAK_AREA_FRACTION, 1e-5), 0.0, None))
        elif st >= 2:  # moderate or worse: out of service until repaired
            typ = city.networks[net].type if net in city.networks else None
            conds.append(Closure(uid, 0.0, None) if typ in (NetworkType.BRIDGE, NetworkType.ROAD)
                         else Outage(uid, 0.0, None))
        else:
            continue
        jobs.append(Job(uid, asset_xy(city, uid), float(dmg.repair_hours[0, i]) or 1.0))
    return conds, jobs


def _with_repairs(conds: list[Condition], schedule: Schedule | None) -> list[Condition]:
    if schedule is None:
        return conds
    out: list[Condition] = []
    for c in conds:
        a = schedule.assignments.get(c.uid)
        end = None if a is None else float(a.finish_s)
        if end is not None and end <= c.start_s:
            continue
        out.append(type(c)(**{**{k: getattr(c, k) for k in c.__dataclass_fields__}, "end_s": end}))  # type: ignore[attr-defined]
    return out


def _curve(series: Any) -> M.Curve:
    return M.Curve.from_seconds(np.asarray(series.index, float), 100.0 * np.asarray(series, float))


def run_scenario(city: City, hazard: Any, *, seed: int = 1, horizon_h: float = 48.0, step_s: float = 3600.0,
                 policy: str = "criticality", crews: Sequence[Crew] | None = None,
                 cascade: Cascade | None = None, progress: Progress | None = None,
                 water_simulator: str = "wntr", coarsen_patterns: bool = False,
                 travel: str = "roads") -> ScenarioResult:
    """Run one scenario (module docstring). ``hazard``: an :class:`Earthquake`,
    :class:`Rainstorm`, :class:`PipeBurst` or :class:`PowerOutage` of
    :mod:`rescity.simulate.hazards`; ``travel``: ``roads`` or ``straight``."""
    say = progress or (lambda _m, _f: None)
    kind = str(getattr(hazard, "kind", type(hazard).__name__.lower()))
    horizon_s = horizon_h * 3600.0
    conds: list[Condition] = []
    jobs: list[Job] = []
    rain = None
    rain_step = 300.0
    say("damage", 0.1)
    if kind == "earthquake":
        conds, jobs = earthquake_conditions(city, hazard, seed)
    elif kind == "rainstorm":
        h = hazard.hyetograph()
        rain, rain_step = np.asarray(h.intensity_mm_h, float), float(h.step_min) * 60.0
    elif kind == "pipe_burst":
        hazard.check_city(city)
        c: Condition = (Break(hazard.pipe, float(hazard.start_s), None) if hazard.mode == "break"
                        else Leak(hazard.pipe, float(hazard.opening_area_m2(city)), float(hazard.start_s), None))
        conds = [c]
        jobs = [Job(hazard.pipe, asset_xy(city, hazard.pipe), 16.0 if hazard.mode == "break" else 8.0,
                    release_s=float(hazard.start_s))]
    elif kind == "power_outage":
        hazard.check_city(city)
        end = None if hazard.duration_s is None else float(hazard.start_s + hazard.duration_s)
        conds = [Outage(hazard.asset, float(hazard.start_s), end)]
    else:
        raise ValueError(f"unknown hazard kind {kind!r}")
    say("repairs", 0.3)
    if policy not in POLICIES:
        raise ValueError(f"unknown repair policy {policy!r}; expected one of {', '.join(POLICIES)}")
    casc = cascade or cascade_for(city)
    schedule = None
    if jobs:
        schedule = schedule_repairs(list(crews or crew_bases(city)), jobs, POLICIES[policy](),
                                    crew_travel(city, conds, casc, travel), strict=False)
    conds = _with_repairs(conds, schedule)
    say("cascade", 0.5)
    res = casc.run(conds, horizon_s=horizon_s, step_s=step_s, rainfall_mm_h=rain, rain_step_s=rain_step,
                   water_simulator=water_simulator, coarsen_patterns=coarsen_patterns)
    say("metrics", 0.9)
    curves: dict[str, M.Curve] = {}
    if res.water is not None:
        curves["water"] = _curve(res.water.service_level())
    if res.power is not None:
        curves["power"] = _curve(res.power.service_level())
    roads = _network(city, NetworkType.ROAD)
    if roads is not None:
        n = max(1, len(roads.links))
        closed = res.roads_closed.sum(axis=1) if not res.roads_closed.empty else None
        q = np.full(len(res.times_s), 100.0) if closed is None else \
            100.0 * (1.0 - np.asarray(closed.reindex(res.times_s, fill_value=0), float) / n)
        curves["roads"] = M.Curve.from_seconds(res.times_s, q)
    city_curve = M.combine(curves) if curves else M.Curve.from_seconds(res.times_s, np.full(len(res.times_s), 100.0))
    mets = {k: M.summarize(v) for k, v in curves.items()}
    mets["city"] = M.summarize(city_curve)
    cons: dict[str, Any] = {}
    if res.water is not None:
        cw = res.water.customers_without_water()
        cons["customers_without_water_max"] = int(cw.max())
        cons["customer_hours_without_water"] = float(np.trapezoid(cw.to_numpy(float), res.times_s) / 3600.0)
        cons["leak_m3"] = float(np.trapezoid(res.water.leak_m3s.sum(axis=1).to_numpy(float), res.times_s)) \
            if not res.water.leak_m3s.empty else 0.0
    if res.power is not None:
        cons["load_lost_mw_max"] = float(res.power.load_lost_mw.max())
    if res.drainage is not None:
        cons["flood_volume_m3"] = res.drainage.total_flood_m3
        cons["flooded_nodes"] = int(res.flooded.any(axis=0).sum())
    cons["roads_closed_max"] = int(res.roads_closed.any(axis=0).sum()) if not res.roads_closed.empty else \
        sum(1 for c in conds if isinstance(c, Closure))
    dark = {e.uid for e in res.events if e.what == "de_energised" and e.uid.startswith("facility:")}
    cons["facilities_without_power"] = sorted(dark)
    say("consequences", 0.95)
    from .consequences import affected_assets, consequences, road_origins

    by = consequences(city, res, road_origins=road_origins(city), road_graph=casc.road_graph())
    whole = by["city"]
    for k in ("population_without_water_max", "person_hours_without_water", "population_without_power_max",
              "person_hours_without_power", "flooded_area_m2"):
        if k in whole:
            cons[k] = whole[k]
    for k in ("facilities_without_water", "facilities_without_road_access"):
        cons[k] = whole[k]
    cons["by_jurisdiction"] = by
    hit = affected_assets(city, res, conds)
    freeze_long_lived()
    say("done", 1.0)
    return ScenarioResult(kind, conds, schedule, res, curves, city_curve, mets, cons, hit)
