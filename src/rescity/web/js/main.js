// The one-screen dashboard (一屏统览): sign-in, the map, the live warning feed, incidents
// with their actions, scenarios and the citizen report form. All data comes from our API
// under the signed-in user's rights; the page adds nothing the API would refuse.
/* global Chart, L */
import { api, ApiError, follow, setUnauthorizedHandler, signedIn, signIn, signOut, tokenRole } from "./api.js";
import { current, pick, setLang, t } from "./i18n.js";
import { CityMap, LEVEL_COLOURS, NET_COLOURS } from "./map.js";

const $ = (s, el = document) => el.querySelector(s);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const hhmm = (ms) => (ms ? new Date(ms).toISOString().slice(11, 16) : "");
const MAIN_ACTIONS = ["verify", "dismiss", "dispatch", "accept", "arrive", "resolve", "reject", "review", "close", "reopen", "note"];
const NEEDS = { dismiss: "reason", reject: "reason", resolve: "note", note: "text" };
const REPORT_CATEGORIES = ["waterlogging", "gas_leak", "main_break", "road_collapse", "power_outage", "sewer_gas"];

const state = { me: null, map: null, models: {}, alarms: new Map(), incidents: new Map(), feed: [], stop: null,
                selected: null, chart: null, reportAt: null, now: null, scenario: null,
                received: { alarm: 0, incident: 0, risk: 0, clock: 0 }, predictions: {} };
window.rescity = state; // for the browser tests and the page-load bench

// -- sign-in ------------------------------------------------------------------------------
function showLogin(msg = "") {
  document.body.dataset.view = "login";
  $("#login-error").textContent = msg;
  if (state.stop) { state.stop(); state.stop = null; }
}

async function onLogin(ev) {
  ev.preventDefault();
  try {
    await signIn($("#login-user").value.trim(), $("#login-pass").value);
    $("#login-pass").value = "";
    await start();
  } catch (e) {
    showLogin(`${t("signin_failed")}: ${e.message}`);
  }
}

setUnauthorizedHandler(() => { signOut(); showLogin(); });

// -- start --------------------------------------------------------------------------------
async function start() {
  const t0 = performance.now();
  // everything at once: who am I, and (for staff, as the token says) every layer
  const staffData = (me) => Promise.all([CityMap.fetchBase(me), api("/api/risk/cells"), api("/api/sensors/geojson"),
    api("/api/models"), api("/api/alarms"), api("/api/incidents?open=true")]);
  const guess = tokenRole() || "citizen";
  const staffLoad = guess !== "citizen" ? staffData({ role: guess }) : null;
  if (staffLoad) staffLoad.catch(() => {});
  state.me = await api("/api/me");
  document.body.dataset.view = "app";
  document.body.dataset.role = state.me.role;
  $("#who").textContent = `${state.me.display_name || state.me.username} · ${current() === "zh" ? state.me.role_zh : state.me.role}`;
  const staff = state.me.role !== "citizen";
  document.querySelectorAll("[data-staff]").forEach((e) => { e.hidden = !staff; });
  // the 12345 form for those the API lets file reports
  $(".tab[data-tab='report']").hidden = !["citizen", "commander", "grid_worker"].includes(state.me.role);
  if (!state.map) {
    state.map = new CityMap($("#map"));
    state.map.onIncidentClick = (id) => { showTab("incidents"); openIncident(id); };
  }
  const m = state.map;
  if (staff) {
    const [base, risk, sensors, models, alarms, incidents] = await (staffLoad && guess === state.me.role ? staffLoad
      : staffData(state.me));
    state.fetchMs = performance.now() - t0;
    m.drawBase(state.me, base);
    m.drawRisk(risk);
    m.drawSensors(sensors);
    state.models = Object.fromEntries(models.map((x) => [x.name, x]));
    alarms.forEach((a) => { state.alarms.set(a.alarm, a); m.setAlarm(a); });
    incidents.forEach((i) => { state.incidents.set(i.id, i); m.setIncident(i); });
    m.ensureMarkerLayers();
    state.drawMs = performance.now() - t0 - state.fetchMs;
    renderAlarms(); renderIncidents();
    showTab("warnings");
  } else {
    m.drawBase(state.me, await CityMap.fetchBase(state.me));
    showTab("report");
    renderReports();
  }
  renderLayers(); renderSummary();
  state.stop = follow(onLive, (ok) => {
    $("#conn").dataset.ok = ok ? "1" : "0";
    $("#conn").textContent = t(ok ? "live" : "offline");
  });
  state.loadMs = performance.now() - t0;
  performance.mark("rescity-ready");
  document.body.dataset.ready = "1";
}

