"""Placement and projection: a placed network goes back to its file coordinates exactly."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import LineString, Point

from rescity.model import Placement, project, unproject, utm_crs_for
from rescity.model.geo import looks_like_lonlat

HELSINKI = (24.9443, 60.1716)


def test_utm_zone_of_helsinki_and_of_the_south():
    assert utm_crs_for(*HELSINKI) == "EPSG:32635"
    assert utm_crs_for(151.2, -33.9) == "EPSG:32756"
    with pytest.raises(ValueError):
        utm_crs_for(200.0, 10.0)


def test_anchor_places_the_origin_on_the_anchor_and_keeps_metres():
    p = Placement(anchor=HELSINKI, origin=(100.0, 200.0), unit_m=1.0)
    ll = p.forward_xy(np.array([[100.0, 200.0], [1100.0, 200.0]]))
    assert ll[0] == pytest.approx(HELSINKI, abs=1e-9)
    a, b = project(Point(ll[0]), "EPSG:32635"), project(Point(ll[1]), "EPSG:32635")
    assert a.distance(b) == pytest.approx(1000.0, rel=1e-9)


def test_scale_and_rotation_turn_east_into_north():
    p = Placement(anchor=HELSINKI, scale=0.5, rotation_deg=90.0)
    ll = p.forward_xy(np.array([[0.0, 0.0], [1000.0, 0.0]]))
    a, b = (project(Point(c), "EPSG:32635") for c in ll)
    assert b.x - a.x == pytest.approx(0.0, abs=1e-6)
    assert b.y - a.y == pytest.approx(500.0, rel=1e-9)


def test_source_crs_far_away_is_placed_without_distortion():
    # a 1 km line in Germany (UTM 32) placed in Helsinki keeps its length
    p = Placement(source_crs="EPSG:4326", anchor=HELSINKI, origin=(7.8, 48.4))
    line = LineString([(7.8, 48.4), (7.8135, 48.4)])
    placed = p.forward(line)
    assert project(placed, "EPSG:32635").length == pytest.approx(project(line, "EPSG:32632").length, rel=1e-3)


coords = st.floats(min_value=-5000, max_value=5000, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(
    xy=st.lists(st.tuples(coords, coords), min_size=1, max_size=20),
    scale=st.floats(min_value=0.01, max_value=10),
    rot=st.floats(min_value=-360, max_value=360),
    unit=st.sampled_from([1.0, 0.3048]),
)
def test_placement_round_trips(xy, scale, rot, unit):
    p = Placement(anchor=HELSINKI, origin=(12.5, -3.0), unit_m=unit, scale=scale, rotation_deg=rot)
    a = np.array(xy)
    back = p.inverse_xy(p.forward_xy(a))
    assert np.max(np.abs(back - a)) < 1e-5


def test_placement_serialises():
    p = Placement(source_crs="EPSG:3067", anchor=HELSINKI, origin=(1.0, 2.0), scale=2.0, rotation_deg=10)
    assert Placement.from_dict(p.to_dict()) == p
    assert Placement.from_dict(None).is_identity


def test_project_unproject_inverse():
    g = LineString([(24.93, 60.16), (24.95, 60.18)])
    back = unproject(project(g, "EPSG:32635"), "EPSG:32635")
    assert np.allclose(np.array(back.coords), np.array(g.coords), atol=1e-9)


def test_lonlat_detection():
    assert looks_like_lonlat(np.array([[24.9, 60.1]]))
    assert not looks_like_lonlat(np.array([[385000.0, 6672000.0]]))
