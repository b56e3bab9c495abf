"""Consequences (后果) of a scenario: who and what loses service, for how long, where.

Pure functions over a scenario's cascade result (:class:`~.cascade.CascadeResult`) and the
city, per jurisdiction (districts and streets/towns) and for the city:

* **population without water / power** over time. A network does not know its residents,
  so each street's residents are shared among the network's customers inside its polygon
  in proportion to what they take: water customers (junctions with a base demand) by
  base demand D_i (m3/s), power customers (buses with a load) by load P_i (MW):
  pop_i = pop_street x w_i / sum_{k in street} w_k. A street without any customer of a
  network cannot lose that service in this model (its population is reported as
  ``unattributed``). Population without water at t = sum_i pop_i [s_i(t) < 0.5]
  (the water engine's "without water"); without power: sum_i pop_i [bus i dark at t];
* **critical facilities** (hospitals, schools, shelters, fire stations, works) without
  water (their ``water_supply`` junction without water), without power (their
  ``power_supply`` bus dark) and without **road access** (their ``road_access`` road
  node unreachable on the road graph from every fire station with the closures active
  at t; a city without fire stations uses its crews' bases) over time;
* **flooding**: flooded volume V (m3, SWMM's cumulative node flooding) and flooded area
  A = V / d_pond (m2; the water ponds at ``ponding_depth_m`` = 0.3 m as in the cascade's
  substation discs; overlaps are not removed), and the number of flooded nodes;
* person-hours without service: the trapezoid integral of the population curve (h).

Each asset belongs to the street whose polygon holds its point (a link: its midpoint);
the district is the street's parent. Units: persons, hours, m3, m2.

:func:`affected_assets` lists what the scenario hit (failed or damaged components,
flooded nodes, closed segments, de-energised buses and facilities, customers without
water) with the hours they were affected, for maps.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import shapely

from rescity.model import City, DependencyKind, FacilityKind, JurisdictionLevel

PONDING_DEPTH_M = 0.3
"""Depth of the water a flooded node spills onto the street (m), as the cascade's."""

CRITICAL = (FacilityKind.HOSPITAL, FacilityKind.SCHOOL, FacilityKind.SHELTER, FacilityKind.FIRE_STATION,
            FacilityKind.TREATMENT_PLANT, FacilityKind.PUMPING_STATION, FacilityKind.SUBSTATION)
"""Facility kinds counted as critical facilities."""


# -- where things are -------------------------------------------------------------------------------------
class JurisdictionIndex:
    """Street and district of every asset of a city (point in polygon, built once)."""

    def __init__(self, city: City) -> None:
        self.city = city
        self.streets = [j for j in city.jurisdictions.values() if j.level == JurisdictionLevel.STREET]
        self.districts = [j for j in city.jurisdictions.values() if j.level == JurisdictionLevel.DISTRICT]
        self._tree = shapely.STRtree([j.geometry for j in self.streets]) if self.streets else None
        self._cache: dict[str, str | None] = {}
        self.shares: dict[tuple[str, tuple[str, ...]], tuple[np.ndarray, list[str | None]]] = {}

    def street_of_points(self, xy: np.ndarray) -> list[str | None]:
        """The street code holding each (lon, lat) row of ``xy`` (None outside every street)."""
        out: list[str | None] = [None] * len(xy)
        if self._tree is None or len(xy) == 0:
            return out
        pts = shapely.points(np.asarray(xy, float))
        pi, si = self._tree.query(pts, predicate="within")
        for p, s in zip(pi.tolist(), si.tolist(), strict=True):
            if out[p] is None:
                out[p] = self.streets[s].code
        return out

    def street_of(self, uids: Sequence[str]) -> list[str | None]:
        """The street code of each asset uid (cached)."""
        todo = [u for u in dict.fromkeys(uids) if u not in self._cache]
        if todo:
            xy = np.array([_xy(self.city, u) for u in todo], float).reshape(-1, 2)
            for u, s in zip(todo, self.street_of_points(xy), strict=True):
                self._cache[u] = s
        return [self._cache[u] for u in uids]

    def district(self, street: str | None) -> str | None:
        if street is None:
            return None
        return self.city.jurisdictions[street].parent


def _xy(city: City, uid: str) -> tuple[float, float]:
    a = city.asset(uid)
    if a is None:
        return (float("nan"), float("nan"))
    g = a.geometry
    p = g.interpolate(0.5, normalized=True) if g.geom_type == "LineString" else g.representative_point()
    return (float(p.x), float(p.y))


