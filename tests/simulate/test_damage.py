"""Damage: Hazus / ALA 2001 pipe repair rates, Hazus lognormal fragilities, sampling
reproducible with a seed and independent of asset order, on the demo city."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from rescity.demo.city import build_demo_city
from rescity.model import City
from rescity.simulate.damage import (
    PIPE,
    DamageConfigError,
    Exposure,
    binom_ppf,
    expected_pipe_repairs,
    hazus_repair_rate_per_km,
    load_fragility,
    pipe_repair_rate_per_m,
    poisson_ppf,
    sample_damage,
)
from rescity.simulate.hazards import Earthquake, HazardError


@pytest.fixture(scope="module")
def city() -> City:
    return build_demo_city()


@pytest.fixture(scope="module")
def exposure(city: City) -> Exposure:
    return Exposure.from_city(city)


def strong_quake(city: City, magnitude: float = 6.5) -> Earthquake:
    return Earthquake(lon=city.center[0], lat=city.center[1], magnitude=magnitude, depth_km=10)


# -- repair rates ------------------------------------------------------------------------
def test_hazus_repair_rate_reproduces_the_published_formula() -> None:
    # 0.0001 x PGV^2.25 repairs/km, PGV in cm/s, brittle; ductile x 0.3
    assert float(hazus_repair_rate_per_km(10.0)) == pytest.approx(0.0001 * 10**2.25, rel=1e-12)
    assert float(hazus_repair_rate_per_km(10.0)) == pytest.approx(0.017783, rel=1e-4)
    assert float(hazus_repair_rate_per_km(10.0, ductile=True)) == pytest.approx(
        0.3 * 0.017783, rel=1e-4
    )
    assert float(hazus_repair_rate_per_km(50.0)) == pytest.approx(0.0001 * 50**2.25, rel=1e-12)
    # per metre from m/s: the same curve
    assert float(pipe_repair_rate_per_m(0.10, False)) == pytest.approx(0.017783 / 1000, rel=1e-4)


def test_leak_break_split_is_80_20_under_shaking() -> None:
    assert load_fragility().pipes.leak_fraction == 0.8


def test_ala2001_model_reproduces_wntr_reference() -> None:
    cfg = load_fragility()
    ala = cfg.model_copy(update={"pipes": cfg.pipes.model_copy(update={"model": "ala2001"})})
    assert float(pipe_repair_rate_per_m(0.0531, False, ala)) == pytest.approx(1.2823e-5, rel=1e-4)
    assert float(pipe_repair_rate_per_m(0.0531, True, ala)) == pytest.approx(
        0.5 * 1.2823e-5, rel=1e-4
    )


def test_hazus_fragility_values_are_the_published_ones() -> None:
    c = load_fragility().curves
    assert c["EP.S.L.U"].medians == [0.13, 0.26, 0.34, 0.74] and c["EP.S.L.U"].betas == [
        0.65,
        0.5,
        0.4,
        0.4,
    ]
    assert c["HWB.GS.10"].im == "sa1_g" and c["HWB.GS.10"].medians == [0.6, 0.9, 1.1, 1.5]
    # at the median of a state, half of the assets exceed it
    p = c["EP.S.L.U"].exceedance(np.array([0.26]))
    assert p[0, 1] == pytest.approx(0.5)
    assert (np.diff(p, axis=-1) <= 0).all()


@settings(max_examples=50, deadline=None)
@given(im=st.floats(0.0, 5.0))
def test_exceedance_is_ordered_by_state(im: float) -> None:
    for curve in load_fragility().curves.values():
        p = curve.exceedance(np.array([im]))[0]
        assert (np.diff(p) <= 0).all() and ((p >= 0) & (p <= 1)).all()


# -- the demo city's exposure ---------------------------------------------------------------
def test_exposure_of_the_demo_city(exposure: Exposure, city: City) -> None:
    models = dict(zip(*np.unique(exposure.model, return_counts=True), strict=True))
    water_pipes = sum(1 for link in city.networks["water"].links.values() if link.kind == "pipe")
    assert models["EP.S.L.U"] == 2 and models["EP.C.U"] == 147 and models["HWB.GS.10"] == 2
    is_water = np.array([u.startswith("water:") for u in exposure.uids])
    assert (exposure.model[is_water] == PIPE).sum() == water_pipes
    # the documented assumption: Hazen-Williams C >= 130 is ductile (L-Town: 786 x C 140, 119 x C 120)
    assert int((~exposure.ductile[is_water]).sum()) == 119
    # PE gas mains are ductile
    is_gas = np.array([u.startswith("gas:") for u in exposure.uids])
    assert exposure.ductile[is_gas].all()
    assert (exposure.length_m[exposure.model == PIPE] > 0).all()


# -- sampling ---------------------------------------------------------------------------------
def test_sample_shape_and_reproducibility(exposure: Exposure, city: City) -> None:
    im = strong_quake(city).intensities(exposure.lon, exposure.lat)
    a = sample_damage(exposure, im, np.random.default_rng(42), n_realizations=50)
    b = sample_damage(exposure, im, np.random.default_rng(42), n_realizations=50)
    c = sample_damage(exposure, im, np.random.default_rng(43), n_realizations=50)
    assert a.state.shape == (50, len(exposure)) == a.repair_hours.shape
    np.testing.assert_array_equal(a.state, b.state)
    np.testing.assert_array_equal(a.leaks, b.leaks)
    assert not np.array_equal(a.state, c.state)
    # an int seed is the same as a Generator made from it
    np.testing.assert_array_equal(
        sample_damage(exposure, im, 42, n_realizations=50).breaks, a.breaks
    )
    # realizations differ from each other
    assert not np.array_equal(a.state[0], a.state[1])


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32), perm_seed=st.integers(0, 2**32))
def test_damage_is_independent_of_asset_order(
    exposure: Exposure, city: City, seed: int, perm_seed: int
) -> None:
    sub = exposure.take(np.random.default_rng(perm_seed).choice(len(exposure), 300, replace=False))
    im = strong_quake(city).intensities(sub.lon, sub.lat)
    perm = np.random.default_rng(perm_seed + 1).permutation(len(sub))
    a = sample_damage(sub, im, seed, n_realizations=5)
    b = sample_damage(sub.take(perm), {k: v[perm] for k, v in im.items()}, seed, n_realizations=5)
    np.testing.assert_array_equal(a.state[:, perm], b.state)
    np.testing.assert_array_equal(a.breaks[:, perm], b.breaks)
    np.testing.assert_array_equal(a.repair_hours[:, perm], b.repair_hours)


def test_pipe_repairs_are_poisson_with_the_rate_times_length(
    exposure: Exposure, city: City
) -> None:
    im = strong_quake(city, 6.0).intensities(exposure.lon, exposure.lat)
    lam = expected_pipe_repairs(exposure, im["pgv_ms"])
    s = sample_damage(exposure, im, 7, n_realizations=400)
    pipes = exposure.model == PIPE
    repairs = (s.leaks + s.breaks)[:, pipes].sum(axis=1)
    total = lam[pipes].sum()
    # the city total is Poisson(sum of lambda): its mean within 4 standard errors
    assert abs(repairs.mean() - total) < 4 * np.sqrt(total / 400)
    # the leak share is 80 %
    share = s.leaks[:, pipes].sum() / max(1, (s.leaks + s.breaks)[:, pipes].sum())
    assert share == pytest.approx(0.8, abs=0.03)
    # state and repair hours follow the repairs
    st_ = s.state[:, pipes]
    assert ((st_ == 2) == (s.breaks[:, pipes] > 0)).all()
    assert ((st_ == 1) == ((s.breaks[:, pipes] == 0) & (s.leaks[:, pipes] > 0))).all()
    np.testing.assert_allclose(
        s.repair_hours[:, pipes], 8 * s.leaks[:, pipes] + 16 * s.breaks[:, pipes]
    )


def test_fragility_states_match_the_lognormal_probabilities(exposure: Exposure) -> None:
    cols = np.flatnonzero(exposure.model == "EP.C.U")
    sub = exposure.take(cols)
    pga = np.full(len(sub), 0.33)  # the 'moderate' median of distribution circuits
    s = sample_damage(sub, {"pga_g": pga}, 3, n_realizations=2000)
    frac = (s.state >= 2).mean()
    assert frac == pytest.approx(0.5, abs=0.02)
    expected_slight = stats.norm.cdf(np.log(0.33 / 0.24) / 0.25)
    assert (s.state >= 1).mean() == pytest.approx(expected_slight, abs=0.02)
    hours = {0: 0.0, 1: 7.2, 2: 24.0, 3: 72.0, 4: 168.0}
    for k, h in hours.items():
        assert (s.repair_hours[s.state == k] == h).all()


def test_no_shaking_no_damage_and_strong_shaking_damages(exposure: Exposure, city: City) -> None:
    zero = {k: np.zeros(len(exposure)) for k in ("pga_g", "pgv_ms", "sa1_g")}
    s0 = sample_damage(exposure, zero, 1, n_realizations=3)
    assert (s0.state == 0).all() and s0.records(0) == []
    s = sample_damage(exposure, strong_quake(city, 7.5).intensities(exposure.lon, exposure.lat), 1)
    rows = s.records(0)
    assert rows and {"uid", "model", "state", "leaks", "breaks", "repair_hours"} <= set(rows[0])
    assert any(r["model"] == "EP.S.L.U" for r in rows)


def test_intensities_per_realization_are_accepted(exposure: Exposure) -> None:
    sub = exposure.take(np.flatnonzero(exposure.model == "EP.C.U"))
    pga = np.stack([np.zeros(len(sub)), np.full(len(sub), 3.0)])
    s = sample_damage(sub, {"pga_g": pga}, 5, n_realizations=2)
    assert (s.state[0] == 0).all() and (s.state[1] == 4).all()


def test_bad_inputs_are_reported(exposure: Exposure) -> None:
    with pytest.raises(HazardError, match="intensity 'pgv_ms' is needed"):
        sample_damage(exposure, {"pga_g": np.zeros(len(exposure))}, 1)
    with pytest.raises(HazardError, match="has shape"):
        sample_damage(
            exposure, {"pga_g": np.zeros(3), "pgv_ms": np.zeros(3), "sa1_g": np.zeros(3)}, 1
        )
    with pytest.raises(HazardError, match="n_realizations must be at least 1"):
        sample_damage(exposure, {}, 1, n_realizations=0)


def test_fragility_config_errors_name_the_field() -> None:
    from importlib import resources

    import yaml

    data = yaml.safe_load(
        resources.files("rescity.simulate").joinpath("config", "fragility.yaml").read_text()
    )
    bad = dict(data)
    bad["curves"] = dict(data["curves"]) | {
        "X": {"im": "pga_g", "medians": [0.5, 0.2, 0.6, 0.9], "betas": [0.5] * 4}
    }
    with pytest.raises(DamageConfigError, match="curves.X.medians.*must not decrease"):
        load_fragility(bad)
    bad = dict(data) | {
        "assignments": [{"network_type": "power", "kinds": ["substation"], "curve": "nope"}]
    }
    with pytest.raises(DamageConfigError, match="unknown curve 'nope'"):
        load_fragility(bad)


@settings(max_examples=30, deadline=None)
@given(
    lam=st.floats(0.0, 40.0),
    n=st.integers(0, 30),
    p=st.floats(0.01, 0.99),
    u=st.floats(1e-9, 1 - 1e-9),
)
def test_inverse_cdfs_match_scipy(lam: float, n: int, p: float, u: float) -> None:
    got = int(poisson_ppf(np.array([u]), np.array([lam]))[0])
    want = 0 if lam == 0 else int(stats.poisson.ppf(u, lam))
    assert abs(got - want) <= 1 and (got == want or abs(stats.poisson.cdf(want, lam) - u) < 1e-9)
    got_b = int(binom_ppf(np.array([u]), np.array([n]), p)[0])
    want_b = 0 if n == 0 else int(stats.binom.ppf(u, n, p))
    assert got_b == want_b or abs(stats.binom.cdf(want_b, n, p) - u) < 1e-9
