"""Hazards as data: earthquake ground motion (WNTR's relations, DATA.md reference values),
design storms, point events validated against the demo city."""

from __future__ import annotations

import json

import numpy as np
import pytest
import wntr
from hypothesis import given, settings
from hypothesis import strategies as st

from rescity.demo.city import build_demo_city
from rescity.model import City
from rescity.simulate.hazards import (
    Earthquake,
    GasLeak,
    HazardError,
    IDFCurve,
    PipeBurst,
    PowerOutage,
    Rainstorm,
    load_scenario,
    repair_rate_ala2001_per_m,
)


@pytest.fixture(scope="module")
def city() -> City:
    return build_demo_city()


def quake(**kw: float) -> Earthquake:
    args = {"lon": 24.9443, "lat": 60.1716, "magnitude": 5.0, "depth_km": 10.0} | kw
    return Earthquake(**args)  # type: ignore[arg-type]


# -- earthquake: the reference values of DATA.md ----------------------------------------
def test_pga_reproduces_wntr_reference_values_at_1_km() -> None:
    eq = quake()
    assert float(eq.pga_g_at_distance(1000.0, "kawashima")) == pytest.approx(0.13275, abs=5e-6)
    # DATA.md lists 0.096638 as "Yu & Jin"; it is WNTR's PGA method 2, Baag et al. (1998)
    assert float(eq.pga_g_at_distance(1000.0, "baag")) == pytest.approx(0.096638, abs=5e-7)


def test_repair_rate_reproduces_ala2001_reference_value() -> None:
    assert float(repair_rate_ala2001_per_m(0.0531)) == pytest.approx(1.2823e-5, rel=1e-4)
    # the PGV 0.0531 m/s is Yu & Jin (rock) at R = 1 km, M = 5
    assert float(quake().pgv_ms_at_distance(1000.0, "yu_jin_rock")) == pytest.approx(
        0.0531, abs=5e-5
    )


def test_ground_motion_is_wntr_own_on_net3() -> None:
    """On WNTR's Net3 (coordinates taken as metres), our values at the node distances
    equal WNTR's own Earthquake.distance_to_epicenter + attenuation models."""
    inp = wntr.__path__[0] + "/library/networks/Net3.inp"
    wn = wntr.network.WaterNetworkModel(inp)
    ref = wntr.scenario.Earthquake((32000, 15000), 6.5, 10000)
    r = ref.distance_to_epicenter(wn, element_type=wntr.network.Junction)
    eq = quake(magnitude=6.5)
    for model, method in (("kawashima", 1), ("baag", 2), ("lee_cho", 3), ("average", None)):
        np.testing.assert_allclose(
            eq.pga_g_at_distance(r.values, model),
            ref.pga_attenuation_model(r, method=method).values,
            rtol=1e-12,
        )
    for model, method in (("yu_jin_rock", 1), ("yu_jin_soil", 2), ("average", None)):
        np.testing.assert_allclose(
            eq.pgv_ms_at_distance(r.values, model),
            ref.pgv_attenuation_model(r, method=method).values,
            rtol=1e-12,
        )


def test_distances_are_geodesic_metres() -> None:
    eq = quake(lon=24.0, lat=60.0)
    # one degree of latitude at 60° N is 111.4 km on the WGS84 ellipsoid
    assert float(eq.distance_m(24.0, 61.0)[0]) == pytest.approx(111_414, rel=1e-3)
    assert float(eq.distance_m(24.0, 60.0)[0]) == pytest.approx(0.0, abs=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    m=st.floats(3.0, 8.5),
    d1=st.floats(100.0, 150_000.0),
    d2=st.floats(100.0, 150_000.0),
    depth=st.floats(1.0, 60.0),
)
def test_ground_motion_decreases_with_distance(
    m: float, d1: float, d2: float, depth: float
) -> None:
    near, far = sorted((d1, d2))
    eq = quake(magnitude=m, depth_km=depth)
    for model in ("kawashima", "baag", "average"):
        assert eq.pga_g_at_distance(near, model) >= eq.pga_g_at_distance(far, model)
    assert eq.pgv_ms_at_distance(near) >= eq.pgv_ms_at_distance(far)


