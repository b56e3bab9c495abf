"""Damage: intensities at assets -> sampled damage states, reproducible with a seed.

Curves are data (``simulate/config/fragility.yaml``, validated by pydantic), never code:

* **Buried pipes** (water pipes, gas mains, drainage conduits) get a repair rate RR per
  unit length from the peak ground velocity, Hazus (v6.1, section 8.1) by default:
  RR = 0.0001 · PGV^2.25 repairs/km with PGV in cm/s for brittle pipe, × 0.3 for
  ductile pipe; or ALA (2001) by WNTR's ``repair_rate_model`` (linear: RR = K1 · 0.00187
  · PGV in in/s, per 1000 ft). The number of repairs on a pipe of length L is Poisson
  with mean RR · L; each repair is a leak with probability 0.8, else a break (Hazus,
  ground shaking). A pipe's state is ``none``, ``leak`` (leaks only) or ``break``
  (at least one break).
* **Bridges, substations, distribution circuits** take lognormal fragilities (Hazus
  medians θ_k and dispersions β_k per damage state k = slight, moderate, extensive,
  complete): P(DS ≥ k | IM) = Φ(ln(IM/θ_k)/β_k). Where two curves cross (different β),
  the exceedance probabilities are made non-increasing in k (a cumulative minimum),
  so states stay ordered. One uniform u per asset and realization gives the state
  #{k : u < P(DS ≥ k)}.
* Repair durations (hours) per damage state, and per pipe repair, are data too.

Randomness. :func:`sample_damage` draws one 64-bit key from the numpy ``Generator``
and derives each asset's uniforms from (key, a hash of the asset's uid, realization,
stream) with the SplitMix64 mixer. So a result depends on the seed and on each asset's
uid, not on the order of the assets nor on which other assets are in the run; and it
is vectorised over assets and realizations (arrays of shape (n_realizations, n_assets)).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from scipy import special, stats

from rescity.model import City, Link, NetworkType

from .hazards.base import HazardError, asset_positions, format_validation_error

PIPE = "pipe"
PIPE_STATES = ("none", "leak", "break")
INTENSITY_MEASURES = ("pga_g", "pgv_ms", "pgv_cms", "sa1_g")


class DamageConfigError(ValueError):
    """An invalid fragility file."""


# -- the configuration ------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HazusPipeRate(_Strict):
    """RR = coefficient_per_km · PGV(cm/s)^exponent repairs/km (brittle); × ductile_factor."""

    coefficient_per_km: float = Field(gt=0)
    exponent: float = Field(gt=0)
    ductile_factor: float = Field(gt=0, le=1)


class Ala2001PipeRate(_Strict):
    """ALA (2001) by WNTR: K1 for brittle and for ductile pipe."""

    method: Literal["linear", "power"] = "linear"
    k1_brittle: float = Field(1.0, gt=0)
    k1_ductile: float = Field(0.5, gt=0)


class PipeClass(_Strict):
    """Which links are pipes and how their ductility is decided (material, then Hazen-Williams C)."""

    network_type: NetworkType
    kinds: list[str] = Field(min_length=1)
    material_attr: str | None = "material"
    hw_c_attr: str | None = None
    ductile_if_hw_c_at_least: float | None = None
    default: Literal["brittle", "ductile"] = "brittle"


class PipeConfig(_Strict):
    model: Literal["hazus", "ala2001"] = "hazus"
    hazus: HazusPipeRate
    ala2001: Ala2001PipeRate = Ala2001PipeRate.model_validate({})
    leak_fraction: float = Field(ge=0, le=1)
    classes: list[PipeClass]
    brittle_materials: list[str] = Field(default_factory=list)
    ductile_materials: list[str] = Field(default_factory=list)

    def is_ductile(self, cls: PipeClass, attrs: Mapping[str, Any]) -> bool:
        """Material (prefix match, brittle list first), then Hazen-Williams C, then the default."""
        mat = attrs.get(cls.material_attr) if cls.material_attr else None
        if mat:
            m = str(mat).strip().upper()
            if any(m.startswith(p.upper()) for p in self.brittle_materials):
                return False
            if any(m.startswith(p.upper()) for p in self.ductile_materials):
                return True
        if cls.hw_c_attr and cls.ductile_if_hw_c_at_least is not None:
            c = attrs.get(cls.hw_c_attr)
            if c is not None:
                return float(c) >= cls.ductile_if_hw_c_at_least
        return cls.default == "ductile"


class Curve(_Strict):
    """Lognormal fragility: medians θ_k (in the unit of ``im``) and dispersions β_k."""

    description: str = ""
    source: str = ""
    im: Literal["pga_g", "pgv_ms", "pgv_cms", "sa1_g"]
    medians: list[float]
    betas: list[float]

    @field_validator("medians")
    @classmethod
    def _medians(cls, v: list[float]) -> list[float]:
        if any(not (m > 0) for m in v):
            raise ValueError(f"medians must be positive, got {v}")
        if any(b < a for a, b in zip(v, v[1:], strict=False)):
            raise ValueError(
                f"medians must not decrease from one damage state to the next, got {v}"
            )
        return v

    @field_validator("betas")
    @classmethod
    def _betas(cls, v: list[float]) -> list[float]:
        if any(not (b > 0) for b in v):
            raise ValueError(f"betas must be positive, got {v}")
        return v

    def exceedance(self, im: np.ndarray) -> np.ndarray:
        """P(DS ≥ k | IM) for k = 1..K, shape im.shape + (K,); non-increasing in k."""
        x = np.asarray(im, dtype=float)[..., None]
        th = np.asarray(self.medians)
        be = np.asarray(self.betas)
        with np.errstate(divide="ignore"):
            z = np.log(np.where(x > 0, x, 0.0) / th) / be
        p = special.ndtr(z)
        return np.minimum.accumulate(p, axis=-1)


class Assignment(_Strict):
    network_type: NetworkType
    kinds: list[str] = Field(min_length=1)
    curve: str


class FragilityConfig(_Strict):
    """The whole fragility file (``simulate/config/fragility.yaml``)."""

    version: int = 1
    pipes: PipeConfig
    damage_states: list[str]
    curves: dict[str, Curve]
    assignments: list[Assignment] = Field(default_factory=list)
    repair_hours: dict[str, dict[str, float]]

    @model_validator(mode="after")
    def _consistent(self) -> FragilityConfig:
        states = self.damage_states[1:]
        if not states or self.damage_states[0] != "none":
            raise ValueError(f"damage_states must start with 'none', got {self.damage_states}")
        for name, c in self.curves.items():
            if len(c.medians) != len(states) or len(c.betas) != len(states):
                raise ValueError(
                    f"curve {name!r}: expected {len(states)} medians and betas (one per "
                    f"state {states}), got {len(c.medians)} and {len(c.betas)}"
                )
            hours = self.repair_hours.get(name)
            if hours is None or set(hours) != set(states):
                raise ValueError(
                    f"repair_hours: curve {name!r} needs hours for exactly {states}, "
                    f"got {sorted(hours) if hours else None}"
                )
        for a in self.assignments:
            if a.curve not in self.curves:
                raise ValueError(
                    f"assignment {a.network_type.value}/{a.kinds}: unknown curve {a.curve!r}; "
                    f"expected one of {', '.join(self.curves)}"
                )
        pipe = self.repair_hours.get(PIPE)
        if pipe is None or set(pipe) != {"leak", "break"}:
            raise ValueError("repair_hours.pipe needs hours for 'leak' and 'break'")
        if any(h < 0 for hs in self.repair_hours.values() for h in hs.values()):
            raise ValueError("repair_hours must not be negative")
        return self


DEFAULT_FRAGILITY = "fragility.yaml"


_DEFAULT: list[FragilityConfig] = []


def load_fragility(source: str | Path | Mapping[str, Any] | None = None) -> FragilityConfig:
    """Read the fragility config: a path, a mapping, or None for the packaged default
    (parsed once per process: every realization of an ensemble asks for it; treat it as
    read-only)."""
    if source is None:
        if not _DEFAULT:
            _DEFAULT.append(_load_fragility(None))
        return _DEFAULT[0]
    return _load_fragility(source)


def _load_fragility(source: str | Path | Mapping[str, Any] | None) -> FragilityConfig:
    where = "fragility config"
    if source is None:
        text = (
            resources.files("rescity.simulate")
            .joinpath("config", DEFAULT_FRAGILITY)
            .read_text("utf-8")
        )
        data: Any = yaml.safe_load(text)
        where = f"packaged {DEFAULT_FRAGILITY}"
    elif isinstance(source, Mapping):
        data = dict(source)
    else:
        path = Path(source)
        where = f"fragility config {str(path)!r}"
        if not path.is_file():
            raise DamageConfigError(f"{where}: no such file")
        data = yaml.safe_load(path.read_text("utf-8"))
    try:
        return FragilityConfig.model_validate(data)
    except ValidationError as exc:
        raise DamageConfigError(format_validation_error(exc, where)) from None


# -- repair rates ----------------------------------------------------------------------
def hazus_repair_rate_per_km(
    pgv_cms: Any, ductile: Any = False, config: FragilityConfig | None = None
) -> np.ndarray:
    """Hazus pipe repair rate under shaking (repairs/km): 0.0001 · PGV^2.25 (PGV in cm/s)
    for brittle pipe, × 0.3 for ductile (coefficients from the config)."""
    h = (config or load_fragility()).pipes.hazus
    rr = h.coefficient_per_km * np.power(np.asarray(pgv_cms, dtype=float), h.exponent)
    return np.asarray(
        np.where(np.asarray(ductile, dtype=bool), rr * h.ductile_factor, rr), dtype=float
    )


def pipe_repair_rate_per_m(
    pgv_ms: Any, ductile: Any, config: FragilityConfig | None = None
) -> np.ndarray:
    """Repair rate (repairs/m) by the config's pipe model (``hazus`` or ``ala2001``); PGV in m/s."""
    cfg = config or load_fragility()
    pgv = np.asarray(pgv_ms, dtype=float)
    duct = np.asarray(ductile, dtype=bool)
    if cfg.pipes.model == "hazus":
        return hazus_repair_rate_per_km(pgv * 100.0, duct, cfg) / 1000.0
    from .hazards.earthquake import repair_rate_ala2001_per_m

    a = cfg.pipes.ala2001
    k1 = np.where(duct, a.k1_ductile, a.k1_brittle)
    return repair_rate_ala2001_per_m(pgv, c=k1, method=a.method)


