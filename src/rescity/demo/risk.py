"""The demo city's risk register, derived from its real assets by stated rules (there is
no public risk register to copy): every row says which asset it stands on and why.

* old water mains: L-Town pipes with Hazen-Williams C 120 (the older, rougher class) and
  a diameter of at least 200 mm — burst risk, likelihood 3, consequence 3;
* steel gas mains of the medium-pressure class — leak risk near manholes, 3 x 4;
* the bridge spans — overload under heavy traffic, 3 x 4;
* the 8 deepest drainage junctions — low-lying points that flood (underpasses), 4 x 3,
  hazard ``waterlogging``;
* critical facilities: hospitals (crowded places, 2 x 5), schools (2 x 4), the water
  treatment plants (chlorine storage, 2 x 5), substations (2 x 4);
* the utility tunnel's cabins — methane and fire in a confined space, 2 x 3.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from rescity.model import City

COLUMNS = ("id", "name", "name_zh", "hazard", "lon", "lat", "likelihood", "consequence",
           "owner", "controls", "assets")


def _row(pid: str, name: str, name_zh: str, hazard: str, geom: Any, L: int, C: int, owner: str,
         controls: str, asset: str) -> dict[str, Any]:
    c = geom.representative_point()
    return {"id": pid, "name": name, "name_zh": name_zh, "hazard": hazard, "lon": f"{c.x:.7f}",
            "lat": f"{c.y:.7f}", "likelihood": L, "consequence": C, "owner": owner,
            "controls": controls, "assets": asset}


def demo_register(city: City) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for net in city.networks.values():
        t = net.type.value
        if t == "water":
            old = sorted((lk for lk in net.links.values()
                          if round(lk.attrs.get("roughness", 150)) <= 120 and lk.attrs.get("diameter_m", 0) >= 0.2),
                         key=lambda lk: -lk.attrs["diameter_m"])[:12]
            for lk in old:
                rows.append(_row(f"old-main-{lk.id}", f"Old water main {lk.id} (DN{lk.attrs['diameter_m'] * 1000:.0f})",
                                 f"老旧供水管 {lk.id}", "main_break", lk.geometry, 3, 3, "water-company",
                                 "quarterly leak survey", f"{net.name}:{lk.id}"))
        elif t == "gas":
            steel = [lk for lk in net.links.values() if lk.attrs.get("material") == "steel"]
            steel = sorted(steel, key=lambda lk: (-float(lk.attrs.get("max_pressure_MPa", 0)), lk.id))[:10]
            for lk in steel:
                rows.append(_row(f"gas-main-{lk.id}", f"Steel gas main {lk.id}", f"钢质燃气管 {lk.id}", "gas_leak",
                                 lk.geometry, 3, 4, "gas-company", "methane sensors in adjacent manholes",
                                 f"{net.name}:{lk.id}"))
        elif t == "bridge":
            for lk in net.links.values():
                rows.append(_row(f"bridge-{lk.id}", f"Bridge span {lk.id}", f"桥梁 {lk.id}", "bridge_overload",
                                 lk.geometry, 3, 4, "municipal-engineering", "weigh-in-motion, strain gauges",
                                 f"{net.name}:{lk.id}"))
        elif t == "drainage":
            deep = sorted((n for n in net.nodes.values() if "max_depth_m" in n.attrs),
                          key=lambda n: (-float(n.attrs["max_depth_m"]), n.id))[:8]
            for n in deep:
                rows.append(_row(f"low-point-{n.id}", f"Low-lying point at junction {n.id}", f"低洼易涝点 {n.id}",
                                 "waterlogging", n.geometry, 4, 3, "drainage-company", "level sensor, pumps",
                                 f"{net.name}:{n.id}"))
        elif t == "utility_tunnel":
            for lk in list(net.links.values())[:6]:
                rows.append(_row(f"tunnel-{lk.id}", f"Utility tunnel cabin {lk.id}", f"综合管廊舱室 {lk.id}",
                                 "tunnel_methane", lk.geometry, 2, 3, "municipal-engineering",
                                 "methane and temperature sensors, ventilation", f"{net.name}:{lk.id}"))
    grades = {"hospital": (2, 5, "crowded place: hospital", "人员密集场所：医院"),
              "school": (2, 4, "crowded place: school", "人员密集场所：学校"),
              "treatment_plant": (2, 5, "chlorine storage at the water treatment plant", "水厂氯气储存"),
              "substation": (2, 4, "substation", "变电站")}
    for f in city.facilities.values():
        g = grades.get(f.kind.value)
        if g is None:
            continue
        rows.append(_row(f"facility-{f.id}", f"{f.name} ({g[2]})", f"{f.name_zh or f.name}（{g[3]}）",
                         f.kind.value, f.geometry, g[0], g[1], "district", "emergency plan, drills", f.uid))
    return rows


def write_register(city: City, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(demo_register(city))
    return path