// -- layers, legend, summary ----------------------------------------------------------------
function renderLayers() {
  const box = $("#layers"); box.innerHTML = "";
  for (const [key, g] of Object.entries(state.map.groups)) {
    const lab = document.createElement("label");
    lab.innerHTML = `<input type="checkbox" ${g.on ? "checked" : ""} data-layer="${esc(key)}"><span class="sw" style="background:${g.swatch}"></span>${esc(t(g.label))}`;
    lab.querySelector("input").onchange = (e) => state.map.toggle(key, e.target.checked);
    box.appendChild(lab);
  }
}

function renderSummary() {
  if (!state.me || state.me.role === "citizen") { $("#summary").innerHTML = ""; return; }
  const open = [...state.alarms.values()].filter((a) => a.state !== "resolved" && a.level);
  const byLv = [1, 2, 3, 4].map((l) => open.filter((a) => a.level === l).length);
  const incs = [...state.incidents.values()].filter((i) => !["closed", "dismissed", "merged"].includes(i.state));
  const rc = state.map.riskCounts();
  $("#summary").innerHTML = `
    <div class="kpi"><b id="kpi-alarms">${open.length}</b> ${esc(t("open_alarms"))}
      <span class="mini">${byLv.map((n, i) => `<i style="background:${LEVEL_COLOURS[i + 1]}">${n}</i>`).join("")}</span></div>
    <div class="kpi"><b id="kpi-incidents">${incs.length}</b> ${esc(t("open_incidents"))}</div>
    <div class="kpi"><b id="kpi-risk">${rc.red + rc.orange}</b> ${esc(t("red_cells"))}
      <span class="mini">${["red", "orange", "yellow", "blue"].map((c) => `<i style="background:${LEVEL_COLOURS[{ red: 1, orange: 2, yellow: 3, blue: 4 }[c]]}">${rc[c]}</i>`).join("")}</span></div>`;
}

// -- tabs ---------------------------------------------------------------------------------
function showTab(name) {
  document.querySelectorAll(".tab").forEach((b) => b.classList.toggle("on", b.dataset.tab === name));
  document.querySelectorAll(".pane").forEach((p) => { p.hidden = p.id !== `pane-${name}`; });
  state.map.onMapClick = name === "report" ? pickReportPlace : null;
  if (name === "report") renderReports();
}

// -- live ---------------------------------------------------------------------------------
function onLive(type, d) {
  if (type in state.received) state.received[type] += 1;
  if (type === "clock") { state.now = d.now_ms; $("#clock").textContent = new Date(d.now_ms).toISOString().slice(0, 16).replace("T", " ") + " UTC"; return; }
  if (type === "alarm") {
    const prev = state.alarms.get(d.alarm) || {};
    const state_ = d.kind === "resolved" ? "resolved" : d.kind === "fired" ? "firing" : prev.state || (d.kind === "opened" ? "pending" : "firing");
    const a = { ...prev, ...d, state: state_, level: d.level ?? prev.level };
    if (a.kind === "resolved") state.alarms.delete(d.alarm); else state.alarms.set(d.alarm, a);
    state.map.setAlarm(a);
    if (["opened", "fired", "escalated", "deescalated", "resolved", "reopened"].includes(d.kind)) {
      state.feed.unshift(a);
      if (state.feed.length > 300) state.feed.length = 300;
    }
    renderAlarms();
  } else if (type === "incident") {
    state.incidents.set(d.incident.id, d.incident);
    state.map.setIncident(d.incident);
    renderIncidents();
    if (state.selected === d.incident.id) openIncident(d.incident.id);
  } else if (type === "risk") {
    state.map.setCellLevels(d.cells);
  }
  renderSummary();
}

function modelTitle(name) {
  const m = state.models[name];
  return m ? pick(m, "title") || name : name;
}

