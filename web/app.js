'use strict';

const API = '/api/v1';
// The session's expiry instant: not a secret, and it lets a reload schedule the next refresh.
const EXPIRY_KEY = 'session_expires_at';
const WATCHDOG_MS = 60000; // the server pings every 25 s; silence this long means a dead socket

const $ = (selector) => document.querySelector(selector);

const state = {
  csrf: null,
  user: null,
  items: [],
  refreshing: null, // the one refresh in flight, shared by every caller
  refreshTimer: null,
  ws: null,
  wsAttempts: 0,
  wsOpenedBefore: false,
  wsRetryTimer: null,
  wsWatchdog: null,
};

class ApiError extends Error {
  constructor(status, body, retryAfter) {
    const err = (body && body.error) || {};
    let message = err.message || `Request failed (${status})`;
    if (Array.isArray(err.details)) {
      const parts = err.details.filter((d) => d && d.msg).map((d) => `${(d.loc || []).slice(-1)[0]}: ${d.msg}`);
      if (parts.length) message += ` ${parts.join('; ')}`;
    }
    if (retryAfter) message += ` Try again in ${retryAfter} s.`;
    super(message);
    this.status = status;
    this.code = err.code || null;
  }
}

// ---- HTTP ----------------------------------------------------------------

async function send(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET') {
    if (state.csrf) headers['X-CSRF-Token'] = state.csrf;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
  }
  const res = await fetch(API + path, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  return { res, data };
}

// One retry per cause: an expired session usually fails the CSRF check first (the token
// was bound to it), then authentication.
async function api(method, path, body, retried = { csrf: false, auth: false }) {
  const { res, data } = await send(method, path, body);
  if (res.ok) return data;
  const error = new ApiError(res.status, data, res.headers.get('Retry-After'));
  if (!retried.csrf && error.code === 'csrf_failed') {
    await fetchCsrf();
    return api(method, path, body, { ...retried, csrf: true });
  }
  if (!retried.auth && error.code === 'not_authenticated' && !path.startsWith('/auth/')) {
    if (await refresh()) return api(method, path, body, { ...retried, auth: true });
    if (state.user) loggedOut();
  }
  throw error;
}

async function fetchCsrf() {
  const data = await api('GET', '/auth/csrf');
  state.csrf = data.csrf_token;
}

// ---- Session lifetime ----------------------------------------------------

function rememberExpiry(expiresIn) {
  const at = Date.now() + expiresIn * 1000;
  localStorage.setItem(EXPIRY_KEY, String(at));
  scheduleRefresh(at);
}

function scheduleRefresh(at) {
  clearTimeout(state.refreshTimer);
  state.refreshTimer = null;
  if (!at || !state.user) return;
  const delay = Math.max(5000, (at - Date.now()) * 0.8);
  state.refreshTimer = setTimeout(() => {
    refresh().then(
      (ok) => ok || loggedOut('Your session has ended. Please log in again.'),
      () => scheduleRefresh(at), // not a verdict on the session (network, 503): try again soon
    );
  }, delay);
}

function storedExpiry() {
  const at = Number(localStorage.getItem(EXPIRY_KEY));
  return Number.isFinite(at) && at > 0 ? at : null;
}

function refresh() {
  if (!state.refreshing) {
    state.refreshing = doRefresh().finally(() => { state.refreshing = null; });
  }
  return state.refreshing;
}

async function doRefresh() {
  try {
    const data = await api('POST', '/auth/refresh');
    state.csrf = data.csrf_token;
    rememberExpiry(data.expires_in);
    return true;
  } catch (err) {
    if (err.code !== 'invalid_refresh_token') throw err;
  }
  // A concurrent refresh in another tab gets this 401 while the cookies are already
  // the new pair: only /users/me can tell that apart from a real logout.
  const { res, data } = await send('GET', '/users/me');
  if (!res.ok) {
    localStorage.removeItem(EXPIRY_KEY);
    return false;
  }
  if (state.user) state.user = data;
  await fetchCsrf(); // ours was bound to the session the other tab just replaced
  scheduleRefresh(storedExpiry());
  return true;
}

