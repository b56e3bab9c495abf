"""Road engine: travel times on the road graph with closures.

:class:`RoadGraph` is the directed graph of the twin's road network (networkx): a road
link is an edge from its start to its end node, and back unless it is ``oneway``. Its
travel time is t = length_m / (maxspeed_kmh / 3.6) seconds (``DEFAULT_SPEED_KMH`` when
the speed is unknown). Bridge spans (the ``<roads>-bridges`` network) name their road
segment in ``attrs["road_link"]``: closing a bridge closes that segment.

:func:`run_roads` gives, at every report time, the shortest travel time (s) from the
nearest of the ``origins`` (crew bases, a fire station: road node ids or lon/lat points,
snapped to the nearest road node with a shapely STRtree in the city's UTM metres) to each
target (road node ids, or lon/lat points of assets snapped the same way), with the
closures active then (:class:`~.conditions.Closure` or :class:`~.conditions.Outage` of a
road segment or a bridge span). Unreachable: ``inf``.

Service level of a target at time t: t0 / t(t), its undisturbed travel time over the
current one (1 unchanged, 0 unreachable, 1 for a target at an origin); overall: the
mean over the targets.

Limits: free-flow speeds (no congestion or traffic signals); a closure removes a whole
segment in both directions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import Point

from rescity.model.enums import NetworkType
from rescity.model.geo import project_many, utm_crs_for
from rescity.model.network import Network, split_uid

from .conditions import Closure, Condition, Outage, UnknownElementError, states, time_grid
from .result import ServiceResult

DEFAULT_SPEED_KMH = 30.0

Place = str | tuple[float, float]


class RoadGraph:
    """The road network as a directed graph with travel times (see the module docstring)."""

    def __init__(self, roads: Network, bridges: Network | None = None) -> None:
        if roads.type is not NetworkType.ROAD:
            raise ValueError(f"network {roads.name!r} is {roads.type.value}, not road")
        self.roads = roads
        self.bridges = bridges
        g = nx.MultiDiGraph()
        g.add_nodes_from(roads.nodes)
        for link in roads.links.values():
            speed = float(link.attrs.get("maxspeed_kmh") or DEFAULT_SPEED_KMH)
            t = float(link.attrs.get("length_m") or 0.0) / (speed / 3.6)
            g.add_edge(link.start, link.end, key=link.id, time_s=t)
            if not link.attrs.get("oneway"):
                g.add_edge(link.end, link.start, key=link.id, time_s=t)
        self.graph = g
        self._bridge_road: dict[str, str] = {}
        if bridges is not None:
            for span in bridges.links.values():
                ref = span.attrs.get("road_link")
                if ref:
                    net, rid = split_uid(str(ref))
                    if net == roads.name and rid in roads.links:
                        self._bridge_road[span.id] = rid
        ids = list(roads.nodes)
        center = shapely.centroid(shapely.MultiPoint([roads.nodes[i].lonlat for i in ids]))
        self.crs = utm_crs_for(center.x, center.y)
        pts = project_many([Point(roads.nodes[i].lonlat) for i in ids], self.crs)
        self._ids = ids
        self._tree = shapely.STRtree(pts)
        self._pos = {n: i for i, n in enumerate(ids)}
        self._csr: dict[frozenset[str], Any] = {}
        self._from: dict[frozenset[str], dict[str, np.ndarray]] = {}

    # -- places -----------------------------------------------------------------------
    def nearest_node(self, lon: float, lat: float) -> str:
        """The road node nearest to a WGS84 point (distance in the city's UTM metres)."""
        p = project_many([Point(lon, lat)], self.crs)[0]
        return self._ids[int(self._tree.nearest(p))]

    def node_of(self, place: Place) -> str:
        """A road node id as given, a road uid (``roads:<id>``), or the nearest node to
        a (lon, lat) pair."""
        if isinstance(place, tuple):
            return self.nearest_node(float(place[0]), float(place[1]))
        if place in self.roads.nodes:
            return place
        net, _, eid = place.partition(":")
        if net == self.roads.name and eid in self.roads.nodes:
            return eid
        raise UnknownElementError(f"road network {self.roads.name!r} has no node {place!r}")

    # -- closures ---------------------------------------------------------------------
    def closed_links(self, conditions: Iterable[Condition]) -> set[str]:
        """The road segments closed by these conditions (road segments and bridge spans;
        conditions on other networks are ignored)."""
        out: set[str] = set()
        bname = self.bridges.name if self.bridges is not None else None
        for c in conditions:
            if not isinstance(c, (Closure, Outage)):
                if c.network in (self.roads.name, bname):
                    raise UnknownElementError(
                        f"{type(c).__name__} {c.uid!r}: roads take closures and outages only"
                    )
                continue
            if c.network == self.roads.name:
                if c.element not in self.roads.links:
                    raise UnknownElementError(
                        f"{c.uid!r}: road network {self.roads.name!r} has no segment {c.element!r}"
                    )
                out.add(c.element)
            elif c.network == bname:
                assert self.bridges is not None
                if c.element in self.bridges.links:
                    rid = self._bridge_road.get(c.element)
                    if rid is not None:
                        out.add(rid)
                elif c.element in self.bridges.nodes:  # an abutment closes its spans
                    out.update(
                        self._bridge_road[s.id] for s in self.bridges.links.values()
                        if c.element in (s.start, s.end) and s.id in self._bridge_road
                    )
                else:
                    raise UnknownElementError(
                        f"{c.uid!r}: bridge network {bname!r} has no element {c.element!r}"
                    )
        return out

    def _weight(self, closed: set[str]) -> Any:
        if not closed:
            return "time_s"

        def weight(_u: str, _v: str, edges: dict[str, dict[str, float]]) -> float | None:
            open_ = [d["time_s"] for k, d in edges.items() if k not in closed]
            return min(open_) if open_ else None

        return weight

    # -- queries ----------------------------------------------------------------------
    def travel_times(self, origins: Sequence[Place], closed: set[str] | None = None) -> dict[str, float]:
        """Shortest travel time (s) from the nearest origin to every reachable node."""
        src = {self.node_of(o) for o in origins}
        return dict(nx.multi_source_dijkstra_path_length(self.graph, src,
                                                         weight=self._weight(closed or set())))

    def travel_time(self, origin: Place, target: Place, closed: set[str] | None = None) -> float:
        """Shortest travel time (s) from ``origin`` to ``target``; inf if unreachable."""
        try:
            return float(nx.dijkstra_path_length(self.graph, self.node_of(origin),
                                                 self.node_of(target),
                                                 weight=self._weight(closed or set())))
        except nx.NetworkXNoPath:
            return float("inf")

    def route(self, origin: Place, target: Place, closed: set[str] | None = None) -> list[str]:
        """The node ids of the fastest route ([] if unreachable)."""
        try:
            return list(nx.dijkstra_path(self.graph, self.node_of(origin), self.node_of(target),
                                         weight=self._weight(closed or set())))
        except nx.NetworkXNoPath:
            return []

    def travel_time_matrix(
        self, origins: Sequence[Place], targets: Sequence[Place], closed: set[str] | None = None
    ) -> np.ndarray:
        """Travel times (s), shape (origins, targets): one Dijkstra per origin (crew base
        to asset); inf where unreachable."""
        dst = [self.node_of(t) for t in targets]
        weight = self._weight(closed or set())
        out = np.full((len(origins), len(dst)), np.inf)
        for i, o in enumerate(origins):
            tt = nx.single_source_dijkstra_path_length(self.graph, self.node_of(o), weight=weight)
            out[i] = [tt.get(d, np.inf) for d in dst]
        return out

    def times_from(self, origin: str, closed: frozenset[str] = frozenset()) -> np.ndarray:
        """Shortest travel times (s) from road node ``origin`` to every node (in the order
        of ``roads.nodes``; inf where unreachable) with the segments ``closed`` shut:
        Dijkstra on a compressed sparse matrix of the fastest open edge between each
        pair of nodes (scipy), cached per origin and closure set, so the crews of every
        realization of an ensemble share them."""
        from scipy.sparse.csgraph import dijkstra

        per = self._from.get(closed)
        if per is None:
            if len(self._from) >= 4:  # a few closure sets at a time (about 16 MB each when full)
                self._from.clear()
                self._csr.clear()
            per = self._from[closed] = {}
        row = per.get(origin)
        if row is None:
            row = per[origin] = dijkstra(self._matrix(closed), indices=self._pos[origin])
        return row  # type: ignore[no-any-return]

    def time_between(self, origin: str, target: str, closed: frozenset[str] = frozenset()) -> float:
        """Shortest travel time (s) between two road nodes (:meth:`times_from`); inf if
        unreachable."""
        return float(self.times_from(origin, closed)[self._pos[target]])

    def _matrix(self, closed: frozenset[str]) -> Any:
        m = self._csr.get(closed)
        if m is None:
            from scipy.sparse import csr_matrix

            best: dict[tuple[int, int], float] = {}
            pos = self._pos
            for u, v, k, t in self.graph.edges(keys=True, data="time_s"):
                if k in closed:
                    continue
                key = (pos[u], pos[v])
                # scipy reads a stored 0 as "no edge" in some versions: a zero-length
                # segment takes a nanosecond
                t = max(float(t), 1e-9)
                if t < best.get(key, np.inf):
                    best[key] = t
            n = len(self._ids)
            if best:
                r, c = zip(*best, strict=True)
                m = csr_matrix((list(best.values()), (r, c)), shape=(n, n))
            else:
                m = csr_matrix((n, n))
            self._csr[closed] = m
        return m

    def reachable(self, origins: Sequence[Place], closed: set[str] | None = None) -> set[str]:
        """The road nodes reachable from any origin."""
        return set(self.travel_times(origins, closed))


@dataclass
class RoadResult(ServiceResult):
    """Travel times of one run: ``travel_time_s`` (frame indexed by ``t_s``, one column
    per target node uid, inf when unreachable), ``baseline_s`` (undisturbed, per target),
    ``closed`` (the closed segment ids at each time)."""

    travel_time_s: pd.DataFrame = field(default_factory=pd.DataFrame)
    baseline_s: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    closed: list[frozenset[str]] = field(default_factory=list)

    def unreachable(self) -> pd.DataFrame:
        """Targets without road access at each time (bool frame)."""
        return pd.DataFrame(~np.isfinite(self.travel_time_s.to_numpy()),
                            index=self.travel_time_s.index, columns=self.travel_time_s.columns)


def run_roads(
    roads: Network,
    conditions: list[Condition] | tuple[Condition, ...] = (),
    horizon_s: float = 24 * 3600.0,
    step_s: float = 3600.0,
    *,
    origins: Sequence[Place],
    targets: Sequence[Place] | None = None,
    bridges: Network | None = None,
    graph: RoadGraph | None = None,
) -> RoadResult:
    """Travel times from ``origins`` to ``targets`` (every road node by default) at each
    report time with the closures active then (see the module docstring). ``graph``:
    a :class:`RoadGraph` of the same networks to reuse."""
    g = RoadGraph(roads, bridges) if graph is None else graph
    if not origins:
        raise ValueError("run_roads needs at least one origin (a crew base)")
    nodes = list(dict.fromkeys(g.node_of(t) for t in targets)) if targets is not None \
        else list(roads.nodes)
    mine = [c for c in conditions if c.network in (roads.name, bridges.name if bridges else None)]
    g.closed_links(mine)  # validate all of them up front
    times = time_grid(horizon_s, step_s)
    cache: dict[frozenset[str], np.ndarray] = {}
    rows, closed_at = [], []
    for s in states(mine, times):
        closed = frozenset(g.closed_links([mine[i] for i in s]))
        if closed not in cache:
            tt = g.travel_times(origins, set(closed))
            cache[closed] = np.array([tt.get(n, np.inf) for n in nodes])
        rows.append(cache[closed])
        closed_at.append(closed)
    if frozenset() not in cache:
        tt = g.travel_times(origins)
        cache[frozenset()] = np.array([tt.get(n, np.inf) for n in nodes])
    base = cache[frozenset()]
    idx = pd.Index(times, name="t_s")
    cols = [roads.uid(n) for n in nodes]
    tt_f = pd.DataFrame(np.vstack(rows), index=idx, columns=cols)
    cur = tt_f.to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        level = np.where(cur <= 0, 1.0, np.where(np.isfinite(cur), base / cur, 0.0))
    level = np.where(np.isfinite(base), np.clip(level, 0.0, 1.0), np.nan)
    return RoadResult(
        times_s=times,
        service=pd.DataFrame(level, index=idx, columns=cols),
        weights=pd.Series(np.where(np.isfinite(base), 1.0, 0.0), index=cols),
        travel_time_s=tt_f,
        baseline_s=pd.Series(base, index=cols),
        closed=closed_at,
    )
