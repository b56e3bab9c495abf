"""Spatial queries on both backends, checked against independent computations.

Reference answers come from shapely in projected CRSs (UTM 35N for membership, an
azimuthal equidistant projection centred on the query point for distances), never from
the store's own code path. Cases are chosen away from boundaries (no asset within 1 % of
a radius, no vertex on a polygon edge), so both backends must agree exactly on
membership and within 0.5 % on distances.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
import shapely.affinity
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import Point, box

from rescity.model import AssetRole, FacilityKind, NetworkType, project, unproject
from rescity.store import Store
from rescity.store.testing import make_test_store

from .citydata import (
    LAT0,
    LON0,
    UTM,
    assets_of,
    make_city,
    metres_to_lonlat,
    random_field,
    reference_distances,
)

REL = 0.005  # distances agree within 0.5 %


def brute_within(city_assets: dict, lon: float, lat: float, radius: float) -> dict[str, float]:
    uids = list(city_assets)
    d = reference_distances(lon, lat, [city_assets[u] for u in uids])
    return {u: float(x) for u, x in zip(uids, d, strict=True) if x <= radius}


def assert_close(got: float, want: float) -> None:
    assert got == pytest.approx(want, rel=REL, abs=0.01), (got, want)


@pytest.fixture
def city_store(store: Store) -> Store:
    store.save_city(make_city())
    return store


# -- assets_within ---------------------------------------------------------------------
def test_assets_within_polygon(city_store: Store) -> None:
    city = make_city()
    everything = assets_of(city)
    # a 400 m x 300 m rectangle in UTM around the hospital, rotated 20 degrees
    cx, cy = project(Point(*metres_to_lonlat(0.0, -100.0)), UTM).coords[0]
    rect = shapely.affinity.rotate(box(cx - 200, cy - 150, cx + 200, cy + 150), 20, origin=(cx, cy))
    area = unproject(rect, UTM)
    expected = sorted(u for u, g in everything.items() if project(g, UTM).intersects(rect))
    assert expected  # the case is not empty ...
    assert len(expected) < len(everything)  # ... nor everything
    got = city_store.assets_within(area)
    assert got == expected
    assert "facility:H1" in got and "water:J3" in got and "water:P2" in got

    # filters
    assert city_store.assets_within(area, network_type="water") == [
        u for u in expected if u.startswith("water:")
    ]
    assert city_store.assets_within(area, network_type=NetworkType.WATER, role="link") == [
        u for u in expected if u.startswith("water:P")
    ]
    assert city_store.assets_within(area, role=AssetRole.FACILITY) == [
        u for u in expected if u.startswith("facility:")
    ]
    assert city_store.assets_within(area, kinds=[FacilityKind.HOSPITAL, "junction"]) == [
        u for u in expected if u == "facility:H1" or u.startswith("water:J")
    ]
    assert city_store.assets_within(area, kinds="hospital") == ["facility:H1"]
    assert city_store.assets_within(area, kinds=[]) == []
    assert city_store.assets_within(area, network_type="bridge") == []


def test_assets_within_catches_lines_and_polygons_crossing_the_area(city_store: Store) -> None:
    # a thin box across pipe P3 between its vertices: no vertex of anything inside it
    a = metres_to_lonlat(120.0, -80.0)
    b = metres_to_lonlat(130.0, -20.0)
    strip = box(a[0], a[1], b[0], b[1])
    assert city_store.assets_within(strip) == ["water:P3"]
    # a point inside the subcatchment polygon S1
    assert city_store.assets_within(Point(*metres_to_lonlat(-200.0, 450.0)).buffer(1e-5)) == [
        "drain:S1"
    ]
    # far away: nothing
    assert city_store.assets_within(box(25.5, 60.5, 25.6, 60.6)) == []
    with pytest.raises(TypeError):
        city_store.assets_within("POLYGON ((0 0, 1 0, 1 1, 0 0))")  # type: ignore[arg-type]


# -- distances -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("x", "y", "radius"),
    [(0.0, 0.0, 120.0), (60.0, -60.0, 250.0), (-300.0, 350.0, 90.0), (400.0, 400.0, 530.0)],
)
def test_assets_within_distance(city_store: Store, x: float, y: float, radius: float) -> None:
    lon, lat = metres_to_lonlat(x, y)
    everything = assets_of(make_city())
    all_d = reference_distances(lon, lat, list(everything.values()))
    assert not np.any(np.abs(all_d - radius) < 0.01 * radius), "case too close to a boundary"
    want = brute_within(everything, lon, lat, radius)
    got = city_store.assets_within_distance(lon, lat, radius)
    assert [u for u, _ in got] == sorted(want, key=lambda u: (want[u], u))
    for uid, d in got:
        assert_close(d, want[uid])
    assert [d for _, d in got] == sorted(d for _, d in got)


def test_distance_to_polygon_inside_is_zero(city_store: Store) -> None:
    lon, lat = metres_to_lonlat(-200.0, 450.0)  # inside subcatchment S1
    got = dict(city_store.assets_within_distance(lon, lat, 5.0))
    assert got == {"drain:S1": 0.0}
    uid, d = city_store.nearest_assets(lon, lat)[0]
    assert (uid, d) == ("drain:S1", 0.0)


def test_nearest_assets(city_store: Store) -> None:
    everything = assets_of(make_city())
    uids = list(everything)
    for x, y in [(0.0, 0.0), (55.0, -58.0), (-480.0, -40.0), (900.0, 900.0), (-5000.0, 3000.0)]:
        lon, lat = metres_to_lonlat(x, y)
        ref = reference_distances(lon, lat, [everything[u] for u in uids])
        order = sorted(range(len(uids)), key=lambda i: (ref[i], uids[i]))
        got = city_store.nearest_assets(lon, lat, k=3)
        assert len(got) == 3
        assert got[0][0] == uids[order[0]]  # the cases have no near-ties for first place
        for (uid, d), i in zip(got, order[:3], strict=True):
            assert_close(d, ref[i])
            assert_close(d, ref[uids.index(uid)])


def test_nearest_assets_filters_and_limits(city_store: Store) -> None:
    lon, lat = metres_to_lonlat(0.0, 0.0)
    everything = assets_of(make_city())
    got = city_store.nearest_assets(lon, lat, k=1, role="facility")
    assert got[0][0] == "facility:SC1"  # the school's footprint is nearest
    assert city_store.nearest_assets(lon, lat, kinds=["bus"])[0][0] == "grid:B3"
    assert (
        city_store.nearest_assets(lon, lat, network_type="drainage", role="link")[0][0]
        == "drain:C1"
    )
    allof = city_store.nearest_assets(lon, lat, k=1000)
    assert len(allof) == len(everything)
    assert [d for _, d in allof] == sorted(d for _, d in allof)
    near = city_store.nearest_assets(lon, lat, k=1000, max_distance_m=200.0)
    ref = brute_within(everything, lon, lat, 200.0)
    assert {u for u, _ in near} == set(ref)
    assert city_store.nearest_assets(lon, lat, k=2, max_distance_m=200.0) == near[:2]
    assert city_store.nearest_assets(lon, lat, max_distance_m=1.0) == []
    assert city_store.nearest_assets(lon, lat, kinds=[]) == []
    assert city_store.nearest_assets(lon, lat, network_type="bridge") == []
    with pytest.raises(ValueError):
        city_store.nearest_assets(lon, lat, k=0)
    with pytest.raises(ValueError):
        city_store.nearest_assets(200.0, lat)
    with pytest.raises(ValueError):
        city_store.assets_within_distance(lon, lat, -1.0)


def test_spatial_queries_on_empty_store(store: Store) -> None:
    assert store.nearest_assets(LON0, LAT0, k=5) == []
    assert store.assets_within_distance(LON0, LAT0, 1e4) == []
    assert store.assets_within(box(24, 60, 25, 61)) == []
    assert store.jurisdiction_at(LON0, LAT0, "district") is None


# -- jurisdictions ---------------------------------------------------------------------
def test_jurisdiction_at(city_store: Store) -> None:
    # (lon, lat) -> district, street, grid
    cases = {
        (24.91, 60.16): ("D1", "D1-S1", "D1-S1-G1"),
        (24.93, 60.18): ("D1", "D1-S2", "D1-S2-G2"),
        (24.95, 60.155): ("D2", "D2-S1", "D2-S1-G1"),
        (24.975, 60.189): ("D2", "D2-S2", "D2-S2-G2"),
    }
    for (lon, lat), codes in cases.items():
        for level, code in zip(("district", "street", "grid"), codes, strict=True):
            assert city_store.jurisdiction_at(lon, lat, level) == code
    assert city_store.jurisdiction_at(25.5, 60.17, "district") is None
    # on the shared edge of D1 and D2 the smaller code wins, on both backends
    assert city_store.jurisdiction_at(24.94, 60.16, "district") == "D1"
    with pytest.raises(Exception, match="level"):
        city_store.jurisdiction_at(24.91, 60.16, "county")


# -- properties ------------------------------------------------------------------------
def test_nearest_and_within_distance_properties(store: Store) -> None:
    """Random query points against 300 random assets: the store finds the truly nearest
    and exactly the assets within a radius (brute force, independent projection)."""
    field = random_field(seed=11)
    store.add_network(field)
    geoms = {field.uid(e.id): e.geometry for e in field.elements()}
    kind_of = {field.uid(e.id): e.kind for e in field.elements()}
    uids = list(geoms)
    glist = [geoms[u] for u in uids]

    @settings(
        max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(
        x=st.floats(-1500.0, 1500.0),
        y=st.floats(-1500.0, 1500.0),
        k=st.integers(1, 6),
        radius=st.floats(1.0, 700.0),
        kind=st.sampled_from([None, "intersection", "block", "road_segment"]),
    )
    def check(x: float, y: float, k: int, radius: float, kind: str | None) -> None:
        lon, lat = metres_to_lonlat(x, y)
        ref = reference_distances(lon, lat, glist)
        cand = [i for i, u in enumerate(uids) if kind is None or kind_of[u] == kind]
        kinds = None if kind is None else [kind]

        got = store.nearest_assets(lon, lat, k=k, kinds=kinds)
        best = sorted(ref[i] for i in cand)[:k]
        assert len(got) == len(best)
        for (uid, d), want in zip(got, best, strict=True):
            assert_close(d, want)  # the i-th returned is as near as the true i-th nearest
            assert_close(d, ref[uids.index(uid)])  # and its distance is right

        within = store.assets_within_distance(lon, lat, radius, kinds=kinds)
        got_set = {u for u, _ in within}
        sure_in = {uids[i] for i in cand if ref[i] <= radius * (1 - REL)}
        maybe = {uids[i] for i in cand if ref[i] <= radius * (1 + REL)}
        assert sure_in <= got_set <= maybe
        assert [d for _, d in within] == sorted(d for _, d in within)

    check()


def test_assets_within_property(store: Store) -> None:
    """Random rectangles and circles (built in UTM): membership equals shapely's."""
    field = random_field(seed=5)
    store.add_network(field)
    geoms = {field.uid(e.id): e.geometry for e in field.elements()}
    projected = {u: project(g, UTM) for u, g in geoms.items()}
    cx, cy = project(Point(LON0, LAT0), UTM).coords[0]

    @settings(
        max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(
        x=st.floats(-1200.0, 1200.0),
        y=st.floats(-1200.0, 1200.0),
        w=st.floats(20.0, 900.0),
        h=st.floats(20.0, 900.0),
        angle=st.floats(0.0, 90.0),
        circle=st.booleans(),
    )
    def check(x: float, y: float, w: float, h: float, angle: float, circle: bool) -> None:
        if circle:
            shape = Point(cx + x, cy + y).buffer(w / 2, quad_segs=16)
        else:
            shape = shapely.affinity.rotate(
                box(cx + x, cy + y, cx + x + w, cy + y + h), angle, origin=(cx + x, cy + y)
            )
        area = unproject(shape, UTM)
        # decide in lon/lat (the definition) but only count cases clear of the boundary
        edge = shape.boundary
        clear = {u for u, g in projected.items() if g.distance(edge) > 0.5}
        want = {u for u, g in geoms.items() if g.intersects(area)}
        got = set(store.assets_within(area))
        assert got & clear == want & clear
        assert {u for u in clear if projected[u].intersects(shape)} == want & clear

    check()


# -- the two backends agree ------------------------------------------------------------
@pytest.mark.postgres
def test_backends_agree(tmp_path) -> None:  # type: ignore[no-untyped-def]
    stores = [make_test_store(b, tmp_path) for b in ("sqlite", "postgresql")]
    try:
        city = make_city()
        city.add_network(random_field(seed=3))
        for s in stores:
            s.save_city(city)
        assert stores[0].info() == stores[1].info() == city.summary()
        assert stores[0].load_city() == stores[1].load_city() == city
        everything = assets_of(city)
        uids = list(everything)
        rng = np.random.default_rng(1)
        compared = 0
        for _ in range(60):
            x, y = rng.uniform(-1400, 1400, size=2)
            lon, lat = metres_to_lonlat(x, y)
            radius = float(rng.uniform(20, 600))
            ref = reference_distances(lon, lat, [everything[u] for u in uids])
            if np.any(np.abs(ref - radius) < 0.01 * radius):
                continue  # too close to a boundary to demand exact agreement
            compared += 1
            a, b = (s.assets_within_distance(lon, lat, radius) for s in stores)
            assert sorted(u for u, _ in a) == sorted(u for u, _ in b)
            db = dict(b)
            for u, d in a:
                assert_close(d, db[u])
            na, nb = (s.nearest_assets(lon, lat, k=4) for s in stores)
            for (ua, da), (ub, dbb) in zip(na, nb, strict=True):
                assert_close(da, dbb)
                if ua != ub:  # only a near-tie may swap
                    assert abs(da - dbb) <= REL * max(da, 1.0) + 0.01
            area = Point(lon, lat).buffer(radius / 111_000.0 / 2)
            assert stores[0].assets_within(area) == stores[1].assets_within(area)
            for level in ("district", "street", "grid"):
                assert stores[0].jurisdiction_at(lon, lat, level) == stores[1].jurisdiction_at(
                    lon, lat, level
                )
        assert compared > 30
        # the UTM distance of SQLite and the geodesic of PostGIS differ by far less than 0.5 %
        lon, lat = metres_to_lonlat(0.0, 0.0)
        a, b = (s.assets_within_distance(lon, lat, 1500.0) for s in stores)
        worst = max(abs(d - dict(b)[u]) / d for u, d in a if d > 1.0)
        assert worst < 0.001
    finally:
        for s in stores:
            s.close()


def test_geodesic_scale_sanity(city_store: Store) -> None:
    """Two points 1 km apart along a meridian are about 1 km apart (not degrees)."""
    lon, lat = metres_to_lonlat(-400.0, -300.0)  # the reservoir
    lat2 = lat + 1000.0 / 111_412.0  # one km north at 60 degrees (meridian arc 111.41 km/deg)
    (uid, d), *_ = city_store.nearest_assets(lon, lat2, kinds=["reservoir"])
    assert uid == "water:R1"
    assert d == pytest.approx(1000.0, rel=0.003)
    assert math.isfinite(d)
