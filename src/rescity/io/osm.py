"""OpenStreetMap road networks (OSM PBF) through pyrosm, and the bridges on them.

:func:`read_osm_roads` reads a local ``.osm.pbf`` extract; it never downloads
(``pyrosm.get_data`` is not used). The road network is pyrosm's routable graph: pyrosm
splits every way at each of its nodes, so a link is one segment between two
consecutive OSM nodes and a node is any OSM node that ends a segment (kind
``intersection``, whether or not more than two roads meet there).

Link attributes (SI unless the suffix says otherwise):

* ``length_m``: segment length in metres, geodesic on the WGS84 ellipsoid (pyrosm's own
  haversine length runs about 0.3 % short at Helsinki's latitude),
* ``highway``: the OSM ``highway`` class (``primary``, ``residential``, ...),
* ``lanes``: number of lanes (the largest of ``2;3``-style lists), when tagged,
* ``maxspeed_kmh``: speed limit in km/h (``mph`` and ``knots`` converted), when numeric,
* ``oneway``: True if traffic may only go from ``start`` to ``end`` (``oneway=-1`` ways
  are turned round so this always holds; motorways and roundabouts are one-way
  unless tagged otherwise),
* ``osm_way``: the id of the OSM way the segment belongs to,
* ``bridge`` / ``tunnel``: True on bridge or tunnel segments (absent otherwise).

Link ids are ``<way id>-<n>``, the n-th segment (from 0) of that way in pyrosm's order;
node ids are OSM node ids; both are strings. The street name is the link's ``name``.

Segments tagged ``bridge`` (any value but ``no``) also form a second network of type
:attr:`~rescity.model.NetworkType.BRIDGE`, ``f"{name}-bridges"``: one link per bridge
span (kind ``bridge_span``, same id as the road link it carries, attributes
``length_m``, ``highway``, ``bridge`` = the OSM tag value, ``road_link``) between nodes
of kind ``abutment`` at its ends (same ids as the road nodes). This is the bridge
inventory OSM gives; structural data (type, material, year) must come from elsewhere.

OSM PBF cannot be written: there is no ``write_osm``. Export a road or bridge network
as GeoJSON or GeoPackage with :func:`rescity.io.geo.write_geojson_network` or
:func:`rescity.io.geo.write_gpkg_network`.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from pyproj import Geod
from shapely.geometry import LineString, Point

from rescity.model import Link, Network, NetworkType, Node

from .errors import FormatError

__all__ = ["NETWORK_TYPES", "parse_lanes", "parse_maxspeed_kmh", "read_osm_roads"]

#: The network types pyrosm's ``get_network`` accepts.
NETWORK_TYPES = (
    "driving",
    "driving+service",
    "walking",
    "cycling",
    "all",
    "all_public",
    "drive",
    "drive_service",
    "walk",
    "bike",
)

_MPH_KMH = 1.609344
_KNOT_KMH = 1.852
_NUMBER = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(km/h|kmh|kph|mph|knots)?\s*$", re.IGNORECASE)
_IMPLIED_ONEWAY = {"motorway", "motorway_link"}
_GEOD = Geod(ellps="WGS84")


def _tag(value: Any) -> str | None:
    """An OSM tag value as a stripped string, None when absent."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    s = str(value).strip()
    return s or None


def parse_maxspeed_kmh(value: Any) -> float | None:
    """An OSM ``maxspeed`` tag in km/h: ``"50"`` -> 50.0, ``"30 mph"`` -> 48.28.

    Lists (``"50;30"``) give their largest value. Symbolic values (``"RU:urban"``,
    ``"walk"``, ``"none"``, ``"signals"``) give None: they need a country table.
    """
    s = _tag(value)
    if s is None:
        return None
    best: float | None = None
    for part in s.split(";"):
        m = _NUMBER.match(part)
        if m is None:
            continue
        v = float(m.group(1))
        unit = (m.group(2) or "").lower()
        if unit == "mph":
            v *= _MPH_KMH
        elif unit == "knots":
            v *= _KNOT_KMH
        best = v if best is None else max(best, v)
    return best


def parse_lanes(value: Any) -> int | None:
    """An OSM ``lanes`` tag as a whole number of lanes (the largest of a ``;`` list)."""
    s = _tag(value)
    if s is None:
        return None
    counts = []
    for part in s.split(";"):
        try:
            f = float(part.strip())
        except ValueError:
            continue
        if f > 0 and math.isfinite(f):
            counts.append(int(round(f)))
    return max(counts) if counts else None


def _oneway(tags: dict[str, Any], highway: str | None) -> tuple[bool, bool]:
    """(one-way, reversed): reversed means traffic runs against the way's direction."""
    v = (_tag(tags.get("oneway")) or "").lower()
    if v in ("yes", "true", "1"):
        return True, False
    if v in ("-1", "reverse"):
        return True, True
    if v in ("no", "false", "0", "reversible", "alternating"):
        return False, False
    junction = (_tag(tags.get("junction")) or "").lower()
    return (highway in _IMPLIED_ONEWAY or junction in ("roundabout", "circular")), False


