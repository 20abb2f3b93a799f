// Calls to the runtime's API: JSON bodies with their content type, the CSRF
// token of the session on state-changing requests, errors as ApiError with the
// server's message translated. A 401 sends the page to the login screen.
import { tr } from './i18n.js';

export const session = { user: null, role: 'viewer', csrf: null, noAuth: false };
let onUnauthorized = () => {};

export function whenUnauthorized(fn) {
  onUnauthorized = fn;
}

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

const ROLES = ['viewer', 'operator', 'engineer', 'admin'];

/** Whether the signed-in user has at least `role`. */
export function can(role) {
  return ROLES.indexOf(session.role) >= ROLES.indexOf(role);
}

export async function call(method, path, body, headers = {}) {
  const init = { method, headers: { ...headers }, credentials: 'same-origin' };
  if (method !== 'GET' && session.csrf) init.headers['X-CSRF-Token'] = session.csrf;
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (res.status === 401 && !path.startsWith('/api/auth/login')) onUnauthorized();
  if (!res.ok || (json && json.success === false)) {
    const msg = json?.error || json?.message || `HTTP ${res.status}`;
    throw new ApiError(res.status, tr(msg), json);
  }
  return { status: res.status, json, headers: res.headers };
}

export const get = async (p) => (await call('GET', p)).json?.data;
export const post = async (p, b) => (await call('POST', p, b ?? {})).json;
export const del = async (p) => (await call('DELETE', p)).json;

export function q(params) {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== '' && v != null) s.set(k, v);
  const t = s.toString();
  return t ? `?${t}` : '';
}
