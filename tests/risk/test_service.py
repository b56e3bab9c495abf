"""The risk register and map on both backends: import with bad rows reported, re-grading
with its history, live re-grading when an alarm fires and when it resolves, hidden
hazards through the incident machinery, the map outputs, and who sees what."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rescity.respond.access import SYSTEM, Role, User
from rescity.service.risk import RiskService
from tests.respond.conftest import CELLS, T0
from tests.store.citydata import make_city

D1 = User("d1", Role.DISTRICT_OFFICER, jurisdictions=("D1",))
D2 = User("d2", Role.DISTRICT_OFFICER, jurisdictions=("D2",))
CITIZEN = User("li", Role.CITIZEN)
HOUR = 3_600_000

CSV = """id,name,name_zh,hazard,lon,lat,likelihood,consequence,owner,controls,assets
old-main,Old cast-iron main,老旧铸铁管,main_break,{g1},4,5,water-company,leak survey,water:P1
gas-st,Gas station,加油加气站,gas_leak,{g1b},2,5,gas-company,,
underpass,Low underpass,下穿通道,waterlogging,{g2},4,3,drainage-company,pumps,
bad-l,Bad likelihood,,gas_leak,{g2},7,3,,,
,No id,,gas_leak,{g2},3,3,,,
bad-place,No place,,gas_leak,,,3,3,,,
old-main,Duplicate,,main_break,{g2},1,1,,,
far,Far away,,gas_leak,10.0,10.0,3,3,,,
"""


@pytest.fixture
def rsvc(store, tmp_path):
    city = make_city()
    store.save_city(city)
    svc = RiskService(store, city=city)
    f = tmp_path / "register.csv"
    g1, g2 = CELLS["D1-S1-G1"], CELLS["D2-S2-G2"]
    f.write_text(CSV.format(g1=f"{g1[0]},{g1[1]}", g1b=f"{g1[0] + 0.001},{g1[1]}", g2=f"{g2[0]},{g2[1]}"))
    n, errors = svc.import_register(SYSTEM, f, ts_ms=T0)
    svc.snapshot(T0)
    return svc, n, errors, f


def test_import_keeps_good_rows_and_reports_bad_ones_by_line_and_field(rsvc):
    svc, n, errors, f = rsvc
    assert n == 3 and sorted(svc.points) == ["gas-st", "old-main", "underpass"]
    got = {(e.line, e.field) for e in errors}
    assert got == {(5, "likelihood"), (6, "id"), (7, "lon/lat"), (8, "id"), (9, "place")}, errors
    assert all(str(f) in str(e) for e in errors)
    # levels by the matrix: L4 C5 red, L2 C5 orange, L4 C3 orange
    assert [svc.points[k].level for k in ("old-main", "gas-st", "underpass")] == [1, 2, 2]


def test_cell_aggregation_matches_the_formula(rsvc):
    svc, *_ = rsvc
    i = svc.index["D1-S1-G1"]
    S = 1 - (1 - 20 / 25) * (1 - 10 / 25)  # 0.88
    assert svc.grid.static[i] == pytest.approx(S)
    w = svc.policy.score
    E, V = svc.grid.exposure[i], svc.grid.vulnerability[i]
    cell = svc.cells[i].geometry
    n_fac = sum(1 for f in svc.city.facilities.values() if cell.intersects(f.geometry.representative_point()))
    assert E == pytest.approx(w.w_population * min(1, svc.cells[i].population / w.population_ref)
                              + w.w_facilities * min(1, n_fac / w.facilities_ref))
    want = 100 * min(1.0, S * (1 + w.alpha * E) * (1 + w.beta * V) / ((1 + w.alpha) * (1 + w.beta)))
    assert svc.grid.score[i] == pytest.approx(want)
    assert svc.grid.level[svc.index["D1-S2-G1"]] == 4  # no risk point, no live event


def test_an_alarm_regrades_its_cell_and_resolving_it_restores_it(rsvc):
    svc, *_ = rsvc
    code = "D1-S2-G1"
    lon, lat = CELLS[code]
    assert svc.grid.level[svc.index[code]] == 4
    changed = svc.on_alarms([{"id": "A1", "model": "methane_manhole_near_gas", "state": "firing",
                              "level": 1, "lon": lon, "lat": lat}], T0 + HOUR)
    assert changed == [code] and svc.grid.level[svc.index[code]] == 1
    assert svc.on_alarms([{"id": "A1", "model": "m", "state": "firing", "level": 1, "lon": lon,
                           "lat": lat}], T0 + HOUR) == []  # the same state: nothing changes
    changed = svc.on_alarms([{"id": "A1", "model": "m", "state": "quiet", "level": 1, "lon": lon,
                              "lat": lat}], T0 + 2 * HOUR)
    assert changed == [code] and svc.grid.level[svc.index[code]] == 4
    assert [h["level"] for h in svc.history(SYSTEM, code)] == [4, 1, 4]
    # a muted alarm (inhibited by a main break) weighs nothing
    svc.on_alarms([{"id": "A2", "model": "m", "state": "firing", "level": 1, "muted": True,
                    "lon": lon, "lat": lat}], T0 + 3 * HOUR)
    assert svc.grid.level[svc.index[code]] == 4


def test_regrading_keeps_its_history_on_the_chain(rsvc):
    svc, *_ = rsvc
    p = svc.regrade(D1, "old-main", likelihood=2, consequence=3, reason="main relined", ts_ms=T0 + HOUR)
    assert p.level == 3
    hist = svc.point_history(SYSTEM, "old-main")
    assert [h["action"] for h in hist] == ["import", "regrade"]
    assert hist[1]["before"]["level"] == 1 and hist[1]["after"]["level"] == 3 and hist[1]["reason"] == "main relined"
    with pytest.raises(LookupError):  # another district's point does not exist for D2
        svc.regrade(D2, "old-main", likelihood=5, consequence=5, reason="x", ts_ms=T0 + 2 * HOUR)
    with pytest.raises(ValueError, match="reason"):
        svc.regrade(D1, "old-main", likelihood=5, consequence=5, reason=" ", ts_ms=T0 + 2 * HOUR)
    assert svc.response.verify_audit().ok


def test_a_district_sees_the_details_of_its_own_cells_only(rsvc):
    svc, *_ = rsvc
    feats = {f["properties"]["code"]: f["properties"] for f in svc.cells_geojson(D1)["features"]}
    assert len(feats) == 8  # every cell is on the map, with its colour
    own, other = feats["D1-S1-G1"], feats["D2-S2-G2"]
    assert own["level"] == "red" and "score" in own and own["top_risks"][0]["id"] == "old-main"
    assert other["level"] == "yellow" and "score" not in other and "top_risks" not in other
    assert all("score" not in p for p in (f["properties"] for f in svc.cells_geojson(CITIZEN)["features"]))
    top = svc.top_risks(D1)
    assert {p["id"] for p in top["points"]} == {"old-main", "gas-st"}
    assert svc.top_risks(D2)["points"][0]["id"] == "underpass"
    with pytest.raises(LookupError):
        svc.history(D2, "D1-S1-G1")
    streets = svc.cells_geojson(SYSTEM, level="street")["features"]
    s11 = next(f["properties"] for f in streets if f["properties"]["code"] == "D1-S1")
    assert s11["level"] == "red" and s11["cells"] == {"red": 1, "orange": 0, "yellow": 0, "blue": 1}


def test_rain_raises_the_flood_prone_cells(rsvc):
    svc, *_ = rsvc
    i = svc.index["D2-S2-G2"]
    before = svc.grid.score[i]
    svc.set_rain(50.0, T0 + HOUR)
    assert svc.grid.score[i] > before  # the underpass's cell
    assert svc.grid.score[svc.index["D1-S1-G1"]] == pytest.approx(svc.grid.score[svc.index["D1-S1-G1"]])


def test_hidden_hazards_are_incidents_with_rectification_deadlines(rsvc):
    svc, *_ = rsvc
    inc = svc.report_hidden_hazard(D1, point_id="old-main", text="corrosion seen at the valve chamber",
                                   network="water", ts_ms=T0)
    assert inc.type == "hidden_hazard" and inc.state.value == "dispatched" and inc.level == 1
    assert inc.units == ["water-company", "street-station:D1-S1"]
    assert inc.due["acknowledge"] == T0 + 86_400_000  # a day to accept the rectification order
    assert inc.due["resolve"] == T0 + 30 * 86_400_000
    assert svc.response.tick(T0 + 23 * HOUR) == []
    evs = svc.response.tick(T0 + 25 * HOUR)  # overdue: escalates like any incident
    assert [e.action.value for e in evs] == ["deadline_missed", "escalate"]
    # the open incident counts in its cell's live part
    svc.sync_incidents(T0 + 25 * HOUR)
    assert svc.live[f"incident:{inc.id}"].cell == svc.index["D1-S1-G1"]
    assert svc.grid.live[svc.index["D1-S1-G1"]] == pytest.approx(svc.policy.score.level_weight("incident", 1))


def test_outputs_geojson_and_png(rsvc, tmp_path):
    svc, *_ = rsvc
    doc = svc.cells_geojson(SYSTEM)
    json.dumps(doc)  # serialisable
    assert {f["properties"]["level"] for f in doc["features"]} <= {"red", "orange", "yellow", "blue"}
    png = svc.render_png(tmp_path / "map.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bbox = (24.90, 60.15, 24.92, 60.17)  # the south-west quarter of D1
    sub = svc.cells_geojson(SYSTEM, bbox=bbox)["features"]
    assert 0 < len(sub) < 8
    assert np.isfinite(svc.grid.score).all()


def test_a_deterioration_alarm_on_a_listed_asset_opens_one_hidden_hazard(rsvc):
    svc, *_ = rsvc
    lon, lat = CELLS["D1-S1-G1"]
    alarm = {"id": "A9", "model": "pressure_drift", "asset": "water:P1", "state": "firing", "level": 4,
             "lon": lon, "lat": lat}
    svc.on_alarms([alarm], T0)
    svc.on_alarms([{**alarm, "id": "A10"}], T0 + HOUR)  # a second one: still one investigation
    assert len(svc.hazards_opened) == 1
    inc = svc.response.incident(SYSTEM, svc.hazards_opened[0])
    assert inc.type == "hidden_hazard" and inc.asset == "risk:old-main" and inc.state.value == "dispatched"
    assert inc.units[0] == "water-company" and "pressure_drift" in inc.description
    svc.on_alarms([{**alarm, "id": "A11", "model": "pressure_low"}], T0 + 2 * HOUR)  # an emergency model
    assert len(svc.hazards_opened) == 1
