// The one map (一张图): Leaflet on a canvas renderer, no tiles (none exist offline), every
// layer a vector layer from our own API: districts, the lifeline networks, facilities,
// sensors by state, the four-colour risk grid, warnings and incidents by level, and a
// scenario's affected assets.
/* global L */
import { api } from "./api.js";
import { isZh, pick, t } from "./i18n.js";

export const LEVEL_COLOURS = { 1: "#dc2626", 2: "#f97316", 3: "#facc15", 4: "#3b82f6", 0: "#64748b" };
export const RISK_COLOURS = { red: "#dc2626", orange: "#f97316", yellow: "#facc15", blue: "#3b82f6" };
export const NET_COLOURS = { water: "#38bdf8", drainage: "#a78bfa", gas: "#fb923c", power: "#fde047",
                             road: "#475569", bridge: "#f43f5e", utility_tunnel: "#22c55e" };

const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

export class CityMap {
  constructor(el) {
    this.renderer = L.canvas({ padding: 0.3, tolerance: 4 });
    this.map = L.map(el, { preferCanvas: true, renderer: this.renderer, zoomSnap: 0.25, attributionControl: false });
    this.map.setView([0, 0], 2);
    this.groups = {};      // key -> { layer, label, on }
    this.cells = new Map(); // risk cell code -> path
    this.alarmMarkers = new Map();
    this.incidentMarkers = new Map();
    this.onIncidentClick = () => {};
    this.onMapClick = null;
    this.map.on("click", (e) => { if (this.onMapClick) this.onMapClick(e.latlng); });
    this.stats = { features: 0, layers: 0 };
  }

  _add(key, layer, label, on = true, swatch = "#94a3b8") {
    this.groups[key] = { layer, label, on, swatch };
    if (on) layer.addTo(this.map);
    this.stats.layers += 1;
  }

  toggle(key, on) {
    const g = this.groups[key]; if (!g) return;
    g.on = on;
    if (on) g.layer.addTo(this.map); else this.map.removeLayer(g.layer);
  }

  // Fetch every base layer at once (the networks' list first, then their layers in parallel).
  static async fetchBase(me) {
    const staff = me.role !== "citizen";
    const districts = api("/api/jurisdictions/geojson?level=district");
    if (!staff) return { districts: await districts };
    const nets = await api("/api/networks");
    const [d, facilities, ...fcs] = await Promise.all([districts, api("/api/facilities/geojson"),
      ...nets.map((n) => api(`/api/map/networks/${encodeURIComponent(n.name)}`))]);
    return { districts: d, nets, facilities, fcs };
  }

  drawBase(me, { districts, nets, facilities, fcs }) {
    const staff = me.role !== "citizen";
    const dl = L.geoJSON(districts, { renderer: this.renderer, interactive: false,
      style: () => ({ color: "#475569", weight: 1.5, fillColor: "#1e293b", fillOpacity: 0.35 }) });
    this._add("districts", dl, "districts", true, "#475569");
    this.stats.features += districts.features.length;
    this.bounds = dl.getBounds();
    if (!staff) { this.fit(); return; }
    // networks in parallel, roads first so they lie underneath
    const order = ["road", "drainage", "water", "gas", "power", "utility_tunnel", "bridge"];
    const idx = nets.map((n, i) => i).sort((a, b) => order.indexOf(nets[a].type) - order.indexOf(nets[b].type));
    idx.forEach((i) => {
      const n = nets[i];
      const colour = NET_COLOURS[n.type] || "#e2e8f0";
      const layer = L.geoJSON(fcs[i], {
        renderer: this.renderer,
        // a road's nodes are its intersections: the lines already show them
        filter: (f) => !(n.type === "road" && f.geometry.type === "Point"),
        style: () => ({ color: colour, weight: n.type === "road" ? 1 : 1.6, opacity: n.type === "road" ? 0.7 : 0.9 }),
        pointToLayer: (f, ll) => L.circleMarker(ll, { renderer: this.renderer, radius: n.type === "bridge" ? 4 : 1.6,
          color: colour, weight: 0, fillColor: colour, fillOpacity: 0.9 }),
        onEachFeature: (f, l) => l.bindPopup(() => `<b>${esc(t(n.type))}</b> ${esc(f.properties.kind)}<br>${esc(f.properties.id)} ${esc(f.properties.name || "")}`),
      });
      this._add(`net:${n.name}`, layer, n.type, true, colour);
      this.stats.features += layer.getLayers().length;
    });
    const fl = L.geoJSON(facilities, {
      renderer: this.renderer,
      pointToLayer: (f, ll) => L.circleMarker(ll, { renderer: this.renderer, radius: 5, color: "#f8fafc", weight: 1.5,
        fillColor: "#0ea5e9", fillOpacity: 0.8 }),
      style: () => ({ color: "#f8fafc", weight: 1, fillColor: "#0ea5e9", fillOpacity: 0.4 }),
      onEachFeature: (f, l) => l.bindPopup(() => `<b>${esc(pick(f.properties, "name"))}</b><br>${esc(f.properties.kind)} · ${f.properties.population_served}`),
    });
    this._add("facilities", fl, "facilities", true, "#0ea5e9");
    this.stats.features += facilities.features.length;
    this.fit();
  }

