"""Restoration (恢复): repair crews, their travel, repair policies and the repair schedule.

Inputs
  * **crews** (:class:`Crew`): an id, a base (lon/lat, WGS84; or a road node, resolved to
    its lon/lat with :func:`crew_at`), optionally the networks they repair and the time
    they become available (s from the scenario start);
  * **jobs** (:class:`Job`): one per damaged component (its uid ``network:id``), where it
    is (lon/lat), how long its repair takes (**hours**, given by the damage model for its
    damage state), the earliest time it can be started (s; e.g. after the flood recedes)
    and what ranks it: a criticality ``weight`` (customers, critical facilities served)
    and the ``population`` served;
  * **travel** (``travel_s(from_xy, to_xy) -> seconds``): the road engine's travel time
    (``simulate/engines/roads.py``), a matrix (:func:`matrix_travel`), or the default
    straight line at a speed (:func:`straight_line`);
  * a **policy** (:class:`Policy`): one method, which job a free crew takes next.

The scheduler (:func:`schedule_repairs`) is a discrete-event simulation with an explicit
clock: whenever a crew is free (at its availability time, then at the end of each repair)
the policy chooses among the pending jobs it can do that are released; the crew travels
(``travel_s``), repairs for ``repair_h`` x 3600 s and is free again at the job's site.
Simultaneous events are taken in crew-id order and every policy breaks ties by job uid,
so a schedule is reproducible. Times are **seconds from the scenario start**.

Outputs: per component the crew, travel start, arrival, repair start and finish
(:class:`Assignment`); per crew its route (:class:`RouteStop`); the timeline of repairs
as a sorted list of ``(time_s, uid, "repaired")`` (:meth:`Schedule.events`) for the
cascade module to re-run the network engines after each repair; and a first-order
service curve per network (:func:`service_curves`) for when the engines are not re-run.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike

from .metrics import FULL, Curve, hours

XY = tuple[float, float]
"""A place: (lon, lat) in degrees, WGS84."""

TravelFn = Callable[[XY, XY], float]
"""Travel time in seconds from one (lon, lat) to another."""

EARTH_RADIUS_M = 6_371_008.8
"""Mean Earth radius (IUGG), metres: the sphere of :func:`great_circle_m`."""


# -- travel --------------------------------------------------------------------------------------
def great_circle_m(a: XY, b: XY) -> float:
    """The great-circle (haversine) distance in metres between two (lon, lat) points on a
    sphere of radius 6,371,008.8 m: d = 2 R asin(sqrt(sin²(Δφ/2) + cos φ1 cos φ2 sin²(Δλ/2)))
    (within 0.5 % of the ellipsoidal distance)."""
    lon1, lat1, lon2, lat2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def straight_line(speed_kmh: float = 30.0, detour: float = 1.0) -> TravelFn:
    """The default travel time: the great-circle distance times a ``detour`` factor (the
    road network's circuity, >= 1; about 1.3 in cities) at ``speed_kmh``:
    t_s = detour x d_m / (speed_kmh / 3.6)."""
    if not (speed_kmh > 0 and math.isfinite(speed_kmh)):
        raise ValueError(f"the crews' speed must be a positive number of km/h, got {speed_kmh}")
    if not (detour >= 1 and math.isfinite(detour)):
        raise ValueError(f"the detour factor must be >= 1, got {detour}")
    v_ms = speed_kmh / 3.6

    def travel_s(a: XY, b: XY) -> float:
        return detour * great_circle_m(a, b) / v_ms

    return travel_s


def matrix_travel(points: Sequence[XY], matrix_s: ArrayLike) -> TravelFn:
    """Travel times from a matrix in seconds: ``matrix_s[i][j]`` from ``points[i]`` to
    ``points[j]`` (e.g. shortest paths of the road graph between the crews' bases and the
    jobs). Asking for a place not among ``points`` raises ``KeyError``."""
    m = np.asarray(matrix_s, dtype=float)
    if m.shape != (len(points), len(points)):
        raise ValueError(f"a travel matrix for {len(points)} points must be {len(points)}x{len(points)}, got {m.shape}")
    if np.any(~np.isfinite(m)) or np.any(m < 0):
        raise ValueError("travel times must be finite and >= 0 seconds")
    index = {(float(p[0]), float(p[1])): i for i, p in enumerate(points)}

    def travel_s(a: XY, b: XY) -> float:
        try:
            return float(m[index[(float(a[0]), float(a[1]))], index[(float(b[0]), float(b[1]))]])
        except KeyError:
            raise KeyError(f"no travel time between {a} and {b}: the matrix covers {len(points)} points") from None

    return travel_s


CLEAR_CLOSURE_S = 2 * 3600.0
"""Extra time (s) for a crew whose job cannot be reached on the open roads: it takes the
way through a closure (clearing it, or on foot with an escort); an assumption."""


def road_travel(graph: Any, closed: set[str] | frozenset[str] = frozenset(), *,
                access_kmh: float = 30.0, detour: float = 1.3) -> TravelFn:
    """Travel times on the road graph (:class:`~rescity.simulate.engines.roads.RoadGraph`)
    with the segments ``closed`` shut: t = t_access(a) + T(node(a), node(b)) + t_access(b),
    T the shortest free-flow time on the open graph (:meth:`RoadGraph.times_from`, cached
    per origin), t_access the leg between the place and its nearest road node off the
    graph (its great-circle distance x ``detour`` at ``access_kmh``, as
    :func:`straight_line`). A target the closures cut off costs the time on the undamaged
    graph plus :data:`CLEAR_CLOSURE_S`; one in another component of the graph, the
    straight line."""
    shut = frozenset(closed)
    off_road = straight_line(access_kmh, detour)
    nodes: dict[XY, tuple[str, float]] = {}

    def snap(p: XY) -> tuple[str, float]:
        key = (float(p[0]), float(p[1]))
        hit = nodes.get(key)
        if hit is None:
            n = graph.nearest_node(*key)
            hit = nodes[key] = (n, off_road(key, graph.roads.nodes[n].lonlat))
        return hit

    def travel_s(a: XY, b: XY) -> float:
        (na, ta), (nb, tb) = snap(a), snap(b)
        t = graph.time_between(na, nb, shut)
        if not math.isfinite(t):
            t = graph.time_between(na, nb) + CLEAR_CLOSURE_S
            if not math.isfinite(t):
                return off_road(a, b)
        return ta + t + tb

    return travel_s


# -- crews and jobs --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Crew:
    """A repair crew: its base (lon, lat), the networks it repairs (None: all) and when it
    is available (s from the scenario start)."""

    id: str
    base: XY
    networks: frozenset[str] | None = None
    available_s: float = 0.0
    base_node: str | None = None  # the road node of the base, when it was given as one

    def can_do(self, job: Job) -> bool:
        return self.networks is None or job.network in self.networks


@dataclass(frozen=True)
class Job:
    """A damaged component to repair: uid (``network:id``), place (lon, lat), repair time
    in hours, earliest start (s from the scenario start) and its ranks: criticality weight
    (e.g. customers or critical facilities served) and population served."""

    uid: str
    xy: XY
    repair_h: float
    weight: float = 0.0
    population: float = 0.0
    release_s: float = 0.0
    network: str = ""

    def __post_init__(self) -> None:
        if not self.network:
            object.__setattr__(self, "network", self.uid.split(":", 1)[0])
        if not (self.repair_h >= 0 and math.isfinite(self.repair_h)):
            raise ValueError(f"job {self.uid}: the repair time must be >= 0 hours, got {self.repair_h}")
        if not (self.release_s >= 0 and math.isfinite(self.release_s)):
            raise ValueError(f"job {self.uid}: the release time must be >= 0 s, got {self.release_s}")


def asset_xy(city: Any, uid: str) -> XY:
    """Where a city's asset is, (lon, lat): a node's or facility's point, a link's midpoint
    along its line. ``city`` is a :class:`rescity.model.City`."""
    a = city.asset(uid)
    if a is None:
        raise KeyError(f"no asset {uid!r} in the city")
    g = a.geometry
    p = g.interpolate(0.5, normalized=True) if g.geom_type == "LineString" else g.representative_point()
    return (float(p.x), float(p.y))


def crew_at(city: Any, crew_id: str, where: str, **kw: Any) -> Crew:
    """A crew based at a city asset or facility (uid ``network:id`` or ``facility:id``, e.g.
    ``facility:fire_station-1``, or a road node ``roads:<node>``), at that asset's lon/lat."""
    node = where.split(":", 1)[1] if where.startswith("roads:") else None
    return Crew(id=crew_id, base=asset_xy(city, where), base_node=node, **kw)


# -- policies ------------------------------------------------------------------------------------
@runtime_checkable
class Policy(Protocol):
    """A repair policy: which job a free crew takes next.

    ``pending`` holds the released jobs the crew can do, sorted by uid, never empty;
    ``at`` is where the crew is (lon, lat), ``now_s`` the clock (s). Return one of
    ``pending``; break ties by uid so that schedules are reproducible."""

    def choose(self, pending: Sequence[Job], *, crew: Crew, at: XY, now_s: float,
               travel_s: TravelFn) -> Job: ...


class ByCriticality:
    """Largest criticality weight first (customers, critical facilities served); ties by uid."""

    def choose(self, pending: Sequence[Job], *, crew: Crew, at: XY, now_s: float,
               travel_s: TravelFn) -> Job:
        return min(pending, key=lambda j: (-j.weight, j.uid))


class ByPopulation:
    """Largest population served first; ties by uid."""

    def choose(self, pending: Sequence[Job], *, crew: Crew, at: XY, now_s: float,
               travel_s: TravelFn) -> Job:
        return min(pending, key=lambda j: (-j.population, j.uid))


class NearestFirst:
    """Shortest travel time from where the crew is first; ties by uid."""

    def choose(self, pending: Sequence[Job], *, crew: Crew, at: XY, now_s: float,
               travel_s: TravelFn) -> Job:
        return min(pending, key=lambda j: (travel_s(at, j.xy), j.uid))


POLICIES: dict[str, Callable[[], Policy]] = {
    "criticality": ByCriticality,
    "population": ByPopulation,
    "nearest": NearestFirst,
}
"""The built-in policies by name (for the CLI and the API)."""


# -- the schedule ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Assignment:
    """One repair: who, and when (s from the scenario start)."""

    uid: str
    crew: str
    network: str
    travel_start_s: float
    arrival_s: float
    repair_start_s: float
    finish_s: float


@dataclass(frozen=True)
class RouteStop:
    """One stop of a crew's route: the job (None for the base), the place, arrival and
    departure (s)."""

    uid: str | None
    xy: XY
    arrive_s: float
    depart_s: float


class RepairEvent(NamedTuple):
    """An entry of the repair timeline, for the cascade module."""

    time_s: float
    uid: str
    event: str


@dataclass(frozen=True)
class Schedule:
    """The repair schedule: assignments by uid (in order of finish), each crew's route,
    and the jobs no crew could do (empty unless ``schedule_repairs(strict=False)``)."""

    assignments: dict[str, Assignment]
    routes: dict[str, list[RouteStop]]
    unassigned: tuple[str, ...] = field(default=())

    @property
    def makespan_s(self) -> float:
        """The finish of the last repair (s); 0 with no repairs."""
        return max((a.finish_s for a in self.assignments.values()), default=0.0)

    def events(self) -> list[RepairEvent]:
        """The repairs as a timeline sorted by (time, uid): ``(finish_s, uid, "repaired")``."""
        return sorted(RepairEvent(a.finish_s, a.uid, "repaired") for a in self.assignments.values())

    def by_crew(self) -> dict[str, list[Assignment]]:
        """Each crew's repairs in order."""
        out: dict[str, list[Assignment]] = {c: [] for c in self.routes}
        for a in sorted(self.assignments.values(), key=lambda a: (a.travel_start_s, a.uid)):
            out[a.crew].append(a)
        return out

    def to_records(self) -> list[dict[str, Any]]:
        """One plain dict per assignment, for JSON or a DataFrame."""
        return [a.__dict__.copy() for a in self.assignments.values()]


def schedule_repairs(crews: Sequence[Crew], jobs: Iterable[Job], policy: Policy,
                     travel_s: TravelFn | None = None, *, return_to_base: bool = False,
                     strict: bool = True) -> Schedule:
    """Schedule the repairs: a discrete-event simulation, times in seconds.

    The clock jumps from event to event (a crew becoming free). A free crew at place x
    and time t takes the job j = policy.choose(pending) among the released (release_s <= t)
    jobs it can do; then travel start = t, arrival = t + travel_s(x, j.xy), repair start =
    arrival, finish = repair start + 3600 j.repair_h, and the crew is free at j.xy at the
    finish. If none is released yet, the crew waits for the next release. Simultaneous
    events go in crew-id order. Jobs no crew can do raise ``ValueError`` (or are listed in
    ``Schedule.unassigned`` with ``strict=False``). With ``return_to_base`` each route
    ends with the drive back to base.

    ``travel_s`` defaults to :func:`straight_line` (30 km/h)."""
    travel = travel_s or straight_line()
    if not crews:
        raise ValueError("restoration needs at least one crew, got none")
    ids = [c.id for c in crews]
    if len(set(ids)) != len(ids):
        raise ValueError(f"crew ids must be unique, got {sorted(ids)}")
    todo: dict[str, Job] = {}
    for j in jobs:
        if j.uid in todo:
            raise ValueError(f"job {j.uid} is listed twice")
        todo[j.uid] = j
    orphans = tuple(sorted(u for u, j in todo.items() if not any(c.can_do(j) for c in crews)))
    if orphans and strict:
        raise ValueError(f"no crew repairs the network of {len(orphans)} job(s): {', '.join(orphans[:5])}"
                         + (" ..." if len(orphans) > 5 else ""))
    for u in orphans:
        del todo[u]

    by_id = {c.id: c for c in crews}
    where: dict[str, XY] = {c.id: c.base for c in crews}
    routes: dict[str, list[RouteStop]] = {c.id: [RouteStop(None, c.base, c.available_s, c.available_s)]
                                          for c in sorted(crews, key=lambda c: c.id)}
    done: list[Assignment] = []
    free: list[tuple[float, str]] = [(c.available_s, c.id) for c in crews]
    heapq.heapify(free)
    while todo and free:
        now, cid = heapq.heappop(free)
        crew = by_id[cid]
        mine = [j for j in todo.values() if crew.can_do(j)]
        if not mine:
            continue  # nothing left for this crew: it stays where it is
        ready = sorted((j for j in mine if j.release_s <= now), key=lambda j: j.uid)
        if not ready:
            heapq.heappush(free, (min(j.release_s for j in mine), cid))
            continue
        job = policy.choose(ready, crew=crew, at=where[cid], now_s=now, travel_s=travel)
        if job.uid not in todo or not crew.can_do(job) or job.release_s > now:
            raise ValueError(f"policy {type(policy).__name__} chose {job.uid!r}, which is not one of the pending jobs")
        del todo[job.uid]
        dt = float(travel(where[cid], job.xy))
        if not (dt >= 0 and math.isfinite(dt)):
            raise ValueError(f"crew {cid} cannot reach job {job.uid}: travel time from {where[cid]} to "
                             f"{job.xy} must be a finite number of seconds >= 0, got {dt} "
                             "(a closed road? leave unreachable jobs out, or release them later)")
        arrive = now + dt
        start = max(arrive, job.release_s)
        finish = start + job.repair_h * 3600.0
        done.append(Assignment(job.uid, cid, job.network, now, arrive, start, finish))
        last = routes[cid][-1]
        routes[cid][-1] = RouteStop(last.uid, last.xy, last.arrive_s, now)
        routes[cid].append(RouteStop(job.uid, job.xy, arrive, finish))
        where[cid] = job.xy
        heapq.heappush(free, (finish, cid))
    if return_to_base:
        for cid, stops in routes.items():
            last = stops[-1]
            if last.uid is not None:
                back = last.depart_s + float(travel(last.xy, by_id[cid].base))
                stops.append(RouteStop(None, by_id[cid].base, back, back))
    done.sort(key=lambda a: (a.finish_s, a.uid))
    return Schedule({a.uid: a for a in done}, routes, orphans)


# -- the first-order service curve -------------------------------------------------------------------
def service_curves(schedule: Schedule, effects: Mapping[str, Mapping[str, float]],
                   totals: Mapping[str, float], *, t_end_s: float | None = None,
                   hazard_s: float = 0.0) -> dict[str, Curve]:
    """A **first-order proxy** of the service level per network from a repair schedule.

    ``effects[uid][network]`` is what damaged component ``uid`` takes away from a network
    while it is broken (customers, load, population served; one component may weigh on
    several networks), ``totals[network]`` what the network serves when intact, in the
    same unit. Then, for every network n:

        Q_n(t) = 100 x max(0, 1 - Σ_{c broken at t} effects[c][n] / totals[n])   (%)

    with every component broken from ``hazard_s`` until its repair finishes (never, if it
    is not in the schedule). The curve is 100 % before the hazard, steps down at it, and
    steps up at each repair; it is returned in **hours** (:class:`~.metrics.Curve`), ending
    at ``t_end_s`` (default: the last repair, or the hazard if no repair restores anything).

    This is additive and ignores the networks' physics: a loop that keeps water flowing
    around a broken pipe, or customers counted under two broken components, are not seen
    (the clip at 0 bounds the latter). The real curve comes from re-running the engines
    after each repair, in the order of :meth:`Schedule.events`; components in the schedule
    without an effect change nothing."""
    for n, tot in totals.items():
        if not (tot > 0 and math.isfinite(tot)):
            raise ValueError(f"network {n}: the total served must be > 0, got {tot}")
    never: dict[str, float] = {n: 0.0 for n in totals}  # lost until the end: never repaired
    steps: dict[str, dict[float, float]] = {n: {} for n in totals}  # time_s -> weight restored
    for uid, eff in effects.items():
        a = schedule.assignments.get(uid)
        for n, w in eff.items():
            if n not in totals:
                raise ValueError(f"component {uid} weighs on network {n!r}, which has no total; "
                                 f"totals are given for {sorted(totals)}")
            if not (w >= 0 and math.isfinite(w)):
                raise ValueError(f"component {uid}: its effect on {n} must be >= 0, got {w}")
            if a is None:
                never[n] += w
            else:
                ts = max(a.finish_s, hazard_s)
                steps[n][ts] = steps[n].get(ts, 0.0) + w
    end = t_end_s
    if end is None:
        end = max([hazard_s] + [t for s in steps.values() for t in s])
    if end < hazard_s:
        raise ValueError(f"the curve must end at or after the hazard ({hazard_s} s), got {end} s")
    out: dict[str, Curve] = {}
    for n, tot in totals.items():
        times = sorted(steps[n])
        # broken[k]: what is still broken after the k-th repair time, summed from the end so
        # that it is exactly the never-repaired part (0 if all are) after the last repair
        broken = [0.0] * (len(times) + 1)
        broken[-1] = never[n] + sum(w for ts, w in steps[n].items() if ts > end)
        for k in range(len(times) - 1, -1, -1):
            broken[k] = broken[k + 1] + (steps[n][times[k]] if times[k] <= end else 0.0)
        t = [0.0, hazard_s, hazard_s] if hazard_s > 0 else [hazard_s, hazard_s]
        q = [FULL] * (len(t) - 1) + [_level(broken[0], tot)]
        for k, ts in enumerate(times):
            if ts > end:
                break
            t += [ts, ts]
            q += [q[-1], _level(broken[k + 1], tot)]
        if t[-1] < end:
            t.append(end)
            q.append(q[-1])
        out[n] = Curve.of(hours(t), q)
    return out


def _level(broken: float, total: float) -> float:
    return FULL * max(0.0, 1.0 - max(0.0, broken) / total)