# -- exposure: the assets a hazard can damage ------------------------------------------
@dataclass(frozen=True)
class Exposure:
    """The assets to damage, as arrays: ``uids``; ``model`` (``'pipe'`` or a curve id);
    ``length_m`` (pipes; NaN otherwise); ``ductile`` (pipes); ``lon``/``lat`` where each
    feels the hazard (node point, link midpoint)."""

    uids: np.ndarray
    model: np.ndarray
    length_m: np.ndarray
    ductile: np.ndarray
    lon: np.ndarray
    lat: np.ndarray

    def __len__(self) -> int:
        return len(self.uids)

    def take(self, idx: Sequence[int] | np.ndarray) -> Exposure:
        """The assets at positions ``idx`` (a subset or a permutation)."""
        i = np.asarray(idx, dtype=int)
        return Exposure(
            self.uids[i], self.model[i], self.length_m[i], self.ductile[i], self.lon[i], self.lat[i]
        )

    @classmethod
    def from_city(
        cls,
        city: City,
        config: FragilityConfig | None = None,
        networks: Sequence[str] | None = None,
    ) -> Exposure:
        """Every pipe (by the config's pipe classes) and every asset with a fragility
        assignment, in the networks ``networks`` (default: all)."""
        cfg = config or load_fragility()
        uids: list[str] = []
        models: list[str] = []
        lengths: list[float] = []
        ductile: list[bool] = []
        for name, net in city.networks.items():
            if networks is not None and name not in networks:
                continue
            pipe_classes = [c for c in cfg.pipes.classes if c.network_type == net.type]
            assigns = [a for a in cfg.assignments if a.network_type == net.type]
            for el in net.elements():
                pc = next((c for c in pipe_classes if el.kind in c.kinds), None)
                if pc is not None and isinstance(el, Link):
                    uids.append(net.uid(el.id))
                    models.append(PIPE)
                    lengths.append(_length_m(el))
                    ductile.append(cfg.pipes.is_ductile(pc, el.attrs))
                    continue
                a = next((a for a in assigns if el.kind in a.kinds), None)
                if a is not None:
                    uids.append(net.uid(el.id))
                    models.append(a.curve)
                    lengths.append(float("nan"))
                    ductile.append(False)
        lon, lat = asset_positions(city, uids)
        return cls(
            np.asarray(uids, dtype=object),
            np.asarray(models, dtype=object),
            np.asarray(lengths, dtype=float),
            np.asarray(ductile, dtype=bool),
            lon,
            lat,
        )