  fit() { if (this.bounds && this.bounds.isValid()) this.map.fitBounds(this.bounds, { padding: [10, 10] }); }

  drawRisk(fc) {
    const layer = L.geoJSON(fc, {
      renderer: this.renderer,
      style: (f) => ({ color: RISK_COLOURS[f.properties.level], weight: 0.5, fillColor: RISK_COLOURS[f.properties.level], fillOpacity: 0.28 }),
      onEachFeature: (f, l) => {
        this.cells.set(f.properties.code, l);
        l.feature.properties = f.properties;
        l.bindPopup(() => {
          const p = l.feature.properties;
          const top = (p.top_risks || []).map((r) => `<li>${esc(r.name)}</li>`).join("");
          return `<b>${esc(p.code)}</b> ${esc(t(p.level))}${p.score !== undefined ? ` · ${p.score}` : ""}<ul>${top}</ul>`;
        });
      },
    });
    this._add("risk", layer, "risk", true, "#dc2626");
    layer.bringToBack();
    if (this.groups.districts) this.groups.districts.layer.bringToBack();
    this.stats.features += fc.features.length;
    return fc;
  }

  setCellLevels(cells) {
    for (const [code, level] of Object.entries(cells)) {
      const l = this.cells.get(code);
      if (!l) continue;
      l.feature.properties.level = level;
      l.setStyle({ color: RISK_COLOURS[level], fillColor: RISK_COLOURS[level] });
    }
  }

  riskCounts() {
    const n = { red: 0, orange: 0, yellow: 0, blue: 0 };
    for (const l of this.cells.values()) n[l.feature.properties.level] += 1;
    return n;
  }

  drawSensors(fc) {
    this.sensorLayers = new Map();
    const layer = L.geoJSON(fc, {
      renderer: this.renderer,
      pointToLayer: (f, ll) => {
        const lv = f.properties.level;
        const m = L.circleMarker(ll, { renderer: this.renderer, radius: lv ? 4.5 : 2.5, color: "#0f172a", weight: 0.8,
          fillColor: lv ? LEVEL_COLOURS[lv] : "#a3e635", fillOpacity: 0.95 });
        this.sensorLayers.set(f.properties.asset, m);
        return m;
      },
      onEachFeature: (f, l) => l.bindPopup(() => `<b>${esc(f.properties.id)}</b><br>${esc(f.properties.quantity)} (${esc(f.properties.unit)})`),
    });
    this._add("sensors", layer, "sensors", true, "#a3e635");
    this.stats.features += fc.features.length;
  }

  // -- warnings and incidents -------------------------------------------------------------
  ensureMarkerLayers() {
    if (!this.groups.alarms) this._add("alarms", L.layerGroup(), "alarms", true, "#dc2626");
    if (!this.groups.incidents) this._add("incidents", L.layerGroup(), "incidents", true, "#f97316");
  }

