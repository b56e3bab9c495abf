"""The city store on both backends: round trips, atomicity, counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from shapely.geometry import LineString, Point

from rescity.model import (
    DependencyKind,
    Facility,
    FacilityKind,
    Interdependency,
    Jurisdiction,
    JurisdictionLevel,
    Link,
    Network,
    NetworkError,
    NetworkType,
    Node,
    Sensor,
)
from rescity.store import ConflictError, NotFoundError, Store, StoreError, head_revision

from .citydata import drainage_network, make_city, metres_to_lonlat, water_network


def snapshot(store: Store) -> tuple:
    """Everything observable about the store's content."""
    try:
        city = store.load_city()
    except NotFoundError:
        city = None
    nets = {n: store.get_network(n) for n in store.network_names()}
    return (store.info(), city, nets)


# -- opening ---------------------------------------------------------------------------
def test_open_is_migrated_and_empty(store: Store) -> None:
    assert store.backend in ("sqlite", "postgresql")
    assert store.revision() == head_revision()
    assert store.info() == {
        "city": None,
        "networks": {},
        "assets": 0,
        "sensors": {},
        "jurisdictions": {},
        "interdependencies": {},
        "facilities": {},
    }
    assert store.network_names() == []
    with pytest.raises(NotFoundError):
        store.load_city()


def test_reopen_keeps_content(store: Store) -> None:
    store.save_city(make_city())
    again = Store.open(store.engine.url.render_as_string(hide_password=False))
    try:
        assert again.revision() == head_revision()
        assert again.load_city() == make_city()
    finally:
        again.close()


# -- whole city ------------------------------------------------------------------------
def test_save_load_round_trip(store: Store) -> None:
    city = make_city()
    store.save_city(city)
    loaded = store.load_city()
    assert loaded == city
    # beyond dataclass equality: order, types, geometry kinds, placement, native
    assert list(loaded.jurisdictions) == list(city.jurisdictions)
    for name, net in city.networks.items():
        got = loaded.networks[name]
        assert list(got.nodes) == list(net.nodes)
        assert list(got.links) == list(net.links)
        assert got.placement == net.placement
        assert got.native == net.native
        assert got.type is net.type
        for nid, node in net.nodes.items():
            assert got.nodes[nid].geometry.geom_type == node.geometry.geom_type
            assert got.nodes[nid].geometry.equals_exact(node.geometry, 0.0)
    assert loaded.interdependencies == city.interdependencies
    assert loaded.facilities["H1"].kind is FacilityKind.HOSPITAL
    assert loaded.facilities["H1"].name_zh == "中心医院"
    assert loaded.facilities["SC1"].geometry.geom_type == "Polygon"
    assert loaded.sensors["FT-P1"].low == -1.0
    assert loaded.jurisdictions["D1-S1-G2"].level is JurisdictionLevel.GRID
    assert loaded.crs == "EPSG:32635"
    # the loaded placement still places coordinates the same way
    xy = np.array([[1000.0, 2000.0], [1500.0, 1800.0]])
    assert np.allclose(
        loaded.networks["water"].placement.forward_xy(xy),
        city.networks["water"].placement.forward_xy(xy),
    )


def test_partial_getters(store: Store) -> None:
    city = make_city()
    store.save_city(city)
    assert store.get_jurisdictions() == list(city.jurisdictions.values())
    grids = store.get_jurisdictions(JurisdictionLevel.GRID)
    assert [j.code for j in grids] == [j.code for j in city.level(JurisdictionLevel.GRID)]
    assert store.get_jurisdictions("street") == city.level(JurisdictionLevel.STREET)
    assert store.get_facilities() == list(city.facilities.values())
    assert store.get_sensors() == list(city.sensors.values())
    assert store.get_interdependencies() == city.interdependencies


def test_save_city_replaces_everything(store: Store) -> None:
    store.save_city(make_city())
    small = make_city(with_extras=False)
    small.name = "Smallby"
    store.save_city(small)
    assert store.load_city() == small
    assert store.network_names() == ["water"]
    assert store.info() == small.summary()


