"""rescity risk import | map | top | regrade | hazard, on a stored test city."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from rescity.cli import app
from tests.respond.conftest import CELLS
from tests.store.citydata import make_city

CSV = """id,name,hazard,lon,lat,likelihood,consequence
main-d1,Old main in D1,main_break,{a},5,5
bad,Bad row,main_break,{a},0,5
"""


def test_risk_commands(store, tmp_path):
    store.save_city(make_city())
    a = CELLS["D1-S1-G1"]
    reg = tmp_path / "reg.csv"
    reg.write_text(CSV.format(a=f"{a[0]},{a[1]}"))
    run = CliRunner().invoke
    r = run(app, ["risk", "import", str(reg), "--db", store.url])
    assert r.exit_code == 1 and "imported 1 risk points" in r.stdout and f"{reg}:3: likelihood" in r.output
    out, png = tmp_path / "map.geojson", tmp_path / "map.png"
    r = run(app, ["risk", "map", "--out", str(out), "--png", str(png), "--db", store.url])
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    levels = {f["properties"]["code"]: f["properties"]["level"] for f in doc["features"]}
    assert levels["D1-S1-G1"] == "red" and len(levels) == 8 and png.read_bytes()[:4] == b"\x89PNG"
    r = run(app, ["risk", "map", "--out", str(out), "--level", "district", "--db", store.url])
    assert r.exit_code == 0 and len(json.loads(out.read_text())["features"]) == 2
    r = run(app, ["risk", "top", "--json", "--db", store.url])
    assert r.exit_code == 0 and json.loads(r.stdout)["points"][0]["id"] == "main-d1"
    r = run(app, ["risk", "regrade", "main-d1", "--likelihood", "1", "--consequence", "2", "--reason",
                  "main replaced", "--db", store.url])
    assert r.exit_code == 0 and "level 4" in r.stdout
    r = run(app, ["risk", "regrade", "nope", "--likelihood", "1", "--consequence", "2", "--reason", "x",
                  "--db", store.url])
    assert r.exit_code == 2 and "no risk point 'nope'" in r.output
    r = run(app, ["risk", "hazard", "--point", "main-d1", "--text", "valve chamber corroded",
                  "--network", "water", "--db", store.url, "--now", "2026-12-01T08:00:00+08:00"])
    assert r.exit_code == 0 and "rectify by 2026-12-31" in r.stdout, r.output
    r = run(app, ["audit", "verify", "--db", store.url])
    assert r.exit_code == 0, r.output
