"""SWMM import and export: EPA Example1b reproduces its published continuity through the
twin, edits in the twin reach the exported model in the file's units, bad files give
line-accurate errors, and property tests on mutated and generated inputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import LineString, Point, Polygon

from rescity.io.errors import FormatError
from rescity.io.inp import read_inp
from rescity.io.swmm import _canonical_section, read_swmm, write_swmm
from rescity.model import Link, Network, NetworkType, Node, Placement
from tests.io.conftest import file_link

# the file's coordinates are feet in a local frame; put its origin in Helsinki
EXAMPLE_PLACEMENT = Placement(anchor=(24.944, 60.1716), unit_m=0.3048)
FT = 0.3048
ACRE_M2 = 4046.8564224
PROPERTY = settings(
    max_examples=20, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

#: DATA.md reference values of Example1b (acre-feet)
EXPECTED = {
    ("runoff", "Total Precipitation"): "15.679",
    ("runoff", "Infiltration Loss"): "9.346",
    ("runoff", "Surface Runoff"): "6.295",
    ("routing", "External Outflow"): "5.874",
    ("routing", "Flooding Loss"): "0.415",
}


@pytest.fixture(scope="module")
def example(example1b_inp) -> Network:
    return read_swmm(example1b_inp, placement=EXAMPLE_PLACEMENT)


def fresh(example1b_inp) -> Network:
    """An Example1b twin of the test's own (edits must not leak between tests)."""
    return read_swmm(example1b_inp, placement=EXAMPLE_PLACEMENT)


def file_points(path: Path, section: str) -> dict[str, list[tuple[float, float]]]:
    inp = read_inp(path, canonical=_canonical_section)
    out: dict[str, list[tuple[float, float]]] = {}
    for ln in inp.section(section):
        out.setdefault(ln.fields[0], []).append((float(ln.fields[1]), float(ln.fields[2])))
    return out


def rows(path: Path, section: str) -> dict[str, list[str]]:
    inp = read_inp(path, canonical=_canonical_section)
    return {ln.fields[0]: ln.fields for ln in inp.section(section)}


# -- Example1b through the twin -----------------------------------------------------


def test_example1b_is_imported_in_si(example):
    assert example.type is NetworkType.DRAINAGE and example.source_format == "swmm-inp"
    assert example.kinds() == {"junction": 13, "outfall": 1, "subcatchment": 8, "conduit": 13}
    j = example.nodes["10"].attrs
    assert j["invert_elev_m"] == pytest.approx(995 * FT)
    assert j["max_depth_m"] == pytest.approx(3 * FT)
    c = file_link(example, "1")
    assert (c.start, c.end) == ("9", "10")
    assert c.attrs["length_m"] == pytest.approx(400 * FT)
    assert c.attrs["roughness"] == 0.01
    assert c.attrs["shape"] == "CIRCULAR" and c.attrs["geom1_m"] == pytest.approx(1.5 * FT)
    s = example.nodes["1"]
    assert s.kind == "subcatchment" and isinstance(s.geometry, Polygon)
    assert s.attrs["area_m2"] == pytest.approx(10 * ACRE_M2)
    assert s.attrs["imperv_pct"] == 50 and s.attrs["outlet"] == "9"
    assert len(file_link(example, "10").geometry.coords) == 3  # one vertex
    assert example.native["flow_units"] == "CFS"
    json.dumps(example.native, allow_nan=False)


def test_example1b_round_trip_reproduces_continuity(example, example1b_inp, tmp_path, swmm_run):
    out = tmp_path / "exported" / "Example1b.inp"
    write_swmm(example, out)
    original = swmm_run(example1b_inp, tmp_path / "original")
    exported = swmm_run(out, tmp_path / "run")
    for (table, row), value in EXPECTED.items():
        assert original[table][row] == value, (table, row)
        assert exported[table][row] == value, (table, row)
    assert exported == original


