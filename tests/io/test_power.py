"""pandapower import/export: real grids from pandapower's own library (mv_oberrhein, case9).

Reference (DATA.md): the case9 power flow has the slack at 71.9547 MW and losses of
4.9547 MW.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandapower as pp
import pandapower.networks as pn
import pytest
import shapely
from shapely.geometry import Point

from rescity.io.errors import FormatError
from rescity.io.geo import read_geojson_network, write_geojson_network
from rescity.io.power import read_pandapower, to_pandapower, write_pandapower
from rescity.model import NetworkType, Placement, project, utm_crs_for

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ANCHOR = (116.397, 39.909)  # Tiananmen, a stand-in anchor for schematic coordinates
CASE9_SLACK_MW = 71.9547
CASE9_LOSSES_MW = 4.9547


@pytest.fixture(scope="module")
def case9_json() -> str:
    return pp.to_json(pn.case9())


@pytest.fixture()
def case9(case9_json):
    """A fresh case9 (pandapower's loader is slow: copy it through JSON)."""
    return pp.from_json_string(case9_json)


@pytest.fixture(scope="module")
def oberrhein():
    """mv_oberrhein with its power flow solved."""
    net = pn.mv_oberrhein()
    pp.runpp(net)
    return net


@pytest.fixture(scope="module")
def oberrhein_twin(oberrhein):
    return read_pandapower(oberrhein)


def _slack_and_losses(net) -> tuple[float, float]:
    pp.runpp(net)
    return float(net.res_ext_grid.p_mw.sum()), float(
        net.res_line.pl_mw.sum() + (net.res_trafo.pl_mw.sum() if len(net.trafo) else 0.0)
    )


def _max_dv(a, b) -> float:
    return float((a.res_bus.vm_pu - b.res_bus.vm_pu.reindex(a.res_bus.index)).abs().max())


# ------------------------------------------------------------------------- reading
def test_oberrhein_elements_and_kinds(oberrhein, oberrhein_twin):
    twin = oberrhein_twin
    assert twin.type is NetworkType.POWER and twin.name == "MV Oberrhein"
    assert twin.source_format == "pandapower"
    assert twin.kinds() == {
        "grid_supply": 2,  # the two 110 kV ext_grid buses
        "substation": 2,  # the 20 kV sides of the two HV/MV transformers
        "distribution_substation": 147,  # one per MV/LV station load
        "bus": 28,
        "line": 181,
        "transformer": 2,
    }
    assert twin.nodes["bus_58"].kind == "grid_supply"
    assert twin.nodes["bus_39"].kind == "substation"
    t = twin.links["trafo_114"]
    assert (t.start, t.end) == ("bus_58", "bus_39")
    assert t.attrs["sn_mva"] == 25.0 and t.attrs["tap_pos"] == -2.0


def test_oberrhein_attributes_keep_pandapower_units(oberrhein, oberrhein_twin):
    twin = oberrhein_twin
    load = oberrhein.load.iloc[0]
    node = twin.nodes[f"bus_{int(load.bus)}"]
    assert node.attrs["vn_kv"] == 20.0
    assert node.attrs["load_p_mw"] == pytest.approx(load.p_mw * load.scaling)
    assert node.attrs["load_q_mvar"] == pytest.approx(load.q_mvar * load.scaling)
    assert node.attrs["sgen_p_mw"] == 0.0  # mv_oberrhein's sgens have scaling 0
    row = oberrhein.line.loc[0]
    line = twin.links["line_0"]
    assert line.attrs["length_m"] == pytest.approx(row.length_km * 1000.0, rel=1e-15)
    for key in ("r_ohm_per_km", "x_ohm_per_km", "c_nf_per_km", "max_i_ka", "std_type"):
        assert line.attrs[key] == row[key]
    constructions = {
        lk.attrs["std_type"]: lk.attrs["construction"]
        for lk in twin.links.values()
        if lk.kind == "line"
    }
    assert constructions == {
        "NA2XS2Y 1x185 RM/25 12/20 kV": "cable",
        "NA2XS2Y 1x240 RM/25 12/20 kV": "cable",
        "243-AL1/39-ST1A 20.0": "overhead",
    }
    # the six open line switches are where the rings are split
    open_ends = [
        (lk.id, end)
        for lk in twin.links.values()
        for end in ("from", "to")
        if lk.attrs.get(f"{end}_switch_closed") is False
    ]
    assert len(open_ends) == int((~oberrhein.switch.closed).sum()) == 6


def test_oberrhein_geometry_is_the_pandapower_geodata(oberrhein, oberrhein_twin):
    twin = oberrhein_twin
    for b, geo in oberrhein.bus.geo.items():
        assert twin.nodes[f"bus_{b}"].lonlat == tuple(json.loads(geo)["coordinates"])
    for i, geo in oberrhein.line.geo.items():
        xy = np.array(json.loads(geo)["coordinates"])
        assert np.array_equal(shapely.get_coordinates(twin.links[f"line_{i}"].geometry), xy)
    assert twin.placement.is_identity


# ----------------------------------------------------------------------- round trip
def test_oberrhein_round_trip_gives_the_same_voltages(oberrhein, oberrhein_twin, tmp_path):
    path = write_pandapower(oberrhein_twin, tmp_path / "oberrhein.json")
    back = pp.from_json(str(path))
    pp.runpp(back)
    assert _max_dv(oberrhein, back) < 1e-9
    assert len(back.bus) == 179 and len(back.line) == 181 and len(back.switch) == 322
    # reading the written file gives the same twin
    again = read_pandapower(path)
    assert again.kinds() == oberrhein_twin.kinds()
    for nid, n in oberrhein_twin.nodes.items():
        # pandapower's JSON keeps 15 significant digits
        assert again.nodes[nid].attrs == pytest.approx(n.attrs, rel=1e-14)
        assert again.nodes[nid].lonlat == n.lonlat


def test_oberrhein_round_trip_through_geojson_without_native(oberrhein, oberrhein_twin, tmp_path):
    """Built from the attributes alone, the grid still solves to the same voltages."""
    twin = read_geojson_network(write_geojson_network(oberrhein_twin, tmp_path / "o.geojson"))
    assert twin.native is None
    net = to_pandapower(twin)
    pp.runpp(net)
    assert _max_dv(oberrhein, net) < 1e-9
    assert int((~net.switch.closed).sum()) == 6


def test_twin_values_are_applied_on_export(oberrhein, tmp_path):
    twin = read_pandapower(oberrhein)
    bus = twin.nodes["bus_5"]
    lon, lat = bus.lonlat
    bus.geometry = Point(lon + 0.001, lat)
    bus.attrs["load_p_mw"] = 0.3  # was 0.15 x 0.6 scaling = 0.09
    twin.links["line_0"].attrs["length_m"] = 1234.5
    twin.links["line_1"].attrs["to_switch_closed"] = False
    twin.links["trafo_114"].attrs["tap_pos"] = 0.0
    del twin.links["line_2"]
    net = pp.from_json(str(write_pandapower(twin, tmp_path / "o.json")))
    assert json.loads(net.bus.at[5, "geo"])["coordinates"] == [lon + 0.001, lat]
    loads = net.load[net.load.bus == 5]
    assert float((loads.p_mw * loads.scaling).sum()) == pytest.approx(0.3)
    assert net.line.at[0, "length_km"] == pytest.approx(1.2345)
    sw = net.switch[(net.switch.et == "l") & (net.switch.element == 1)]
    assert not sw[sw.bus == net.line.at[1, "to_bus"]].closed.any()
    assert net.trafo.at[114, "tap_pos"] == 0.0
    assert 2 not in net.line.index
    pp.runpp(net)
    assert net.converged


def test_new_elements_are_created(oberrhein):
    twin = read_pandapower(oberrhein)
    from rescity.model import Link, Node

    a = twin.nodes["bus_5"]
    twin.nodes["bus_9000"] = Node(
        "bus_9000",
        "distribution_substation",
        Point(a.lonlat[0] + 0.002, a.lonlat[1]),
        {"vn_kv": 20.0, "load_p_mw": 0.2, "load_q_mvar": 0.05},
        "new station",
    )
    proto = twin.links["line_0"]
    attrs = dict(proto.attrs, length_m=150.0)
    attrs.pop("to_switch_closed", None)
    twin.links["feeder"] = Link(
        "feeder",
        "line",
        "bus_5",
        "bus_9000",
        shapely.LineString([a.lonlat, twin.nodes["bus_9000"].lonlat]),
        attrs,
    )
    net = to_pandapower(twin)
    assert 9000 in net.bus.index and net.bus.at[9000, "vn_kv"] == 20.0
    assert float(net.load[net.load.bus == 9000].p_mw.sum()) == pytest.approx(0.2)
    new = net.line[(net.line.from_bus == 5) & (net.line.to_bus == 9000)]
    assert len(new) == 1 and new.length_km.iloc[0] == pytest.approx(0.15)
    pp.runpp(net)
    assert 0.9 < net.res_bus.at[9000, "vm_pu"] < 1.1


# --------------------------------------------------------------------------- case9
def test_case9_power_flow_through_the_round_trip(case9, case9_json, tmp_path):
    # case9's coordinates are a schematic layout: place it at an anchor, 1 unit = 1 km
    placement = Placement(anchor=ANCHOR, unit_m=1000.0)
    twin = read_pandapower(case9, placement=placement)
    assert twin.kinds() == {"grid_supply": 1, "generator": 2, "bus": 6, "line": 9}
    assert twin.nodes["bus_1"].attrs["gen_p_mw"] == 163.0
    crs = utm_crs_for(*ANCHOR)
    assert project(twin.nodes["bus_0"].geometry, crs).distance(
        project(Point(ANCHOR), crs)
    ) == pytest.approx(1000.0 * math.hypot(-2.9134066523, -0.6438752673), rel=1e-6)
    net = pp.from_json(str(write_pandapower(twin, tmp_path / "case9.json")))
    slack, losses = _slack_and_losses(net)
    assert slack == pytest.approx(CASE9_SLACK_MW, abs=5e-5)
    assert losses == pytest.approx(CASE9_LOSSES_MW, abs=5e-5)
    # schematic coordinates go back unchanged
    assert net.bus.geo.tolist() == pp.from_json_string(case9_json).bus.geo.tolist()
    # and without native, from GeoJSON
    g = read_geojson_network(write_geojson_network(twin, tmp_path / "case9.geojson"))
    assert g.placement == placement
    slack, losses = _slack_and_losses(to_pandapower(g))
    assert (round(slack, 4), round(losses, 4)) == (CASE9_SLACK_MW, CASE9_LOSSES_MW)


def test_case9_without_geodata_is_laid_out_around_the_anchor(case9, tmp_path):
    net = case9
    net.bus["geo"] = None
    twin = read_pandapower(net, placement=Placement(anchor=ANCHOR))
    crs = utm_crs_for(*ANCHOR)
    centre = project(Point(ANCHOR), crs)
    distances = [project(n.geometry, crs).distance(centre) for n in twin.nodes.values()]
    # nine buses 100 m apart on a circle: radius 9 x 100 m / 2 pi
    assert distances == pytest.approx([900.0 / (2 * math.pi)] * 9, rel=1e-6)
    assert all(lk.geometry.length > 0 for lk in twin.links.values())
    back = pp.from_json(str(write_pandapower(twin, tmp_path / "c.json")))
    assert back.bus.geo.isna().all()  # a layout is not geodata
    slack, losses = _slack_and_losses(back)
    assert (round(slack, 4), round(losses, 4)) == (CASE9_SLACK_MW, CASE9_LOSSES_MW)
    with pytest.raises(FormatError, match="anchor") as err:
        read_pandapower(net)
    assert err.value.field == "geo"


def test_projected_bus_coordinates_need_a_placement(case9):
    net = case9
    net.bus["geo"] = [
        json.dumps({"type": "Point", "coordinates": [500000.0 + 1000 * i, 4400000.0]})
        for i in range(len(net.bus))
    ]
    with pytest.raises(FormatError, match="no CRS"):
        read_pandapower(net)
    twin = read_pandapower(net, placement=Placement(source_crs="EPSG:32650"))
    assert twin.nodes["bus_0"].lonlat == pytest.approx((117.0, 39.75), abs=0.01)


def test_files_and_bad_files(oberrhein, case9, tmp_path):
    path = tmp_path / "o.json"
    pp.to_json(oberrhein, str(path))
    twin = read_pandapower(path, name="feeder")
    assert twin.name == "feeder" and len(twin.nodes) == 179
    bad = tmp_path / "bad.json"
    for text in ('{"not": "a net"', '{"a": 1}', "[1, 2]", ""):
        bad.write_text(text)
        with pytest.raises(FormatError, match="not a pandapower JSON file") as err:
            read_pandapower(bad)
        assert err.value.path == str(bad)
    with pytest.raises(FileNotFoundError):
        read_pandapower(tmp_path / "missing.json")
    net = case9
    net.bus.at[0, "geo"] = '{"type": "LineString", "coordinates": [[0, 0], [1, 1]]}'
    with pytest.raises(FormatError) as err:
        read_pandapower(net, placement=Placement(anchor=ANCHOR))
    assert (err.value.feature, err.value.field) == ("bus_0", "geo")
    with pytest.raises(TypeError):
        read_pandapower(42)


def test_export_needs_what_pandapower_needs(oberrhein_twin, tmp_path):
    from rescity.model import Link, Node

    twin = read_geojson_network(write_geojson_network(oberrhein_twin, tmp_path / "o.geojson"))
    twin.nodes["X"] = Node("X", "bus", Point(7.8, 48.4))
    with pytest.raises(ValueError, match="'X'.*vn_kv"):
        to_pandapower(twin)
    twin.nodes["X"].attrs["vn_kv"] = 20.0
    twin.links["duct"] = Link(
        "duct", "tunnel", "X", "bus_5", shapely.LineString([(7.8, 48.4), (7.81, 48.4)])
    )
    with pytest.raises(ValueError, match="kind 'tunnel'"):
        to_pandapower(twin)
    del twin.links["duct"]
    twin.links["bare"] = Link(
        "bare", "line", "X", "bus_5", shapely.LineString([(7.8, 48.4), (7.81, 48.4)])
    )
    with pytest.raises(ValueError, match="std_type"):
        to_pandapower(twin)
