"""Decoding messages and files into columnar batches; what cannot be decoded becomes a
dead letter with its reason.

MQTT topics are ``rescity/<network>/<sensor-id>``; payloads are JSON:

* one reading: ``{"ts": 1700000000000, "value": 41.2}``
* several readings of that sensor: ``[{"ts": ..., "value": ...}, ...]``
* a gateway batch (any topic ``rescity/<network>/_batch``), columnar and compact:
  ``{"sensor": ["water.n1.pressure", ...], "ts": [ms, ...], "value": [v, ...]}``;
  ``ts`` may also be given as ``"t0"`` plus ``"dt"`` offsets (ms), which keeps a
  gateway's payload small.

``ts`` is milliseconds since the epoch (UTC) as a number, or an ISO 8601 string with a
zone (``2026-11-22T03:00:00Z``). Values are in the sensor's SI unit.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from .batch import ReadingBatch
from .registry import SensorRegistry
from .validate import DeadLetter, Reason

TOPIC_PREFIX = "rescity"
BATCH_SUFFIX = "_batch"


class Decoded:
    """A decoded batch plus the dead letters found while decoding."""

    __slots__ = ("batch", "dead")

    def __init__(self, batch: ReadingBatch, dead: list[DeadLetter]) -> None:
        self.batch = batch
        self.dead = dead


def parse_ts(raw: Any) -> int:
    """A timestamp as int milliseconds UTC; raises ValueError with what was found."""
    if isinstance(raw, bool):
        raise ValueError(f"timestamp must be ms since the epoch or ISO 8601, got {raw!r}")
    if isinstance(raw, int | float):
        if raw != raw or raw in (float("inf"), float("-inf")):
            raise ValueError(f"timestamp is not finite: {raw!r}")
        return int(raw)
    if isinstance(raw, str):
        try:
            dt = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"timestamp {raw!r} is not ISO 8601") from None
        if dt.tzinfo is None:
            raise ValueError(f"timestamp {raw!r} has no time zone")
        return int(dt.timestamp() * 1000)
    raise ValueError(f"timestamp must be ms since the epoch or ISO 8601, got {type(raw).__name__}")


def _value(raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise TypeError(f"value must be a number, got {type(raw).__name__}")
    return float(raw)  # may raise ValueError for a non-numeric string; NaN passes on


class Decoder:
    """Turns payloads and rows into :class:`Decoded` batches against a registry."""

    def __init__(self, registry: SensorRegistry, source: str = "mqtt") -> None:
        self.registry = registry
        self.source = source

    def _dead(self, reason: Reason, detail: str, now_ms: int, *, sensor: str | None = None,
              ts: Any = None, value: Any = None, payload: str | None = None) -> DeadLetter:
        ts_ms = ts if isinstance(ts, int) else None
        return DeadLetter(reason, detail, self.source, now_ms, sensor, ts_ms,
                          None if value is None else str(value), payload)

    def rows(self, sensors: Sequence[str], ts: Sequence[Any], values: Sequence[Any],
             now_ms: int) -> Decoded:
        """Rows given as three aligned sequences (ids, raw timestamps, raw values)."""
        idx = self.registry.lookup(sensors)
        dead: list[DeadLetter] = []
        keep_s: list[int] = []
        keep_t: list[int] = []
        keep_v: list[float] = []
        for i, (sid, t, v) in enumerate(zip(sensors, ts, values, strict=True)):
            if idx[i] < 0:
                dead.append(self._dead(Reason.UNKNOWN_SENSOR, f"unknown sensor {sid!r}", now_ms,
                                       sensor=str(sid), value=v))
                continue
            try:
                t_ms = parse_ts(t)
            except ValueError as e:
                dead.append(self._dead(Reason.MALFORMED, f"{sid}: {e}", now_ms, sensor=sid, value=v))
                continue
            try:
                val = _value(v)
            except (TypeError, ValueError):
                dead.append(self._dead(Reason.NOT_NUMERIC, f"{sid}: value {v!r} is not a number",
                                       now_ms, sensor=sid, ts=t_ms, value=v))
                continue
            keep_s.append(int(idx[i]))
            keep_t.append(t_ms)
            keep_v.append(val)
        return Decoded(ReadingBatch.of(keep_s, keep_t, keep_v), dead)

    def columns(self, sensors: Sequence[str], ts: np.ndarray, values: np.ndarray,
                now_ms: int) -> Decoded:
        """Fast path for columnar input already numeric (files, compact payloads)."""
        idx = self.registry.lookup(sensors)
        unknown = idx < 0
        dead = [self._dead(Reason.UNKNOWN_SENSOR, f"unknown sensor {sensors[i]!r}", now_ms,
                           sensor=str(sensors[i]), ts=int(ts[i]), value=float(values[i]))
                for i in np.flatnonzero(unknown).tolist()]
        ok = ~unknown
        return Decoded(ReadingBatch.of(idx[ok], np.asarray(ts)[ok], np.asarray(values)[ok]), dead)

    def message(self, topic: str, payload: bytes | str, now_ms: int) -> Decoded:
        """One MQTT (or NATS) message."""
        text = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else payload
        parts = topic.split("/")
        if len(parts) != 3 or parts[0] != TOPIC_PREFIX or not parts[2]:
            return Decoded(ReadingBatch.empty(), [self._dead(
                Reason.MALFORMED, f"topic {topic!r} is not rescity/<network>/<sensor-id>", now_ms,
                payload=text[:2000])])
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            return Decoded(ReadingBatch.empty(), [self._dead(
                Reason.MALFORMED, f"{topic}: payload is not JSON ({e.msg} at line {e.lineno} column {e.colno})",
                now_ms, sensor=None if parts[2] == BATCH_SUFFIX else parts[2], payload=text[:2000])])
        if parts[2] == BATCH_SUFFIX:
            return self._gateway(topic, doc, text, now_ms)
        sid = parts[2]
        items = doc if isinstance(doc, list) else [doc]
        if not items or not all(isinstance(it, dict) and "ts" in it and "value" in it for it in items):
            return Decoded(ReadingBatch.empty(), [self._dead(
                Reason.MALFORMED, f"{topic}: expected {{\"ts\": ..., \"value\": ...}} or a list of them",
                now_ms, sensor=sid, payload=text[:2000])])
        return self.rows([sid] * len(items), [it["ts"] for it in items],
                         [it["value"] for it in items], now_ms)

    def _gateway(self, topic: str, doc: Any, text: str, now_ms: int) -> Decoded:
        if not isinstance(doc, dict) or "sensor" not in doc or "value" not in doc or (
                "ts" not in doc and "t0" not in doc):
            return Decoded(ReadingBatch.empty(), [self._dead(
                Reason.MALFORMED, f"{topic}: a gateway batch needs 'sensor', 'value' and 'ts' (or 't0' + 'dt')",
                now_ms, payload=text[:2000])])
        sensors, values = doc["sensor"], doc["value"]
        ts = doc.get("ts")
        if ts is None:
            dt = doc.get("dt", [0] * len(sensors))
            if not isinstance(dt, list):
                dt = [dt] * len(sensors)
            try:
                t0 = parse_ts(doc["t0"])
                ts = [t0 + int(d) for d in dt]
            except (TypeError, ValueError) as e:
                return Decoded(ReadingBatch.empty(), [self._dead(
                    Reason.MALFORMED, f"{topic}: bad t0/dt: {e}", now_ms, payload=text[:2000])])
        if not (isinstance(sensors, list) and isinstance(values, list) and isinstance(ts, list)) or not (
                len(sensors) == len(values) == len(ts)):
            return Decoded(ReadingBatch.empty(), [self._dead(
                Reason.MALFORMED, f"{topic}: 'sensor', 'ts' and 'value' must be lists of one length",
                now_ms, payload=text[:2000])])
        try:  # fast path: all numeric
            t_arr = np.asarray(ts, dtype=np.int64)
            v_arr = np.asarray(values, dtype=np.float64)
            if all(isinstance(s, str) for s in sensors) and not any(
                    isinstance(v, bool | str) for v in values):
                return self.columns(sensors, t_arr, v_arr, now_ms)
        except (TypeError, ValueError, OverflowError):
            pass
        return self.rows([str(s) for s in sensors], ts, values, now_ms)


def read_table(path: Path, *, sensor_col: str = "sensor", ts_col: str = "ts",
               value_col: str = "value") -> tuple[list[str], np.ndarray, np.ndarray]:
    """Read a long-format telemetry file (CSV, Parquet or JSON lines) into columns.

    Columns: sensor id, timestamp (ms or ISO 8601), value. Raises ValueError naming the
    file and the missing column.
    """
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix == ".parquet":
        df = pd.read_parquet(path)
    elif suffix in (".jsonl", ".ndjson"):
        df = pd.read_json(path, lines=True)
    elif suffix in (".csv", ".gz"):
        df = pd.read_csv(path)
    else:
        raise ValueError(f"{path}: unknown telemetry format {suffix!r} (csv, parquet, jsonl)")
    for col in (sensor_col, ts_col, value_col):
        if col not in df.columns:
            raise ValueError(f"{path}: no column {col!r} (columns: {', '.join(map(str, df.columns))})")
    ts = df[ts_col]
    if ts.dtype == object or str(ts.dtype).startswith("datetime"):
        ts_ms = (pd.to_datetime(ts, utc=True).astype("int64") // 1_000_000).to_numpy()
    else:
        ts_ms = ts.to_numpy(dtype=np.int64)
    values = pd.to_numeric(df[value_col], errors="coerce").to_numpy(dtype=float)
    return df[sensor_col].astype(str).tolist(), ts_ms, values


def topic_for(network: str, sensor_id: str) -> str:
    return f"{TOPIC_PREFIX}/{network}/{sensor_id}"


def gateway_payload(sensors: Iterable[str], ts: Iterable[int], values: Iterable[float]) -> bytes:
    """The compact columnar payload a gateway publishes on ``rescity/<network>/_batch``."""
    return json.dumps({"sensor": list(sensors), "ts": [int(t) for t in ts],
                       "value": [float(v) for v in values]}, separators=(",", ":")).encode()