// Another tab refreshed: follow its expiry instead of refreshing the same login again.
window.addEventListener('storage', (event) => {
  if (event.key === EXPIRY_KEY && state.user) scheduleRefresh(storedExpiry());
});

// ---- Items ---------------------------------------------------------------

const newestFirst = (a, b) => Date.parse(b.created_at) - Date.parse(a.created_at) || b.id - a.id;

async function loadItems() {
  const data = await api('GET', '/items?limit=50&offset=0&sort=-created_at');
  state.items = data.items;
  renderItems();
}

function upsertItem(item) {
  const index = state.items.findIndex((i) => i.id === item.id);
  if (index >= 0) {
    state.items[index] = item;
  } else {
    state.items.push(item);
    state.items.sort(newestFirst);
  }
  renderItems();
}

function removeItem(id) {
  state.items = state.items.filter((i) => i.id !== id);
  renderItems();
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function renderItems() {
  const list = $('#items');
  const rows = state.items.map((item) => {
    const li = el('li');
    li.dataset.itemId = String(item.id);
    const head = el('div');
    head.append(el('span', 'title', item.title));
    if (item.is_private) head.append(el('span', 'private', 'private'));
    li.append(head);
    if (state.user && item.owner_id === state.user.id) {
      const button = el('button', 'delete', 'Delete');
      button.type = 'button';
      button.addEventListener('click', () => deleteItem(item.id, button));
      li.append(button);
    }
    if (item.description) li.append(el('p', 'description', item.description));
    li.append(el('small', 'meta', new Date(item.created_at).toLocaleString()));
    return li;
  });
  list.replaceChildren(...rows);
}

async function deleteItem(id, button) {
  clearMessages();
  button.disabled = true;
  try {
    await api('DELETE', `/items/${id}`);
    removeItem(id);
  } catch (err) {
    if (err.code === 'not_found') removeItem(id);
    else { button.disabled = false; showError(err); }
  }
}

// ---- Live updates --------------------------------------------------------

function setLive(open) {
  const live = $('#live');
  live.dataset.state = open ? 'open' : 'closed';
  live.textContent = open ? 'live' : 'offline';
}

function connectLive() {
  if (!state.user || state.ws) return;
  clearTimeout(state.wsRetryTimer);
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const ws = new WebSocket(`${scheme}://${location.host}${API}/ws`);
  state.ws = ws;
  ws.addEventListener('open', () => {
    setLive(true);
    state.wsAttempts = 0;
    armWatchdog(ws);
    // Events are not replayed: after a gap, what is on screen may be stale.
    if (state.wsOpenedBefore) loadItems().catch(showError);
    state.wsOpenedBefore = true;
  });
  ws.addEventListener('message', (event) => {
    armWatchdog(ws);
    let msg;
    try { msg = JSON.parse(event.data); } catch { return; }
    if (!msg || !msg.item) return; // pings and unknown types
    if (msg.type === 'item.created' || msg.type === 'item.updated') upsertItem(msg.item);
    else if (msg.type === 'item.deleted') removeItem(msg.item.id);
  });
  ws.addEventListener('close', (event) => {
    if (state.ws !== ws) return; // closed on purpose (closeLive)
    state.ws = null;
    clearTimeout(state.wsWatchdog);
    setLive(false);
    if (!state.user) return;
    if (event.code === 4401) {
      refresh().then((ok) => (ok ? retryLive() : loggedOut('You were logged out.')), retryLive);
    } else {
      retryLive();
    }
  });
}

function armWatchdog(ws) {
  clearTimeout(state.wsWatchdog);
  state.wsWatchdog = setTimeout(() => {
    // Do not wait for the close handshake of a dead connection.
    if (state.ws !== ws) return;
    state.ws = null;
    ws.close();
    setLive(false);
    retryLive();
  }, WATCHDOG_MS);
}

function retryLive() {
  if (!state.user) return;
  const delay = Math.min(30000, 1000 * 2 ** state.wsAttempts);
  state.wsAttempts += 1;
  clearTimeout(state.wsRetryTimer);
  state.wsRetryTimer = setTimeout(connectLive, delay);
}

function closeLive() {
  clearTimeout(state.wsRetryTimer);
  clearTimeout(state.wsWatchdog);
  const ws = state.ws;
  state.ws = null;
  state.wsAttempts = 0;
  state.wsOpenedBefore = false;
  if (ws) ws.close();
  setLive(false);
}

// ---- Views ---------------------------------------------------------------

function show(view) {
  for (const id of ['reset', 'anon', 'app']) $(`#${id}`).hidden = id !== view;
  $('#list').hidden = view === 'reset';
}

function showError(err) {
  $('#error').textContent = err instanceof Error ? err.message : String(err);
}

function showNotice(text) {
  $('#notice').textContent = text;
}

function clearMessages() {
  $('#error').textContent = '';
  $('#notice').textContent = '';
}

async function loggedIn(user) {
  state.user = user;
  $('#whoami').textContent = `Signed in as ${user.username}`;
  show('app');
  scheduleRefresh(storedExpiry());
  connectLive();
  await loadItems();
}

function loggedOut(message) {
  state.user = null;
  closeLive();
  clearTimeout(state.refreshTimer);
  localStorage.removeItem(EXPIRY_KEY);
  show('anon');
  if (message) showError(message);
  // The old token was bound to the ended session.
  fetchCsrf().then(loadItems).catch(showError);
}

// Runs a form's submit handler with its button disabled and errors shown.
function onSubmit(form, handler) {
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearMessages();
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    try {
      await handler(new FormData(form));
    } catch (err) {
      showError(err);
    } finally {
      button.disabled = false;
    }
  });
}