_INDEXES: dict[int, tuple[City, JurisdictionIndex]] = {}


def jurisdiction_index(city: City) -> JurisdictionIndex:
    """The city's :class:`JurisdictionIndex` (one per city object and process)."""
    hit = _INDEXES.get(id(city))
    if hit is None or hit[0] is not city:
        if len(_INDEXES) > 4:
            _INDEXES.clear()
        hit = (city, JurisdictionIndex(city))
        _INDEXES[id(city)] = hit
    return hit[1]


# -- population shares ----------------------------------------------------------------------------------------
def population_shares(index: JurisdictionIndex, uids: Sequence[str], weights: np.ndarray) -> tuple[np.ndarray, list[str | None]]:
    """Residents represented by each customer (persons) and its street: each street's
    population split over its customers by weight (module docstring)."""
    streets = index.street_of(list(uids))
    w = np.asarray(weights, float)
    tot: dict[str, float] = {}
    for s, wi in zip(streets, w, strict=True):
        if s is not None:
            tot[s] = tot.get(s, 0.0) + wi
    pop = np.zeros(len(uids))
    for i, (s, wi) in enumerate(zip(streets, w, strict=True)):
        if s is not None and tot[s] > 0:
            pop[i] = index.city.jurisdictions[s].population * wi / tot[s]
    return pop, streets


def person_hours(t_s: np.ndarray, persons: np.ndarray) -> float:
    """Integral of a population curve over time (persons x h, trapezoid rule)."""
    if len(t_s) < 2:
        return 0.0
    return float(np.trapezoid(np.asarray(persons, float), np.asarray(t_s, float)) / 3600.0)


def _shares(index: JurisdictionIndex, network: str, uids: list[str], w: np.ndarray) -> tuple[np.ndarray, list[str | None]]:
    """:func:`population_shares`, cached on the index per network and customer list (the
    weights of a network's customers do not change between runs)."""
    key = (network, tuple(uids))
    hit = index.shares.get(key)
    if hit is None:
        hit = index.shares[key] = population_shares(index, uids, w)
    return hit


@dataclass
class ServiceLoss:
    """Who lacks one service over time: ``lost`` (time x customer bool), each customer's
    residents ``pop`` and street."""

    lost: np.ndarray
    pop: np.ndarray
    streets: list[str | None]


def _water_loss(city: City, res: Any, index: JurisdictionIndex) -> ServiceLoss | None:
    if res.water is None or res.water.service.empty:
        return None
    w = res.water.without_water()
    uids = [str(c) for c in w.columns]
    key = ("water", tuple(uids))
    hit = index.shares.get(key)
    if hit is not None:
        return ServiceLoss(w.reindex(res.times_s, method="nearest").to_numpy(dtype=bool), *hit)
    base = np.array([float(getattr(city.asset(u), "attrs", {}).get("base_demand_m3s") or 0.0) for u in uids])
    if not base.any():
        base = np.ones(len(uids))
    pop, streets = _shares(index, "water", uids, base)
    lost = w.reindex(res.times_s, method="nearest").to_numpy(dtype=bool)
    return ServiceLoss(lost, pop, streets)


def _power_loss(city: City, res: Any, index: JurisdictionIndex) -> ServiceLoss | None:
    if res.power is None or res.power.service.empty:
        return None
    s = res.power.service
    uids = [str(c) for c in s.columns]
    w = res.power.weights
    load = (w.reindex(s.columns).to_numpy(float) if isinstance(w, pd.Series)
            else w.reindex(columns=s.columns).mean(axis=0).to_numpy(float))
    pop, streets = _shares(index, "power", uids, np.nan_to_num(load))
    lost = s.reindex(res.times_s, method="nearest").to_numpy(float) < 0.5
    return ServiceLoss(lost, pop, streets)


# -- facilities ---------------------------------------------------------------------------------------------------
def _supports(city: City, kind: DependencyKind) -> dict[str, str]:
    return {d.dependent: d.supporting for d in city.interdependencies
            if d.kind == kind and d.dependent.startswith("facility:")}


