"""Small, real-looking test cities near central Helsinki (lon 24.94, lat 60.17).

Synthetic on purpose: the store is tested on hand-made networks whose answers we can
compute independently; the real networks (EPANET, SWMM, pandapower, OSM) are tested by
the importers.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import LineString, Point, Polygon, box

from rescity.model import (
    City,
    DependencyKind,
    Facility,
    FacilityKind,
    Interdependency,
    Jurisdiction,
    JurisdictionLevel,
    Link,
    Network,
    NetworkType,
    Node,
    Placement,
    Sensor,
)

LON0, LAT0 = 24.94, 60.17
UTM = "EPSG:32635"  # the UTM zone of central Helsinki


def metres_to_lonlat(
    x: float, y: float, lon0: float = LON0, lat0: float = LAT0
) -> tuple[float, float]:
    """A point ``x`` m east and ``y`` m north of (lon0, lat0) (local tangent plane)."""
    lat = lat0 + y / 111_132.0
    lon = lon0 + x / (111_320.0 * math.cos(math.radians(lat0)))
    return (lon, lat)


def _pt(x: float, y: float) -> Point:
    return Point(*metres_to_lonlat(x, y))


def _line(*xy: tuple[float, float]) -> LineString:
    return LineString([metres_to_lonlat(x, y) for x, y in xy])


def _poly(*xy: tuple[float, float]) -> Polygon:
    return Polygon([metres_to_lonlat(x, y) for x, y in xy])


def jurisdictions() -> list[Jurisdiction]:
    """2 districts (west/east of lon 24.94) > 4 streets (south/north of lat 60.17) > 8 grid cells."""
    out: list[Jurisdiction] = []
    lon_edges = (24.90, 24.94, 24.98)
    for i, (w, e) in enumerate(zip(lon_edges[:-1], lon_edges[1:], strict=True)):
        dcode = f"D{i + 1}"
        out.append(
            Jurisdiction(
                code=dcode,
                name=f"District {i + 1}",
                level=JurisdictionLevel.DISTRICT,
                geometry=box(w, 60.15, e, 60.19),
                population=40_000 + 1_000 * i,
                name_zh=f"第{i + 1}区",
                attrs={"office": f"Office {i + 1}"},
            )
        )
        for j, (s, n) in enumerate(((60.15, 60.17), (60.17, 60.19))):
            scode = f"{dcode}-S{j + 1}"
            out.append(
                Jurisdiction(
                    code=scode,
                    name=f"Street {i + 1}.{j + 1}",
                    level=JurisdictionLevel.STREET,
                    geometry=box(w, s, e, n),
                    parent=dcode,
                    population=20_000,
                )
            )
            mid = (w + e) / 2
            for k, (gw, ge) in enumerate(((w, mid), (mid, e))):
                out.append(
                    Jurisdiction(
                        code=f"{scode}-G{k + 1}",
                        name=f"Grid {i + 1}.{j + 1}.{k + 1}",
                        level=JurisdictionLevel.GRID,
                        geometry=box(gw, s, ge, n),
                        parent=scode,
                        population=10_000,
                    )
                )
    return out


def water_network(name: str = "water") -> Network:
    """A small EPANET-like district: reservoir, pump, tank, five junctions, pipes."""
    net = Network(
        name=name,
        type=NetworkType.WATER,
        placement=Placement(
            anchor=(LON0, LAT0), origin=(1000.0, 2000.0), unit_m=0.3048, rotation_deg=12.5
        ),
        source_format="epanet-inp",
        native={
            "options": {
                "hydraulic": {"headloss": "H-W", "demand_model": "DDA"},
                "time": {"duration": 86400},
            },
            "patterns": {"1": [1.0, 1.2, 0.8, 0.6]},
            "curves": {"C1": {"type": "HEAD", "points": [[0.0, 60.0], [0.05, 45.0]]}},
            "controls": [],
        },
        attrs={"title": "test district", "demand_multiplier": 1.0},
    )
    coords = {
        "R1": (-400.0, -300.0),
        "J1": (-250.0, -300.0),
        "J2": (-100.0, -200.0),
        "J3": (50.0, -100.0),
        "J4": (200.0, 0.0),
        "J5": (50.0, 150.0),
        "T1": (350.0, 100.0),
    }
    for nid, (x, y) in coords.items():
        kind = "reservoir" if nid.startswith("R") else "tank" if nid.startswith("T") else "junction"
        net.add_node(
            Node(
                nid,
                kind,
                _pt(x, y),
                attrs={
                    "elevation_m": 10.0 + 0.01 * x,
                    "base_demand_m3s": 0.0 if kind != "junction" else 0.002,
                },
                name=None if kind == "junction" else f"{kind.title()} {nid}",
            )
        )
    net.add_link(
        Link("PU1", "pump", "R1", "J1", _line(coords["R1"], coords["J1"]), attrs={"curve": "C1"})
    )
    pipes = [
        ("P1", "J1", "J2"),
        ("P2", "J2", "J3"),
        ("P3", "J3", "J4"),
        ("P4", "J3", "J5"),
        ("P5", "J4", "T1"),
    ]
    for pid, a, b in pipes:
        (x0, y0), (x1, y1) = coords[a], coords[b]
        geom = _line((x0, y0), ((x0 + x1) / 2 + 15.0, (y0 + y1) / 2 - 10.0), (x1, y1))
        net.add_link(
            Link(
                pid,
                "pipe",
                a,
                b,
                geom,
                attrs={
                    "diameter_m": 0.3,
                    "length_m": 180.0,
                    "roughness": 100,
                    "material": "ductile iron",
                },
            )
        )
    return net


def drainage_network() -> Network:
    """Manholes, an outfall, conduits and a subcatchment polygon (a node with an area)."""
    net = Network(
        name="drain",
        type=NetworkType.DRAINAGE,
        source_format="swmm-inp",
        native={"raw": ["[OPTIONS]", "FLOW_UNITS CMS"]},
    )
    pts = {"M1": (-150.0, 300.0), "M2": (0.0, 320.0), "M3": (150.0, 340.0), "O1": (300.0, 360.0)}
    for nid, (x, y) in pts.items():
        net.add_node(
            Node(nid, "outfall" if nid == "O1" else "manhole", _pt(x, y), attrs={"invert_m": 5.0})
        )
    net.add_node(
        Node(
            "S1",
            "subcatchment",
            _poly((-300, 380), (-100, 380), (-100, 520), (-300, 520), (-300, 380)),
            attrs={"area_m2": 28000.0, "imperv": 0.65},
        )
    )
    for cid, a, b in (("C1", "M1", "M2"), ("C2", "M2", "M3"), ("C3", "M3", "O1")):
        net.add_link(Link(cid, "conduit", a, b, _line(pts[a], pts[b]), attrs={"diameter_m": 0.6}))
    return net


def power_network() -> Network:
    net = Network(
        name="grid",
        type=NetworkType.POWER,
        source_format="pandapower",
        native='{"_module": "pandapower.auxiliary", "bus": {}}',
    )
    pts = {"B1": (-500.0, -50.0), "B2": (-200.0, 50.0), "B3": (100.0, 80.0)}
    for nid, (x, y) in pts.items():
        net.add_node(Node(nid, "bus", _pt(x, y), attrs={"vn_kv": 10.0}))
    net.add_link(
        Link("L1", "line", "B1", "B2", _line(pts["B1"], pts["B2"]), attrs={"length_m": 320.0})
    )
    net.add_link(
        Link("L2", "line", "B2", "B3", _line(pts["B2"], pts["B3"]), attrs={"length_m": 300.0})
    )
    return net


def gas_network() -> Network:
    net = Network(name="gas", type=NetworkType.GAS)
    net.add_node(Node("G1", "regulator", _pt(-200.0, 290.0)))
    net.add_node(Node("G2", "junction", _pt(100.0, 296.0)))
    net.add_link(
        Link(
            "GP1",
            "pipe",
            "G1",
            "G2",
            _line((-200.0, 290.0), (100.0, 296.0)),
            attrs={"pressure_class": "MP"},
        )
    )
    return net


def facilities() -> list[Facility]:
    return [
        Facility(
            "H1",
            FacilityKind.HOSPITAL,
            "Central Hospital",
            _pt(60.0, -60.0),
            population_served=120_000,
            name_zh="中心医院",
            attrs={"beds": 420},
        ),
        Facility(
            "SC1",
            FacilityKind.SCHOOL,
            "Harbour School",
            _poly((-60, 40), (0, 40), (0, 90), (-60, 90), (-60, 40)),
            population_served=800,
        ),
        Facility(
            "SH1", FacilityKind.SHELTER, "Rock Shelter", _pt(-350.0, 200.0), population_served=3_000
        ),
    ]


def make_city(*, with_extras: bool = True) -> City:
    """The test city: jurisdictions, water/drainage/power/gas networks, facilities,
    interdependencies and sensors."""
    city = City(
        name="Testby",
        center=(LON0, LAT0),
        name_zh="测试市",
        admin_code="999001",
        attrs={"note": "synthetic test city", "timezone": "Europe/Helsinki"},
    )
    for j in jurisdictions():
        city.add_jurisdiction(j)
    city.add_network(water_network())
    if with_extras:
        city.add_network(drainage_network())
        city.add_network(power_network())
        city.add_network(gas_network())
    for f in facilities():
        city.add_facility(f)
    deps = [
        Interdependency("facility:H1", "water:J3", DependencyKind.WATER_SUPPLY, 45.5),
        Interdependency("water:PU1", "facility:SH1", DependencyKind.ROAD_ACCESS),
    ]
    if with_extras:
        deps += [
            Interdependency("facility:H1", "grid:B3", DependencyKind.POWER_SUPPLY, 150.0),
            Interdependency("water:PU1", "grid:B1", DependencyKind.POWER_SUPPLY),
            Interdependency("drain:M1", "gas:GP1", DependencyKind.SPATIAL_ADJACENCY, 10.2),
        ]
    for d in deps:
        city.add_interdependency(d)
    sensors = [
        Sensor("PT-J2", "water:J2", "pressure", _pt(-100.0, -200.0), attrs={"model": "PX-1"}),
        Sensor("FT-P1", "water:P1", "flow", _pt(-170.0, -250.0), low=-1.0, high=1.0),
        Sensor("PT-J5", "water:J5", "pressure", _pt(50.0, 150.0)),
    ]
    if with_extras:
        sensors += [
            Sensor("LT-M2", "drain:M2", "level", _pt(0.0, 320.0)),
            Sensor("CH4-M1", "drain:M1", "methane", _pt(-150.0, 300.0)),
            Sensor("V-B1", "grid:B1", "voltage", _pt(-500.0, -50.0)),
        ]
    for s in sensors:
        city.add_sensor(s)
    return city


def random_field(seed: int = 7, n: int = 300, *, name: str = "field") -> Network:
    """``n`` random road nodes, segments and small block polygons within ~1.2 km of the centre."""
    rng = np.random.default_rng(seed)
    net = Network(name=name, type=NetworkType.ROAD)
    xy = rng.uniform(-1200.0, 1200.0, size=(n, 2))
    for i, (x, y) in enumerate(xy):
        if i % 10 == 9:  # a building block: a small rotated square, 20-60 m
            s = rng.uniform(10.0, 30.0)
            a = rng.uniform(0, math.pi / 2)
            corners = [
                (x + s * math.cos(a + t), y + s * math.sin(a + t))
                for t in (0, math.pi / 2, math.pi, 1.5 * math.pi)
            ]
            net.add_node(Node(f"n{i}", "block", _poly(*corners, corners[0])))
        else:
            net.add_node(Node(f"n{i}", "intersection", _pt(x, y)))
    ids = list(net.nodes)
    for i in range(0, n - 1, 3):
        a, b = ids[i], ids[i + 1]
        (x0, y0), (x1, y1) = xy[i], xy[i + 1]
        if math.hypot(x1 - x0, y1 - y0) < 900:
            net.add_link(Link(f"e{i}", "road_segment", a, b, _line((x0, y0), (x1, y1))))
    return net


def large_city(n_assets: int = 15_000) -> City:
    """A city with about ``n_assets`` assets: a water grid of nodes and pipes."""
    city = City(name="Bigby", center=(LON0, LAT0))
    side = int(math.sqrt(n_assets / 3)) + 1
    net = Network(name="bigwater", type=NetworkType.WATER)
    count = 0
    for i in range(side):
        for j in range(side):
            net.add_node(
                Node(
                    f"J{i}_{j}",
                    "junction",
                    _pt(i * 25.0 - 1500, j * 25.0 - 1500),
                    attrs={"elevation_m": 5.0 + i * 0.1, "base_demand_m3s": 0.001},
                )
            )
            count += 1
    for i in range(side):
        for j in range(side):
            if count >= n_assets:
                break
            if i + 1 < side:
                a, b = f"J{i}_{j}", f"J{i + 1}_{j}"
                net.add_link(
                    Link(
                        f"P{i}_{j}_e",
                        "pipe",
                        a,
                        b,
                        LineString([net.nodes[a].geometry, net.nodes[b].geometry]),
                        attrs={"diameter_m": 0.15, "length_m": 25.0},
                    )
                )
                count += 1
            if j + 1 < side and count < n_assets:
                a, b = f"J{i}_{j}", f"J{i}_{j + 1}"
                net.add_link(
                    Link(
                        f"P{i}_{j}_n",
                        "pipe",
                        a,
                        b,
                        LineString([net.nodes[a].geometry, net.nodes[b].geometry]),
                        attrs={"diameter_m": 0.15, "length_m": 25.0},
                    )
                )
                count += 1
    city.add_network(net)
    return city


# -- independent reference computations (local azimuthal equidistant projection) ---------
def reference_distances(lon: float, lat: float, geoms: list) -> np.ndarray:
    """Distances (m) from (lon, lat) computed in an azimuthal equidistant projection
    centred on the point (exact geodesic distance for points; independent of both the
    UTM computation of the SQLite backend and PostGIS' geography)."""
    t = Transformer.from_crs(
        "EPSG:4326", f"+proj=aeqd +lat_0={lat} +lon_0={lon} +ellps=WGS84 +units=m", always_xy=True
    )

    def _xy(c: np.ndarray) -> np.ndarray:
        x, y = t.transform(c[:, 0], c[:, 1])
        return np.column_stack([x, y])

    projected = shapely.transform(np.asarray(geoms, dtype=object), _xy)
    return np.asarray(shapely.distance(projected, Point(0.0, 0.0)), dtype=float)


def assets_of(city: City) -> dict[str, object]:
    """uid -> geometry of every asset of ``city``."""
    out: dict[str, object] = {}
    for net in city.networks.values():
        for e in net.elements():
            out[net.uid(e.id)] = e.geometry
    for f in city.facilities.values():
        out[f.uid] = f.geometry
    return out