onSubmit($('#login-form'), async (data) => {
  const res = await api('POST', '/auth/login', {
    username: data.get('username'),
    password: data.get('password'),
  });
  state.csrf = res.csrf_token;
  $('#login-form').reset();
  state.user = res.user; // before rememberExpiry, which schedules only for a user
  rememberExpiry(res.expires_in);
  await loggedIn(res.user);
});

onSubmit($('#register-form'), async (data) => {
  const user = await api('POST', '/auth/register', {
    email: data.get('email'),
    username: data.get('username'),
    password: data.get('password'),
  });
  $('#register-form').reset();
  $('#login-form').elements.username.value = user.username;
  $('#login-form').elements.password.focus();
  showNotice(`Registered ${user.username}. You can log in now.`);
});

onSubmit($('#reset-form'), async (data) => {
  const token = new URLSearchParams(location.hash.slice(1)).get('token');
  await api('POST', '/auth/reset-password', { token, password: data.get('password') });
  $('#reset-form').reset();
  history.replaceState(null, '', '/');
  loggedOut();
  showNotice('Your password was changed. Log in with the new one.');
});

onSubmit($('#item-form'), async (data) => {
  const item = await api('POST', '/items', {
    title: data.get('title'),
    description: data.get('description'),
    is_private: data.get('is_private') === 'on',
  });
  $('#item-form').reset();
  upsertItem(item);
});

for (const [id, path] of [['#logout', '/auth/logout'], ['#logout-all', '/auth/logout-all']]) {
  $(id).addEventListener('click', async () => {
    clearMessages();
    // Our own socket is closed first, so that its 4401 is not taken for a logout elsewhere.
    closeLive();
    try {
      await api('POST', path);
    } catch (err) {
      // 401: that session was already gone; the cookies are cleared either way.
      if (err.code !== 'not_authenticated') showError(err);
    }
    loggedOut();
    showNotice(id === '#logout' ? 'Logged out.' : 'Logged out everywhere.');
  });
}

// ---- Start ---------------------------------------------------------------

async function start() {
  const token = location.pathname === '/reset-password'
    ? new URLSearchParams(location.hash.slice(1)).get('token') : null;
  try {
    await fetchCsrf();
    if (token) {
      show('reset');
      return;
    }
    let user = null;
    try {
      // A 401 tries one refresh inside api(), unless this browser never logged in here
      // (no expiry stored): then there is no refresh cookie to try either.
      user = await api('GET', '/users/me', undefined, { csrf: false, auth: !storedExpiry() });
    } catch (err) {
      if (err.status !== 401) throw err;
    }
    if (user) {
      await loggedIn(user);
    } else {
      show('anon');
      await loadItems();
    }
  } catch (err) {
    show('anon');
    showError(err);
  } finally {
    document.body.dataset.ready = 'true';
  }
}

start();
