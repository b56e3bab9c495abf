"""The ``rescity`` command: thin over :mod:`rescity.service`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from rescity.cli_common import DbOption, _errors, _store, app, console, out
from rescity.model import NetworkType

import_app = typer.Typer(help="Import a network or jurisdictions from a file.", no_args_is_help=True)
app.add_typer(import_app, name="import")
models_app = typer.Typer(help="Warning models (预警模型), declared as data.", no_args_is_help=True)
app.add_typer(models_app, name="models")

__all__ = ["DbOption", "_errors", "_store", "app", "console", "out"]


def _steps(total: int) -> tuple[Progress, Any]:
    prog = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                    TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(), console=console)
    return prog, prog.add_task("building", total=total)


def _print_info(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps(summary))
        return
    t = Table(title=f"{summary.get('city') or 'city'}: lifelines")
    for col in ("network type", "networks", "nodes", "links"):
        t.add_column(col)
    for typ, c in sorted(summary["networks"].items()):
        t.add_row(f"{typ} {NetworkType(typ).label_zh}", str(c["networks"]), str(c["nodes"]), str(c["links"]))
    out.print(t)
    for key in ("sensors", "jurisdictions", "interdependencies", "facilities"):
        items = ", ".join(f"{k} {v}" for k, v in sorted(summary[key].items()))
        out.print(f"[bold]{key}[/bold] ({sum(summary[key].values())}): {items}")
    out.print(f"[bold]assets[/bold]: {summary['assets']}")


@app.command()
def demo(
    no_serve: Annotated[bool, typer.Option("--no-serve", help="Build and run the main job, print a summary, do not serve.")] = False,
    host: Annotated[str, typer.Option(help="Address to serve on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8000,
    pace: Annotated[float, typer.Option(min=0.0, max=60.0, help="While serving: wall seconds per 5-minute slice of "
                                        "the scripted day (0: as fast as it goes).")] = 0.5,
    db: DbOption = None,
) -> None:
    """Build the demo city into the embedded store, run the main job and serve the dashboard.

    Served, the scripted day plays live on the dashboard (``--pace`` s per 5 minutes):
    warnings appear, incidents move through their states, the risk map changes."""
    from rescity.service import twin

    t0 = time.perf_counter()
    with _errors(), _store(db) as store:
        prog, task = _steps(11)
        with prog:
            def step(msg: str) -> None:
                prog.update(task, description=msg, advance=1)

            city = twin.build_demo(store, step)
            prog.update(task, description="demo city built", completed=11)
        summary = twin.info(store)
        url = store.url
        _print_info(summary, as_json=False)
        console.print(f"built in {time.perf_counter() - t0:.1f} s into {url}")
        if no_serve:
            _replay_day(store, city)
            return
    _serve_live_day(host, port, db, city, pace)


def _serve_live_day(host: str, port: int, db: str | None, city: Any, pace: float) -> None:
    """Serve the dashboard while the scripted day replays in the background at ``pace``
    wall seconds per slice; the API's clock is the replay's (sign-in tokens keep real time)."""
    import threading

    from rescity.demo.day import DAY_START_MS
    from rescity.service.drill import ReplayClock
    from rescity.store import Store

    clock = ReplayClock(DAY_START_MS)
    stop = threading.Event()

    def play() -> None:
        store = Store.open(db)
        try:
            _replay_day(store, city, clock=clock, pace=pace, stop=stop)
        except _Stopped:
            return
        finally:
            clock.finish()
            store.close()

    threading.Thread(target=play, name="rescity-demo-day", daemon=True).start()
    try:
        _serve(host, port, db, clock=clock, token_clock=lambda: int(time.time() * 1000))
    finally:
        stop.set()


class _Stopped(Exception):
    """The server stopped while the day was still playing."""


def _replay_day(store: Any, city: Any, *, clock: Any = None, pace: float = 0.0, stop: Any = None) -> None:
    """The main job: replay the scripted day through validation, store and engine, with
    the response drill on it (alarm groups -> incidents -> crews -> closure). With a
    ``clock`` (served demo) each slice moves it and waits ``pace`` s."""
    from rescity.service import drill

    prog = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                    TextColumn("{task.completed}/{task.total} slices"), TimeElapsedColumn(), console=console)
    with prog:
        task = prog.add_task("replaying the scripted day", total=288)

        def on_slice(now: int, res: Any) -> None:
            prog.update(task, advance=1, description=f"replaying the scripted day "
                        f"{time.strftime('%H:%M', time.gmtime(now / 1000))} UTC")
            if clock is not None:
                clock.set(now)
            if stop is not None and stop.wait(pace):
                raise _Stopped()

        day = drill.play_scripted_day(store, city, on_slice=on_slice,
                                      warnings_dir=Path.cwd() / ".rescity" / "warnings",
                                      maps_dir=Path.cwd() / ".rescity" / "risk")
    _print_replay(day.replay)
    _print_response(day)


def _print_response(day: Any) -> None:
    t = Table(title=f"incidents · 事件 ({len(day.incidents)}; {day.escalations} escalations, "
                    f"audit chain {'intact' if day.audit_ok else 'BROKEN'})")
    for col in ("id", "opened (UTC)", "level · 级别", "type", "state · 状态", "tier", "units"):
        t.add_column(col)
    for i in sorted(day.incidents, key=lambda i: i.id):
        t.add_row(i.id, time.strftime("%H:%M", time.gmtime(i.created_ms / 1000)),
                  _LEVEL_LABEL.get(i.level, str(i.level)), i.type, f"{i.state.value} {i.state.label_zh}",
                  i.tier.value, ", ".join(i.units))
    out.print(t)
    for p in day.drill.publications:
        out.print(f"public warning {p['msg_type']} {p['identifier']}: {p['headline']} · {p['headline_zh']}")
    for r in day.drill.reports:
        out.print(f"12345 report {r['ref']} ({r['category']}): {r['text']}")
    if day.risk_levels:
        worst = max(day.risk_levels, key=lambda t: (t[1]["red"], t[1]["orange"]))
        out.print(f"risk map · 四色风险图: {len(day.risk_changes)} cell re-gradings; start "
                  f"{day.risk_levels[0][1]}, most red at {time.strftime('%H:%M', time.gmtime(worst[0] / 1000))} "
                  f"{worst[1]}, end {day.risk_levels[-1][1]}; maps: {', '.join(str(p) for p in day.risk_maps)}")
    out.print("sign in to the API as chief / officer-<district> / crew-<unit> / citizen-li "
              "with password rescity-demo (a drill, not production)")


def _print_replay(report: Any) -> None:
    st = report.stats
    out.print(f"[bold]replayed[/bold] {st.readings:,} readings in {st.wall_s:.1f} s "
              f"({st.readings_per_s:,.0f} readings/s): {st.accepted:,} accepted, {st.dead:,} dead letters "
              f"{report.dead_letters or ''}")
    if report.events:
        t = Table(title="scripted events · 剧本事件")
        for col in ("time (UTC)", "event", "asset", "事件"):
            t.add_column(col)
        for e in report.events:
            t.add_row(time.strftime("%H:%M", time.gmtime(e["start_ms"] / 1000)), e["description"],
                      e["asset"], e["description_zh"])
        out.print(t)
    shown = [tr for tr in report.transitions if str(getattr(tr, "kind", "")) in ("firing", "level")]
    if shown:
        t = Table(title=f"warnings · 预警 ({len(shown)} fired or changed level; "
                        f"{len(report.transitions)} transitions in all)")
        for col in ("time (UTC)", "model", "asset", "level · 级别", "transition"):
            t.add_column(col)
        for tr in shown[:40]:
            lvl = int(getattr(tr, "level_after", 0) or 0)
            t.add_row(time.strftime("%H:%M", time.gmtime(tr.ts_ms / 1000)), str(tr.model), str(tr.asset),
                      _LEVEL_LABEL.get(lvl, str(lvl)), str(tr.kind))
        out.print(t)


_LEVEL_LABEL = {1: "[red]1 red 红[/red]", 2: "[dark_orange]2 orange 橙[/dark_orange]",
                3: "[yellow]3 yellow 黄[/yellow]", 4: "[blue]4 blue 蓝[/blue]", 0: "0 normal"}


@app.command()
def replay(
    file: Path,
    step_s: Annotated[float, typer.Option("--step-s", help="Simulated seconds per slice.")] = 60.0,
    speed: Annotated[float | None, typer.Option(help="Simulated seconds per wall second (default: as fast as possible).")] = None,
    db: DbOption = None,
) -> None:
    """Replay a telemetry file (CSV, Parquet, JSON lines: sensor, ts, value) through the pipeline."""
    from rescity.service import monitoring

    with _errors(), _store(db) as store:
        report = monitoring.replay_telemetry(store, file, step_ms=int(step_s * 1000), speed=speed)
    _print_replay(report)


ModelPaths = Annotated[list[Path] | None, typer.Option("--path", help="YAML files or folders of models (default: the built-in catalogue).")]


@models_app.command("list")
def models_list(path: ModelPaths = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The warning models: name, kind, what they select, graded thresholds."""
    from rescity.monitor.specs import load_catalogue

    with _errors():
        cat = load_catalogue(path or None)
    rows = cat.rows()
    if as_json:
        out.print_json(json.dumps(rows))
        return
    t = Table(title=f"warning models · 预警模型 ({len(rows)})")
    for col in ("name", "kind", "title", "selects", "thresholds (blue..red)"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["name"], r["kind"], r["title"], r["selects"], r["thresholds"])
    out.print(t)


