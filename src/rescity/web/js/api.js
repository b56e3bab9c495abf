// The dashboard's one door to the server: every call carries the bearer token; the live
// feed is read with fetch (not EventSource) so the token travels in the header, never in a URL.
let token = sessionStorage.getItem("rescity.token");
let onUnauthorized = () => {};

export class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

export const signedIn = () => !!token;
export const setUnauthorizedHandler = (f) => { onUnauthorized = f; };

export async function signIn(username, password) {
  const body = new URLSearchParams({ username, password });
  const r = await fetch("/api/token", { method: "POST", body });
  const doc = await r.json().catch(() => ({}));
  if (!r.ok) throw new ApiError(r.status, doc.detail || r.statusText);
  token = doc.access_token;
  sessionStorage.setItem("rescity.token", token);
  sessionStorage.setItem("rescity.role", doc.role);
  return doc;
}

export function signOut() {
  token = null;
  sessionStorage.removeItem("rescity.token");
  sessionStorage.removeItem("rescity.role");
}

// The role the token was issued for (to start loading the right layers at once); the
// server decides what each call answers whatever this says.
export const tokenRole = () => sessionStorage.getItem("rescity.role");

const detailOf = (doc, r) => {
  const d = doc && doc.detail;
  if (Array.isArray(d)) return d.map((e) => `${(e.loc || []).join(".")}: ${e.msg}`).join("; ");
  return d || r.statusText;
};

export async function api(path, { method = "GET", json, raw = false } = {}) {
  const headers = { Authorization: `Bearer ${token}` };
  const init = { method, headers };
  if (json !== undefined) { headers["Content-Type"] = "application/json"; init.body = JSON.stringify(json); }
  const r = await fetch(path, init);
  if (r.status === 401) { onUnauthorized(); throw new ApiError(401, "signed out"); }
  if (raw) { if (!r.ok) throw new ApiError(r.status, r.statusText); return r; }
  const doc = await r.json().catch(() => null);
  if (!r.ok) throw new ApiError(r.status, detailOf(doc, r));
  return doc;
}

// Read the server-sent events of /api/stream; calls onEvent(type, data) for each, and
// onState(true|false) as the connection comes and goes. Resumes from the last id.
export function follow(onEvent, onState) {
  let last = null, stopped = false, ctrl = null;
  async function run() {
    while (!stopped && token) {
      try {
        ctrl = new AbortController();
        const headers = { Authorization: `Bearer ${token}` };
        if (last) headers["Last-Event-ID"] = last;
        const r = await fetch("/api/stream", { headers, signal: ctrl.signal });
        if (r.status === 401) { onUnauthorized(); return; }
        if (!r.ok) throw new Error(r.statusText);
        onState(true);
        const reader = r.body.getReader();
        const dec = new TextDecoder();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += dec.decode(value, { stream: true });
          let k;
          while ((k = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, k); buf = buf.slice(k + 2);
            let type = "message", data = "";
            for (const line of block.split("\n")) {
              if (line.startsWith("id: ")) last = line.slice(4);
              else if (line.startsWith("event: ")) type = line.slice(7);
              else if (line.startsWith("data: ")) data += line.slice(6);
            }
            if (data) { try { onEvent(type, JSON.parse(data)); } catch (e) { console.error(e); } }
          }
        }
      } catch (e) {
        if (stopped) return;
      }
      onState(false);
      await new Promise((ok) => setTimeout(ok, 1500));
    }
  }
  run();
  return () => { stopped = true; if (ctrl) ctrl.abort(); };
}