@settings(max_examples=30, deadline=None)
@given(m1=st.floats(1.0, 9.5), m2=st.floats(1.0, 9.5), r=st.floats(100.0, 100_000.0))
def test_ground_motion_increases_with_magnitude(m1: float, m2: float, r: float) -> None:
    lo, hi = sorted((m1, m2))
    assert quake(magnitude=lo).pga_g_at_distance(r) <= quake(magnitude=hi).pga_g_at_distance(r)
    assert quake(magnitude=lo).pgv_ms_at_distance(r) <= quake(magnitude=hi).pgv_ms_at_distance(r)


def test_intensities_at_demo_assets(city: City) -> None:
    eq = quake(magnitude=6.0)
    uids = ["water:p1", "power:bus_39", "roads-bridges:23952344-0"]
    im = eq.at_assets(city, uids)
    assert set(im) == {"distance_m", "pga_g", "pgv_ms", "pgv_cms", "sa1_g"}
    assert all(v.shape == (3,) for v in im.values())
    np.testing.assert_allclose(im["pgv_cms"], 100 * im["pgv_ms"])
    assert (im["distance_m"] < 5000).all()  # the demo city is a few km across


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("magnitude", -1.0, "magnitude must not be negative"),
        ("magnitude", 10.5, "magnitude must be at most 10"),
        ("depth_km", 0.0, "depth_km must be positive"),
        ("depth_km", -5.0, "depth_km must be positive"),
        ("lat", 95.0, "latitude must be in"),
    ],
)
def test_bad_earthquake_is_rejected_naming_the_field(
    field: str, value: float, message: str
) -> None:
    spec = {
        "kind": "earthquake",
        "lon": 24.9,
        "lat": 60.2,
        "magnitude": 6.0,
        "depth_km": 10.0,
        field: value,
    }
    with pytest.raises(HazardError, match=message) as exc:
        load_scenario(spec)
    assert f"field '{field}'" in str(exc.value)


def test_epicentre_far_outside_the_city_is_rejected(city: City) -> None:
    spec = {
        "kind": "earthquake",
        "lon": 37.62,
        "lat": 55.75,
        "magnitude": 6.0,
        "depth_km": 10,
    }  # Moscow, ~890 km
    with pytest.raises(HazardError, match="epicentre far outside the city"):
        load_scenario(spec, city=city)
    # a larger allowance accepts it; a near epicentre passes the default
    load_scenario(spec | {"max_distance_km": 1000}, city=city)
    load_scenario(spec | {"lon": 24.95, "lat": 60.17}, city=city)


def test_load_scenario_reads_yaml_and_json(tmp_path: object) -> None:
    from pathlib import Path

    d = Path(str(tmp_path))
    (d / "eq.yaml").write_text(
        "kind: earthquake\nlon: 24.94\nlat: 60.17\nmagnitude: 6.5\ndepth_km: 12\n"
    )
    (d / "rain.json").write_text(
        json.dumps(
            {
                "kind": "rainstorm",
                "return_period_years": 50,
                "duration_min": 60,
                "method": "alternating_block",
            }
        )
    )
    eq = load_scenario(d / "eq.yaml")
    assert isinstance(eq, Earthquake) and eq.magnitude == 6.5
    rain = load_scenario(d / "rain.json")
    assert isinstance(rain, Rainstorm) and rain.return_period_years == 50
    (d / "bad.yaml").write_text("kind: tsunami\n")
    with pytest.raises(HazardError, match="field 'kind': expected one of earthquake"):
        load_scenario(d / "bad.yaml")
    with pytest.raises(HazardError, match="no such file"):
        load_scenario(d / "missing.yaml")
    with pytest.raises(HazardError, match="field 'magnitud': unknown field"):
        load_scenario({"kind": "earthquake", "lon": 1, "lat": 1, "magnitud": 5})