def test_example1b_coordinates_survive(example, example1b_inp, tmp_path):
    out = tmp_path / "Example1b.inp"
    write_swmm(example, out)
    for section in ("COORDINATES", "VERTICES", "POLYGONS"):
        a, b = file_points(example1b_inp, section), file_points(out, section)
        assert a.keys() == b.keys()
        for k in a:
            assert len(a[k]) == len(b[k])
            for (x0, y0), (x1, y1) in zip(a[k], b[k], strict=True):
                assert abs(x0 - x1) < 1e-6 and abs(y0 - y1) < 1e-6
    back = read_swmm(out, placement=EXAMPLE_PLACEMENT)
    assert back.nodes["10"].geometry.equals_exact(example.nodes["10"].geometry, 1e-12)


def test_native_survives_json(example1b_inp, tmp_path, swmm_run):
    net = fresh(example1b_inp)
    net.native = json.loads(json.dumps(net.native))
    out = tmp_path / "Example1b.inp"
    write_swmm(net, out)
    assert swmm_run(out, tmp_path / "run")["routing"]["External Outflow"] == "5.874"


def test_local_frame_needs_a_placement(example1b_inp):
    with pytest.raises(FormatError, match=r"local frame.*--crs.*--anchor") as info:
        read_swmm(example1b_inp)
    assert info.value.line is not None and str(example1b_inp) in str(info.value)


# -- the twin is authoritative ------------------------------------------------------


def test_edits_are_written_in_file_units(example1b_inp, tmp_path, swmm_run):
    net = fresh(example1b_inp)
    file_link(net, "1").attrs["geom1_m"] = 3 * FT  # 1.5 ft -> 3 ft
    file_link(net, "8").attrs["length_m"] = 100.0
    net.nodes["10"].attrs["invert_elev_m"] = 994 * FT
    net.nodes["1"].attrs["area_m2"] = 12 * ACRE_M2
    out = tmp_path / "edited.inp"
    write_swmm(net, out)
    assert rows(out, "XSECTIONS")["1"][2] == "3"
    assert float(rows(out, "CONDUITS")["8"][3]) == pytest.approx(100 / FT, rel=1e-9)
    assert rows(out, "JUNCTIONS")["10"][1] == "994"
    assert rows(out, "SUBCATCHMENTS")["1"][3] == "12"
    assert rows(out, "CONDUITS")["1"][3] == "400"  # untouched values keep their text
    result = swmm_run(out, tmp_path / "run")
    assert result["runoff"]["Total Precipitation"] != EXPECTED[("runoff", "Total Precipitation")]


def test_moved_node_is_written_back_through_the_placement(example1b_inp, tmp_path):
    net = fresh(example1b_inp)
    x, y = net.nodes["10"].lonlat
    net.nodes["10"].geometry = Point(x + 0.001, y)
    out = tmp_path / "moved.inp"
    write_swmm(net, out)
    (nx, ny), = file_points(out, "COORDINATES")["10"]
    expected = EXAMPLE_PLACEMENT.inverse_xy([[x + 0.001, y]])[0]
    assert (nx, ny) == pytest.approx(tuple(expected), abs=1e-6)
    assert file_points(out, "COORDINATES")["13"] == [(2336.84, 4357.89)]