  setAlarm(a) {
    this.ensureMarkerLayers();
    const id = a.alarm;
    const old = this.alarmMarkers.get(id);
    const gone = a.state === "resolved" || a.kind === "resolved" || !a.level;
    if (gone) { if (old) { this.groups.alarms.layer.removeLayer(old); this.alarmMarkers.delete(id); } this._sensor(a.asset, 0); return; }
    if (a.lon == null || a.lat == null) return;
    const style = { renderer: this.renderer, radius: 8, color: LEVEL_COLOURS[a.level], weight: 3,
      fillColor: LEVEL_COLOURS[a.level], fillOpacity: a.state === "pending" ? 0.15 : 0.6 };
    if (old) { old.setStyle(style); old._alarm = a; }
    else {
      const m = L.circleMarker([a.lat, a.lon], style);
      m._alarm = a;
      m.bindPopup(() => `<b>${esc(m._alarm.model)}</b><br>${esc(m._alarm.asset)}<br>${esc(t(m._alarm.colour || "normal"))} · ${esc(t(m._alarm.state || m._alarm.kind))}`);
      m.addTo(this.groups.alarms.layer);
      this.alarmMarkers.set(id, m);
    }
    this._sensor(a.asset, a.level);
  }

  _sensor(asset, level) {
    const m = this.sensorLayers && this.sensorLayers.get(asset);
    if (m) m.setStyle({ radius: level ? 4.5 : 2.5, fillColor: level ? LEVEL_COLOURS[level] : "#a3e635" });
  }

  setIncident(inc) {
    this.ensureMarkerLayers();
    const old = this.incidentMarkers.get(inc.id);
    const closed = ["closed", "dismissed", "merged"].includes(inc.state);
    if (closed || inc.lon == null) { if (old) { this.groups.incidents.layer.removeLayer(old); this.incidentMarkers.delete(inc.id); } return; }
    const icon = L.divIcon({ className: "", iconSize: [18, 18],
      html: `<div class="inc-marker" data-id="${esc(inc.id)}" style="background:${LEVEL_COLOURS[inc.level]}">!</div>` });
    if (old) { old.setIcon(icon); old._inc = inc; return; }
    const m = L.marker([inc.lat, inc.lon], { icon, keyboard: false });
    m._inc = inc;
    m.on("click", () => this.onIncidentClick(m._inc.id));
    m.addTo(this.groups.incidents.layer);
    this.incidentMarkers.set(inc.id, m);
  }

  // -- scenario ---------------------------------------------------------------------------
  // an overlay of what a simulation says (a scenario's impact, a main break's prediction)
  setScenario(fc, key = "scenario") {
    if (this.groups[key]) { this.map.removeLayer(this.groups[key].layer); delete this.groups[key]; this.stats.layers -= 1; }
    const colour = { failed: "#ef4444", damaged: "#ef4444", flooded: "#6366f1", closed: "#f59e0b", de_energised: "#eab308",
                     no_water: "#06b6d4", burst_pipe: "#ef4444", segment_pipe: "#f97316", valve: "#f8fafc", explosion_risk: "#dc2626" };
    const layer = L.geoJSON(fc, {
      renderer: this.renderer,
      style: (f) => ({ color: colour[f.properties.kind] || "#e11d48", weight: 4, opacity: 0.95 }),
      pointToLayer: (f, ll) => L.circleMarker(ll, { renderer: this.renderer, radius: 5, color: "#0f172a", weight: 1,
        fillColor: colour[f.properties.kind] || "#e11d48", fillOpacity: 0.95 }),
      onEachFeature: (f, l) => l.bindPopup(() => `<b>${esc((isZh() && f.properties.name_zh) || f.properties.name_en || f.properties.asset)}</b><br>${esc(f.properties.network)} · ${esc(f.properties.kind)}`),
    });
    this._add(key, layer, key, true, "#e11d48");
    return fc.features.length;
  }
}