# -- rainstorm ----------------------------------------------------------------------------
def test_idf_formula_and_unit_conversion() -> None:
    idf = IDFCurve()  # q = 2001 (1 + 0.811 lg P) / (t + 8)^0.711
    q = float(idf.q_ls_ha(30.0, 10.0))
    assert q == pytest.approx(2001 * (1 + 0.811) / 38**0.711, rel=1e-12)
    i_mm_h = float(idf.intensity_mm_h(30.0, 10.0))
    assert i_mm_h == pytest.approx(60 * q / 167, rel=1e-12)
    # the exact factor 1 mm/min = 166.67 L/(s·ha) differs from the code's 167 by 0.2 %
    assert 60 * q / (10_000 * 0.001 / 60 * 1000) / i_mm_h == pytest.approx(167 / 166.6667, rel=1e-6)
    assert float(idf.depth_mm(30.0, 10.0)) == pytest.approx(i_mm_h / 60 * 30, rel=1e-12)


@pytest.mark.parametrize("method", ["chicago", "alternating_block"])
@pytest.mark.parametrize(
    ("duration", "step", "r"), [(120, 5, 0.4), (60, 1, 0.35), (180, 10, 0.5), (1440, 60, 0.4)]
)
def test_design_storm_total_equals_idf_depth(
    method: str, duration: int, step: int, r: float
) -> None:
    storm = Rainstorm(
        method=method, return_period_years=20, duration_min=duration, step_min=step, peak_ratio=r
    )  # type: ignore[arg-type]
    h = storm.hyetograph()
    assert len(h.intensity_mm_h) == duration // step
    assert h.total_depth_mm == pytest.approx(float(storm.idf.depth_mm(duration, 20)), rel=1e-9)
    assert (h.intensity_mm_h >= 0).all()
    # the peak sits in the step containing r x duration
    assert h.peak_time_min <= r * duration < h.peak_time_min + step + 1e-9


def test_chicago_is_rising_then_falling() -> None:
    h = Rainstorm(return_period_years=5, duration_min=120, step_min=5).hyetograph()
    k = h.peak_index
    assert (np.diff(h.intensity_mm_h[: k + 1]) > 0).all()
    assert (np.diff(h.intensity_mm_h[k:]) < 0).all()


def test_alternating_block_peak_block_is_the_idf_intensity_of_one_step() -> None:
    storm = Rainstorm(
        method="alternating_block", return_period_years=10, duration_min=120, step_min=10
    )
    h = storm.hyetograph()
    assert h.intensity_mm_h.max() == pytest.approx(
        float(storm.idf.intensity_mm_h(10, 10)), rel=1e-12
    )


@settings(max_examples=30, deadline=None)
@given(
    p1=st.floats(1.0, 1000.0),
    p2=st.floats(1.0, 1000.0),
    method=st.sampled_from(["chicago", "alternating_block"]),
)
def test_storm_grows_with_return_period(p1: float, p2: float, method: str) -> None:
    lo, hi = sorted((p1, p2))
    a = Rainstorm(method=method, return_period_years=lo, duration_min=120).hyetograph()  # type: ignore[arg-type]
    b = Rainstorm(method=method, return_period_years=hi, duration_min=120).hyetograph()  # type: ignore[arg-type]
    assert a.total_depth_mm <= b.total_depth_mm
    assert (a.intensity_mm_h <= b.intensity_mm_h + 1e-12).all()


def test_measured_series_and_bad_storms() -> None:
    s = load_scenario(
        {
            "kind": "rainstorm",
            "method": "measured",
            "measured": {"step_min": 10, "intensity_mm_h": [0, 6, 30, 12]},
        }
    )
    assert isinstance(s, Rainstorm)
    h = s.hyetograph()
    assert h.total_depth_mm == pytest.approx(8.0) and h.peak_time_min == 20
    with pytest.raises(HazardError, match="needs the field 'measured'"):
        load_scenario({"kind": "rainstorm", "method": "measured"})
    with pytest.raises(HazardError, match="field 'return_period_years'"):
        load_scenario({"kind": "rainstorm", "return_period_years": -2})
    with pytest.raises(HazardError, match="whole number of steps"):
        load_scenario({"kind": "rainstorm", "duration_min": 62, "step_min": 5})
    with pytest.raises(HazardError, match="field 'measured.intensity_mm_h'"):
        load_scenario(
            {
                "kind": "rainstorm",
                "method": "measured",
                "measured": {"step_min": 5, "intensity_mm_h": [1, -3]},
            }
        )


