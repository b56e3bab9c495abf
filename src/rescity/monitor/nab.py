"""The Numenta Anomaly Benchmark (NAB) scorer, written from the benchmark's published rules.

NAB v1 (Lavin & Ahmad 2015; Ahmad et al. 2017) scores a detector that emits an anomaly
score in [0, 1] for every record of 58 labelled time series. Our implementation follows the
rules of ``nab/sweeper.py``, ``nab/optimizer.py`` and ``nab/runner.py`` (read, not copied):

* **Detections.** A record is a detection when its anomaly score is ``>= threshold``.
* **Probation.** The first ``min(floor(0.15 * n), 0.15 * 5000)`` records of each file are
  ignored (neither detections nor misses; a window lying wholly inside is not scored).
* **Windows.** Each labelled anomaly window ``[start, end]`` (record indices, inclusive, width
  ``w = end - start + 1``) is worth ``tp_weight * sigma(-(end - i + 1) / w) / sigma(-1)`` for
  a detection at record ``i`` inside it, where ``sigma(x) = 2 / (1 + exp(5 x)) - 1`` is the
  scaled sigmoid (1.0 for the earliest record, falling towards 0 at the right edge). Only the
  best, i.e. the *first*, detection in a window counts; a window without detection costs
  ``-fn_weight``.
* **False positives.** Every detection outside windows costs ``fp_weight * sigma(d)`` (a
  negative number) with ``d = (i - end_prev) / (w_prev - 1)`` measured from the right edge
  of the preceding window, ``sigma = -1`` for ``d > 3`` or when no window precedes.
* **Threshold.** For each profile one threshold is chosen for the whole corpus, the one that
  maximises the summed raw score (:func:`sweep_corpus` evaluates every distinct score).
* **Normalisation.** ``score = 100 (raw - raw_null) / (raw_perfect - raw_null)`` with
  ``raw_null`` the raw score of the null detector (constant 0.5, i.e. ``-fn_weight`` times the
  number of scorable windows) and ``raw_perfect = tp_weight * (number of windows)``.

Profiles (``config/profiles.json``): ``standard`` (fp 0.11, fn 1), ``reward_low_FP_rate``
(fp 0.22, fn 1), ``reward_low_FN_rate`` (fp 0.11, fn 2); ``tp_weight`` = 1 in all three.

The reference detector :func:`windowed_gaussian` reproduces NAB's "windowed Gaussian"
baseline (window 6400 records, step 100) in vectorised form.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import erfc

from rescity.monitor.datasets import dataset_dir

DEFAULT_ROOT = dataset_dir("nab")
PROBATION_PERCENT = 0.15
PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


@dataclass(frozen=True, slots=True)
class CostMatrix:
    """Weights of one NAB application profile."""

    tp_weight: float
    fp_weight: float
    fn_weight: float

    @classmethod
    def from_json(cls, d: Mapping[str, float]) -> CostMatrix:
        return cls(float(d["tpWeight"]), float(d["fpWeight"]), float(d["fnWeight"]))


@dataclass(slots=True)
class NabFile:
    """One NAB series: ``name`` is the corpus-relative path (``realTraffic/speed_6005.csv``),
    ``windows`` the labelled anomaly windows as inclusive record-index pairs."""

    name: str
    timestamps: np.ndarray  # datetime64[ns]
    values: np.ndarray  # float64
    windows: list[tuple[int, int]] = field(default_factory=list)

    @property
    def ts_ms(self) -> np.ndarray:
        """Timestamps as int64 milliseconds since the epoch (the monitor's time unit)."""
        return self.timestamps.astype("datetime64[ms]").astype(np.int64)

    def __len__(self) -> int:
        return len(self.values)


# --------------------------------------------------------------------------- loading


def load_profiles(root: Path | str = DEFAULT_ROOT) -> dict[str, CostMatrix]:
    """The cost matrices of ``config/profiles.json``."""
    path = Path(root) / "config" / "profiles.json"
    with open(path) as f:
        raw = json.load(f)
    return {name: CostMatrix.from_json(p["CostMatrix"]) for name, p in raw.items()}


def load_corpus(
    root: Path | str = DEFAULT_ROOT, labels: str = "labels/combined_windows.json"
) -> list[NabFile]:
    """All series of ``data/*/*.csv`` with their windows, sorted by name.

    Raises ``ValueError`` when a window edge is not a timestamp of its file (NAB requires
    exact matches) and ``FileNotFoundError`` naming the paths searched.
    """
    root = Path(root)
    label_path = root / labels
    if not label_path.is_file():
        raise FileNotFoundError(f"NAB labels not found: searched {label_path}")
    with open(label_path) as f:
        windows = json.load(f)
    files = sorted((root / "data").glob("*/*.csv"))
    if not files:
        raise FileNotFoundError(f"no NAB data files: searched {root / 'data'}/*/*.csv")
    corpus = []
    for path in files:
        name = f"{path.parent.name}/{path.name}"
        df = pd.read_csv(path)
        ts = pd.to_datetime(df["timestamp"]).to_numpy(dtype="datetime64[ns]")
        idx = []
        for start, end in windows.get(name, []):
            pair = []
            for edge in (start, end):
                t = pd.Timestamp(edge).to_datetime64().astype("datetime64[ns]")
                hit = np.flatnonzero(ts == t)
                if len(hit) != 1:
                    raise ValueError(
                        f"{label_path}: window edge {edge} is not a timestamp of {name}"
                    )
                pair.append(int(hit[0]))
            idx.append((pair[0], pair[1]))
        corpus.append(NabFile(name, ts, df["value"].to_numpy(dtype=np.float64), idx))
    return corpus


# --------------------------------------------------------------------------- rules


def probation_length(n: int, percent: float = PROBATION_PERCENT) -> int:
    """Records at the start of a file that are not scored: ``min(floor(p n), p 5000)``."""
    return int(math.ceil(min(math.floor(percent * n), percent * 5000)))


def scaled_sigmoid(x: np.ndarray | float) -> np.ndarray:
    """``2 / (1 + exp(5 x)) - 1``, and exactly -1 for ``x > 3`` (NAB's cut-off)."""
    x = np.asarray(x, dtype=np.float64)
    val = 2.0 / (1.0 + np.exp(np.clip(5.0 * x, -700, 700))) - 1.0
    return np.where(x > 3.0, -1.0, val)


@dataclass(frozen=True, slots=True)
class _Points:
    """Per-record scoring parts of one file (profile independent)."""

    window: np.ndarray  # int: window index within the file, -1 outside windows
    tp_value: np.ndarray  # in-window reward / tp_weight (1.0 at the left edge)
    fp_value: np.ndarray  # out-of-window value / fp_weight (in [-1, 0])
    scorable: np.ndarray  # bool: after the probationary period


def _points(n: int, windows: Sequence[tuple[int, int]], probation: float) -> _Points:
    i = np.arange(n)
    window = np.full(n, -1, dtype=np.int64)
    tp_value = np.zeros(n)
    fp_value = np.full(n, -1.0)
    max_tp = float(scaled_sigmoid(-1.0))
    prev_end = -1
    prev_width = 0.0
    bounds = [*windows, (n, n)]
    for k, (start, end) in enumerate(bounds):
        # the stretch after the previous window and before this one: false positives
        gap = slice(prev_end + 1, start)
        if prev_end >= 0:
            fp_value[gap] = scaled_sigmoid(np.abs(i[gap] - prev_end) / (prev_width - 1.0))
        if start >= n:
            break
        width = float(end - start + 1)
        sl = slice(start, end + 1)
        window[sl] = k
        tp_value[sl] = scaled_sigmoid(-(end - i[sl] + 1) / width) / max_tp
        prev_end, prev_width = end, width
    scorable = i >= probation_length(n, probation)
    return _Points(window, tp_value, fp_value, scorable)


# --------------------------------------------------------------------------- sweep


@dataclass(frozen=True, slots=True)
class ProfileResult:
    """Outcome of one profile: best threshold, raw and normalised score, counts at it."""

    profile: str
    threshold: float
    raw: float
    null: float
    perfect: float
    tp_windows: int
    fn_windows: int
    fp_records: int

    @property
    def score(self) -> float:
        """``100 (raw - null) / (perfect - null)``."""
        return 100.0 * (self.raw - self.null) / (self.perfect - self.null)


@dataclass(frozen=True, slots=True)
class Sweep:
    """Raw corpus score for every candidate threshold (descending thresholds)."""

    thresholds: np.ndarray
    raw: np.ndarray
    tp_windows: np.ndarray
    fp_records: np.ndarray
    n_windows: int  # windows with at least one scorable record

    def best(self) -> int:
        """Index of the best threshold (the highest threshold among ties, as NAB's sort)."""
        return int(np.argmax(self.raw))

    def at(self, threshold: float) -> int:
        """Index of the entry whose detections are the records with score >= ``threshold``."""
        k = int(np.searchsorted(-self.thresholds, -threshold, side="right")) - 1
        return max(k, 0)


def _collect(
    files: Sequence[NabFile], scores: Sequence[np.ndarray], probation: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    if len(files) != len(scores):
        raise ValueError(
            f"expected one score array per file: {len(files)} files, {len(scores)} arrays"
        )
    s_all, w_all, tp_all, fp_all = [], [], [], []
    offset = 0
    for f, s in zip(files, scores, strict=True):
        s = np.asarray(s, dtype=np.float64)
        if s.shape != (len(f),):
            raise ValueError(f"{f.name}: expected {len(f)} scores, found shape {s.shape}")
        if np.any(~np.isfinite(s)) or np.any((s < 0) | (s > 1)):
            raise ValueError(f"{f.name}: anomaly scores must be finite and in [0, 1]")
        p = _points(len(f), f.windows, probation)
        m = p.scorable
        w = p.window[m]
        s_all.append(s[m])
        w_all.append(np.where(w >= 0, w + offset, -1))
        tp_all.append(p.tp_value[m])
        fp_all.append(p.fp_value[m])
        offset += len(f.windows)
    return (
        np.concatenate(s_all),
        np.concatenate(w_all),
        np.concatenate(tp_all),
        np.concatenate(fp_all),
        offset,
    )


def sweep_corpus(
    files: Sequence[NabFile],
    scores: Sequence[np.ndarray],
    cost: CostMatrix,
    probation: float = PROBATION_PERCENT,
) -> Sweep:
    """The corpus raw score at every distinct threshold (plus 1.1: no detection at all).

    Records are ranked by decreasing anomaly score; lowering the threshold past a record adds
    ``fp_weight * fp_value`` if it lies outside windows, or raises its window's value to the
    best ``tp_weight * tp_value`` seen (the first detection) if inside.
    """
    s, w, tp, fp, n_win_total = _collect(files, scores, probation)
    order = np.argsort(-s, kind="stable")
    s, w, tp, fp = s[order], w[order], tp[order], fp[order]
    scorable_windows = np.unique(w[w >= 0])
    n_windows = len(scorable_windows)

    inc = np.where(w < 0, cost.fp_weight * fp, 0.0)
    new_tp = np.zeros(len(s), dtype=np.int64)
    inwin = np.flatnonzero(w >= 0)
    if len(inwin):
        # group the in-window records by window, keeping the rank order inside each group
        g = inwin[np.argsort(w[inwin], kind="stable")]
        wg = w[g]
        val = cost.tp_weight * tp[g]
        starts = np.r_[0, np.flatnonzero(np.diff(wg)) + 1]
        run_max = val.copy()
        for a, b in zip(starts, np.r_[starts[1:], len(g)], strict=True):
            run_max[a:b] = np.maximum.accumulate(val[a:b])
        prev = np.empty_like(run_max)
        prev[1:] = run_max[:-1]
        prev[starts] = -cost.fn_weight
        inc[g] += run_max - prev
        new_tp[g[starts]] = 1
    base = -cost.fn_weight * n_windows
    cum = base + np.cumsum(inc)
    cum_tp = np.cumsum(new_tp)
    cum_fp = np.cumsum(w < 0)
    # a threshold equal to a score value detects every record with that score: evaluate at
    # the last record of each run of ties
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1] if len(s) else np.array([], int)
    return Sweep(
        thresholds=np.r_[1.1, s[last]],
        raw=np.r_[base, cum[last]],
        tp_windows=np.r_[0, cum_tp[last]],
        fp_records=np.r_[0, cum_fp[last]],
        n_windows=n_windows,
    )


def null_raw(
    files: Sequence[NabFile], cost: CostMatrix, probation: float = PROBATION_PERCENT
) -> float:
    """Raw score of NAB's null detector (constant 0.5) at its own best threshold."""
    sw = sweep_corpus(files, [np.full(len(f), 0.5) for f in files], cost, probation)
    return float(sw.raw[sw.best()])


def perfect_raw(files: Sequence[NabFile], cost: CostMatrix) -> float:
    """Raw score of the perfect detector: ``tp_weight`` times the number of windows."""
    return cost.tp_weight * sum(len(f.windows) for f in files)


def score_corpus(
    files: Sequence[NabFile],
    scores: Sequence[np.ndarray],
    profiles: Mapping[str, CostMatrix] | None = None,
    threshold: float | Mapping[str, float] | None = None,
    probation: float = PROBATION_PERCENT,
) -> dict[str, ProfileResult]:
    """NAB scores of a detector for every profile.

    With ``threshold=None`` each profile's threshold is optimised over the corpus, as NAB's
    optimiser does; otherwise the given threshold (one for all, or one per profile) is used.
    """
    profiles = dict(profiles) if profiles is not None else load_profiles()
    out = {}
    for name, cost in profiles.items():
        sw = sweep_corpus(files, scores, cost, probation)
        if threshold is None:
            k = sw.best()
        else:
            t = threshold[name] if isinstance(threshold, Mapping) else threshold
            k = sw.at(float(t))
        out[name] = ProfileResult(
            profile=name,
            threshold=float(sw.thresholds[k]),
            raw=float(sw.raw[k]),
            null=-cost.fn_weight * sw.n_windows,
            perfect=perfect_raw(files, cost),
            tp_windows=int(sw.tp_windows[k]),
            fn_windows=int(sw.n_windows - sw.tp_windows[k]),
            fp_records=int(sw.fp_records[k]),
        )
    return out


def perfect_scores(files: Sequence[NabFile]) -> list[np.ndarray]:
    """Scores of a perfect detector: 1 on the first record of every window, 0 elsewhere."""
    out = []
    for f in files:
        s = np.zeros(len(f))
        for start, _ in f.windows:
            s[start] = 1.0
        out.append(s)
    return out


def as_stored(scores: np.ndarray) -> np.ndarray:
    """Scores rounded to 12 significant digits, as NAB's published result files store them.

    The published scoreboard was computed from those files; the rounding turns tail
    probabilities such as ``1 - 1e-13`` into ties at 1.0, which moves the optimised threshold.
    Apply it to every detector before comparing with published numbers.
    """
    s = np.asarray(scores, dtype=np.float64)
    return np.array([float(f"{v:.12g}") for v in s.ravel()]).reshape(s.shape)


# --------------------------------------------------------------------------- baseline


def windowed_gaussian(values: np.ndarray, window: int = 6400, step: int = 100) -> np.ndarray:
    """NAB's windowed-Gaussian baseline, vectorised and causal.

    Record ``t`` is scored ``1 - Q(|x_t - m| / sd)`` (``Q`` the Gaussian tail,
    ``Q(z) = erfc(z / sqrt 2) / 2``) with ``m``, ``sd`` (population) of the records in the
    window before it: all earlier records while fewer than ``window`` have been seen, then the
    last full window, slid forward by ``step`` records once ``step`` new records have arrived.
    ``sd = 0`` is replaced by 1e-6. The first record scores 0.
    """
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    out = np.zeros(n)
    if n < 2:
        return out
    t = np.arange(n)
    lo = np.zeros(n, dtype=np.int64)
    hi = t.copy()
    full = t >= window
    k = (t[full] - window) // step
    lo[full] = k * step
    hi[full] = window + k * step
    shift = x[0]
    c1 = np.r_[0.0, np.cumsum(x - shift)]
    c2 = np.r_[0.0, np.cumsum((x - shift) ** 2)]
    cnt = (hi - lo).astype(np.float64)
    ok = cnt > 0
    mean = np.zeros(n)
    var = np.zeros(n)
    mean[ok] = (c1[hi[ok]] - c1[lo[ok]]) / cnt[ok]
    var[ok] = (c2[hi[ok]] - c2[lo[ok]]) / cnt[ok] - mean[ok] ** 2
    sd = np.sqrt(np.maximum(var, 0.0))
    sd[sd < 1e-9 * max(1.0, float(np.abs(x - shift).max()))] = 0.0
    sd[sd == 0.0] = 1e-6
    z = np.abs(x - shift - mean) / sd
    out[ok] = 1.0 - 0.5 * erfc(z[ok] / math.sqrt(2.0))
    return out