function renderAlarms() {
  const box = $("#feed");
  if (!state.feed.length && !state.alarms.size) { box.innerHTML = `<p class="muted">${esc(t("no_events"))}</p>`; return; }
  const live = state.feed.slice(0, 100).map((a) => `
    <li class="ev" data-alarm="${esc(a.alarm)}" data-kind="${esc(a.kind)}" style="border-color:${LEVEL_COLOURS[a.level || 0]}">
      <span class="time">${hhmm(a.ts_ms)}</span> <b>${esc(modelTitle(a.model))}</b>
      <span class="tag" style="background:${LEVEL_COLOURS[a.level || 0]}">${esc(t(a.colour || "normal"))}</span>
      <span class="muted">${esc(t(a.kind))} · ${esc(a.asset)}</span></li>`).join("");
  const open = [...state.alarms.values()].sort((x, y) => (x.level || 9) - (y.level || 9)).slice(0, 60).map((a) => `
    <li class="al" data-alarm="${esc(a.alarm)}" style="border-color:${LEVEL_COLOURS[a.level || 0]}">
      <b>${esc(modelTitle(a.model))}</b> <span class="tag" style="background:${LEVEL_COLOURS[a.level || 0]}">${esc(t(a.colour || "normal"))}</span>
      <span class="muted">${esc(t(a.state))} · ${esc(a.asset)}</span></li>`).join("");
  box.innerHTML = `<ul class="list" id="feed-live">${live}</ul><h4>${esc(t("open_alarms"))}</h4><ul class="list" id="feed-open">${open}</ul>`;
  box.querySelectorAll("[data-alarm]").forEach((li) => {
    li.onclick = () => { const m = state.map.alarmMarkers.get(li.dataset.alarm); if (m) { state.map.map.setView(m.getLatLng(), Math.max(state.map.map.getZoom(), 15)); m.openPopup(); } };
  });
}

// -- incidents ------------------------------------------------------------------------------
function renderIncidents() {
  const onlyOpen = $("#inc-open").checked;
  const rows = [...state.incidents.values()]
    .filter((i) => !onlyOpen || !["closed", "dismissed", "merged"].includes(i.state))
    .sort((a, b) => a.level - b.level || b.created_ms - a.created_ms);
  $("#inc-list").innerHTML = rows.map((i) => `
    <li class="inc ${state.selected === i.id ? "sel" : ""}" data-id="${esc(i.id)}" data-state="${esc(i.state)}" style="border-color:${LEVEL_COLOURS[i.level]}">
      <b>${esc(pick(i, "title"))}</b><br>
      <span class="tag" style="background:${LEVEL_COLOURS[i.level]}">${esc(pick(i, "colour"))}</span>
      <span class="state">${esc(current() === "zh" ? i.state_zh : i.state)}</span>
      <span class="muted">${esc(i.id)} · ${hhmm(i.created_ms)}</span></li>`).join("");
  $("#inc-list").querySelectorAll("li").forEach((li) => { li.onclick = () => openIncident(li.dataset.id); });
}

