"""`rescity detect`: offline detection over the columns of a table."""

from __future__ import annotations

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from rescity.cli import app


def _table(tmp_path):
    t = pd.date_range("2026-07-01", periods=14 * 96, freq="15min", tz="UTC")
    h = t.hour + t.minute / 60
    rng = np.random.default_rng(1)
    a = np.asarray(40 + 5 * np.sin(2 * np.pi * h / 24) + rng.normal(0, 0.2, len(t)))
    b = 2 + 0.5 * np.cos(2 * np.pi * h / 24) + rng.normal(0, 0.02, len(t))
    spike = 12 * 96 + 40
    a[spike] = 5.0  # a burst: pressure collapses for one reading
    df = pd.DataFrame({"time": t.strftime("%Y-%m-%dT%H:%M:%SZ"), "pressure": a, "flow": b, "note": "x"})
    path = tmp_path / "series.csv"
    df.to_csv(path, index=False)
    return path, spike


def test_detect_flags_the_spike_and_writes_levels(tmp_path):
    path, spike = _table(tmp_path)
    out = tmp_path / "out.csv"
    r = CliRunner().invoke(app, ["detect", "--input", str(path), "--timestamp-column", "time",
                                 "--out", str(out)])
    assert r.exit_code == 0, r.output
    res = pd.read_csv(out)
    assert list(res.columns) == ["timestamp", "pressure_score", "pressure_level", "flow_score",
                                 "flow_level", "alarm"]
    assert res.loc[spike, "alarm"] == 1 and res.loc[spike, "pressure_level"] in (1, 2, 3, 4)
    assert res["alarm"].sum() <= 10  # a clean daily pattern is learnt, not flagged
    assert set(res["pressure_level"].unique()) <= {0, 1, 2, 3, 4}


def test_detect_one_column_and_baseline_model(tmp_path):
    path, spike = _table(tmp_path)
    out = tmp_path / "out.csv"
    r = CliRunner().invoke(app, ["detect", "--input", str(path), "--timestamp-column", "time",
                                 "--value-columns", "flow", "--model", "windowed_gaussian", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert list(pd.read_csv(out).columns) == ["timestamp", "flow_score", "flow_level", "alarm"]


def test_detect_errors_name_the_file_and_column(tmp_path):
    path, _ = _table(tmp_path)
    run = CliRunner().invoke
    r = run(app, ["detect", "--input", str(path), "--timestamp-column", "when", "--out", str(tmp_path / "o.csv")])
    assert r.exit_code == 2 and "when" in r.output and "series.csv" in r.output
    r = run(app, ["detect", "--input", str(path), "--timestamp-column", "time", "--value-columns", "nope",
                  "--out", str(tmp_path / "o.csv")])
    assert r.exit_code == 2 and "nope" in r.output
    r = run(app, ["detect", "--input", str(path), "--timestamp-column", "time", "--model", "magic",
                  "--out", str(tmp_path / "o.csv")])
    assert r.exit_code == 2 and "magic" in r.output
    bad = tmp_path / "bad.csv"
    bad.write_text("time,v\n2026-07-01T00:00:00Z,1\nnot a time,2\n")
    r = run(app, ["detect", "--input", str(bad), "--timestamp-column", "time", "--out", str(tmp_path / "o.csv")])
    assert r.exit_code == 2 and "line 3" in r.output