@models_app.command("show")
def models_show(name: str, path: ModelPaths = None) -> None:
    """Explain one warning model in plain words, with its parameters and units."""
    from rescity.monitor.specs import load_catalogue

    with _errors():
        cat = load_catalogue(path or None)
        if name not in cat.models:
            raise KeyError(f"no model {name!r}; known: {', '.join(cat.models)}")
    out.print(cat.models[name].explain())


@app.command()
def detect(
    input: Annotated[Path, typer.Option("--input", help="CSV or Parquet table, one row per timestamp.")],
    timestamp_column: Annotated[str, typer.Option("--timestamp-column", help="Name of the time column.")],
    out_file: Annotated[Path, typer.Option("--out", help="Where to write the result CSV.")],
    value_columns: Annotated[str | None, typer.Option("--value-columns", help="Comma-separated series (default: every numeric column).")] = None,
    model: Annotated[str, typer.Option("--model", help="seasonal (default) or windowed_gaussian.")] = "seasonal",
) -> None:
    """Offline detection: per timestamp, level (0-4) and anomaly score per series, and 'alarm'."""
    from rescity.monitor.detect import detect_file

    cols = [c.strip() for c in value_columns.split(",")] if value_columns else None
    with _errors():
        res = detect_file(input, out_file, timestamp_column, cols, model)
    out.print(f"wrote {out_file}: {len(res)} rows, {int(res['alarm'].sum())} with an alarm")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def ingest(ctx: typer.Context,
           source: Annotated[str, typer.Argument(help="mqtt, nats or bridge (MQTT -> NATS JetStream).")]) -> None:
    """Run an ingestion worker until SIGTERM: `rescity ingest mqtt --db URL`,
    `rescity ingest nats --partition K --partitions P --db URL`, `rescity ingest bridge --partitions P`
    (`rescity ingest mqtt --help` lists the options)."""
    from rescity.service.monitoring import ingest_main as worker_main

    if source not in ("mqtt", "nats", "bridge"):
        raise typer.BadParameter(f"expected mqtt, nats or bridge, got {source!r}")
    raise typer.Exit(worker_main([source, *ctx.args]))