async function openIncident(id) {
  if (state.selected !== id) state.draft = "";
  state.selected = id;
  renderIncidents();
  let inc;
  const seq = (state.openSeq = (state.openSeq || 0) + 1);
  try { inc = await api(`/api/incidents/${encodeURIComponent(id)}`); } catch (e) { $("#inc-detail").textContent = e.message; return; }
  if (seq !== state.openSeq) return; // a newer look at it is on its way: never draw an older answer over it
  const acts = MAIN_ACTIONS.filter((a) => inc.my_actions.includes(a));
  const actName = (a) => (t(`act_${a}`) !== `act_${a}` ? t(`act_${a}`) : a.replace(/_/g, " "));
  const tl = (inc.timeline || []).map((e) => `<li><span class="time">${hhmm(e.ts_ms)}</span> <b>${esc(actName(e.action))}</b> ${esc(e.actor)} ${esc((e.data && (e.data.note || e.data.reason || e.data.text)) || "")}</li>`).join("");
  $("#inc-detail").innerHTML = `
    <h3 data-id="${esc(inc.id)}">${esc(pick(inc, "title"))}</h3>
    <table>
      <tr><td>${esc(t("state"))}</td><td id="inc-state" data-state="${esc(inc.state)}">${esc(current() === "zh" ? inc.state_zh : inc.state)}</td></tr>
      <tr><td>${esc(t("level"))}</td><td><span class="tag" style="background:${LEVEL_COLOURS[inc.level]}">${esc(pick(inc, "colour"))}</span></td></tr>
      <tr><td>${esc(t("type"))}</td><td>${esc(inc.type)}</td></tr>
      <tr><td>${esc(t("place"))}</td><td>${esc([inc.district, inc.street, inc.grid].filter(Boolean).join(" / "))}</td></tr>
      <tr><td>${esc(t("units"))}</td><td>${esc(inc.units.join(", "))}</td></tr>
      <tr><td>${esc(t("created"))}</td><td>${hhmm(inc.created_ms)}</td></tr>
    </table>
    <div class="acts">${acts.length ? `<input id="act-text" data-i18n-ph="note_reason" placeholder="${esc(t("note_reason"))}">` +
      acts.map((a) => `<button class="act" data-act="${a}">${esc(t(`act_${a}`))}</button>`).join("") : `<p class="muted">${esc(t("no_actions"))}</p>`}</div>
    <p id="act-error" class="error"></p>
    ${inc.type === "main_break" && state.me.role !== "citizen" ? `<button id="predict" class="predict">${esc(t("predict"))}</button><div id="prediction"></div>` : ""}
    <h4>${esc(t("timeline"))}</h4><ol class="timeline">${tl}</ol>`;
  if ($("#predict")) { $("#predict").onclick = () => predictMainBreak(inc.id); renderPrediction(inc.id); }
  $("#inc-detail").querySelectorAll("button.act").forEach((b) => { b.onclick = () => doAction(inc.id, b.dataset.act); });
  // a live update re-draws the detail: what the user was typing survives it
  const box = $("#act-text");
  if (box) { box.value = state.draft || ""; box.oninput = () => { state.draft = box.value; }; }
  if (inc.lon != null) state.map.map.panTo([inc.lat, inc.lon]);
}

// from live state: which valves to close and who loses water, before the crew arrives
async function predictMainBreak(id) {
  state.predictions[id] = { pending: true };
  renderPrediction(id);
  try {
    const p = await api(`/api/scenarios/main-break?incident=${encodeURIComponent(id)}`);
    state.predictions[id] = p;
    state.map.setScenario(p.geojson, "prediction");
    renderLayers();
  } catch (e) {
    state.predictions[id] = { error: e.status === 403 ? t("forbidden") : `${t("error")}: ${e.message}` };
  }
  renderPrediction(id);
}

// the prediction survives the live re-drawing of the incident's detail
function renderPrediction(id) {
  const box = $("#prediction");
  const p = state.predictions[id];
  if (!box || !p || state.selected !== id) return;
  if (p.pending) { box.textContent = t("running"); return; }
  if (p.error) { box.textContent = p.error; return; }
  box.innerHTML = `<table id="prediction-table">
      <tr><td>${esc(t("burst_pipe"))}</td><td>${esc(p.pipe)}</td></tr>
      <tr><td>${esc(t("valves"))}</td><td data-n="${p.valves_to_close.length}">${esc(p.valves_to_close.map((v) => v.at_node).join(", "))}</td></tr>
      <tr><td>${esc(t("cut_off"))}</td><td>${p.customers_cut_off_by_isolation.length}</td></tr>
      <tr><td>${esc(t("no_water_open"))}</td><td>${p.customers_without_water_if_not_isolated.length}</td></tr>
      <tr><td>${esc(t("leak_m3"))}</td><td>${Math.round(p.leak_m3_until_repair)}</td></tr></table>`;
}

async function doAction(id, action) {
  const text = ($("#act-text") && $("#act-text").value.trim()) || "";
  const need = NEEDS[action];
  if (need && !text) { $("#act-error").textContent = t("need_text"); return; }
  const body = {};
  if (need) body[need] = text; else if (text) body.note = text;
  try {
    const inc = await api(`/api/incidents/${encodeURIComponent(id)}/actions/${action}`, { method: "POST", json: body });
    state.draft = "";
    state.incidents.set(inc.id, inc);
    state.map.setIncident(inc);
    await openIncident(id);
    renderSummary();
  } catch (e) {
    $("#act-error").textContent = e.status === 403 ? t("forbidden") : `${t("error")}: ${e.message}`;
  }
}