def _yes(value: Any) -> str | None:
    """The tag value when a ``bridge``/``tunnel`` tag says there is one, else None."""
    s = _tag(value)
    if s is None or s.lower() == "no":
        return None
    return s


def read_osm_roads(
    path: str | Path, *, name: str = "roads", network_type: str = "driving"
) -> tuple[Network, Network | None]:
    """Read the road network of an OSM PBF extract, and its bridges.

    ``network_type`` is pyrosm's (``driving``, ``walking``, ``cycling``, ...). Returns
    the road network (type ROAD, geometries WGS84, lengths in metres) and, when any
    segment is a bridge, the bridge network ``f"{name}-bridges"`` (type BRIDGE), else
    None. A file without roads of that type gives an empty road network.

    Raises :class:`FormatError` naming the file if it is not a readable OSM PBF file,
    :class:`FileNotFoundError` if it does not exist.
    """
    import pyrosm

    path = Path(path)
    if network_type not in NETWORK_TYPES:
        raise ValueError(
            f"unknown network_type {network_type!r}; expected one of {', '.join(NETWORK_TYPES)}"
        )
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if not path.name.lower().endswith(".pbf"):
        raise FormatError(path, "expected an OSM PBF file (*.osm.pbf)")
    try:
        osm = pyrosm.OSM(str(path))
        result = osm.get_network(network_type=network_type, nodes=True)
    except Exception as e:  # pyrosm raises protobuf, pyrosm and plain errors alike
        raise FormatError(path, f"not a readable OSM PBF file: {e}") from None

    roads = Network(name=name, type=NetworkType.ROAD, source_format="osm")
    roads.attrs["osm_network_type"] = network_type
    if result is None:
        return roads, None
    nodes_df, edges_df = result
    if nodes_df is None or edges_df is None or len(edges_df) == 0:
        return roads, None

    for nid, lon, lat in zip(nodes_df["id"], nodes_df["lon"], nodes_df["lat"], strict=True):
        node_id = str(int(nid))
        if node_id not in roads.nodes:
            roads.nodes[node_id] = Node(node_id, "intersection", Point(float(lon), float(lat)))

    bridges = Network(name=f"{name}-bridges", type=NetworkType.BRIDGE, source_format="osm")
    columns = [c for c in edges_df.columns if c != "geometry"]
    seq: dict[str, int] = {}
    for row, geom in zip(edges_df[columns].to_dict("records"), edges_df.geometry, strict=True):
        way = str(int(row["id"]))
        n = seq.get(way, 0)
        seq[way] = n + 1
        link_id = f"{way}-{n}"
        start, end = str(int(row["u"])), str(int(row["v"]))
        for end_id in (start, end):
            if end_id not in roads.nodes:
                raise FormatError(
                    path,
                    f"road segment ends at node {end_id} that has no position",
                    feature=link_id,
                )
        if not isinstance(geom, LineString) or geom.is_empty:
            geom = LineString([roads.nodes[start].lonlat, roads.nodes[end].lonlat])
        highway = _tag(row.get("highway"))
        oneway, reverse = _oneway(row, highway)
        if reverse:
            start, end = end, start
            geom = LineString(list(geom.coords)[::-1])
        attrs: dict[str, Any] = {"length_m": float(_GEOD.geometry_length(geom))}
        if highway is not None:
            attrs["highway"] = highway
        lanes = parse_lanes(row.get("lanes"))
        if lanes is not None:
            attrs["lanes"] = lanes
        speed = parse_maxspeed_kmh(row.get("maxspeed"))
        if speed is not None:
            attrs["maxspeed_kmh"] = speed
        attrs["oneway"] = oneway
        attrs["osm_way"] = way
        bridge = _yes(row.get("bridge"))
        if bridge is not None:
            attrs["bridge"] = True
        if _yes(row.get("tunnel")) is not None:
            attrs["tunnel"] = True
        street = _tag(row.get("name"))
        roads.links[link_id] = Link(link_id, "road", start, end, geom, attrs, street)
        if bridge is not None:
            for end_id in (start, end):
                if end_id not in bridges.nodes:
                    bridges.nodes[end_id] = Node(
                        end_id, "abutment", roads.nodes[end_id].geometry, {}, None
                    )
            battrs: dict[str, Any] = {"length_m": attrs["length_m"], "bridge": bridge}
            if highway is not None:
                battrs["highway"] = highway
            battrs["road_link"] = roads.uid(link_id)
            bridges.links[link_id] = Link(link_id, "bridge_span", start, end, geom, battrs, street)
    return roads, (bridges if bridges.links else None)