def facilities_without_service(city: City, res: Any, road_origins: Sequence[tuple[float, float]] = (),
                               road_graph: Any = None) -> dict[str, Any]:
    """Per service (``water``, ``power``, ``road``) a (time x facility) bool array over
    the critical facilities (:data:`CRITICAL`, sorted by id; key ``facilities`` holds
    their uids): True where the facility lacks that service at the report time."""
    facs = sorted(f.uid for f in city.facilities.values() if f.kind in CRITICAL)
    n_t = len(res.times_s)
    out: dict[str, Any] = {"facilities": facs}
    water = np.zeros((n_t, len(facs)), bool)
    if res.water is not None and not res.water.service.empty:
        ww = res.water.without_water().reindex(res.times_s, method="nearest")
        sup = _supports(city, DependencyKind.WATER_SUPPLY)
        for j, f in enumerate(facs):
            s = sup.get(f)
            if s is not None and s in ww.columns:
                water[:, j] = ww[s].to_numpy(dtype=bool)
    out["water"] = water
    power = np.zeros((n_t, len(facs)), bool)
    if res.power is not None and not res.power.energised.empty:
        en = res.power.energised.reindex(res.times_s, method="nearest")
        sup = _supports(city, DependencyKind.POWER_SUPPLY)
        for j, f in enumerate(facs):
            s = sup.get(f)
            if s is not None and s in en.columns:
                power[:, j] = ~en[s].to_numpy(dtype=bool)
    out["power"] = power
    out["road"] = _road_access_lost(city, res, facs, road_origins, road_graph)
    return out


def _road_access_lost(city: City, res: Any, facs: list[str], origins: Sequence[tuple[float, float]],
                      graph: Any) -> np.ndarray:
    from .engines.conditions import Closure, Outage

    n_t = len(res.times_s)
    lost = np.zeros((n_t, len(facs)), bool)
    if graph is None or not origins:
        return lost
    sup = _supports(city, DependencyKind.ROAD_ACCESS)
    targets: list[tuple[int, str]] = []
    for j, f in enumerate(facs):
        s = sup.get(f)
        if s is not None and s.split(":", 1)[0] == graph.roads.name and s.split(":", 1)[1] in graph.roads.nodes:
            targets.append((j, s.split(":", 1)[1]))
    if not targets:
        return lost
    road_nets = {graph.roads.name, graph.bridges.name if graph.bridges is not None else None}
    spans = [c for c in res.conditions if isinstance(c, (Closure, Outage)) and c.network in road_nets]
    flood_cols: list[str] = []
    flood = None
    if not res.roads_closed.empty:
        rc = res.roads_closed.reindex(res.times_s, fill_value=False)
        keep = rc.columns[rc.any(axis=0).to_numpy()]
        flood = rc[keep].to_numpy(dtype=bool)
        flood_cols = [str(c).split(":", 1)[1] for c in keep]
    cache: dict[frozenset[str], np.ndarray] = {}
    src = sorted({graph.nearest_node(float(o[0]), float(o[1])) for o in origins})
    for k, t in enumerate(res.times_s):
        active = [c for c in spans if c.start_s <= t and (c.end_s is None or t < c.end_s)]
        closed = set(graph.closed_links(active))
        if flood is not None:
            closed.update(c for c, on in zip(flood_cols, flood[k], strict=True) if on)
        key = frozenset(closed)
        if key not in cache:
            if key:  # unreachable from every origin (scipy Dijkstra, cached on the graph)
                tt = np.min([graph.times_from(o, key) for o in src], axis=0)
                cache[key] = ~np.isfinite(tt[[graph._pos[n] for _, n in targets]])
            else:
                cache[key] = np.zeros(len(targets), bool)
        lost[k, [j for j, _ in targets]] = cache[key]
    return lost


# -- flooding -------------------------------------------------------------------------------------------------------
def flood_by_node(res: Any) -> pd.Series:
    """Flooded volume per drainage node over the run (m3; empty without rain)."""
    if res.drainage is None or res.drainage.flood_volume_m3.empty:
        return pd.Series(dtype=float)
    v = res.drainage.flood_volume_m3.iloc[-1]
    return v[v > 0].astype(float)


