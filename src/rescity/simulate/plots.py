"""Resilience-curve figures (matplotlib, Agg backend: no display needed).

One figure: the service level Q(t) in percent against the time in hours since the
scenario start, one line per network, the city's curve in bold, and for ensembles the
p10-p90 band shaded around the mean. Saved as PNG or SVG by the file's suffix.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .metrics import FULL, CurveLike, EnsembleBands, as_curve

_FORMATS = {".png": "png", ".svg": "svg"}


def plot_resilience_curves(
    curves: Mapping[str, CurveLike] | None = None,
    *,
    city: CurveLike | None = None,
    bands: Mapping[str, EnsembleBands] | None = None,
    path: str | Path | None = None,
    title: str = "Resilience curves",
    levels: tuple[float, ...] = (95.0,),
    dpi: int = 120,
) -> Figure:
    """Draw resilience curves and return the figure; write it to ``path`` (``.png`` or
    ``.svg``) if given.

    ``curves``: name -> curve (hours, percent), e.g. per network; ``city``: the combined
    curve, drawn in bold black; ``bands``: name -> ensemble bands, drawn as the mean line
    and the shaded p10-p90 band; ``levels``: dashed reference lines (e.g. the 95 % of the
    recovery time). Steps are drawn as vertical segments (the curve's own points)."""
    if not curves and city is None and not bands:
        raise ValueError("nothing to plot: give curves, a city curve or ensemble bands")
    fig = Figure(figsize=(8.0, 4.5), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for name, c in (curves or {}).items():
        t, q = as_curve(*c)
        ax.plot(t, q, lw=1.5, label=name)
    for name, b in (bands or {}).items():
        (line,) = ax.plot(b.t_h, b.mean, lw=1.8, label=f"{name} (mean of {b.n})")
        ax.fill_between(b.t_h, b.p10, b.p90, color=line.get_color(), alpha=0.25, lw=0,
                        label=f"{name} p10-p90")
    if city is not None:
        t, q = as_curve(*city)
        ax.plot(t, q, color="black", lw=2.6, label="city")
    for lv in levels:
        ax.axhline(lv, color="grey", ls="--", lw=0.8)
    ax.set_xlabel("time since the scenario start (h)")
    ax.set_ylabel("service level Q (%)")
    ax.set_ylim(0, FULL * 1.04)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    if path is not None:
        p = Path(path)
        fmt = _FORMATS.get(p.suffix.lower())
        if fmt is None:
            raise ValueError(f"resilience curves are written as .png or .svg, got {p.name!r}")
        fig.savefig(p, format=fmt)
    return fig