def test_info_matches_city_summary(store: Store) -> None:
    city = make_city()
    store.save_city(city)
    info = store.info()
    assert info == city.summary()
    assert info["networks"]["water"] == {"networks": 1, "nodes": 7, "links": 6}
    assert info["assets"] == sum(len(n.nodes) + len(n.links) for n in city.networks.values()) + 3
    assert info["jurisdictions"] == {"district": 2, "street": 4, "grid": 8}
    # an empty network still counts as a network
    store.add_network(Network(name="empty", type=NetworkType.WATER))
    assert store.info()["networks"]["water"] == {"networks": 2, "nodes": 7, "links": 6}


def test_save_city_refuses_dangling_references(store: Store) -> None:
    store.save_city(make_city())
    before = snapshot(store)
    bad = make_city()
    bad.sensors["X"] = Sensor("X", "water:NOPE", "pressure", Point(24.94, 60.17))
    with pytest.raises(NotFoundError, match="water:NOPE"):
        store.save_city(bad)
    assert snapshot(store) == before


def test_attrs_json_edge_cases(store: Store) -> None:
    net = Network(name="w", type=NetworkType.WATER, attrs={"nested": {"a": [1, 2, {"b": None}]}})
    net.add_node(
        Node(
            "A",
            "junction",
            Point(24.94, 60.17),
            attrs={
                "np_int": np.int64(3),
                "np_float": np.float32(0.5),
                "array": np.array([1.0, 2.0]),
                "nan": float("nan"),
                "inf": math.inf,
                "zh": "节点",
                "flag": np.bool_(True),
                "kind": NetworkType.WATER,
            },
        )
    )
    net.add_node(Node("B", "junction", Point(24.941, 60.171, 12.5)))  # a 3D point survives
    store.add_network(net)
    got = store.get_network("w")
    assert got.nodes["A"].attrs == {
        "np_int": 3,
        "np_float": 0.5,
        "array": [1.0, 2.0],
        "nan": None,
        "inf": None,
        "zh": "节点",
        "flag": True,
        "kind": "water",
    }
    assert got.attrs == net.attrs
    assert got.nodes["B"].geometry.has_z and got.nodes["B"].geometry.z == 12.5


# -- networks --------------------------------------------------------------------------
def test_add_get_delete_network(store: Store) -> None:
    net = water_network()
    store.add_network(net)
    store.add_network(drainage_network())
    assert store.network_names() == ["drain", "water"]
    assert store.get_network("water") == net
    assert store.network_summaries() == [
        {"name": "drain", "type": "drainage", "source_format": "swmm-inp", "nodes": 5, "links": 3},
        {"name": "water", "type": "water", "source_format": "epanet-inp", "nodes": 7, "links": 6},
    ]
    with pytest.raises(NotFoundError):
        store.get_network("nope")
    store.delete_network("drain")
    assert store.network_names() == ["water"]
    assert store.info()["assets"] == len(net.nodes) + len(net.links)
    with pytest.raises(NotFoundError):
        store.delete_network("drain")


def test_add_network_name_clash(store: Store) -> None:
    store.add_network(water_network())
    before = snapshot(store)
    with pytest.raises(ConflictError, match="replace=True"):
        store.add_network(water_network())
    assert snapshot(store) == before


def test_replace_network_keeps_sensors_on_kept_assets(store: Store) -> None:
    store.save_city(make_city())
    new = water_network()
    del new.links["P4"]
    del new.nodes["J5"]  # PT-J5 is on J5: it goes; PT-J2 stays
    new.nodes["J1"].attrs["elevation_m"] = 99.0
    new.add_node(Node("J9", "junction", Point(*metres_to_lonlat(500.0, 500.0))))
    store.add_network(new, replace=True)
    assert store.get_network("water") == new
    city = store.load_city()
    assert "PT-J5" not in city.sensors and "PT-J2" in city.sensors
    assert city.networks["water"].nodes["J1"].attrs["elevation_m"] == 99.0
    assert store.info()["networks"]["water"] == {"networks": 1, "nodes": 7, "links": 5}
    assert store.assets_within(Point(*metres_to_lonlat(500.0, 500.0)).buffer(1e-4)) == ["water:J9"]
    assert store.assets_within(Point(*metres_to_lonlat(50.0, 150.0)).buffer(1e-5)) == []