@app.command("dead-letters")
def dead_letters(
    reason: Annotated[str | None, typer.Option(help="Only this reason.")] = None,
    limit: Annotated[int, typer.Option(help="How many of the newest to list.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    db: DbOption = None,
) -> None:
    """Rejected readings and messages, counted by reason, newest first."""
    from rescity.service import monitoring

    with _errors(), _store(db) as store:
        got = monitoring.dead_letters(store, reason, limit)
    if as_json:
        out.print_json(json.dumps(got, default=str))
        return
    out.print("counts: " + ", ".join(f"{k} {v}" for k, v in sorted(got["counts"].items())))
    for d in got["latest"]:
        out.print(f"[{d['reason']}] {d['detail']}")


@app.command()
def info(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False, db: DbOption = None) -> None:
    """Counts per network type, sensors, jurisdictions, interdependencies and facilities."""
    from rescity.service import twin

    with _errors(), _store(db) as store:
        _print_info(twin.info(store), as_json)


def _anchor(value: str | None) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        lon, lat = (float(v) for v in value.split(","))
    except ValueError:
        raise typer.BadParameter(f"expected LON,LAT (e.g. 24.94,60.17), got {value!r}") from None
    return (lon, lat)


def _import(kind: str, file: Path, name: str | None, crs: str | None, anchor: str | None,
            origin: str | None, unit_m: float, scale: float, rotate: float, replace: bool,
            db: str | None, network_type: NetworkType | None = None) -> None:
    from rescity.service import twin

    placement = twin.make_placement(crs, _anchor(anchor), origin=_anchor(origin) or (0.0, 0.0),
                                     unit_m=unit_m, scale=scale, rotation_deg=rotate)
    with _errors(), _store(db) as store:
        nets = twin.import_networks(store, kind, file, name=name, placement=placement,
                                    replace=replace, network_type=network_type)
    for net in nets:
        out.print(f"imported {net.type.value} network [bold]{net.name}[/bold]: "
                  f"{len(net.nodes)} nodes, {len(net.links)} links")


NameOpt = Annotated[str | None, typer.Option("--name", help="Network name (default: from the file).")]
CrsOpt = Annotated[str | None, typer.Option("--crs", help="CRS of the file's coordinates, e.g. EPSG:32650.")]
AnchorOpt = Annotated[str | None, typer.Option("--anchor", help="LON,LAT where the local origin is placed.")]
OriginOpt = Annotated[str | None, typer.Option("--origin", help="X,Y of the local point placed at the anchor (default 0,0).")]
UnitOpt = Annotated[float, typer.Option("--unit-m", help="Metres per local coordinate unit.")]
ScaleOpt = Annotated[float, typer.Option("--scale", help="Uniform scale applied when placing.")]
RotOpt = Annotated[float, typer.Option("--rotate", help="Counter-clockwise rotation in degrees when placing.")]
ReplaceOpt = Annotated[bool, typer.Option("--replace", help="Replace a network of the same name.")]


@import_app.command("water")
def import_water(file: Path, name: NameOpt = None, crs: CrsOpt = None, anchor: AnchorOpt = None,
                 origin: OriginOpt = None, unit_m: UnitOpt = 1.0, scale: ScaleOpt = 1.0,
                 rotate: RotOpt = 0.0, replace: ReplaceOpt = False, db: DbOption = None) -> None:
    """An EPANET INP water network."""
    _import("water", file, name, crs, anchor, origin, unit_m, scale, rotate, replace, db)


@import_app.command("drainage")
def import_drainage(file: Path, name: NameOpt = None, crs: CrsOpt = None, anchor: AnchorOpt = None,
                    origin: OriginOpt = None, unit_m: UnitOpt = 1.0, scale: ScaleOpt = 1.0,
                    rotate: RotOpt = 0.0, replace: ReplaceOpt = False, db: DbOption = None) -> None:
    """A SWMM INP drainage network."""
    _import("drainage", file, name, crs, anchor, origin, unit_m, scale, rotate, replace, db)


@import_app.command("power")
def import_power(file: Path, name: NameOpt = None, crs: CrsOpt = None, anchor: AnchorOpt = None,
                 origin: OriginOpt = None, unit_m: UnitOpt = 1.0, scale: ScaleOpt = 1.0,
                 rotate: RotOpt = 0.0, replace: ReplaceOpt = False, db: DbOption = None) -> None:
    """A pandapower JSON power network."""
    _import("power", file, name, crs, anchor, origin, unit_m, scale, rotate, replace, db)


@import_app.command("roads")
def import_roads(file: Path, name: NameOpt = None, replace: ReplaceOpt = False, db: DbOption = None) -> None:
    """An OSM PBF extract: the driving network (and its bridges)."""
    _import("roads", file, name, None, None, None, 1.0, 1.0, 0.0, replace, db)


@import_app.command("geo")
def import_geo(
    file: Path,
    name: NameOpt = None,
    network_type: Annotated[NetworkType | None, typer.Option("--type", help="Network type if the file does not say.")] = None,
    jurisdictions: Annotated[bool, typer.Option("--jurisdictions", help="The file holds districts/streets/grid cells.")] = False,
    crs: CrsOpt = None,
    replace: ReplaceOpt = False,
    db: DbOption = None,
) -> None:
    """A GeoJSON or GeoPackage network, or jurisdictions with --jurisdictions."""
    if jurisdictions:
        from rescity.service import twin

        with _errors(), _store(db) as store:
            n = twin.import_jurisdictions(store, file, crs=crs)
        out.print(f"imported {n} jurisdictions")
        return
    _import("geo", file, name, crs, None, None, 1.0, 1.0, 0.0, replace, db, network_type)


@app.command()
def export(network: str, file: Path, db: DbOption = None) -> None:
    """Export a stored network; the format follows the suffix (.inp, .json, .geojson, .gpkg)."""
    from rescity.service import twin

    with _errors(), _store(db) as store:
        twin.export_network(store, network, file)
    out.print(f"wrote {file}")


def _serve(host: str, port: int, db: str | None, *, clock: Any = None, token_clock: Any = None,
           follow: bool = False) -> None:
    """Run the API and the dashboard; ``follow``: the response worker too (alarm groups ->
    incidents, deadlines), in a thread beside the server."""
    import threading

    import uvicorn

    from rescity.api.app import create_app

    stop = threading.Event()
    if follow:
        from rescity.service.loop import follow as follow_alarms
        from rescity.store import Store

        def work() -> None:
            store = Store.open(db)
            try:
                follow_alarms(store, interval_s=2.0, stop=stop, clock=clock)
            finally:
                store.close()

        threading.Thread(target=work, name="rescity-response-worker", daemon=True).start()
    console.print(f"serving the dashboard on http://{host}:{port} (Ctrl+C to stop)")
    try:
        uvicorn.run(create_app(db, clock=clock, token_clock=token_clock, warm=True), host=host, port=port, log_level="warning")
    finally:
        stop.set()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to serve on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8000,
    follow: Annotated[bool, typer.Option("--follow/--no-follow", help="Also run the response worker "
                                         "(alarm groups -> incidents, deadlines) in the server.")] = True,
    db: DbOption = None,
) -> None:
    """Serve the API and the dashboard (http://HOST:PORT)."""
    _serve(host, port, db, follow=follow)


# the response loop's commands (incidents, audit, users, publish) live in their own module
from rescity import cli_respond as _cli_respond  # noqa: E402,F401
from rescity import cli_risk as _cli_risk  # noqa: E402,F401
from rescity import cli_simulate as _cli_simulate  # noqa: E402,F401


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()

