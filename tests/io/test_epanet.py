"""EPANET import and export: round trips of real networks through the twin, edits in the
twin reaching the exported model, line-accurate errors for bad files, and property tests
on mutated and generated inputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import wntr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import LineString, Point

from rescity.io.epanet import read_epanet, write_epanet
from rescity.io.errors import FormatError
from rescity.io.inp import read_inp, split_fields
from rescity.model import Link, Network, NetworkType, Node, Placement
from tests.io.conftest import file_link

HELSINKI = (24.944, 60.1716)
PROPERTY = settings(
    max_examples=15, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def file_coordinates(path: Path) -> dict[str, tuple[float, float]]:
    """Node coordinates as written in an INP file (file units)."""
    inp = read_inp(path, canonical=lambda s: s, end_marker="END")
    return {ln.fields[0]: (float(ln.fields[1]), float(ln.fields[2]))
            for ln in inp.section("COORDINATES")}


def assert_same_coordinates(a: Path, b: Path, tol: float = 1e-6) -> None:
    ca, cb = file_coordinates(a), file_coordinates(b)
    assert set(ca) == set(cb)
    worst = max(max(abs(ca[k][0] - cb[k][0]), abs(ca[k][1] - cb[k][1])) for k in ca)
    assert worst < tol


# -- round trips of real networks ---------------------------------------------------


def test_net3_round_trip_reproduces_pressures_and_coordinates(net3_inp, tmp_path, pressures):
    simulate, diff = pressures
    net = read_epanet(net3_inp)
    assert net.type is NetworkType.WATER and net.source_format == "epanet-inp"
    assert len(net.nodes) == 97 and len(net.links) == 119
    assert net.kinds() == {"junction": 92, "reservoir": 2, "tank": 3, "pipe": 117, "pump": 2}
    assert net.native["units"] == "GPM"
    out = tmp_path / "net3.inp"
    write_epanet(net, out)
    before = simulate(net3_inp, tmp_path / "a")
    after = simulate(out, tmp_path / "b")
    assert diff(before, after) < 1e-3
    assert_same_coordinates(net3_inp, out)


def test_ltown_round_trip_with_anchor(ltown_inp, tmp_path, pressures):
    simulate, diff = pressures
    placement = Placement(anchor=HELSINKI, unit_m=1.0)
    net = read_epanet(ltown_inp, placement=placement)
    assert len(net.nodes) == 785 and len(net.links) == 909
    assert net.placement == placement and net.native["units"] == "CMH"
    lon, lat = net.nodes["n1"].lonlat
    assert 24.9 < lon < 25.1 and 60.1 < lat < 60.3  # placed in Helsinki
    out = tmp_path / "ltown.inp"
    write_epanet(net, out)
    assert diff(simulate(ltown_inp, tmp_path / "a"), simulate(out, tmp_path / "b")) < 1e-3
    assert_same_coordinates(ltown_inp, out)


def test_attributes_are_si(net3_inp):
    net = read_epanet(net3_inp)
    pipe = file_link(net, "20")  # 99 ft, 99 in in the file
    assert pipe.kind == "pipe" and pipe.start == "3" and pipe.end == "20"
    assert pipe.attrs["length_m"] == pytest.approx(99 * 0.3048)
    assert pipe.attrs["diameter_m"] == pytest.approx(99 * 0.0254)
    tank = net.nodes["1"]
    assert tank.kind == "tank" and tank.attrs["elevation_m"] == pytest.approx(131.9 * 0.3048)
    assert net.nodes["River"].attrs["base_head_m"] == pytest.approx(220 * 0.3048)
    assert net.nodes["10"].attrs["elevation_m"] == pytest.approx(147 * 0.3048)
    assert file_link(net, "10").kind == "pump" and file_link(net, "10").attrs["pump_curve"] == "1"


def test_native_is_json_and_survives_a_database_round_trip(net3_inp, tmp_path):
    net = read_epanet(net3_inp)
    text = json.dumps(net.native, allow_nan=False)
    net.native = json.loads(text)
    out = tmp_path / "net3.inp"
    write_epanet(net, out)
    assert len(wntr.network.WaterNetworkModel(str(out)).pipe_name_list) == 117


# -- the twin is authoritative ------------------------------------------------------


def test_changing_a_pipe_diameter_changes_the_exported_model(net3_inp, tmp_path, pressures):
    simulate, diff = pressures
    net = read_epanet(net3_inp)
    file_link(net, "101").attrs["diameter_m"] = 0.1
    out = tmp_path / "edited.inp"
    write_epanet(net, out)
    wn = wntr.network.WaterNetworkModel(str(out))
    assert wn.get_link("101").diameter == pytest.approx(0.1, rel=1e-9)
    assert wn.get_link("103").diameter == pytest.approx(file_link(net, "103").attrs["diameter_m"])
    assert diff(simulate(net3_inp, tmp_path / "a"), simulate(out, tmp_path / "b")) > 1.0


def test_edits_of_nodes_demands_and_coordinates_are_exported(net1_inp, tmp_path):
    net = read_epanet(net1_inp)
    net.nodes["12"].attrs["elevation_m"] = 200.0
    net.nodes["12"].attrs["base_demand_m3s"] = 0.02
    net.nodes["12"].geometry = Point(51.5, 70.25)
    out = tmp_path / "edited.inp"
    write_epanet(net, out)
    back = read_epanet(out)
    assert back.nodes["12"].attrs["elevation_m"] == pytest.approx(200.0)
    assert back.nodes["12"].attrs["base_demand_m3s"] == pytest.approx(0.02)
    assert back.nodes["12"].lonlat == pytest.approx((51.5, 70.25))
    assert file_coordinates(out)["11"] == (30.0, 70.0)


def test_added_and_removed_elements(net1_inp, tmp_path):
    net = read_epanet(net1_inp)
    # remove junction 32 with its pipes 31 and 122, add a junction hanging off 23
    for lid in ("31", "122"):
        del net.links[file_link(net, lid).id]
    del net.nodes["32"]
    net.add_node(Node("new", "junction", Point(72.0, 42.0),
                      {"elevation_m": 210.0, "base_demand_m3s": 0.005}))
    start = net.nodes["23"].lonlat
    net.add_link(Link("pnew", "pipe", "23", "new",
                      LineString([start, (71.0, 41.0), (72.0, 42.0)]),
                      {"length_m": 300.0, "diameter_m": 0.2, "roughness": 100.0}))
    out = tmp_path / "edited.inp"
    write_epanet(net, out)
    wn = wntr.network.WaterNetworkModel(str(out))
    assert "32" not in wn.node_name_list and "31" not in wn.link_name_list
    assert wn.get_link("pnew").diameter == pytest.approx(0.2)
    assert wn.get_link("pnew").vertices == [pytest.approx((71.0, 41.0))]
    results = wntr.sim.EpanetSimulator(wn).run_sim(file_prefix=str(tmp_path / "run"))
    assert results.node["pressure"]["new"].notna().all()


def test_network_built_in_the_twin_is_written_from_scratch(tmp_path):
    net = Network("tiny", NetworkType.WATER)
    net.add_node(Node("R", "reservoir", Point(24.94, 60.17), {"base_head_m": 50.0}))
    net.add_node(Node("J", "junction", Point(24.95, 60.17),
                      {"elevation_m": 10.0, "base_demand_m3s": 0.01}))
    net.add_link(Link("P", "pipe", "R", "J", LineString([(24.94, 60.17), (24.95, 60.17)]),
                      {"length_m": 500.0, "diameter_m": 0.15, "roughness": 120.0}))
    out = tmp_path / "tiny.inp"
    write_epanet(net, out)
    back = read_epanet(out)
    assert back.native["units"] == "LPS"
    assert file_link(back, "P").attrs["diameter_m"] == pytest.approx(0.15)


# -- bad files ------------------------------------------------------------------------


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _line_of(lines: list[str], pattern: str) -> int:
    """0-based index of the first line matching ``pattern``."""
    return next(i for i, ln in enumerate(lines) if re.search(pattern, ln))


def _bad(net1_inp: Path, tmp_path: Path, case: str) -> tuple[Path, int | None, str | None]:
    """A broken copy of Net1, the 1-based line the error must name and the field."""
    lines = _lines(net1_inp)
    field = None
    if case == "truncated line":
        i = _line_of(lines, r"^ 12\s+12\s+13")
        lines = lines[:i] + [" 12              \t12              \t13     \t5280"]
        field = "Diameter"
    elif case == "undefined node":
        i = _line_of(lines, r"^ 12\s+12\s+13")
        lines[i] = lines[i].replace("13  ", "99  ", 1)
        field = "Node2"
    elif case == "unknown section":
        i = _line_of(lines, r"^\[TAGS\]")
        lines[i] = "[TAGGS]"
    elif case == "too many fields":
        i = _line_of(lines, r"^11\s+30\.000")
        lines[i] += " 5.0"
        field = "field 4"
    elif case == "not a number":
        i = _line_of(lines, r"^ 13\s+695")
        lines[i] = lines[i].replace("695", "6g5")
        field = "Elev"
    elif case == "unknown units":
        i = _line_of(lines, r"^ Units")
        lines[i] = " Units              \tGALLONS"
        field = "UNITS"
    elif case == "duplicate id":
        i = _line_of(lines, r"^ 22\s+695")
        lines[i] = lines[i].replace(" 22 ", " 21 ", 1)
    elif case == "undefined curve":
        i = _line_of(lines, r"HEAD 1")
        lines[i] = lines[i].replace("HEAD 1", "HEAD 7")
        field = "HEAD"
    elif case == "pump keyword without value":
        i = _line_of(lines, r"HEAD 1")
        lines[i] = lines[i].replace("HEAD 1", "HEAD 1 SPEED")
        field = "SPEED"
    else:  # pragma: no cover
        raise AssertionError(case)
    path = tmp_path / f"{case.replace(' ', '_')}.inp"
    path.write_text("\n".join(lines) + "\n")
    return path, i + 1, field


BAD_CASES = [
    "truncated line", "undefined node", "unknown section", "too many fields", "not a number",
    "unknown units", "duplicate id", "undefined curve", "pump keyword without value",
]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_file_names_file_line_and_field(net1_inp, tmp_path, case):
    path, line, field = _bad(net1_inp, tmp_path, case)
    with pytest.raises(FormatError) as info:
        read_epanet(path)
    err = info.value
    assert err.path == str(path) and str(path) in str(err)
    assert err.line == line and f"line {line}" in str(err)
    if field is not None:
        assert err.field == field and repr(field) in str(err)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.inp"
    with pytest.raises(FormatError, match="file not found") as info:
        read_epanet(path)
    assert str(path) in str(info.value)


def test_local_frame_needs_a_placement(ltown_inp):
    with pytest.raises(FormatError, match=r"local frame.*--crs.*--anchor") as info:
        read_epanet(ltown_inp)
    assert info.value.section == "COORDINATES" and info.value.line is not None


def test_control_naming_an_unknown_link(net1_inp, tmp_path):
    lines = _lines(net1_inp)
    i = _line_of(lines, r"LINK 9 OPEN IF NODE 2 BELOW 110")
    lines[i] = " LINK 99 OPEN IF NODE 2 BELOW 110"
    path = tmp_path / "control.inp"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(FormatError, match="link '99'") as info:
        read_epanet(path)
    assert info.value.line == i + 1 and info.value.section == "CONTROLS"


def test_wntr_failure_is_wrapped_with_its_line(net1_inp, tmp_path):
    # an unknown TIMES option passes the tokenizer but not WNTR
    lines = _lines(net1_inp)
    i = _line_of(lines, r"^ Duration")
    lines[i] = " Duration           \t24:xx"
    path = tmp_path / "times.inp"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(FormatError, match="WNTR cannot read") as info:
        read_epanet(path)
    assert str(path) in str(info.value) and info.value.line == i + 1


# -- the shared tokenizer -----------------------------------------------------------


def test_split_fields_handles_quotes_and_comments():
    assert split_fields(' a  "b c" d ;e;f') == (["a", "b c", "d"], "e;f")
    assert split_fields('"x;y" z') == (["x;y", "z"], "")
    assert split_fields("   ") == ([], "")


def test_tokenizer_keeps_line_numbers_and_raw_text(net1_inp):
    inp = read_inp(net1_inp, canonical=lambda s: s, end_marker="END")
    first = inp.section("PIPES")[0]
    assert first.number == 28 and first.fields[:3] == ["10", "10", "11"]
    assert first.raw.startswith(" 10")
    assert [b.name for b in inp.blocks].count("REACTIONS") == 2


# -- property tests -----------------------------------------------------------------

_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])")


@st.composite
def mutated(draw, text: str) -> str:
    """Net1 with one line deleted, the text cut, or a number replaced by garbage."""
    lines = text.splitlines(keepends=True)
    how = draw(st.sampled_from(["delete", "truncate", "garbage"]))
    if how == "delete":
        i = draw(st.integers(0, len(lines) - 1))
        return "".join(lines[:i] + lines[i + 1:])
    if how == "truncate":
        return text[: draw(st.integers(0, len(text)))]
    spans = [m.span() for m in _NUMBER.finditer(text)]
    a, b = draw(st.sampled_from(spans))
    junk = draw(st.sampled_from(["x", "1..2", "nan", "", "--", "1e999", "abc def"]))
    return text[:a] + junk + text[b:]


@PROPERTY
@given(data=st.data())
def test_mutated_files_either_load_or_raise_format_error(net1_inp, tmp_path, data):
    text = data.draw(mutated(net1_inp.read_text()))
    path = tmp_path / "mutant.inp"
    path.write_text(text)
    try:
        net = read_epanet(path)
    except FormatError as err:
        assert str(path) in str(err)
    else:
        assert isinstance(net, Network)


@st.composite
def small_networks(draw) -> Network:
    """A reservoir feeding a random tree of junctions, placed near Helsinki."""
    n = draw(st.integers(1, 6))
    net = Network("gen", NetworkType.WATER)
    coord = st.tuples(st.floats(24.90, 25.00), st.floats(60.15, 60.20))
    net.add_node(Node("R1", "reservoir", Point(draw(coord)),
                      {"base_head_m": draw(st.floats(30.0, 100.0))}))
    ids = ["R1"]
    for k in range(n):
        jid = f"J{k}"
        net.add_node(Node(jid, "junction", Point(draw(coord)), {
            "elevation_m": draw(st.floats(0.0, 25.0)),
            "base_demand_m3s": draw(st.floats(0.0, 0.01)),
        }))
        parent = draw(st.sampled_from(ids))
        geom = LineString([net.nodes[parent].lonlat, net.nodes[jid].lonlat])
        net.add_link(Link(f"P{k}", "pipe", parent, jid, geom, {
            "length_m": draw(st.floats(1.0, 2000.0)),
            "diameter_m": draw(st.floats(0.05, 1.0)),
            "roughness": draw(st.floats(80.0, 150.0)),
        }))
        ids.append(jid)
    return net


@PROPERTY
@given(net=small_networks())
def test_generated_networks_round_trip(net, tmp_path):
    out = tmp_path / "gen.inp"
    write_epanet(net, out)
    back = read_epanet(out)
    assert set(back.nodes) == set(net.nodes) and set(back.links) == set(net.links)
    for nid, node in net.nodes.items():
        assert back.nodes[nid].kind == node.kind
        assert np.allclose(back.nodes[nid].lonlat, node.lonlat, atol=1e-8)
        for key, value in node.attrs.items():
            assert back.nodes[nid].attrs[key] == pytest.approx(value, rel=1e-8, abs=1e-12)
    for lid, link in net.links.items():
        got = back.links[lid]
        assert (got.start, got.end) == (link.start, link.end)
        for key, value in link.attrs.items():
            assert got.attrs[key] == pytest.approx(value, rel=1e-8)