def test_added_and_removed_elements(example1b_inp, tmp_path, swmm_run):
    net = fresh(example1b_inp)
    del net.nodes["8"]  # a subcatchment: its rows in dependent sections go too
    # a new junction between 17 and the outfall, and a new subcatchment draining to it
    p17, p18 = net.nodes["17"].lonlat, net.nodes["18"].lonlat
    mid = ((p17[0] + p18[0]) / 2, (p17[1] + p18[1]) / 2)
    net.add_node(Node("J99", "junction", Point(mid),
                      {"invert_elev_m": 977 * FT, "max_depth_m": 3 * FT}))
    net.add_link(Link("C99", "conduit", "J99", "18", LineString([mid, p18]),
                      {"length_m": 60.0, "roughness": 0.013, "geom1_m": 0.6}))
    ring = [(mid[0] + dx, mid[1] + dy) for dx, dy in ((0, 0), (0.002, 0), (0.002, 0.001))]
    net.add_node(Node("S99", "subcatchment", Polygon(ring),
                      {"outlet": "J99", "area_m2": 20000.0, "imperv_pct": 30.0,
                       "width_m": 100.0, "slope_pct": 0.5}))
    out = tmp_path / "edited.inp"
    write_swmm(net, out)
    for section in ("SUBCATCHMENTS", "SUBAREAS", "INFILTRATION", "COVERAGES", "POLYGONS"):
        assert "8" not in rows(out, section), section
    assert rows(out, "SUBCATCHMENTS")["S99"][1] == "RG1"
    assert "S99" in rows(out, "SUBAREAS") and "S99" in rows(out, "INFILTRATION")
    assert rows(out, "XSECTIONS")["C99"][1] == "CIRCULAR"
    assert len(file_points(out, "POLYGONS")["S99"]) == 3
    back = read_swmm(out, placement=EXAMPLE_PLACEMENT)
    assert file_link(back, "C99").attrs["geom1_m"] == pytest.approx(0.6)
    result = swmm_run(out, tmp_path / "run")
    assert float(result["runoff"]["Total Precipitation"]) > 0


def test_si_model_units(example1b_inp, tmp_path):
    text = example1b_inp.read_text().replace("FLOW_UNITS           CFS",
                                             "FLOW_UNITS           CMS")
    path = tmp_path / "si.inp"
    path.write_text(text)
    net = read_swmm(path, placement=Placement(anchor=(24.944, 60.1716)))
    assert net.nodes["10"].attrs["invert_elev_m"] == 995
    assert net.nodes["1"].attrs["area_m2"] == pytest.approx(10e4)
    net.nodes["10"].attrs["ponded_area_m2"] = 12.5
    out = tmp_path / "si_out.inp"
    write_swmm(net, out)
    assert rows(out, "JUNCTIONS")["10"][5] == "12.5"


@pytest.mark.parametrize("units", ["CFS", "GPM", "MGD", "CMS", "LPS", "MLD"])
def test_unit_conversions_invert(units):
    from rescity.io.swmm import _Units

    u = _Units(units)
    for quantity in ("length", "area", "ponded", "flow", "number"):
        assert u.from_si(u.to_si(12.5, quantity), quantity) == pytest.approx(12.5, rel=1e-12)
    assert _Units("MLD").to_si(86.4, "flow") == pytest.approx(1.0)  # 86.4 ML/day = 1 m3/s
    assert _Units("CFS").to_si(1.0, "area") == pytest.approx(ACRE_M2)


def test_latin1_file_keeps_its_encoding(example1b_inp, tmp_path):
    path = tmp_path / "latin.inp"
    text = example1b_inp.read_text().replace("Example 1", "Exemple 1 \u00e9t\u00e9")
    path.write_bytes(text.encode("latin-1"))
    net = read_swmm(path, placement=EXAMPLE_PLACEMENT)
    out = tmp_path / "out.inp"
    write_swmm(net, out)
    assert "Exemple 1 \u00e9t\u00e9".encode("latin-1") in out.read_bytes()


def test_full_features_model(full_features_inp, tmp_path):
    net = read_swmm(full_features_inp, placement=EXAMPLE_PLACEMENT)
    kinds = net.kinds()
    assert kinds["storage"] == 1 and kinds["pump"] == 1 and kinds["weir"] == 1
    assert file_link(net, "C3").attrs["weir_type"] == "TRANSVERSE"
    assert file_link(net, "C2").end == "J3"  # 'j3' in the file resolves to the node J3
    out = tmp_path / "ff.inp"
    write_swmm(net, out)
    again = read_swmm(out, placement=EXAMPLE_PLACEMENT)
    assert again.kinds() == kinds
    assert again.nodes["J2"].attrs == net.nodes["J2"].attrs


# -- bad files ------------------------------------------------------------------------


def _line_of(lines: list[str], pattern: str) -> int:
    return next(i for i, ln in enumerate(lines) if re.search(pattern, ln))


