"""Computed interdependencies: spatial adjacency and nearest-asset relations.

All distances are metres in the city's projected CRS. Geometries are indexed once
with a shapely STRtree, so a city of tens of thousands of assets takes well under a
second.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import shapely
from shapely import STRtree

from .city import City, Interdependency
from .enums import DependencyKind, NetworkType
from .geo import project_many
from .network import Link, Node


@dataclass(frozen=True, slots=True)
class AssetSelector:
    """Selects elements of one network type, optionally by kind and role."""

    network_type: NetworkType
    kinds: frozenset[str] | None = None
    role: str | None = None  # "node" | "link" | None for both

    def select(self, city: City) -> list[tuple[str, Node | Link]]:
        out: list[tuple[str, Node | Link]] = []
        for net in city.networks.values():
            if net.type != self.network_type:
                continue
            pools: list[Iterable[Node | Link]] = []
            if self.role in (None, "node"):
                pools.append(net.nodes.values())
            if self.role in (None, "link"):
                pools.append(net.links.values())
            for pool in pools:
                for e in pool:
                    if self.kinds is None or e.kind in self.kinds:
                        out.append((net.uid(e.id), e))
        return out


def _projected(city: City, items: list[tuple[str, Node | Link]]) -> np.ndarray:
    """The items' geometries in the city's projected CRS, as an array (metres)."""
    return project_many([e.geometry for _, e in items], city.crs)


def pairs_within(
    sources: np.ndarray, targets: np.ndarray, distance_m: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index pairs (i into sources, j into targets) whose geometries lie within
    ``distance_m`` of each other (projected geometries, metres), with the distances."""
    if len(sources) == 0 or len(targets) == 0:
        empty = np.array([], dtype=int)
        return empty, empty, np.array([], dtype=float)
    tree = STRtree(targets)
    i, j = tree.query(sources, predicate="dwithin", distance=distance_m)
    d = shapely.distance(sources[i], targets[j])
    return i, j, d


def spatial_adjacency(
    city: City,
    source: AssetSelector,
    target: AssetSelector,
    distance_m: float,
) -> list[Interdependency]:
    """Spatial adjacency: every ``target`` element within ``distance_m`` of a ``source``.

    The source is the hazard (a gas pipe), the target the exposed space (a drainage
    manhole, a power conduit): ``Interdependency(dependent=target, supporting=source,
    kind=SPATIAL_ADJACENCY, distance_m=d)``. For each target only the nearest source is
    kept, so a manhole next to three gas pipes yields one relation.
    """
    src = source.select(city)
    tgt = target.select(city)
    i, j, d = pairs_within(_projected(city, src), _projected(city, tgt), distance_m)
    best: dict[int, tuple[float, int]] = {}
    for a, b, dist in zip(i.tolist(), j.tolist(), d.tolist(), strict=True):
        if b not in best or dist < best[b][0]:
            best[b] = (dist, a)
    return [
        Interdependency(
            dependent=tgt[b][0],
            supporting=src[a][0],
            kind=DependencyKind.SPATIAL_ADJACENCY,
            distance_m=round(dist, 3),
        )
        for b, (dist, a) in sorted(best.items())
    ]


def nearest_dependency(
    city: City,
    dependents: list[tuple[str, shapely.Geometry]],
    supporting: AssetSelector,
    kind: DependencyKind,
    max_distance_m: float | None = None,
    accept: Callable[[str], bool] | None = None,
) -> list[Interdependency]:
    """For each dependent (uid, WGS84 geometry), a relation of ``kind`` to the nearest
    supporting element (for example a pump's power supply from the nearest distribution
    substation, or a facility's road access through the nearest intersection)."""
    sup = [(u, e) for u, e in supporting.select(city) if accept is None or accept(u)]
    if not dependents or not sup:
        return []
    sup_geoms = _projected(city, sup)
    dep_geoms = project_many([g for _, g in dependents], city.crs)
    tree = STRtree(sup_geoms)
    idx, dist = tree.query_nearest(
        dep_geoms, max_distance=max_distance_m, return_distance=True, all_matches=False
    )
    out = []
    for (di, si), dd in zip(idx.T.tolist(), dist.tolist(), strict=True):
        out.append(
            Interdependency(
                dependent=dependents[di][0],
                supporting=sup[si][0],
                kind=kind,
                distance_m=round(dd, 3),
            )
        )
    return out
