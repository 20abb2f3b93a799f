// One WebSocket to the runtime for the whole page: log lines, script status,
// metrics and I/O changes arrive here and go to whoever listens. Subscriptions
// are remembered and sent again after a reconnect.
const listeners = new Set();
const subs = new Map();
let sock;
let retry = 500;
let state = 'closed';
const stateListeners = new Set();

function setState(s) {
  state = s;
  for (const fn of stateListeners) fn(s);
}

export function wsState() {
  return state;
}

export function onWsState(fn) {
  stateListeners.add(fn);
  return () => stateListeners.delete(fn);
}

function key(m) {
  return JSON.stringify([m.script_id ?? null, m.script_path ?? null]);
}

function send(m) {
  if (sock?.readyState === WebSocket.OPEN) sock.send(JSON.stringify(m));
}

export function connect() {
  if (sock && sock.readyState <= WebSocket.OPEN) return;
  const proto = location.protocol === 'https:' ? 'wss' : 'ws';
  const id = `ui-${Math.random().toString(36).slice(2, 10)}`;
  setState('connecting');
  sock = new WebSocket(`${proto}://${location.host}/api/script/ws/script-logs?client_id=${id}&client_type=ui`);
  sock.onopen = () => {
    retry = 500;
    setState('open');
    for (const m of subs.values()) send({ ...m, last: undefined });
  };
  sock.onmessage = (e) => {
    let m;
    try { m = JSON.parse(e.data); } catch { return; }
    for (const fn of listeners) fn(m);
  };
  sock.onclose = () => {
    setState('closed');
    setTimeout(connect, retry);
    retry = Math.min(retry * 2, 10000);
  };
}

export function onMessage(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** Subscribes (script_id, script_path or a topic such as "status"); returns the unsubscribe. */
export function subscribe(m) {
  const msg = { type: 'subscribe', ...m };
  subs.set(key(msg), msg);
  send(msg);
  return () => {
    subs.delete(key(msg));
    send({ ...msg, type: 'unsubscribe', last: undefined });
  };
}

export function disconnect() {
  subs.clear();
  if (sock) {
    sock.onclose = null;
    sock.close();
    sock = null;
  }
  setState('closed');
}