def _length_m(link: Link) -> float:
    v = link.attrs.get("length_m")
    if v is not None and float(v) > 0:
        return float(v)
    from .hazards.base import GEOD

    return float(GEOD.geometry_length(link.geometry))


# -- sampling --------------------------------------------------------------------------
_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def uid_hashes(uids: Sequence[str] | np.ndarray) -> np.ndarray:
    """A stable 64-bit hash of each uid (BLAKE2b), as uint64."""
    return np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(str(u).encode(), digest_size=8).digest(), "little")
            for u in uids
        ),
        dtype=np.uint64,
        count=len(uids),
    )


def asset_uniforms(key: int, hashes: np.ndarray, n_realizations: int, stream: int) -> np.ndarray:
    """Uniforms in (0, 1), shape (n_realizations, n_assets), a pure function of
    (key, uid hash, realization, stream): order-independent by construction."""
    with np.errstate(over="ignore"):
        base = _splitmix64(hashes ^ np.uint64(key & 0xFFFFFFFFFFFFFFFF))
        base = _splitmix64(base + np.uint64(stream) * np.uint64(0xD1B54A32D192ED03))
        r = np.arange(n_realizations, dtype=np.uint64)[:, None]
        z = _splitmix64(base[None, :] + r * np.uint64(0x9E3779B97F4A7C15))
    return ((z >> np.uint64(11)).astype(np.float64) + 0.5) * (1.0 / 9007199254740992.0)