# -- per jurisdiction -------------------------------------------------------------------------------------------------
def consequences(city: City, res: Any, *, road_origins: Sequence[tuple[float, float]] = (),
                 road_graph: Any = None) -> dict[str, Any]:
    """The consequences of one scenario per district and street and for the city (module
    docstring): ``{"t_h": [...], "city": {...}, "district": {code: {...}},
    "street": {code: {...}}}``, each entry with ``population``,
    ``population_without_water_max`` and ``_h`` (person-hours), the same for power,
    ``facilities_without_water|power|road_access`` (uids affected at some time),
    ``facility_hours_without_...``, ``flood_volume_m3``, ``flooded_area_m2``,
    ``flooded_nodes``; ``series`` holds the population curves over ``t_h``."""
    index = jurisdiction_index(city)
    t = np.asarray(res.times_s, float)
    losses = {"water": _water_loss(city, res, index), "power": _power_loss(city, res, index)}
    facs = facilities_without_service(city, res, road_origins, road_graph)
    fac_street = dict(zip(facs["facilities"], index.street_of(facs["facilities"]), strict=True))
    flood = flood_by_node(res)
    flood_street = dict(zip([str(u) for u in flood.index], index.street_of([str(u) for u in flood.index]), strict=True))

    def entry(streets: set[str | None] | None, population: int) -> dict[str, Any]:
        e: dict[str, Any] = {"population": int(population)}
        series: dict[str, list[float]] = {}
        for name, loss in losses.items():
            if loss is None:
                continue
            sel = np.array([streets is None or s in streets for s in loss.streets], bool)
            persons = loss.lost[:, sel].astype(float) @ loss.pop[sel] if sel.any() else np.zeros(len(t))
            e[f"population_without_{name}_max"] = round(float(persons.max(initial=0.0)), 1)
            e[f"person_hours_without_{name}"] = round(person_hours(t, persons), 1)
            series[name] = [round(float(x), 1) for x in persons]
        fsel = np.array([streets is None or fac_street[f] in streets for f in facs["facilities"]], bool)
        for name, key in (("water", "water"), ("power", "power"), ("road", "road_access")):
            arr = facs[name][:, fsel] if fsel.any() else np.zeros((len(t), 0), bool)
            ids = [f for f, s in zip(facs["facilities"], fsel, strict=True) if s]
            e[f"facilities_without_{key}"] = [f for f, hit in zip(ids, list(np.any(arr, axis=0)), strict=True) if hit]
            e[f"facility_hours_without_{key}"] = round(person_hours(t, arr.sum(axis=1).astype(float)), 1)
            series[f"facilities_without_{key}"] = [int(x) for x in arr.sum(axis=1)]
        nodes = [u for u in flood.index if streets is None or flood_street[str(u)] in streets]
        vol = float(flood[nodes].sum()) if nodes else 0.0
        e["flood_volume_m3"] = round(vol, 1)
        e["flooded_area_m2"] = round(vol / PONDING_DEPTH_M, 1)
        e["flooded_nodes"] = len(nodes)
        e["series"] = series
        return e

    out: dict[str, Any] = {"t_h": [round(float(x) / 3600.0, 4) for x in t]}
    out["city"] = entry(None, sum(j.population for j in index.districts))
    out["district"] = {}
    for d in index.districts:
        streets: set[str | None] = {s.code for s in index.streets if s.parent == d.code}
        out["district"][d.code] = {"name": d.name, "name_zh": d.name_zh, **entry(streets, d.population)}
    out["street"] = {s.code: {"name": s.name, "name_zh": s.name_zh, "district": s.parent,
                              **entry({s.code}, s.population)} for s in index.streets}
    return out


# -- what was hit, for maps ---------------------------------------------------------------------------------------------
def _spans_h(mask: np.ndarray, t_s: np.ndarray) -> tuple[float, float | None]:
    k = np.flatnonzero(mask)
    first = float(t_s[k[0]]) / 3600.0
    last = k[-1]
    end = None if last + 1 >= len(t_s) else float(t_s[last + 1]) / 3600.0
    return first, end


