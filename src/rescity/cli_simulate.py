"""``rescity simulate earthquake|rainstorm|burst|outage``: scenarios on the stored city,
with Rich progress, a PNG of the resilience curves and ``--json`` metrics; thin over
:mod:`rescity.service.simulation`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from rescity.cli_common import DbOption, JsonOption, _errors, _store, app, console, out

sim_app = typer.Typer(help="Scenario simulation (仿真推演): hazard -> damage -> cascade -> recovery.",
                      no_args_is_help=True)
app.add_typer(sim_app, name="simulate")

Realizations = Annotated[int, typer.Option("--realizations", help="Monte Carlo realizations (more than 1: on Dask).")]
Seed = Annotated[int, typer.Option("--seed", help="Seed of the first realization.")]
Png = Annotated[Path, typer.Option("--png", help="Where to write the resilience curves.")]
Horizon = Annotated[float | None, typer.Option("--horizon-h", help="Hours to simulate (default 168 for earthquakes, 24 otherwise).")]
Policy = Annotated[str, typer.Option("--policy", help="Repair order: criticality, population or nearest.")]


def _run(kind: str, db: str | None, realizations: int, seed: int, png: Path, horizon_h: float | None,
         policy: str, as_json: bool, **params: Any) -> None:
    from rescity.service.simulation import simulate

    t0 = time.perf_counter()
    with _errors(), _store(db) as store:
        city = store.load_city()
        prog = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                        TextColumn("{task.completed}/{task.total} realizations"), TimeElapsedColumn(),
                        console=console)
        with prog:
            task = prog.add_task(f"{kind} on {city.name}", total=realizations)
            sim = simulate(city, kind, realizations=realizations, seed=seed, horizon_h=horizon_h,
                           policy=policy, png=png, progress=lambda d, n: prog.update(task, completed=d),
                           **params)
    if as_json:
        out.print_json(json.dumps(sim.summary, default=str))
        return
    t = Table(title=f"{kind}: resilience · 韧性 ({sim.realizations} realization(s), {time.perf_counter() - t0:.1f} s)")
    for col in ("network", "robustness %", "loss of resilience %·h", "to 95 % (h)", "to 100 % (h)"):
        t.add_column(col)
    for net, m in sim.summary["metrics"].items():
        if sim.realizations == 1:
            vals = [m.get("robustness_pct"), m.get("loss_of_resilience_pct_h"), m.get("t_recover_95_h"),
                    m.get("t_recover_100_h")]
        else:
            vals = [m["robustness_pct"]["mean"], m["loss_of_resilience_pct_h"]["mean"],
                    m["t_recover_95_h"]["mean"], m["t_recover_100_h"]["mean"]]
        t.add_row(net, *["never" if v is None or v != v else f"{v:,.1f}" for v in vals])
    out.print(t)
    out.print("consequences: " + json.dumps(sim.summary.get("consequences", {}), default=str)[:800])
    out.print(f"wrote {png}")


@sim_app.command("earthquake")
def sim_earthquake(
    magnitude: Annotated[float, typer.Option("--magnitude", help="Moment magnitude.")],
    lon: Annotated[float | None, typer.Option(help="Epicentre longitude (default: the city centre).")] = None,
    lat: Annotated[float | None, typer.Option(help="Epicentre latitude.")] = None,
    depth_km: Annotated[float, typer.Option("--depth-km", help="Hypocentre depth (km).")] = 10.0,
    realizations: Realizations = 1, seed: Seed = 1, png: Png = Path("earthquake.png"),
    horizon_h: Horizon = None, policy: Policy = "criticality", as_json: JsonOption = False, db: DbOption = None,
) -> None:
    """An earthquake: PGA/PGV at every asset, damage, repairs by crews, the cascade."""
    _run("earthquake", db, realizations, seed, png, horizon_h, policy, as_json, magnitude=magnitude, lon=lon,
         lat=lat, depth_km=depth_km)


@sim_app.command("rainstorm")
def sim_rainstorm(
    return_period: Annotated[float, typer.Option("--return-period", help="Years.")],
    duration: Annotated[float, typer.Option("--duration", help="Storm duration (hours).")],
    method: Annotated[str, typer.Option(help="chicago or alternating_block.")] = "chicago",
    png: Png = Path("rainstorm.png"), horizon_h: Horizon = None, as_json: JsonOption = False, db: DbOption = None,
) -> None:
    """A design storm from the IDF curve: floods, closed streets, flooded substations, water."""
    _run("rainstorm", db, 1, 1, png, horizon_h, "criticality", as_json, return_period=return_period,
         duration_h=duration, method=method)


@sim_app.command("burst")
def sim_burst(
    pipe: Annotated[str, typer.Option("--pipe", help="Pipe id (or uid water:<id>).")],
    mode: Annotated[str, typer.Option(help="break or leak.")] = "break",
    png: Png = Path("burst.png"), horizon_h: Horizon = None, as_json: JsonOption = False, db: DbOption = None,
) -> None:
    """A pipe burst: who loses water until the crew repairs it."""
    _run("burst", db, 1, 1, png, horizon_h, "criticality", as_json, pipe=pipe, mode=mode)


@sim_app.command("outage")
def sim_outage(
    substation: Annotated[str, typer.Option("--substation", help="Bus id (or uid power:<id>).")],
    duration: Annotated[float | None, typer.Option("--duration", help="Hours (default: to the end).")] = None,
    png: Png = Path("outage.png"), horizon_h: Horizon = None, as_json: JsonOption = False, db: DbOption = None,
) -> None:
    """A power outage at a substation: de-energised loads and the assets they feed."""
    _run("outage", db, 1, 1, png, horizon_h, "criticality", as_json, substation=substation, duration_h=duration)


@sim_app.command("main-break")
def sim_main_break(
    incident: Annotated[str | None, typer.Option("--incident", help="An open incident (its pipe or its place).")] = None,
    alarm: Annotated[str | None, typer.Option("--alarm", help="Or an alarm (its pipe, candidate pipes, members or place).")] = None,
    pipe: Annotated[str | None, typer.Option("--pipe", help="Or a pipe id.")] = None,
    lon: Annotated[float | None, typer.Option(help="Or a place: longitude.")] = None,
    lat: Annotated[float | None, typer.Option(help="Latitude.")] = None,
    repair_h: Annotated[float, typer.Option("--repair-h", help="Hours until the repair.")] = 16.0,
    db: DbOption = None,
) -> None:
    """From live state: a suspected main break (an incident, an alarm such as a
    main_break cluster, a pipe or a place) -> the valves to close and the customers
    predicted to lose water, before the crew arrives (JSON)."""
    from rescity.service.simulation import (
        predict_from_alarm,
        predict_from_incident,
        predict_main_break,
    )

    with _errors(), _store(db) as store:
        if incident is not None:
            res = predict_from_incident(store, incident, repair_h=repair_h)
        elif alarm is not None:
            res = predict_from_alarm(store, alarm, repair_h=repair_h)
        else:
            res = predict_main_break(store.load_city(), pipe=pipe, lon=lon, lat=lat, repair_h=repair_h)
    out.print_json(json.dumps(res))