@dataclass(frozen=True)
class DamageSample:
    """Sampled damage, arrays of shape (n_realizations, n_assets).

    ``state``: for fragility assets the index in ``damage_states`` (0 none .. 4 complete);
    for pipes the index in :data:`PIPE_STATES` (0 none, 1 leak, 2 break).
    ``leaks``/``breaks``: number of pipe repairs of each type (0 for other assets).
    ``repair_hours``: the work to restore the asset (hours; pipes: the sum over repairs)."""

    uids: np.ndarray
    model: np.ndarray
    state: np.ndarray
    leaks: np.ndarray
    breaks: np.ndarray
    repair_hours: np.ndarray
    damage_states: tuple[str, ...]

    @property
    def n_realizations(self) -> int:
        return int(self.state.shape[0])

    def index(self, uid: str) -> int:
        hits = np.flatnonzero(self.uids == uid)
        if hits.size == 0:
            raise KeyError(f"asset {uid!r} is not in this damage sample")
        return int(hits[0])

    def state_name(self, realization: int, i: int) -> str:
        names = PIPE_STATES if self.model[i] == PIPE else self.damage_states
        return names[int(self.state[realization, i])]

    def records(self, realization: int = 0) -> list[dict[str, Any]]:
        """The damaged assets of one realization, as rows (uid, model, state, leaks,
        breaks, repair_hours), sorted by uid."""
        idx = np.flatnonzero(self.state[realization] > 0)
        rows = [
            {
                "uid": str(self.uids[i]),
                "model": str(self.model[i]),
                "state": self.state_name(realization, int(i)),
                "leaks": int(self.leaks[realization, i]),
                "breaks": int(self.breaks[realization, i]),
                "repair_hours": float(self.repair_hours[realization, i]),
            }
            for i in idx
        ]
        return sorted(rows, key=lambda r: r["uid"])