def _bad(src: Path, tmp_path: Path, case: str) -> tuple[Path, int, str | None]:
    """A broken copy of Example1b, the 1-based line the error must name and the field."""
    lines = src.read_text().splitlines()
    field = None
    if case == "truncated line":
        i = _line_of(lines, r"^8\s+22\s+16\s+300")
        lines = lines[:i] + ["8                22               16               30"]
        field = "Roughness"
    elif case == "undefined node":
        i = _line_of(lines, r"^16\s+24\s+17")
        lines[i] = lines[i].replace("17 ", "77 ", 1)
        field = "To Node"
    elif case == "undefined outlet":
        i = _line_of(lines, r"^3\s+RG1\s+13")
        lines[i] = lines[i].replace("13 ", "31 ", 1)
        field = "Outlet"
    elif case == "unknown section":
        i = _line_of(lines, r"^\[LOSSES\]")
        lines[i] = "[SEWERS]"
    elif case == "too many fields":
        i = _line_of(lines, r"^14\s+3157\.89")
        lines[i] += "  12"
        field = "field 4"
    elif case == "not a number":
        i = _line_of(lines, r"^15\s+987")
        lines[i] = lines[i].replace("987", "98?", 1)
        field = "Elevation"
    elif case == "unknown units":
        i = _line_of(lines, r"^FLOW_UNITS")
        lines[i] = "FLOW_UNITS           BARRELS"
        field = "FLOW_UNITS"
    elif case == "duplicate id":
        i = _line_of(lines, r"^21\s+990")
        lines[i] = lines[i].replace("21 ", "20 ", 1)
    elif case == "missing cross section":  # the engine names the conduit, not a line
        lines = [ln for ln in lines if not re.match(r"^11\s+CIRCULAR", ln)]
        i = _line_of(lines, r"^11\s+13\s+14")
    elif case == "engine error":  # a bad value only the engine checks
        i = _line_of(lines, r"^RG1\s+INTENSITY")
        lines[i] = lines[i].replace("INTENSITY", "INTENSE")
    else:  # pragma: no cover
        raise AssertionError(case)
    path = tmp_path / f"{case.replace(' ', '_')}.inp"
    path.write_text("\n".join(lines) + "\n")
    return path, i + 1, field


BAD_CASES = [
    "truncated line", "undefined node", "undefined outlet", "unknown section",
    "too many fields", "not a number", "unknown units", "duplicate id", "engine error",
    "missing cross section",
]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_file_names_file_line_and_field(example1b_inp, tmp_path, case):
    path, line, field = _bad(example1b_inp, tmp_path, case)
    with pytest.raises(FormatError) as info:
        read_swmm(path, placement=EXAMPLE_PLACEMENT)
    err = info.value
    assert err.path == str(path) and str(path) in str(err)
    assert err.line == line and f"line {line}" in str(err)
    if field is not None:
        assert err.field == field and repr(field) in str(err)


def test_missing_file(tmp_path):
    path = tmp_path / "missing.inp"
    with pytest.raises(FormatError, match="file not found") as info:
        read_swmm(path)
    assert str(path) in str(info.value)


def test_subcatchment_named_like_a_node(example1b_inp, tmp_path):
    text = example1b_inp.read_text().replace("\n7                RG1", "\n9                RG1")
    path = tmp_path / "clash.inp"
    path.write_text(text)
    with pytest.raises(FormatError, match="name of a node") as info:
        read_swmm(path, placement=EXAMPLE_PLACEMENT)
    assert info.value.section == "SUBCATCHMENTS"


# -- property tests -----------------------------------------------------------------

_NUMBER = re.compile(r"(?<![\w.:/])-?\d+(?:\.\d+)?(?![\w.:/])")