def test_delete_network_removes_its_sensors_and_interdependencies(store: Store) -> None:
    store.save_city(make_city())
    store.delete_network("grid")
    city = store.load_city()
    assert "V-B1" not in city.sensors
    assert all(
        "grid:" not in d.supporting and "grid:" not in d.dependent for d in city.interdependencies
    )
    assert len(city.interdependencies) == 3


def test_add_network_bad_geometry_leaves_store_unchanged(store: Store) -> None:
    store.save_city(make_city())
    before = snapshot(store)
    bad = water_network()
    bad.nodes["J3"].geometry = "POINT (24.94 60.17)"  # type: ignore[assignment]
    with pytest.raises(StoreError, match="water:J3"):
        store.add_network(bad, replace=True)
    assert snapshot(store) == before


def test_add_network_failure_midway_rolls_back(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old network is deleted and half the new rows are in when the failure hits."""
    store.save_city(make_city())
    before = snapshot(store)
    real = Store._insert_rows
    calls: list[str] = []

    def failing(self, conn, table, rows):  # type: ignore[no-untyped-def]
        calls.append(table.name)
        if table.name == "asset":
            real(self, conn, table, rows[: len(rows) // 2])
            raise RuntimeError("disk full (injected)")
        real(self, conn, table, rows)

    monkeypatch.setattr(Store, "_insert_rows", failing)
    new = water_network()
    new.add_node(Node("J9", "junction", Point(24.95, 60.175)))
    with pytest.raises(RuntimeError, match="injected"):
        store.add_network(new, replace=True)
    with pytest.raises(RuntimeError, match="injected"):
        store.add_network(water_network("water2"))
    assert calls == ["asset", "asset"]
    monkeypatch.undo()
    assert snapshot(store) == before


def test_network_names_that_cannot_be_uids(store: Store) -> None:
    for name in ("facility", "a:b", ""):
        with pytest.raises(StoreError, match="cannot be stored"):
            store.add_network(Network(name=name, type=NetworkType.WATER))
    net = Network(name="epanet", type=NetworkType.WATER)
    net.add_node(Node("10", "junction", Point(24.94, 60.17)))
    net.add_node(Node("11", "junction", Point(24.95, 60.17)))
    # the model refuses a link named like a node; a network built around it is still
    # refused by the store, which never stores two assets under one uid
    with pytest.raises(NetworkError, match="already a node id"):
        net.add_link(Link("10", "pipe", "10", "11", LineString([(24.94, 60.17), (24.95, 60.17)])))
    net.links["10"] = Link("10", "pipe", "10", "11", LineString([(24.94, 60.17), (24.95, 60.17)]))
    with pytest.raises(ConflictError, match="both a node and a link"):
        store.add_network(net)
    assert store.network_names() == []


# -- the other add_* -------------------------------------------------------------------
def test_add_jurisdictions(store: Store) -> None:
    city = make_city()
    js = list(city.jurisdictions.values())
    districts = [j for j in js if j.level is JurisdictionLevel.DISTRICT]
    rest = [j for j in js if j.level is not JurisdictionLevel.DISTRICT]
    store.add_jurisdictions(districts)
    # children before their parents in one batch is fine
    store.add_jurisdictions(list(reversed(rest)))
    assert store.info()["jurisdictions"] == {"district": 2, "street": 4, "grid": 8}
    before = snapshot(store)
    orphan = Jurisdiction("X-S1", "Orphan", JurisdictionLevel.STREET, js[0].geometry, parent="NOPE")
    ok = Jurisdiction("D3", "District 3", JurisdictionLevel.DISTRICT, js[0].geometry)
    with pytest.raises(NotFoundError, match="NOPE"):
        store.add_jurisdictions([ok, orphan])
    wrong_level = Jurisdiction("D1-G9", "Grid", JurisdictionLevel.GRID, js[0].geometry, parent="D1")
    with pytest.raises(StoreError, match="cannot sit under"):
        store.add_jurisdictions([wrong_level])
    with pytest.raises(ConflictError):
        store.add_jurisdictions([ok, districts[0]])
    assert snapshot(store) == before


def test_add_facilities_sensors_interdependencies(store: Store) -> None:
    store.add_network(water_network())
    h = Facility(
        "H2",
        FacilityKind.HOSPITAL,
        "North Hospital",
        Point(24.95, 60.18),
        population_served=5000,
        name_zh="北医院",
        attrs={"beds": 50},
    )
    store.add_facilities([h])
    store.add_sensors([Sensor("P-J1", "water:J1", "pressure", Point(24.93, 60.16))])
    store.add_interdependencies(
        [Interdependency("facility:H2", "water:J4", DependencyKind.WATER_SUPPLY, 120.0)]
    )
    info = store.info()
    assert info["facilities"] == {"hospital": 1}
    assert info["sensors"] == {"pressure": 1}
    assert info["interdependencies"] == {"water_supply": 1}
    before = snapshot(store)
    dup = Facility("H2", FacilityKind.SCHOOL, "dup", Point(24.95, 60.18))
    new = Facility("S9", FacilityKind.SCHOOL, "new", Point(24.95, 60.18))
    with pytest.raises(ConflictError):
        store.add_facilities([new, dup])
    with pytest.raises(NotFoundError, match="water:J77"):
        store.add_sensors([Sensor("P-J7", "water:J77", "pressure", Point(24.93, 60.16))])
    with pytest.raises(ConflictError):
        store.add_sensors([Sensor("P-J1", "water:J2", "pressure", Point(24.93, 60.16))])
    with pytest.raises(NotFoundError, match="facility:H9"):
        store.add_interdependencies(
            [Interdependency("facility:H9", "water:J4", DependencyKind.WATER_SUPPLY)]
        )
    with pytest.raises(ConflictError):  # same (dependent, supporting, kind) twice
        store.add_interdependencies(
            [Interdependency("facility:H2", "water:J4", DependencyKind.WATER_SUPPLY, 1.0)]
        )
    assert snapshot(store) == before


# -- transactions ----------------------------------------------------------------------
def test_transaction_commits_or_rolls_back_together(store: Store) -> None:
    with store.transaction():
        store.add_network(water_network())
        store.add_sensors([Sensor("P-J1", "water:J1", "pressure", Point(24.93, 60.16))])
        assert store.network_names() == ["water"]  # visible inside
    assert store.info()["sensors"] == {"pressure": 1}

    before = snapshot(store)
    with pytest.raises(ZeroDivisionError):
        with store.transaction():
            store.add_network(drainage_network())
            store.delete_network("water")
            assert store.network_names() == ["drain"]
            1 / 0  # noqa: B018
    assert snapshot(store) == before


def test_failed_operation_inside_transaction_rolls_back_alone(store: Store) -> None:
    with store.transaction():
        store.add_network(water_network())
        with pytest.raises(ConflictError):
            store.add_network(water_network())
        with pytest.raises(ConflictError):  # a database-level failure: savepoint rolled back
            store.add_facilities([Facility("F", FacilityKind.SCHOOL, "a", Point(24.9, 60.1))] * 2)
        store.add_network(drainage_network())
        with store.transaction():  # nested: a savepoint
            store.add_facilities([Facility("F", FacilityKind.SCHOOL, "a", Point(24.9, 60.1))])
    assert store.network_names() == ["drain", "water"]
    assert store.info()["facilities"] == {"school": 1}


def test_in_memory_sqlite() -> None:
    with Store.open("sqlite://") as s:
        s.save_city(make_city())
        assert s.load_city() == make_city()