def _key(rng: np.random.Generator | int | None) -> int:
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(0, 2**63, dtype=np.int64))
    if rng is None:
        raise HazardError("sample_damage needs a seed or a numpy Generator (reproducibility)")
    return int(np.random.default_rng(int(rng)).integers(0, 2**63, dtype=np.int64))


def poisson_ppf(u: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Inverse CDF of the Poisson distribution: the least k with F(k; λ) ≥ u (int32).

    Vectorised by sequential search over k (the pmf recursion p(k) = p(k-1) λ/k) on the
    still-open entries only; λ > 500 (where e^-λ underflows) goes to scipy."""
    u = np.asarray(u, dtype=float)
    lam = np.broadcast_to(np.asarray(lam, dtype=float), u.shape)
    out = np.zeros(u.shape, dtype=np.int32)
    big = lam > 500.0
    if big.any():
        out[big] = stats.poisson.ppf(u[big], lam[big]).astype(np.int32)
    idx = np.flatnonzero(~big & (lam > 0))
    uu = u.ravel()[idx]
    ll = lam.ravel()[idx]
    pmf = np.exp(-ll)
    cdf = pmf.copy()
    k = 0
    flat = out.ravel()
    while idx.size:
        open_ = uu > cdf * (1.0 + 1e-12)
        idx, uu, ll, pmf, cdf = idx[open_], uu[open_], ll[open_], pmf[open_], cdf[open_]
        if not idx.size:
            break
        k += 1
        flat[idx] = k
        pmf = pmf * ll / k
        cdf = cdf + pmf
        if k > 10_000:  # guard: cannot happen for λ <= 500
            break
    return flat.reshape(u.shape)


def binom_ppf(u: np.ndarray, n: np.ndarray, p: float) -> np.ndarray:
    """Inverse CDF of Binomial(n, p): the least k with F(k; n, p) ≥ u (int32), vectorised
    by sequential search (p(k+1) = p(k) (n-k)/(k+1) · p/(1-p))."""
    u = np.asarray(u, dtype=float)
    n = np.asarray(n, dtype=np.int64)
    if p <= 0.0:
        return np.zeros(u.shape, dtype=np.int32)
    if p >= 1.0:
        return n.astype(np.int32)
    out = np.zeros(u.shape, dtype=np.int32)
    flat = out.ravel()
    idx = np.flatnonzero(n.ravel() > 0)
    uu = u.ravel()[idx]
    nn = n.ravel()[idx].astype(float)
    pmf = np.power(1.0 - p, nn)
    cdf = pmf.copy()
    ratio = p / (1.0 - p)
    k = 0
    while idx.size:
        open_ = (uu > cdf * (1.0 + 1e-12)) & (nn > k)
        idx, uu, nn, pmf, cdf = idx[open_], uu[open_], nn[open_], pmf[open_], cdf[open_]
        if not idx.size:
            break
        pmf = pmf * (nn - k) / (k + 1) * ratio
        k += 1
        flat[idx] = k
        cdf = cdf + pmf
    return flat.reshape(u.shape)


def sample_damage(
    assets: Exposure,
    intensities: Mapping[str, Any],
    rng: np.random.Generator | int,
    n_realizations: int = 1,
    config: FragilityConfig | None = None,
) -> DamageSample:
    """Sample damage states of ``assets`` under ``intensities`` (``{im: array}``, each
    of shape (n_assets,) or (n_realizations, n_assets); pipes need ``pgv_ms``, curves
    their own ``im``) for ``n_realizations`` realizations, reproducibly from ``rng``
    (a numpy Generator or an int seed)."""
    if n_realizations < 1:
        raise HazardError(f"n_realizations must be at least 1, got {n_realizations}")
    cfg = config or load_fragility()
    n = len(assets)
    shape = (n_realizations, n)
    key = _key(rng)
    hashes = uid_hashes(assets.uids)
    state = np.zeros(shape, dtype=np.int8)
    leaks = np.zeros(shape, dtype=np.int32)
    breaks = np.zeros(shape, dtype=np.int32)
    hours = np.zeros(shape, dtype=float)

    def im(name: str, cols: np.ndarray) -> np.ndarray:
        if name not in intensities:
            raise HazardError(
                f"intensity {name!r} is needed (for {assets.uids[cols[0]]!r}) but not given; "
                f"given: {', '.join(intensities)}"
            )
        a = np.asarray(intensities[name], dtype=float)
        if a.shape not in ((n,), shape):
            raise HazardError(f"intensity {name!r} has shape {a.shape}; expected ({n},) or {shape}")
        return np.broadcast_to(a, shape)[:, cols]

    pipes = np.flatnonzero(assets.model == PIPE)
    if pipes.size:
        rr = pipe_repair_rate_per_m(im("pgv_ms", pipes), assets.ductile[pipes], cfg)
        lam = rr * assets.length_m[pipes]
        u1 = asset_uniforms(key, hashes[pipes], n_realizations, 1)
        u2 = asset_uniforms(key, hashes[pipes], n_realizations, 2)
        counts = poisson_ppf(u1, lam)
        nb = binom_ppf(u2, counts, 1.0 - cfg.pipes.leak_fraction)
        nl = counts - nb
        leaks[:, pipes] = nl
        breaks[:, pipes] = nb
        state[:, pipes] = np.where(nb > 0, 2, np.where(nl > 0, 1, 0))
        ph = cfg.repair_hours[PIPE]
        hours[:, pipes] = nl * ph["leak"] + nb * ph["break"]

    states = cfg.damage_states[1:]
    for name in np.unique(assets.model[assets.model != PIPE]):
        cols = np.flatnonzero(assets.model == name)
        curve = cfg.curves.get(str(name))
        if curve is None:
            raise HazardError(
                f"unknown fragility curve {name!r}; expected one of {', '.join(cfg.curves)}"
            )
        p = curve.exceedance(im(curve.im, cols))
        u = asset_uniforms(key, hashes[cols], n_realizations, 3)
        ds = (u[..., None] < p).sum(axis=-1).astype(np.int8)
        state[:, cols] = ds
        table = np.asarray([0.0] + [cfg.repair_hours[str(name)][s] for s in states])
        hours[:, cols] = table[ds]

    return DamageSample(
        assets.uids, assets.model, state, leaks, breaks, hours, tuple(cfg.damage_states)
    )


def expected_pipe_repairs(
    assets: Exposure, pgv_ms: Any, config: FragilityConfig | None = None
) -> np.ndarray:
    """Mean number of repairs RR · L of each asset (0 for non-pipes), PGV in m/s."""
    cfg = config or load_fragility()
    out = np.zeros(len(assets))
    pipes = assets.model == PIPE
    pgv = np.broadcast_to(np.asarray(pgv_ms, dtype=float), (len(assets),))
    out[pipes] = (
        pipe_repair_rate_per_m(pgv[pipes], assets.ductile[pipes], cfg) * assets.length_m[pipes]
    )
    return out
