"""Offline detection for evaluation: run a model over the columns of a table.

``rescity detect --input FILE.csv --timestamp-column T [--value-columns A,B] [--model NAME]
--out OUT.csv`` writes, per timestamp, for every series ``<col>_score`` (anomaly score in
[0, 1]) and ``<col>_level`` (0 none, 4 blue, 3 yellow, 2 orange, 1 red: level 1 = red is
the highest), plus ``alarm`` (1 when any series has a level, else 0). Detection is causal:
the row at time t uses only rows up to t, exactly as online.

Models: ``seasonal`` (default: :mod:`rescity.monitor.models.anomaly`, learns the daily
and weekly pattern online) and ``windowed_gaussian`` (NAB's baseline, for comparison).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .models.anomaly import grade, score_many
from .nab import windowed_gaussian

MODELS = ("seasonal", "windowed_gaussian")


def read_series_table(path: Path, timestamp_column: str,
                      value_columns: list[str] | None = None) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """The table, its timestamps (ms UTC; naive times are taken as UTC) and the value
    columns (all numeric columns but the timestamp by default). Errors name the file
    and the column."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    df = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path)
    if timestamp_column not in df.columns:
        raise ValueError(f"{path}: no timestamp column {timestamp_column!r} "
                         f"(columns: {', '.join(map(str, df.columns))})")
    ts = pd.to_datetime(df[timestamp_column], utc=True, errors="coerce", format="mixed")
    bad = ts.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0]) + 2  # header is line 1
        raise ValueError(f"{path}, line {row}: column {timestamp_column!r} has no valid timestamp")
    ts_ms = (ts.astype("int64") // 1_000_000).to_numpy()
    if np.any(np.diff(ts_ms) < 0):
        raise ValueError(f"{path}: column {timestamp_column!r} is not in time order")
    if value_columns is None:
        value_columns = [c for c in df.columns if c != timestamp_column
                         and pd.api.types.is_numeric_dtype(df[c])]
    for c in value_columns:
        if c not in df.columns:
            raise ValueError(f"{path}: no value column {c!r} (columns: {', '.join(map(str, df.columns))})")
    if not value_columns:
        raise ValueError(f"{path}: no numeric value columns")
    return df, ts_ms, value_columns


def detect(df: pd.DataFrame, ts_ms: np.ndarray, columns: list[str], model: str = "seasonal") -> pd.DataFrame:
    """Scores, levels and the combined alarm column (see module docstring)."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; expected one of {', '.join(MODELS)}")
    values = [pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float) for c in columns]
    if model == "seasonal":
        scores = score_many([(ts_ms, v) for v in values])
    else:
        scores = [windowed_gaussian(np.nan_to_num(v, nan=float(np.nanmean(v)))) for v in values]
    out = pd.DataFrame({"timestamp": pd.to_datetime(ts_ms, unit="ms", utc=True)})
    any_level = np.zeros(len(df), dtype=bool)
    for c, s in zip(columns, scores, strict=True):
        lv = grade(s)
        out[f"{c}_score"] = np.round(s, 6)
        out[f"{c}_level"] = lv
        any_level |= lv > 0
    out["alarm"] = any_level.astype(int)
    return out


def detect_file(path: Path, out: Path, timestamp_column: str, value_columns: list[str] | None = None,
                model: str = "seasonal") -> pd.DataFrame:
    df, ts_ms, cols = read_series_table(path, timestamp_column, value_columns)
    result = detect(df, ts_ms, cols, model)
    result.to_csv(out, index=False)
    return result
