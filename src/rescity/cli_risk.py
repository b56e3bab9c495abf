"""``rescity risk ...``: the risk register and the four-colour map, thin over
:mod:`rescity.service.risk`. Runs as the platform unless ``--as USERNAME`` names an
account, whose rights are then checked like the API's."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from rescity.cli_common import AsOption, DbOption, JsonOption, _errors, _store, app, console, out
from rescity.cli_common import now_ms as _now_ms

risk_app = typer.Typer(help="Risk register and the four-colour risk map (风险清单, 四色风险图).", no_args_is_help=True)
app.add_typer(risk_app, name="risk")

_COLOUR = {"red": "[red]red 重大[/red]", "orange": "[dark_orange]orange 较大[/dark_orange]",
           "yellow": "[yellow]yellow 一般[/yellow]", "blue": "[blue]blue 低[/blue]"}


def _service(store: Any, as_user: str | None) -> tuple[Any, Any]:
    from rescity.respond.access import SYSTEM
    from rescity.service.risk import RiskService

    svc = RiskService(store)
    if as_user is None:
        return svc, SYSTEM
    user = svc.response.user(as_user)
    if user is None:
        raise KeyError(f"no account {as_user!r} (rescity users list)")
    return svc, user


@risk_app.command("import")
def risk_import(file: Path, as_user: AsOption = None, now: Annotated[str | None, typer.Option(help="ISO 8601 time of the import.")] = None,
                db: DbOption = None) -> None:
    """Import risk points from CSV or GeoJSON: good rows are stored, bad rows listed with
    their line and field (exit 1 if any)."""
    with _errors(), _store(db) as store:
        svc, user = _service(store, as_user)
        n, errors = svc.import_register(user, file, ts_ms=_now_ms(now))
    out.print(f"imported {n} risk points from {file}")
    for e in errors:
        console.print(f"[red]bad row[/red] {e}", soft_wrap=True, highlight=False)
    if errors:
        raise typer.Exit(1)


@risk_app.command("map")
def risk_map(
    out_file: Annotated[Path, typer.Option("--out", help="GeoJSON file: one feature per cell.")],
    png: Annotated[Path | None, typer.Option("--png", help="Also render the map as a PNG.")] = None,
    level: Annotated[str, typer.Option(help="grid (default), street or district.")] = "grid",
    rain: Annotated[float | None, typer.Option(help="Rain (observed or forecast, mm/h) to grade with.")] = None,
    as_user: AsOption = None, db: DbOption = None,
) -> None:
    """The four-colour risk map now (register, exposure, vulnerability, live alarms and
    open incidents): features with level, score and the top contributing risks."""
    with _errors(), _store(db) as store:
        svc, user = _service(store, as_user)
        ts = int(time.time() * 1000)
        svc.load_live(ts)
        if rain is not None:
            svc.grid.set_rain(rain)
        doc = svc.cells_geojson(user, level=level)
        out_file.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
        if png is not None:
            svc.render_png(png)
    counts: dict[str, int] = {}
    for f in doc["features"]:
        counts[f["properties"]["level"]] = counts.get(f["properties"]["level"], 0) + 1
    out.print(f"wrote {out_file}: {len(doc['features'])} {level} features; "
              + ", ".join(f"{_COLOUR[c]} {counts.get(c, 0)}" for c in ("red", "orange", "yellow", "blue")))
    if png is not None:
        out.print(f"wrote {png}")


@risk_app.command("top")
def risk_top(jurisdiction: Annotated[str | None, typer.Option(help="A district, street or grid code.")] = None,
             n: Annotated[int, typer.Option(help="How many.")] = 10, as_user: AsOption = None,
             as_json: JsonOption = False, db: DbOption = None) -> None:
    """The most severe risk points and the highest-scoring cells (of a jurisdiction)."""
    with _errors(), _store(db) as store:
        svc, user = _service(store, as_user)
        svc.load_live(int(time.time() * 1000))
        top = svc.top_risks(user, jurisdiction=jurisdiction, n=n)
    if as_json:
        out.print_json(json.dumps(top, ensure_ascii=False))
        return
    t = Table(title="top risk points · 重点风险")
    for col in ("id", "name", "hazard", "L x C", "level", "cell", "owner"):
        t.add_column(col)
    for p in top["points"]:
        t.add_row(p["id"], p["name"], p["hazard"], f"{p['likelihood']} x {p['consequence']}",
                  _COLOUR[p["level"]], p["cell"], p["owner"])
    out.print(t)
    t = Table(title="top cells · 高风险网格")
    for col in ("cell", "score", "level", "contributors"):
        t.add_column(col)
    for c in top["cells"]:
        t.add_row(c["code"], f"{c['score']:.1f}", _COLOUR[c["level"]], "; ".join(x["name"] for x in c["top_risks"]))
    out.print(t)


@risk_app.command("regrade")
def risk_regrade(point: str, likelihood: Annotated[int, typer.Option(help="1..5")],
                 consequence: Annotated[int, typer.Option(help="1..5")],
                 reason: Annotated[str, typer.Option(help="Why (kept on the audit chain).")],
                 as_user: AsOption = None, now: Annotated[str | None, typer.Option(help="ISO 8601 time.")] = None,
                 db: DbOption = None) -> None:
    """Re-grade a risk point; the chain keeps the old grading."""
    with _errors(), _store(db) as store:
        svc, user = _service(store, as_user)
        p = svc.regrade(user, point, likelihood=likelihood, consequence=consequence, reason=reason,
                        ts_ms=_now_ms(now))
    out.print(f"{p.id}: {p.likelihood} x {p.consequence} -> level {p.level}")


@risk_app.command("hazard")
def risk_hazard(text: Annotated[str, typer.Option(help="What was found.")],
                point: Annotated[str | None, typer.Option(help="The risk point it was found at.")] = None,
                lon: Annotated[float | None, typer.Option()] = None, lat: Annotated[float | None, typer.Option()] = None,
                network: Annotated[str | None, typer.Option(help="Network type (routes the rectification).")] = None,
                as_user: AsOption = None, now: Annotated[str | None, typer.Option(help="ISO 8601 time.")] = None,
                db: DbOption = None) -> None:
    """Report a hidden hazard (隐患): an incident with the rectification deadlines."""
    with _errors(), _store(db) as store:
        svc, user = _service(store, as_user)
        inc = svc.report_hidden_hazard(user, text=text, point_id=point, lon=lon, lat=lat, network=network,
                                       ts_ms=_now_ms(now))
    out.print(f"hidden hazard {inc.id} ({inc.state.value}), units {', '.join(inc.units) or '-'}, "
              f"rectify by {time.strftime('%Y-%m-%d', time.gmtime(inc.due.get('resolve', inc.created_ms) / 1000))}")