# -- point events ---------------------------------------------------------------------------
def test_pipe_burst_on_a_demo_pipe(city: City) -> None:
    b = load_scenario({"kind": "pipe_burst", "pipe": "water:p1"}, city=city)
    assert isinstance(b, PipeBurst)
    assert b.opening_area_m2(city) == pytest.approx(np.pi * 0.2**2 / 4)
    # orifice equation: Q = Cd A sqrt(2 g h)
    assert b.discharge_m3s(city, 30.0) == pytest.approx(
        0.75 * np.pi * 0.01 * np.sqrt(2 * 9.81 * 30)
    )
    leak = PipeBurst(pipe="water:p1", mode="leak", leak_area_m2=0.001, discharge_coeff=0.6)
    leak.check_city(city)
    assert leak.opening_area_m2(city) == 0.001


def test_unknown_or_wrong_pipe_is_rejected(city: City) -> None:
    with pytest.raises(HazardError, match="unknown pipe 'x' in network 'water'"):
        load_scenario({"kind": "pipe_burst", "pipe": "water:x"}, city=city)
    with pytest.raises(HazardError, match="unknown pipe 'n1' in network 'water'"):
        PipeBurst(pipe="water:n1").check_city(city)  # a junction, not a pipe
    with pytest.raises(HazardError, match="unknown network 'sewer'"):
        PipeBurst(pipe="sewer:p1").check_city(city)
    with pytest.raises(HazardError, match="larger than the bore"):
        PipeBurst(pipe="water:p1", mode="leak", leak_area_m2=1.0).check_city(city)
    with pytest.raises(HazardError, match="a leak needs leak_area_m2"):
        load_scenario({"kind": "pipe_burst", "pipe": "water:p1", "mode": "leak"})


def test_power_outage_validates_substation_and_feeder(city: City) -> None:
    o = load_scenario({"kind": "power_outage", "substation": "power:bus_39"}, city=city)
    assert isinstance(o, PowerOutage) and o.asset == "power:bus_39"
    PowerOutage(feeder="power:line_0").check_city(city)
    with pytest.raises(HazardError, match="unknown substation 'bus_9999' in network 'power'"):
        PowerOutage(substation="power:bus_9999").check_city(city)
    with pytest.raises(HazardError, match="unknown feeder 'bus_39' in network 'power'"):
        PowerOutage(feeder="power:bus_39").check_city(city)
    with pytest.raises(HazardError, match="exactly one of 'substation' and 'feeder'"):
        load_scenario({"kind": "power_outage"})


def test_gas_leak_near_a_main(city: City) -> None:
    main = city.networks["gas"].links["gp1"]
    p = main.geometry.interpolate(0.5, normalized=True)
    leak = load_scenario(
        {"kind": "gas_leak", "lon": p.x, "lat": p.y, "release_rate_kg_s": 0.05, "pipe": "gas:gp1"},
        city=city,
    )
    assert isinstance(leak, GasLeak)
    GasLeak(lon=p.x, lat=p.y, release_rate_kg_s=0.05).check_city(city)
    with pytest.raises(HazardError, match="unknown pipe 'nope' in network 'gas'"):
        GasLeak(lon=p.x, lat=p.y, release_rate_kg_s=0.05, pipe="gas:nope").check_city(city)
    with pytest.raises(HazardError, match="from the nearest gas asset"):
        GasLeak(lon=p.x + 0.5, lat=p.y, release_rate_kg_s=0.05).check_city(city)
    with pytest.raises(HazardError, match="field 'release_rate_kg_s'"):
        load_scenario({"kind": "gas_leak", "lon": p.x, "lat": p.y, "release_rate_kg_s": 0})