// -- scenarios ------------------------------------------------------------------------------
const HAZARD_FIELDS = { earthquake: ["magnitude", "depth_km"], rainstorm: ["return_period", "duration"], burst: ["pipe"], outage: ["substation"] };
const DEFAULTS = { magnitude: 6.5, depth_km: 10, return_period: 50, duration: 2, pipe: "", substation: "" };

function renderScenarioForm() {
  const hz = $("#sc-hazard").value;
  $("#sc-fields").innerHTML = HAZARD_FIELDS[hz].map((f) => `<label>${esc(t(f))}<input name="${f}" value="${DEFAULTS[f]}"></label>`).join("");
}

async function runScenario(ev) {
  ev.preventDefault();
  const hz = $("#sc-hazard").value;
  const params = {};
  for (const inp of $("#sc-fields").querySelectorAll("input")) {
    const v = inp.value.trim();
    if (v === "") continue;
    params[inp.name] = isNaN(Number(v)) || ["pipe", "substation"].includes(inp.name) ? v : Number(v);
  }
  $("#sc-error").textContent = "";
  try {
    const job = await api("/api/scenarios", { method: "POST", json: { hazard: hz, params, realizations: Number($("#sc-n").value) || 1, seed: Number($("#sc-seed").value) || 0 } });
    state.scenario = job.id;
    pollScenario(job.id);
  } catch (e) {
    $("#sc-error").textContent = e.status === 403 ? t("forbidden") : `${t("error")}: ${e.message}`;
  }
}

async function pollScenario(id) {
  const s = await api(`/api/scenarios/${encodeURIComponent(id)}`);
  $("#sc-status").textContent = s.message && s.message !== s.status ? `${t(s.status)} · ${s.message}` : t(s.status);
  $("#sc-status").dataset.status = s.status;
  $("#sc-bar").style.width = `${Math.round((s.progress || 0) * 100)}%`;
  if (s.status === "queued" || s.status === "running") { setTimeout(() => pollScenario(id), 700); return; }
  if (s.status === "failed") { $("#sc-error").textContent = s.error || ""; return; }
  const fc = await api(`/api/scenarios/${encodeURIComponent(id)}/affected`);
  const n = state.map.setScenario(fc);
  renderLayers();
  $("#sc-affected").textContent = `${n} ${t("affected")}`;
  drawCurves(s.curves || {});
  const city = (s.metrics && s.metrics.city) || null;
  const num = (v) => (v === null || v === undefined ? "—" : String(Math.round(v * 100) / 100));
  // one run: numbers; an ensemble: each metric a distribution, shown as mean [p10–p90]
  const show = (v) => (v && typeof v === "object" ? `${num(v.mean)} [${num(v.p10)}–${num(v.p90)}]` : num(v));
  $("#sc-metrics").innerHTML = city ? Object.entries(city)
    .filter(([, v]) => v === null || typeof v === "number" || (v && typeof v === "object" && "mean" in v))
    .map(([k, v]) => `<tr><td>${esc(t(`m_${k}`) !== `m_${k}` ? t(`m_${k}`) : k)}</td><td>${esc(show(v))}</td></tr>`).join("") : "";
  const by = s.consequences && s.consequences.by_jurisdiction;
  const rows = by && by.district ? Object.entries(by.district) : [];
  $("#sc-districts").innerHTML = rows.length ? `<tr><th>${esc(t("districts"))}</th><th>${esc(t("population"))}</th>
      <th>${esc(t("no_water"))}</th><th>${esc(t("no_power"))}</th><th>${esc(t("facilities_hit"))}</th><th>${esc(t("flood_m3"))}</th></tr>` +
    rows.map(([code, d]) => `<tr data-code="${esc(code)}"><td>${esc(pick(d, "name") || code)}</td><td>${d.population}</td>
      <td>${num(d.population_without_water_max)}</td><td>${num(d.population_without_power_max)}</td>
      <td>${new Set([...(d.facilities_without_water || []), ...(d.facilities_without_power || []), ...(d.facilities_without_road_access || [])]).size}</td>
      <td>${num(d.flood_volume_m3)}</td></tr>`).join("") : "";
}