@st.composite
def mutated(draw, text: str) -> str:
    """Example1b with one line deleted, the text cut, or a number replaced by garbage."""
    lines = text.splitlines(keepends=True)
    how = draw(st.sampled_from(["delete", "truncate", "garbage"]))
    if how == "delete":
        i = draw(st.integers(0, len(lines) - 1))
        return "".join(lines[:i] + lines[i + 1:])
    if how == "truncate":
        return text[: draw(st.integers(0, len(text)))]
    a, b = draw(st.sampled_from([m.span() for m in _NUMBER.finditer(text)]))
    junk = draw(st.sampled_from(["x", "1..2", "nan", "", "-1", "1e999", "a b"]))
    return text[:a] + junk + text[b:]


@PROPERTY
@given(data=st.data())
def test_mutated_files_either_load_or_raise_format_error(example1b_inp, tmp_path, data):
    path = tmp_path / "mutant.inp"
    path.write_text(data.draw(mutated(example1b_inp.read_text())))
    try:
        net = read_swmm(path, placement=EXAMPLE_PLACEMENT)
    except FormatError as err:
        assert str(path) in str(err)
    else:
        assert isinstance(net, Network)


@st.composite
def small_networks(draw) -> Network:
    """A chain of junctions draining by circular conduits to an outfall, near Helsinki."""
    n = draw(st.integers(1, 5))
    net = Network("gen", NetworkType.DRAINAGE)
    elev = 20.0
    pos = (24.94, 60.17)
    ids = []
    for k in range(n + 1):
        kind = "outfall" if k == n else "junction"
        elev -= draw(st.floats(0.1, 2.0))
        pos = (pos[0] + draw(st.floats(0.0005, 0.002)), pos[1] + draw(st.floats(-0.001, 0.001)))
        attrs = {"invert_elev_m": elev}
        if kind == "junction":
            attrs["max_depth_m"] = draw(st.floats(1.0, 5.0))
        net.add_node(Node(f"N{k}", kind, Point(pos), attrs))
        ids.append(f"N{k}")
    for k in range(n):
        a, b = net.nodes[ids[k]].lonlat, net.nodes[ids[k + 1]].lonlat
        bend = ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2 + draw(st.floats(-0.0005, 0.0005)))
        net.add_link(Link(f"C{k}", "conduit", ids[k], ids[k + 1], LineString([a, bend, b]), {
            "length_m": draw(st.floats(10.0, 500.0)),
            "roughness": draw(st.floats(0.009, 0.03)),
            "shape": "CIRCULAR",
            "geom1_m": draw(st.floats(0.2, 2.0)),
        }))
    return net


@PROPERTY
@given(net=small_networks())
def test_generated_networks_round_trip(net, tmp_path):
    out = tmp_path / "gen.inp"
    write_swmm(net, out)
    back = read_swmm(out)  # written in CMS; the engine opens it during the import
    assert back.native["flow_units"] == "CMS"
    assert set(back.nodes) == set(net.nodes) and set(back.links) == set(net.links)
    for nid, node in net.nodes.items():
        assert back.nodes[nid].kind == node.kind
        assert back.nodes[nid].lonlat == pytest.approx(node.lonlat, abs=1e-8)
        for key, value in node.attrs.items():
            assert back.nodes[nid].attrs[key] == pytest.approx(value, rel=1e-8)
    for lid, link in net.links.items():
        got = back.links[lid]
        assert (got.start, got.end) == (link.start, link.end)
        assert len(got.geometry.coords) == 3
        for key, value in link.attrs.items():
            assert got.attrs[key] == (pytest.approx(value, rel=1e-8)
                                      if isinstance(value, float) else value)


def test_import_while_another_simulation_is_open(example1b_inp, tmp_path):
    """SWMM allows one open simulation per process; the engine check then runs aside."""
    import shutil

    from pyswmm import Simulation

    copy = tmp_path / "running.inp"
    shutil.copyfile(example1b_inp, copy)
    sim = Simulation(str(copy))
    try:
        assert len(read_swmm(example1b_inp, placement=EXAMPLE_PLACEMENT).links) == 13
        path, line, _ = _bad(example1b_inp, tmp_path, "engine error")
        with pytest.raises(FormatError) as info:
            read_swmm(path, placement=EXAMPLE_PLACEMENT)
        assert info.value.line == line
    finally:
        sim.close()