def affected_assets(city: City, res: Any, initial: Iterable[Any] = ()) -> list[dict[str, Any]]:
    """What the scenario hit: one row per (asset, kind) with ``uid``, ``network``,
    ``kind`` and ``from_h``/``to_h`` (hours from the start; ``to_h`` None if still
    affected at the end). Kinds: ``failed`` (a break or an outage from the hazard or a
    flooded substation), ``damaged`` (a leak), ``closed`` (road segments and bridges),
    ``flooded`` (drainage nodes), ``de_energised`` (buses and the assets and facilities
    they feed), ``no_water`` (water customers and facilities without water)."""
    from .engines.conditions import Break, Closure, Leak, Outage

    rows: dict[tuple[str, str], dict[str, Any]] = {}

    def add(uid: str, kind: str, start_h: float, end_h: float | None) -> None:
        key = (uid, kind)
        r = rows.get(key)
        if r is None:
            rows[key] = {"uid": uid, "network": uid.split(":", 1)[0], "kind": kind,
                         "from_h": round(start_h, 3), "to_h": None if end_h is None else round(end_h, 3)}
            return
        r["from_h"] = min(r["from_h"], round(start_h, 3))
        if r["to_h"] is not None:
            r["to_h"] = None if end_h is None else max(r["to_h"], round(end_h, 3))

    for c in initial:
        kind = ("failed" if isinstance(c, Break) else "damaged" if isinstance(c, Leak)
                else "closed" if isinstance(c, Closure) else "failed" if isinstance(c, Outage) else "failed")
        add(c.uid, kind, c.start_s / 3600.0, None if c.end_s is None else c.end_s / 3600.0)
    ends: dict[tuple[str, str], float] = {}
    back = {"reopened": "closed", "drained": "flooded", "re_energised": "de_energised", "restored": "failed"}
    for e in res.events:
        if e.what in back:
            ends[(e.uid, back[e.what])] = e.t_s
    for e in res.events:
        if e.cause == "hazard":
            continue  # the initial conditions, above
        if e.what in ("closed", "flooded", "de_energised", "failed", "explosion_risk"):
            end = ends.get((e.uid, e.what))
            add(e.uid, e.what, e.t_s / 3600.0, None if end is None else end / 3600.0)
    if res.water is not None and not res.water.service.empty:
        w = res.water.without_water()
        arr = w.to_numpy(dtype=bool)
        tw = np.asarray(w.index, float)
        for j in np.flatnonzero(arr.any(axis=0)):
            a, b = _spans_h(arr[:, j], tw)
            add(str(w.columns[j]), "no_water", a, b)
        sup = _supports(city, DependencyKind.WATER_SUPPLY)
        for fac, junction in sup.items():
            if junction in w.columns and w[junction].any():
                a, b = _spans_h(w[junction].to_numpy(dtype=bool), tw)
                add(fac, "no_water", a, b)
    return sorted(rows.values(), key=lambda r: (r["network"], r["kind"], r["uid"]))


def affected_geojson(city: City, rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """:func:`affected_assets` rows as a GeoJSON FeatureCollection (WGS84), each
    feature's properties ``network`` (its network's type, or ``facility``), ``kind``,
    ``asset`` (uid), ``name_en``, ``name_zh``, ``from_h``, ``to_h`` (and ``share``, the
    share of an ensemble's realizations, when given)."""
    feats = []
    for r in rows:
        a = city.asset(r["uid"])
        if a is None:
            continue
        net_name = r["uid"].split(":", 1)[0]
        net = city.networks.get(net_name)
        ntype = net.type.value if net is not None else ("facility" if net_name == "facility" else net_name)
        name = getattr(a, "name", None) or getattr(a, "id", r["uid"])
        name_zh = getattr(a, "name_zh", None) or getattr(a, "attrs", {}).get("name_zh")
        props: dict[str, Any] = {"network": ntype, "network_name": net_name, "kind": r["kind"], "asset": r["uid"],
                                 "name_en": str(name), "name_zh": name_zh, "from_h": r.get("from_h"),
                                 "to_h": r.get("to_h")}
        if "share" in r:
            props["share"] = r["share"]
        feats.append({"type": "Feature", "geometry": shapely.geometry.mapping(a.geometry), "properties": props})
    return {"type": "FeatureCollection", "features": feats}


def road_origins(city: City) -> list[tuple[float, float]]:
    """Where help comes from for road access: the fire stations (lon, lat), else the city
    centre."""
    pts = [f.geometry.representative_point() for f in sorted(city.facilities.values(), key=lambda f: f.id)
           if f.kind == FacilityKind.FIRE_STATION]
    return [(p.x, p.y) for p in pts] or [tuple(city.center)]  # type: ignore[list-item]


__all__ = ["CRITICAL", "PONDING_DEPTH_M", "JurisdictionIndex", "affected_assets", "affected_geojson",
           "consequences", "facilities_without_service", "flood_by_node", "jurisdiction_index",
           "person_hours", "population_shares", "road_origins"]
