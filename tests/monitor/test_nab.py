"""The NAB scorer follows the benchmark's rules (checked against a plain loop and by hand)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rescity.monitor import nab

STD = nab.CostMatrix(tp_weight=1.0, fp_weight=0.11, fn_weight=1.0)
PROFILES = {
    "standard": STD,
    "reward_low_FP_rate": nab.CostMatrix(1.0, 0.22, 1.0),
    "reward_low_FN_rate": nab.CostMatrix(1.0, 0.11, 2.0),
}


def _file(n: int, windows: list[tuple[int, int]], name: str = "x/f.csv") -> nab.NabFile:
    ts = np.datetime64("2020-01-01T00:00") + np.arange(n) * np.timedelta64(5, "m")
    return nab.NabFile(name, ts.astype("datetime64[ns]"), np.zeros(n), windows)


def _sig(x: float) -> float:
    return -1.0 if x > 3 else 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def _naive_raw(files, scores, threshold, cost) -> float:  # type: ignore[no-untyped-def]
    """The rules written as a plain loop, one record at a time."""
    total = 0.0
    for f, s in zip(files, scores, strict=True):
        n = len(f)
        prob = min(math.floor(0.15 * n), 0.15 * 5000)
        best: dict[int, float] = {}
        prev_end: int | None = None
        prev_w = 0
        for i in range(n):
            win = next((k for k, (a, b) in enumerate(f.windows) if a <= i <= b), None)
            if win is not None:
                a, b = f.windows[win]
                w = b - a + 1
                val = cost.tp_weight * _sig(-(b - i + 1) / w) / _sig(-1.0)
            elif prev_end is None:
                val = -cost.fp_weight
            else:
                val = cost.fp_weight * _sig(abs(prev_end - i) / (prev_w - 1))
            if i >= prob:
                if win is not None:
                    best.setdefault(win, -cost.fn_weight)
                    if s[i] >= threshold:
                        best[win] = max(best[win], val)
                elif s[i] >= threshold:
                    total += val
            if win is not None and i == f.windows[win][1]:
                prev_end, prev_w = i, f.windows[win][1] - f.windows[win][0] + 1
        total += sum(best.values())
    return total


def test_hand_computed_raw_score_of_a_small_file() -> None:
    f = _file(100, [(40, 49)])  # probation: first 15 records
    s = np.zeros(100)
    s[[5, 20, 40, 45, 60]] = 1.0  # 5: probation, 20: FP before, 40/45: in window, 60: FP after
    res = nab.score_corpus([f], [s], {"standard": STD}, threshold=0.5)["standard"]
    expected = -0.11 + 1.0 + 0.11 * _sig((60 - 49) / 9)
    assert res.raw == pytest.approx(expected, abs=1e-12)
    assert (res.tp_windows, res.fn_windows, res.fp_records) == (1, 0, 2)


def test_only_the_first_detection_in_a_window_counts() -> None:
    f = _file(100, [(40, 49)])
    early, both, late = np.zeros(100), np.zeros(100), np.zeros(100)
    early[40] = both[40] = both[45] = late[45] = 1.0
    raw = [
        nab.score_corpus([f], [s], {"s": STD}, threshold=0.5)["s"].raw for s in (early, both, late)
    ]
    assert raw[0] == pytest.approx(1.0) and raw[1] == pytest.approx(1.0)
    assert raw[2] == pytest.approx(_sig(-0.5) / _sig(-1.0))  # halfway: 0.86


def test_detections_in_the_probationary_period_are_ignored() -> None:
    f = _file(100, [(5, 9), (40, 49)])  # first window lies wholly inside probation
    s = np.zeros(100)
    s[:15] = 1.0
    res = nab.score_corpus([f], [s], {"s": STD}, threshold=0.5)["s"]
    assert res.fp_records == 0 and res.raw == pytest.approx(-1.0)  # only the 2nd window, missed
    assert nab.probation_length(100) == 15 and nab.probation_length(20000) == 750


def test_null_detector_scores_zero_and_perfect_detector_100() -> None:
    files = [_file(300, [(100, 119), (200, 229)], "a/1.csv"), _file(500, [(300, 349)], "a/2.csv")]
    null = nab.score_corpus(files, [np.full(len(f), 0.5) for f in files], PROFILES)
    perfect = nab.score_corpus(files, nab.perfect_scores(files), PROFILES)
    for name in PROFILES:
        assert null[name].score == pytest.approx(0.0)
        assert perfect[name].score == pytest.approx(100.0)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=120, max_size=120), st.sampled_from(list(PROFILES)))
def test_threshold_sweep_matches_a_plain_loop_and_picks_the_best(scores, profile) -> None:  # type: ignore[no-untyped-def]
    files = [_file(60, [(20, 29)], "a/1.csv"), _file(60, [(10, 14), (40, 49)], "a/2.csv")]
    sc = [np.round(np.array(scores[:60]), 1), np.round(np.array(scores[60:]), 1)]
    cost = PROFILES[profile]
    sweep = nab.sweep_corpus(files, sc, cost)
    for t, raw in zip(sweep.thresholds, sweep.raw, strict=True):
        assert raw == pytest.approx(_naive_raw(files, sc, t, cost), abs=1e-9)
    best = nab.score_corpus(files, sc, {profile: cost})[profile]
    brute = max(_naive_raw(files, sc, t, cost) for t in [1.1, *np.unique(np.concatenate(sc))])
    assert best.raw == pytest.approx(brute, abs=1e-9)


def test_windowed_gaussian_matches_its_definition() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=300)
    got = nab.windowed_gaussian(x, window=40, step=10)
    want = np.zeros(300)
    data: list[float] = []
    buf: list[float] = []
    mean, sd = 0.0, 1.0
    for i, v in enumerate(x):
        if data:
            want[i] = 1.0 - 0.5 * math.erfc(abs(v - mean) / sd / math.sqrt(2))
        if len(data) < 40:
            data.append(v)
            mean, sd = float(np.mean(data)), float(np.std(data)) or 1e-6
        else:
            buf.append(v)
            if len(buf) == 10:
                data = data[10:] + buf
                buf = []
                mean, sd = float(np.mean(data)), float(np.std(data)) or 1e-6
    np.testing.assert_allclose(got, want, atol=1e-9)


NAB_ROOT = nab.DEFAULT_ROOT


@pytest.mark.skipif(not (Path(NAB_ROOT) / "labels").is_dir(), reason="NAB dataset not available")
def test_real_nab_file_loads_with_windows_on_its_timestamps() -> None:
    files = [f for f in nab.load_corpus(NAB_ROOT) if f.name == "realKnownCause/nyc_taxi.csv"]
    (f,) = files
    assert len(f) == 10320 and len(f.windows) == 5
    assert all(0 <= a < b < len(f) for a, b in f.windows)
    res = nab.score_corpus([f], nab.perfect_scores([f]))
    assert res["standard"].score == pytest.approx(100.0)
