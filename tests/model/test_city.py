"""The city model: hierarchy rules, sensors, units, computed spatial adjacency."""

import pytest
from shapely.geometry import LineString, Point, box

from rescity.model import (
    QUANTITIES,
    City,
    DependencyKind,
    Jurisdiction,
    JurisdictionLevel,
    Link,
    ModelError,
    Network,
    NetworkError,
    NetworkType,
    Node,
    Sensor,
    UnknownUnitError,
    from_si,
    to_si,
)
from rescity.model.spatial import AssetSelector, nearest_dependency, spatial_adjacency

C = (24.9443, 60.1716)
DEG_PER_M_LON = 1 / 55_600.0  # at 60.17 N, about 55.6 km per degree of longitude
DEG_PER_M_LAT = 1 / 111_320.0


def at(dx_m: float, dy_m: float) -> tuple[float, float]:
    return (C[0] + dx_m * DEG_PER_M_LON, C[1] + dy_m * DEG_PER_M_LAT)


def small_city() -> City:
    city = City(name="t", center=C)
    gas = Network("gas", NetworkType.GAS)
    gas.add_node(Node("a", "junction", Point(at(0, 0))))
    gas.add_node(Node("b", "junction", Point(at(200, 0))))
    gas.add_link(Link("p1", "main", "a", "b", LineString([at(0, 0), at(200, 0)])))
    dr = Network("drainage", NetworkType.DRAINAGE)
    dr.add_node(Node("m_near", "junction", Point(at(100, 6))))   # 6 m from the main
    dr.add_node(Node("m_far", "junction", Point(at(100, 40))))   # 40 m away
    dr.add_node(Node("m_end", "junction", Point(at(208, 0))))    # 8 m past the end
    city.add_network(gas)
    city.add_network(dr)
    return city


def test_spatial_adjacency_finds_manholes_within_distance():
    city = small_city()
    rel = spatial_adjacency(
        city,
        AssetSelector(NetworkType.GAS, frozenset({"main"}), role="link"),
        AssetSelector(NetworkType.DRAINAGE, role="node"),
        10.0,
    )
    got = {r.dependent: r.distance_m for r in rel}
    assert set(got) == {"drainage:m_near", "drainage:m_end"}
    assert got["drainage:m_near"] == pytest.approx(6.0, rel=0.01)
    assert got["drainage:m_end"] == pytest.approx(8.0, rel=0.01)
    assert all(r.kind == DependencyKind.SPATIAL_ADJACENCY and r.supporting == "gas:p1" for r in rel)


def test_nearest_dependency_picks_the_nearest_supporting_node():
    city = small_city()
    rel = nearest_dependency(city, [("x", Point(at(190, 5)))],
                             AssetSelector(NetworkType.GAS, role="node"), DependencyKind.ROAD_ACCESS)
    assert rel[0].supporting == "gas:b"
    assert rel[0].distance_m == pytest.approx((10**2 + 5**2) ** 0.5, rel=0.01)


def test_hierarchy_is_enforced():
    city = City(name="t", center=C)
    city.add_jurisdiction(Jurisdiction("D1", "d", JurisdictionLevel.DISTRICT, box(0, 0, 1, 1)))
    city.add_jurisdiction(Jurisdiction("S1", "s", JurisdictionLevel.STREET, box(0, 0, 1, 1), parent="D1"))
    with pytest.raises(ModelError, match="cannot sit under"):
        city.add_jurisdiction(Jurisdiction("G0", "g", JurisdictionLevel.GRID, box(0, 0, 1, 1), parent="D1"))
    with pytest.raises(ModelError, match="needs a parent"):
        city.add_jurisdiction(Jurisdiction("S2", "s", JurisdictionLevel.STREET, box(0, 0, 1, 1)))
    with pytest.raises(ModelError, match="unknown parent"):
        city.add_jurisdiction(Jurisdiction("S3", "s", JurisdictionLevel.STREET, box(0, 0, 1, 1), parent="X"))


def test_links_need_their_nodes_and_ids_are_unique():
    net = Network("w", NetworkType.WATER)
    net.add_node(Node("a", "junction", Point(C)))
    with pytest.raises(NetworkError, match="unknown node 'b'"):
        net.add_link(Link("p", "pipe", "a", "b", LineString([C, C])))
    with pytest.raises(NetworkError, match="duplicate node"):
        net.add_node(Node("a", "junction", Point(C)))


def test_sensor_takes_the_quantity_unit_and_range():
    city = small_city()
    s = city.add_sensor(Sensor("s1", "drainage:m_near", "methane", Point(C)))
    assert (s.unit, s.low, s.high) == ("%LEL", 0.0, 100.0)
    with pytest.raises(ModelError, match="unknown quantity"):
        Sensor("s2", "drainage:m_near", "colour", Point(C))
    with pytest.raises(ModelError, match="not the SI unit"):
        Sensor("s3", "drainage:m_near", "pressure", Point(C), unit="psi")
    with pytest.raises(ModelError, match="unknown asset"):
        city.add_sensor(Sensor("s4", "drainage:nope", "level", Point(C)))


def test_summary_counts():
    city = small_city()
    city.add_sensor(Sensor("s1", "drainage:m_near", "methane", Point(C)))
    s = city.summary()
    assert s["networks"]["gas"] == {"networks": 1, "nodes": 2, "links": 1}
    assert s["assets"] == 6 and s["sensors"] == {"methane": 1}


def test_units_convert_and_refuse_unknown():
    assert to_si(10.0, "ft") == pytest.approx(3.048)
    assert to_si(1.0, "psi") == pytest.approx(0.703069578)
    assert to_si(212.0, "degF") == pytest.approx(100.0)
    assert from_si(to_si(3.3, "gpm"), "gpm") == pytest.approx(3.3)
    with pytest.raises(UnknownUnitError, match="furlong"):
        to_si(1.0, "furlong")
    assert all(q.low < q.high for q in QUANTITIES.values())