function drawCurves(curves) {
  const colours = { ...NET_COLOURS, city: "#f8fafc" };
  const datasets = Object.entries(curves).map(([name, c]) => ({
    label: t(name === "roads" ? "road" : name), data: c.t_h.map((x, i) => ({ x, y: c.q[i] })),
    borderColor: colours[name] || "#94a3b8", borderWidth: name === "city" ? 3 : 1.5, pointRadius: 0, tension: 0 }));
  if (state.chart) state.chart.destroy();
  state.chart = new Chart($("#sc-chart"), {
    type: "line", data: { datasets },
    options: { animation: false, responsive: true, maintainAspectRatio: false, parsing: false,
      scales: { x: { type: "linear", title: { display: true, text: "h" }, ticks: { color: "#cbd5e1" } },
                y: { min: 0, max: 100, title: { display: true, text: "%" }, ticks: { color: "#cbd5e1" } } },
      plugins: { legend: { labels: { color: "#e2e8f0" } } } },
  });
}

// -- citizen reports -----------------------------------------------------------------------
function pickReportPlace(ll) {
  state.reportAt = ll;
  $("#rp-place").textContent = `${ll.lat.toFixed(5)}, ${ll.lng.toFixed(5)}`;
  if (state.reportMarker) state.reportMarker.setLatLng(ll);
  else state.reportMarker = L.circleMarker(ll, { radius: 7, color: "#f8fafc", weight: 2, fillColor: "#10b981", fillOpacity: 0.9 }).addTo(state.map.map);
}

async function submitReport(ev) {
  ev.preventDefault();
  $("#rp-error").textContent = "";
  if (!state.reportAt) { $("#rp-error").textContent = t("pick_place"); return; }
  try {
    const r = await api("/api/reports", { method: "POST", json: { category: $("#rp-cat").value, text: $("#rp-text").value,
      contact: $("#rp-contact").value, lon: state.reportAt.lng, lat: state.reportAt.lat } });
    $("#rp-done").textContent = `${t("reported")}: ${r.ref}`;
    $("#rp-text").value = "";
    renderReports();
  } catch (e) {
    $("#rp-error").textContent = e.status === 403 ? t("forbidden") : `${t("error")}: ${e.message}`;
  }
}

async function renderReports() {
  if (!state.me) return;
  try {
    const rs = await api("/api/reports");
    $("#rp-list").innerHTML = rs.map((r) => `<li data-ref="${esc(r.ref)}"><b>${esc(r.ref)}</b> ${esc(r.category)} · ${esc(r.status || r.state || "")}<br><span class="muted">${esc(r.text)}</span></li>`).join("");
  } catch (e) { $("#rp-list").innerHTML = ""; }
}

// -- wiring ---------------------------------------------------------------------------------
function relabel() {
  setLang(current());
  $("#lang").textContent = t("lang");
  $("#lang-login").textContent = t("lang");
  if (state.me && document.body.dataset.view === "app") {
    $("#who").textContent = `${state.me.display_name || state.me.username} · ${current() === "zh" ? state.me.role_zh : state.me.role}`;
    renderLayers(); renderSummary(); renderAlarms(); renderIncidents(); renderScenarioForm();
    if (state.selected) openIncident(state.selected);
  }
}

function toggleLang() { setLang(current() === "zh" ? "en" : "zh"); relabel(); }

$("#login-form").onsubmit = onLogin;
$("#lang").onclick = toggleLang;
$("#lang-login").onclick = toggleLang;
$("#signout").onclick = () => { signOut(); location.reload(); };
document.querySelectorAll(".tab").forEach((b) => { b.onclick = () => showTab(b.dataset.tab); });
$("#inc-open").onchange = async () => {
  if (!$("#inc-open").checked && !state.allIncidents) { // the closed ones too, once
    try {
      (await api("/api/incidents?limit=2000")).forEach((i) => { if (!state.incidents.has(i.id)) state.incidents.set(i.id, i); });
      state.allIncidents = true;
    } catch (e) { /* the list stays as it is */ }
  }
  renderIncidents();
};
$("#sc-hazard").onchange = renderScenarioForm;
$("#sc-form").onsubmit = runScenario;
$("#rp-form").onsubmit = submitReport;
$("#rp-cat").innerHTML = REPORT_CATEGORIES.map((c) => `<option value="${c}" data-i18n="cat_${c}">${esc(t(`cat_${c}`))}</option>`).join("");
renderScenarioForm();
relabel();
if (signedIn()) start().catch((e) => showLogin(e instanceof ApiError ? "" : e.message)); else showLogin();
