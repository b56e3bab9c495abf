"""Lifeline networks: graphs of typed nodes and links with geometry.

Attribute names carry their unit as a suffix (``elevation_m``, ``diameter_m``,
``length_m``, ``base_demand_m3s``, ``vn_kv``, ``p_mw``); values are SI unless the
suffix says otherwise. Dimensionless attributes have no suffix (``roughness``).

A network may carry ``native``: the engine's own model of it (for example the WNTR
dictionary of an EPANET model, the unparsed sections of a SWMM file, or the
pandapower JSON) so that what the twin does not model element by element (patterns,
curves, controls, options) survives a round trip. The twin's nodes and links are
authoritative for everything they hold: an export writes their values.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
from shapely.geometry import LineString, Point
from shapely.geometry.base import BaseGeometry

from .enums import NetworkType
from .geo import Placement

UID_SEP = ":"
LINK_PREFIX = "link:"


def asset_uid(network: str, element_id: str) -> str:
    """The city-wide identity of an element: ``<network name>:<element id>``."""
    return f"{network}{UID_SEP}{element_id}"


def split_uid(uid: str) -> tuple[str, str]:
    """Inverse of :func:`asset_uid`."""
    net, sep, eid = uid.partition(UID_SEP)
    if not sep:
        raise ValueError(f"not an asset uid (expected '<network>{UID_SEP}<id>'): {uid!r}")
    return net, eid


@dataclass(slots=True)
class Node:
    """A point element: junction, tank, manhole, bus, intersection, valve chamber, ...

    ``geometry`` is WGS84; usually a Point, an area element (a SWMM subcatchment) may
    carry a Polygon.
    """

    id: str
    kind: str
    geometry: BaseGeometry
    attrs: dict[str, Any] = field(default_factory=dict)
    name: str | None = None

    @property
    def lonlat(self) -> tuple[float, float]:
        p = self.geometry if isinstance(self.geometry, Point) else self.geometry.centroid
        return (p.x, p.y)


@dataclass(slots=True)
class Link:
    """A line element between two nodes: pipe, pump, valve, conduit, cable, road segment."""

    id: str
    kind: str
    start: str
    end: str
    geometry: LineString
    attrs: dict[str, Any] = field(default_factory=dict)
    name: str | None = None

    @property
    def file_id(self) -> str:
        """The link's id in its source file (differs from ``id`` only when the file's
        link id equals a node id; see :meth:`Network.link_id_for`)."""
        return str(self.attrs.get("file_id", self.id))


class NetworkError(ValueError):
    """An inconsistent network (a link to a missing node, a duplicate id)."""


@dataclass
class Network:
    """One lifeline network of one type."""

    name: str
    type: NetworkType
    nodes: dict[str, Node] = field(default_factory=dict)
    links: dict[str, Link] = field(default_factory=dict)
    placement: Placement = field(default_factory=Placement)
    source_format: str | None = None
    native: Any = None
    attrs: dict[str, Any] = field(default_factory=dict)

    def add_node(self, node: Node) -> Node:
        if node.id in self.nodes:
            raise NetworkError(f"network {self.name!r}: duplicate node id {node.id!r}")
        if node.id in self.links:
            raise NetworkError(f"network {self.name!r}: node id {node.id!r} is already a link id")
        self.nodes[node.id] = node
        return node

    def add_link(self, link: Link) -> Link:
        if link.id in self.links:
            raise NetworkError(f"network {self.name!r}: duplicate link id {link.id!r}")
        if link.id in self.nodes:
            raise NetworkError(
                f"network {self.name!r}: link id {link.id!r} is already a node id "
                "(use Network.link_id_for to name the link)"
            )
        for end in (link.start, link.end):
            if end not in self.nodes:
                raise NetworkError(
                    f"network {self.name!r}: link {link.id!r} refers to unknown node {end!r}"
                )
        self.links[link.id] = link
        return link

    def link_id_for(self, file_id: str) -> str:
        """The twin id of a link whose id in its file is ``file_id``.

        Nodes and links share one namespace in a network (asset uids are
        ``<network>:<id>``), while EPANET and SWMM keep them apart: a link named like a
        node (Net3's pipe ``10`` and junction ``10``) becomes ``link:10``, and the reader
        keeps ``attrs["file_id"]`` so the writer restores the file's name.
        """
        return file_id if file_id not in self.nodes else f"{LINK_PREFIX}{file_id}"

    def with_file_ids(self) -> Network:
        """A shallow copy whose links are keyed and named by their file ids (for writers).

        The copy is not checked for the shared namespace; use it only to write a file.
        """
        links = {}
        for link in self.links.values():
            fid = link.file_id
            attrs = {k: v for k, v in link.attrs.items() if k != "file_id"}
            links[fid] = Link(fid, link.kind, link.start, link.end, link.geometry, attrs, link.name)
        return Network(name=self.name, type=self.type, nodes=self.nodes, links=links,
                       placement=self.placement, source_format=self.source_format,
                       native=self.native, attrs=self.attrs)

    def uid(self, element_id: str) -> str:
        return asset_uid(self.name, element_id)

    def elements(self) -> Iterator[Node | Link]:
        yield from self.nodes.values()
        yield from self.links.values()

    def kinds(self) -> dict[str, int]:
        """Count of elements by kind."""
        out: dict[str, int] = {}
        for e in self.elements():
            out[e.kind] = out.get(e.kind, 0) + 1
        return out

    def to_networkx(self) -> nx.MultiGraph:
        """An undirected multigraph: node and link ids, kinds and attributes."""
        g = nx.MultiGraph(name=self.name, type=self.type.value)
        for n in self.nodes.values():
            g.add_node(n.id, kind=n.kind, **n.attrs)
        for link in self.links.values():
            g.add_edge(link.start, link.end, key=link.id, kind=link.kind, **link.attrs)
        return g

    def bounds(self) -> tuple[float, float, float, float]:
        """(min lon, min lat, max lon, max lat) of all elements."""
        import shapely

        geoms = [e.geometry for e in self.elements()]
        if not geoms:
            raise NetworkError(f"network {self.name!r} is empty")
        b = shapely.total_bounds(geoms)
        return (float(b[0]), float(b[1]), float(b[2]), float(b[3]))
