"""The cascade: failures propagated through the interdependent networks over time.

Given the initial conditions of a scenario (pipe breaks and leaks, outages, closures:
:mod:`rescity.simulate.engines.conditions`) and optionally a rainfall, the cascade runs
the engines and derives the conditions each network imposes on the others, repeating
until nothing new is derived (a fixed point over the whole timeline):

1. **drainage** (with rain): SWMM flooding per node -> a node is *flooded* at t when its
   flooding rate exceeds ``flood_rate_m3s`` (the water leaves the network onto the street);
2. flooded nodes -> **roads** closed: road segments within ``road_radius_m`` of a flooded
   node, while it floods;
3. flooded nodes -> **substations** flooded: the water a node loses onto the street
   spreads over a disc that holds its flooded volume V (m3) at ``ponding_depth_m``,
   r = sqrt(V / (pi d)) + ``substation_margin_m``; every power bus inside a disc (a
   distribution substation is a ground-level kiosk) and every substation facility (whose
   ``asset`` attribute names its bus) is out from the first flooded report until the end
   of the run (flooded switchgear is not back the same day);
4. **power** with the outages -> de-energised buses over time;
5. de-energised buses -> every asset that depends on them (interdependency table, kind
   ``power_supply``): water pumps, treatment works, tanks are out while their bus is dark;
   drainage pumps likewise (next iteration's drainage run);
6. **water** with the breaks, leaks and the pumps out -> customers' service;
7. gas leaks (``gas_leaks``: gas asset uids) -> **explosion risk** in the spaces adjacent to
   them (interdependency kind ``spatial_adjacency``: manholes, cabins, substations).

Every derived failure and restoration is an :class:`Event` in one table, the timeline of
the scenario. Consequences follow in :mod:`rescity.simulate.scenario`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import shapely

from rescity.model import City, DependencyKind, NetworkType
from rescity.model.geo import project_many

from .engines.conditions import Closure, Condition, Outage, time_grid

MAX_ITERATIONS = 6


@dataclass(frozen=True, slots=True)
class Event:
    """One line of the scenario's timeline: at ``t_s`` asset ``uid`` ``what`` happened
    (failed / restored / flooded / de_energised / re_energised / closed / reopened /
    explosion_risk) because of ``cause``."""

    t_s: float
    uid: str
    what: str
    cause: str


@dataclass
class CascadeParams:
    """Thresholds of the couplings (SI units)."""

    flood_rate_m3s: float = 0.001
    road_radius_m: float = 60.0
    ponding_depth_m: float = 0.3
    substation_margin_m: float = 10.0


@dataclass
class CascadeResult:
    times_s: np.ndarray
    conditions: list[Condition]  # initial + derived, as the engines last ran them
    events: list[Event]
    iterations: int
    water: Any = None
    power: Any = None
    drainage: Any = None
    roads_closed: pd.DataFrame = field(default_factory=pd.DataFrame)  # t_s x road segment uid (bool)
    flooded: pd.DataFrame = field(default_factory=pd.DataFrame)  # t_s x drainage node uid (bool)
    explosion_risk: list[str] = field(default_factory=list)

    def events_frame(self) -> pd.DataFrame:
        """The timeline as a table (t_s, uid, what, cause)."""
        return pd.DataFrame([{"t_s": e.t_s, "uid": e.uid, "what": e.what, "cause": e.cause}
                             for e in self.events], columns=["t_s", "uid", "what", "cause"])


def _network(city: City, t: NetworkType) -> Any:
    for n in city.networks.values():
        if n.type == t:
            return n
    return None


def _spans(mask: np.ndarray, times: np.ndarray, step_s: float) -> list[tuple[float, float | None]]:
    """Runs of True in ``mask`` as (start_s, end_s or None if to the end)."""
    out: list[tuple[float, float | None]] = []
    k, n = 0, len(mask)
    while k < n:
        if mask[k]:
            j = k
            while j + 1 < n and mask[j + 1]:
                j += 1
            end = None if j + 1 >= n else float(times[j + 1])
            out.append((float(times[k]), end))
            k = j + 1
        else:
            k += 1
    return out


class Cascade:
    """The couplings of one city (spatial indexes built once, reused by every run)."""

    def __init__(self, city: City, params: CascadeParams | None = None) -> None:
        self.city = city
        self.params = params or CascadeParams()
        self.water = _network(city, NetworkType.WATER)
        self.power = _network(city, NetworkType.POWER)
        self.drainage = _network(city, NetworkType.DRAINAGE)
        self.roads = _network(city, NetworkType.ROAD)
        crs = city.crs
        self._crs = crs
        # power supply: bus uid -> dependent assets
        self.fed_by: dict[str, list[str]] = {}
        for d in city.interdependencies:
            if d.kind == DependencyKind.POWER_SUPPLY:
                self.fed_by.setdefault(d.supporting, []).append(d.dependent)
        self.adjacent: dict[str, list[str]] = {}
        for d in city.interdependencies:
            if d.kind == DependencyKind.SPATIAL_ADJACENCY:
                self.adjacent.setdefault(d.supporting, []).append(d.dependent)
        self.substations = {f.uid: str(f.attrs["asset"]) for f in city.facilities.values()
                            if f.kind.value == "substation" and f.attrs.get("asset")}
        if self.power is not None:  # every bus is a (distribution) substation that can flood
            for bid in self.power.nodes:
                self.substations.setdefault(self.power.uid(bid), self.power.uid(bid))
        self._road_ids: list[str] = []
        self._road_tree = None
        if self.roads is not None:
            ids = list(self.roads.links)
            geoms = project_many([self.roads.links[i].geometry for i in ids], crs)
            self._road_ids = [self.roads.uid(i) for i in ids]
            self._road_tree = shapely.STRtree(geoms)
        self._node_xy: dict[str, Any] = {}
        if self.drainage is not None:
            ids = list(self.drainage.nodes)
            pts = project_many([self.drainage.nodes[i].geometry for i in ids], crs)
            self._node_xy = {self.drainage.uid(i): p for i, p in zip(ids, pts, strict=True)}
        sub_geoms: list[Any] = [getattr(city.asset(u), "geometry", None) for u in self.substations]
        sub_pts: Any = project_many(sub_geoms, crs) if sub_geoms else []
        self._sub_xy = dict(zip(self.substations, sub_pts, strict=True))

    # -- engine models, converted once per city and copied per run ----------------------------
    def exposure(self) -> Any:
        """The assets exposed to shaking (:meth:`rescity.simulate.damage.Exposure.from_city`
        with the packaged fragility data), built once per city."""
        if getattr(self, "_exposure", None) is None:
            from .damage import Exposure

            self._exposure = Exposure.from_city(self.city)
        return self._exposure

    def road_graph(self) -> Any:
        """The road graph with travel times (None without a road network), built once."""
        if self.roads is None:
            return None
        if getattr(self, "_road_graph", None) is None:
            from .engines.roads import RoadGraph

            bridges = next((n for n in self.city.networks.values() if n.type == NetworkType.BRIDGE), None)
            self._road_graph = RoadGraph(self.roads, bridges)
        return self._road_graph

    def power_model(self) -> Any:
        """The pandapower model (its cache of solved states is shared between runs)."""
        if getattr(self, "_power_model", None) is None:
            from .engines.power import PowerModel

            self._power_model = PowerModel(self.power)
        return self._power_model

    def water_model(self) -> Any:
        """A fresh WNTR model of the water network (converted once, copied per run)."""
        import wntr

        if getattr(self, "_water_dict", None) is None:
            from .engines.water import water_model

            self._water_dict = wntr.network.to_dict(water_model(self.water))
        return wntr.network.from_dict(self._water_dict)

    def shared_water_model(self, coarsen_patterns: bool) -> Any:
        """The WNTR model the EPANET runs share (one per pattern setting; each run puts it
        back: ``run_water(restore=True)``). Not thread-safe: one cascade per thread."""
        cache = self.__dict__.setdefault("_shared_water", {})
        if coarsen_patterns not in cache:
            cache[coarsen_patterns] = self.water_model()
        return cache[coarsen_patterns]

    # -- couplings -----------------------------------------------------------------------------
    def flooded_nodes(self, drainage_result: Any, times: np.ndarray) -> pd.DataFrame:
        rate = drainage_result.flooding_m3s.reindex(times, method="nearest").fillna(0.0)
        return rate > self.params.flood_rate_m3s

    def road_closures(self, flooded: pd.DataFrame, times: np.ndarray, step_s: float) -> tuple[list[Condition], pd.DataFrame]:
        closed = pd.DataFrame(False, index=pd.Index(times, name="t_s"), columns=self._road_ids)
        if self._road_tree is None or flooded.empty:
            return [], closed
        for node in flooded.columns[flooded.any(axis=0).to_numpy()]:
            pt = self._node_xy.get(str(node))
            if pt is None:
                continue
            near = self._road_tree.query(pt, predicate="dwithin", distance=self.params.road_radius_m)
            if len(near):
                cols = [self._road_ids[int(i)] for i in near]
                closed.loc[flooded[node].to_numpy(), cols] = True
        conds: list[Condition] = []
        for uid in closed.columns[closed.any(axis=0).to_numpy()]:
            for start, end in _spans(closed[uid].to_numpy(), times, step_s):
                conds.append(Closure(str(uid), start, end))
        return conds, closed

    def flood_radius_m(self, volume_m3: float) -> float:
        """Radius of the disc holding ``volume_m3`` at the ponding depth, plus the
        substations' footprint margin (m): r = sqrt(V / (pi d)) + margin."""
        r = math.sqrt(max(volume_m3, 0.0) / (math.pi * self.params.ponding_depth_m))
        return r + self.params.substation_margin_m

    def flooded_substations(self, flooded: pd.DataFrame, times: np.ndarray,
                            volume_m3: pd.Series | None = None) -> list[tuple[str, str, float, str]]:
        """(substation uid, its bus uid, first flooded time, flooded node) for every
        substation inside a flooded node's disc."""
        out: list[tuple[str, str, float, str]] = []
        if flooded.empty:
            return out
        any_t = flooded.any(axis=0)
        for fuid, bus in self.substations.items():
            sp = self._sub_xy[fuid]
            best: tuple[float, str] | None = None
            for node in flooded.columns[any_t.to_numpy()]:
                pt = self._node_xy.get(str(node))
                v = float(volume_m3.get(node, 0.0)) if volume_m3 is not None else 0.0
                if pt is None or sp.distance(pt) > self.flood_radius_m(v):
                    continue
                t0 = float(times[int(np.argmax(flooded[node].to_numpy()))])
                if best is None or t0 < best[0]:
                    best = (t0, str(node))
            if best is not None:
                out.append((fuid, bus, best[0], best[1]))
        return out

    def _engine_applies(self, uid: str) -> bool:
        """Whether an engine takes an outage of ``uid``: drainage outages apply to links
        (pumps, gates), not to storage nodes; water takes pumps, tanks and sources;
        facilities and the utility tunnel have no engine (the outage is an event only)."""
        net, eid = uid.split(":", 1)
        if self.drainage is not None and net == self.drainage.name:
            return eid in self.drainage.links
        return True

    def unpowered_dependents(self, power_result: Any, times: np.ndarray) -> list[tuple[Condition, str]]:
        """Outages of assets whose supporting bus is dark, while it is dark."""
        out: list[tuple[Condition, str]] = []
        en = power_result.energised.reindex(times, method="nearest")
        for bus, deps in self.fed_by.items():
            if bus not in en.columns:
                continue
            dark = ~en[bus].to_numpy(dtype=bool)
            for start, end in _spans(dark, times, 0.0):
                for dep in deps:
                    out.append((Outage(dep, start, end), bus))
        return out

    # -- the run --------------------------------------------------------------------------------
    def run(self, initial: Sequence[Condition], *, horizon_s: float, step_s: float,
            rainfall_mm_h: np.ndarray | None = None, rain_step_s: float = 300.0,
            gas_leaks: Sequence[str] = (), engines: Sequence[str] = ("drainage", "power", "water"),
            water_model: Any = None, power_model: Any = None, water_simulator: str = "wntr",
            coarsen_patterns: bool = False) -> CascadeResult:
        """Run the engines to a fixed point of the derived conditions (module docstring)."""
        from .engines.drainage import run_drainage
        from .engines.power import run_power
        from .engines.water import run_water

        times = time_grid(horizon_s, step_s)
        base = list(initial)
        events: list[Event] = [Event(c.start_s, c.uid, "failed", "hazard") for c in base]
        events += [Event(c.end_s, c.uid, "restored", "repair") for c in base if c.end_s is not None]
        res = CascadeResult(times, base, [], 0)
        derived: dict[tuple[str, float, float | None], tuple[Condition, str, str]] = {}
        rain = rainfall_mm_h is not None and self.drainage is not None and "drainage" in engines
        if power_model is None and self.power is not None and "power" in engines:
            power_model = self.power_model()
        last_power: tuple[Any, ...] | None = None
        for it in range(1, MAX_ITERATIONS + 1):
            res.iterations = it
            conds = base + [c for c, _, _ in derived.values() if self._engine_applies(c.uid)]
            new: dict[tuple[str, float, float | None], tuple[Condition, str, str]] = {}
            if rain:
                res.drainage = run_drainage(self.drainage, conds, horizon_s, step_s,
                                            rainfall_mm_h=rainfall_mm_h, rain_step_s=rain_step_s)
                res.flooded = self.flooded_nodes(res.drainage, times)
                closures, res.roads_closed = self.road_closures(res.flooded, times, step_s)
                for c in closures:
                    new[(c.uid, c.start_s, c.end_s)] = (c, "closed", "flooded street")
                vol = res.drainage.flood_volume_m3.iloc[-1] if len(res.drainage.flood_volume_m3) else None
                for fuid, bus, t0, node in self.flooded_substations(res.flooded, times, vol):
                    c = Outage(bus, t0, None)
                    new[(c.uid, c.start_s, c.end_s)] = (c, "failed", f"substation {fuid} flooded "
                                                        f"(drainage node {node} overflowing)")
            if self.power is not None and "power" in engines:
                pconds = base + [c for c, _, _ in new.values()]
                key = tuple(sorted((type(c).__name__, c.uid, c.start_s, c.end_s) for c in pconds
                                   if c.network == self.power.name))
                if key != last_power:  # the power flow only changes with its own conditions
                    res.power = run_power(self.power, pconds, horizon_s, step_s, model=power_model)
                    last_power = key
                for c, bus in self.unpowered_dependents(res.power, times):
                    new[(c.uid, c.start_s, c.end_s)] = (c, "de_energised", f"bus {bus} dark")
            if set(new) == set(derived):
                break
            derived = new
        for c, what, cause in derived.values():
            events.append(Event(c.start_s, c.uid, what, cause))
            if c.end_s is not None:
                back = {"closed": "reopened", "failed": "restored", "de_energised": "re_energised"}[what]
                events.append(Event(c.end_s, c.uid, back, cause))
        if res.flooded is not None and not res.flooded.empty:
            for node in res.flooded.columns[res.flooded.any(axis=0).to_numpy()]:
                for start, end in _spans(res.flooded[node].to_numpy(), times, step_s):
                    events.append(Event(start, str(node), "flooded", "rain"))
                    if end is not None:
                        events.append(Event(end, str(node), "drained", "rain"))
        if self.power is not None and res.power is not None:
            en = res.power.energised.reindex(times, method="nearest")
            for bus in en.columns:
                for start, end in _spans(~en[bus].to_numpy(dtype=bool), times, step_s):
                    events.append(Event(start, str(bus), "de_energised", "power flow"))
                    if end is not None:
                        events.append(Event(end, str(bus), "re_energised", "power flow"))
        res.conditions = base + [c for c, _, _ in derived.values() if self._engine_applies(c.uid)]
        if self.water is not None and "water" in engines:
            if water_model is None and water_simulator == "epanet":
                # one model per city and pattern setting, put back after every run
                shared = self.shared_water_model(coarsen_patterns)
                try:
                    res.water = run_water(self.water, res.conditions, horizon_s, step_s, model=shared,
                                          simulator="epanet", coarsen_patterns=coarsen_patterns, restore=True)
                except BaseException:
                    self.__dict__.get("_shared_water", {}).pop(coarsen_patterns, None)  # never reuse a model a failed run left
                    raise
            else:
                res.water = run_water(self.water, res.conditions, horizon_s, step_s,
                                      model=water_model if water_model is not None else self.water_model(),
                                      simulator=water_simulator, coarsen_patterns=coarsen_patterns)
        for g in gas_leaks:
            for dep in self.adjacent.get(g, []):
                res.explosion_risk.append(dep)
                events.append(Event(0.0, dep, "explosion_risk", f"gas leaking from {g} next to it"))
        res.events = sorted(events, key=lambda e: (e.t_s, e.uid, e.what))
        return res
