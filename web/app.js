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
  reauth: null, // the one re-authentication prompt open, shared by every caller waiting on it
  mfaTimer: null, // ends the second-step form when its challenge expires
  providers: [], // the sign-in providers' names (OIDC_PROVIDERS)
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
    this.details = err.details === undefined ? null : err.details;
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
// was bound to it), then authentication. A sensitive action on a session that is not fresh
// asks the user to re-authenticate, then goes through (or rejects when they cancel).
async function api(method, path, body, retried = { csrf: false, auth: false, reauth: false }) {
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
  if (!retried.reauth && error.code === 'reauthentication_required' && state.user) {
    await reauthenticate((error.details && error.details.methods) || []);
    return api(method, path, body, { ...retried, reauth: true });
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
  for (const id of ['reset', 'link', 'anon', 'mfa-step', 'app']) $(`#${id}`).hidden = id !== view;
  $('#list').hidden = view === 'reset' || view === 'link';
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
  loadSecurity().catch(showError);
  loadIdentities().catch(showError);
  loadAccount().catch(showError); // account.js
  await loadItems();
}

function loggedOut(message) {
  state.user = null;
  if (state.reauth) finishReauth(new ReauthCancelled());
  resetSecurity();
  resetAccount(); // account.js
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

// The same for a button outside a form.
function onClick(button, handler) {
  button.addEventListener('click', async () => {
    clearMessages();
    button.disabled = true;
    try {
      await handler();
    } catch (err) {
      showError(err);
    } finally {
      button.disabled = false;
    }
  });
}

// What every successful login answers (password, second step, passkey): the same body.
async function completeLogin(res) {
  state.csrf = res.csrf_token;
  $('#login-form').reset();
  endMfaStep();
  state.user = res.user; // before rememberExpiry, which schedules only for a user
  rememberExpiry(res.expires_in);
  await loggedIn(res.user);
}

onSubmit($('#login-form'), async (data) => {
  const username = data.get('username');
  const res = await api('POST', '/auth/login', { username, password: data.get('password') });
  if (res && res.mfa_required) {
    $('#login-form').reset();
    $('#login-form').elements.username.value = username;
    startMfaStep(res.methods || [], res.expires_in);
    return;
  }
  await completeLogin(res);
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

onClick($('#passkey-login'), async () => {
  const options = await api('POST', '/auth/passkey/options');
  const credential = await getPasskey(options.publicKey);
  await completeLogin(await api('POST', '/auth/passkey/login', { credential }));
});

// ---- Second step of a login ----------------------------------------------

const CODE_METHODS = { totp: 'Authenticator app code', recovery_code: 'Recovery code' };

function fillMethodSelect(select, methods) {
  const options = Object.entries(CODE_METHODS)
    .filter(([method]) => methods.includes(method))
    .map(([method, label]) => {
      const option = el('option', null, label);
      option.value = method;
      return option;
    });
  select.replaceChildren(...options);
  return options.length > 0;
}

function startMfaStep(methods, expiresIn) {
  const form = $('#mfa-step-form');
  form.reset();
  const codes = fillMethodSelect($('#mfa-method'), methods);
  $('#mfa-code-fields').hidden = !codes;
  $('#mfa-code').required = codes;
  $('#mfa-passkey').hidden = !(methods.includes('webauthn') && passkeysSupported());
  show('mfa-step');
  clearTimeout(state.mfaTimer);
  if (expiresIn) {
    state.mfaTimer = setTimeout(() => backToPassword('The second step timed out. Please log in again.'), expiresIn * 1000);
  }
  (codes ? $('#mfa-code') : $('#mfa-passkey')).focus();
}

function endMfaStep() {
  clearTimeout(state.mfaTimer);
  state.mfaTimer = null;
  $('#mfa-step-form').reset();
}

function backToPassword(message) {
  endMfaStep();
  show('anon');
  clearMessages();
  if (message) showError(message);
  $('#login-form').elements.password.focus();
}

// The challenge is over (expired, ended by too many wrong codes): only a new login helps.
function mfaStepFailed(err) {
  if (err && err.code === 'mfa_challenge_expired') {
    backToPassword('The second step expired or was ended. Please log in again.');
    return;
  }
  if (err && err.code === 'invalid_mfa_code') {
    $('#mfa-code').value = '';
    $('#mfa-code').focus();
  }
  throw err;
}

onSubmit($('#mfa-step-form'), async (data) => {
  let res;
  try {
    res = await api('POST', '/auth/mfa/verify', {
      method: data.get('method'),
      code: String(data.get('code')).trim(),
    });
  } catch (err) {
    mfaStepFailed(err);
    return;
  }
  await completeLogin(res);
});

onClick($('#mfa-passkey'), async () => {
  let res;
  try {
    const options = await api('POST', '/auth/mfa/webauthn/options');
    const credential = await getPasskey(options.publicKey);
    res = await api('POST', '/auth/mfa/verify', { method: 'webauthn', credential });
  } catch (err) {
    mfaStepFailed(err);
    return;
  }
  await completeLogin(res);
});

$('#mfa-cancel').addEventListener('click', () => backToPassword());

// ---- Sign-in with an identity provider (API.md section 11) ---------------

const OIDC_ERRORS = {
  invalid_state: 'That sign-in expired or was already used. Please try again.',
  exchange_failed: 'The sign-in provider did not confirm that sign-in. Please try again.',
  invalid_id_token: 'The sign-in provider\'s answer could not be verified.',
  provider_unavailable: 'The sign-in provider is not answering. Please try again later.',
  account_exists: 'An account with this email exists already: log in with it, then link the provider from the Security section.',
  email_not_verified: 'The sign-in provider did not confirm this email address, so no account was made.',
  user_inactive: 'This account is deactivated.',
  identity_in_use: 'That identity is linked to another account.',
  access_denied: 'The sign-in was cancelled at the provider.',
  rate_limited: 'Too many attempts. Please wait a minute and try again.',
};

const oidcPath = (name) => `${API}/auth/oidc/${encodeURIComponent(name)}/authorize`;

async function loadProviders() {
  const providers = await api('GET', '/auth/oidc/providers');
  state.providers = providers.map((provider) => provider.name);
  const buttons = state.providers.map((name) => {
    const link = el('a', 'button oidc-login', `Sign in with ${name}`);
    link.href = oidcPath(name);
    link.id = `oidc-login-${name}`;
    return link;
  });
  $('#oidc-buttons').replaceChildren(...buttons);
}

// The provider sent the browser back with an error (/?error=<code>): say it once.
function showSignInError() {
  const params = new URLSearchParams(location.search);
  const code = params.get('error');
  if (!code) return;
  history.replaceState(null, '', location.pathname);
  showError(OIDC_ERRORS[code] || `Signing in failed (${code}).`);
}

// Linking needs a fresh session: asked first without leaving the page (the redirect is
// not followed), re-authenticating when the server says so, then navigated for real.
async function linkProvider(name) {
  const url = `${oidcPath(name)}?link=true&next=${encodeURIComponent('/')}`;
  const res = await fetch(url, { redirect: 'manual', credentials: 'same-origin' });
  if (res.type !== 'opaqueredirect') {
    const data = await res.json().catch(() => null);
    const error = new ApiError(res.status, data, null);
    if (error.code !== 'reauthentication_required') throw error;
    await reauthenticate((error.details && error.details.methods) || []);
  }
  location.assign(url);
}

async function loadIdentities() {
  const identities = await api('GET', '/users/me/identities');
  if (!state.user) return;
  const rows = identities.map((identity) => {
    const li = el('li');
    li.dataset.identityId = String(identity.id);
    li.append(el('span', 'identity-name', `${identity.provider}: ${identity.email || identity.subject}`));
    li.append(el('small', 'meta', `Linked ${formatTime(identity.created_at)}`));
    const button = el('button', 'delete identity-unlink', 'Unlink');
    button.type = 'button';
    button.setAttribute('aria-label', `Unlink ${identity.provider}`);
    onClick(button, async () => {
      await api('DELETE', `/users/me/identities/${identity.id}`);
      showNotice(`${identity.provider} unlinked.`);
      await loadIdentities();
    });
    li.append(button);
    return li;
  });
  $('#identity-list').replaceChildren(...rows);
  $('#identity-empty').hidden = rows.length > 0;
  const links = (state.providers || []).map((name) => {
    const button = el('button', 'secondary identity-link', `Link ${name}`);
    button.type = 'button';
    button.id = `identity-link-${name}`;
    onClick(button, () => linkProvider(name));
    return button;
  });
  $('#identity-link-buttons').replaceChildren(...links);
}

// ---- Security: second factors and passkeys -------------------------------

const formatTime = (iso) => new Date(iso).toLocaleString();

async function loadSecurity() {
  const mfa = await api('GET', '/users/me/mfa');
  if (state.user) renderSecurity(mfa); // not after a logout meanwhile
}

function hasSecondFactor(mfa) {
  return mfa.totp || mfa.passkeys.length > 0;
}

function renderSecurity(mfa) {
  $('#totp-status').textContent = mfa.totp ? 'on' : 'off';
  $('#totp-enrol').hidden = mfa.totp;
  $('#totp-disable').hidden = !mfa.totp;
  if (mfa.totp) $('#totp-setup').hidden = true;
  $('#recovery-left').textContent = String(mfa.recovery_codes_left);
  $('#recovery-regenerate').hidden = !hasSecondFactor(mfa);
  const rows = mfa.passkeys.map((passkey) => {
    const li = el('li');
    li.dataset.passkeyId = String(passkey.id);
    li.append(el('span', 'passkey-name', passkey.name));
    const used = passkey.last_used_at ? formatTime(passkey.last_used_at) : 'never';
    li.append(el('small', 'meta', `Added ${formatTime(passkey.created_at)} · last used ${used}`));
    const button = el('button', 'delete passkey-remove', 'Remove');
    button.type = 'button';
    button.id = `passkey-remove-${passkey.id}`;
    button.setAttribute('aria-label', `Remove passkey ${passkey.name}`);
    onClick(button, async () => {
      await api('DELETE', `/users/me/passkeys/${passkey.id}`);
      showNotice(`Passkey "${passkey.name}" removed.`);
      await loadSecurity();
    });
    li.append(button);
    return li;
  });
  $('#passkey-list').replaceChildren(...rows);
  $('#passkey-empty').hidden = rows.length > 0;
}

function resetSecurity() {
  resetTotpSetup();
  $('#passkey-form').reset();
  hideRecoveryCodes();
  $('#passkey-list').replaceChildren();
  $('#identity-list').replaceChildren();
}

function showRecoveryCodes(codes) {
  if (!codes || !codes.length) return;
  $('#recovery-code-list').replaceChildren(...codes.map((code) => el('li', null, code)));
  $('#recovery-codes').hidden = false;
  $('#recovery-codes').scrollIntoView({ block: 'nearest' });
}

function hideRecoveryCodes() {
  $('#recovery-code-list').replaceChildren();
  $('#recovery-codes').hidden = true;
}

$('#recovery-saved').addEventListener('click', hideRecoveryCodes);

const SVG_NS = 'http://www.w3.org/2000/svg';
const SVG_ALLOWED = new Set(['svg', 'g', 'path', 'rect', 'title', 'desc']);

// The QR code is SVG markup from the server: parsed as SVG (never as HTML), and only
// drawing elements and attributes kept, so that nothing in it can run or be styled inline
// (the CSP would refuse a style attribute anyway, with a console error).
function qrElement(markup) {
  const doc = new DOMParser().parseFromString(markup, 'image/svg+xml');
  const svg = doc.documentElement;
  if (doc.getElementsByTagName('parsererror').length || svg.namespaceURI !== SVG_NS || svg.localName !== 'svg') {
    return null;
  }
  for (const node of [svg, ...svg.querySelectorAll('*')]) {
    if (node.namespaceURI !== SVG_NS || !SVG_ALLOWED.has(node.localName)) {
      node.remove();
      continue;
    }
    for (const attr of [...node.attributes]) {
      const name = attr.name.toLowerCase();
      if (name.startsWith('on') || name === 'style' || name.endsWith('href')) node.removeAttribute(attr.name);
    }
  }
  // Drawn at the size the stylesheet gives it: segno sizes the image by its width and
  // height alone.
  const width = parseFloat(svg.getAttribute('width'));
  const height = parseFloat(svg.getAttribute('height'));
  if (!svg.hasAttribute('viewBox') && width > 0 && height > 0) svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.removeAttribute('width');
  svg.removeAttribute('height');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', 'QR code for the authenticator app');
  return document.importNode(svg, true);
}

onClick($('#totp-enrol'), async () => {
  const data = await api('POST', '/users/me/mfa/totp');
  $('#totp-secret').textContent = data.secret;
  $('#totp-link').href = data.otpauth_uri;
  const qr = data.qr_svg ? qrElement(data.qr_svg) : null;
  $('#totp-qr').replaceChildren(...(qr ? [qr] : []));
  $('#totp-qr').hidden = !qr;
  $('#totp-confirm-form').reset();
  $('#totp-setup').hidden = false;
  $('#totp-code').focus();
});

onSubmit($('#totp-confirm-form'), async (data) => {
  const res = await api('POST', '/users/me/mfa/totp/confirm', {
    code: String(data.get('code')).replace(/\s+/g, ''),
  });
  resetTotpSetup();
  showRecoveryCodes(res.recovery_codes);
  showNotice('The authenticator app is on: logins now ask for a code from it.');
  await loadSecurity();
});

function resetTotpSetup() {
  $('#totp-setup').hidden = true;
  $('#totp-secret').textContent = '';
  $('#totp-qr').replaceChildren();
  $('#totp-link').href = '#';
  $('#totp-confirm-form').reset();
}

$('#totp-cancel').addEventListener('click', resetTotpSetup);

onClick($('#totp-disable'), async () => {
  await api('DELETE', '/users/me/mfa/totp');
  showNotice('The authenticator app is off.');
  await loadSecurity();
});

onClick($('#recovery-regenerate'), async () => {
  const res = await api('POST', '/users/me/mfa/recovery-codes');
  showRecoveryCodes(res.recovery_codes);
  showNotice('New recovery codes: the old ones no longer work.');
  await loadSecurity();
});

onSubmit($('#passkey-form'), async (data) => {
  const name = String(data.get('name')).trim();
  const options = await api('POST', '/users/me/passkeys/options');
  const credential = await createPasskey(options.publicKey);
  const res = await api('POST', '/users/me/passkeys', { name, credential });
  $('#passkey-form').reset();
  showRecoveryCodes(res.recovery_codes);
  showNotice(`Passkey "${res.name}" added.`);
  await loadSecurity();
});

// ---- Re-authentication ---------------------------------------------------

class ReauthCancelled extends Error {
  constructor() {
    super('Not done: the action needs you to confirm it is you.');
    this.code = 'reauthentication_cancelled';
  }
}

// Resolves once the session is fresh again; rejects with ReauthCancelled when the user
// cancels. Concurrent callers share the one prompt.
function reauthenticate(methods) {
  if (state.reauth) return state.reauth.promise;
  const pending = {};
  pending.promise = new Promise((resolve, reject) => {
    pending.resolve = resolve;
    pending.reject = reject;
  });
  state.reauth = pending;
  openReauth(methods);
  return pending.promise;
}

function openReauth(methods) {
  const form = $('#reauth-form');
  form.reset();
  $('#reauth-error').textContent = '';
  setReauthMethods(methods);
  const dialog = $('#reauth');
  if (!dialog.open) dialog.showModal();
  const first = [$('#reauth-password'), $('#reauth-code'), $('#reauth-passkey')]
    .find((node) => !node.closest('[hidden]') && !node.hidden);
  if (first) first.focus();
}

function setReauthMethods(methods) {
  const password = methods.includes('password');
  $('#reauth-password-field').hidden = !password;
  const codes = fillMethodSelect($('#reauth-method'), methods);
  $('#reauth-code-fields').hidden = !codes;
  $('#reauth-passkey').hidden = !(methods.includes('webauthn') && passkeysSupported());
  $('#reauth-submit').hidden = !password && !codes;
}

function finishReauth(error) {
  const pending = state.reauth;
  state.reauth = null;
  const dialog = $('#reauth');
  if (dialog.open) dialog.close();
  $('#reauth-form').reset();
  if (!pending) return;
  if (error) pending.reject(error);
  else pending.resolve();
}

async function reauthWith(button, body) {
  $('#reauth-error').textContent = '';
  button.disabled = true;
  try {
    await api('POST', '/auth/reauthenticate', await body());
    finishReauth();
  } catch (err) {
    if (err.code === 'second_factor_required') {
      // A second factor was added since the prompt opened: a password is not enough now.
      setReauthMethods(['totp', 'recovery_code', 'webauthn']);
    }
    if (err.code === 'not_authenticated') {
      finishReauth(err);
      return;
    }
    $('#reauth-error').textContent = err.message;
    if (!$('#reauth-code-fields').hidden) $('#reauth-code').value = '';
  } finally {
    button.disabled = false;
  }
}

$('#reauth-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = $('#reauth-form');
  const password = form.elements.password.value;
  const usePassword = !$('#reauth-password-field').hidden && (password || $('#reauth-code-fields').hidden);
  if (usePassword && !password) {
    $('#reauth-error').textContent = 'Enter your password.';
    return;
  }
  const code = form.elements.code.value.trim();
  if (!usePassword && !code) {
    $('#reauth-error').textContent = 'Enter a code.';
    return;
  }
  reauthWith($('#reauth-submit'), async () => (usePassword
    ? { password }
    : { method: form.elements.method.value, code }));
});

$('#reauth-passkey').addEventListener('click', () => {
  reauthWith($('#reauth-passkey'), async () => {
    const options = await api('POST', '/auth/reauthenticate/webauthn/options');
    return { method: 'webauthn', credential: await getPasskey(options.publicKey) };
  });
});

$('#reauth-cancel').addEventListener('click', () => finishReauth(new ReauthCancelled()));
// Escape closes a modal dialog by itself: that is a cancel too.
$('#reauth').addEventListener('close', () => {
  if (state.reauth) finishReauth(new ReauthCancelled());
});

// ---- Passkeys (WebAuthn) -------------------------------------------------

function passkeysSupported() {
  return typeof window.PublicKeyCredential === 'function' && !!navigator.credentials;
}

function fromBase64url(text) {
  const base64 = text.replace(/-/g, '+').replace(/_/g, '/');
  const binary = atob(base64 + '='.repeat((4 - (base64.length % 4)) % 4));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0)).buffer;
}

function toBase64url(buffer) {
  const bytes = new Uint8Array(buffer);
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

const withIds = (list) => (list || []).map((c) => ({ ...c, id: fromBase64url(c.id) }));

// The options come as WebAuthn Level 3 JSON; browsers without parse*FromJSON get the
// base64url fields converted here.
function creationOptions(json) {
  if (typeof PublicKeyCredential.parseCreationOptionsFromJSON === 'function') {
    return PublicKeyCredential.parseCreationOptionsFromJSON(json);
  }
  return {
    ...json,
    challenge: fromBase64url(json.challenge),
    user: { ...json.user, id: fromBase64url(json.user.id) },
    excludeCredentials: withIds(json.excludeCredentials),
  };
}

function requestOptions(json) {
  if (typeof PublicKeyCredential.parseRequestOptionsFromJSON === 'function') {
    return PublicKeyCredential.parseRequestOptionsFromJSON(json);
  }
  return { ...json, challenge: fromBase64url(json.challenge), allowCredentials: withIds(json.allowCredentials) };
}

function credentialJSON(credential) {
  if (typeof credential.toJSON === 'function') return credential.toJSON();
  const r = credential.response;
  const response = { clientDataJSON: toBase64url(r.clientDataJSON) };
  if (r.attestationObject) {
    response.attestationObject = toBase64url(r.attestationObject);
    response.transports = typeof r.getTransports === 'function' ? r.getTransports() : [];
  } else {
    response.authenticatorData = toBase64url(r.authenticatorData);
    response.signature = toBase64url(r.signature);
    response.userHandle = r.userHandle ? toBase64url(r.userHandle) : null;
  }
  return {
    id: credential.id,
    rawId: toBase64url(credential.rawId),
    type: credential.type,
    authenticatorAttachment: credential.authenticatorAttachment || null,
    clientExtensionResults: credential.getClientExtensionResults(),
    response,
  };
}

// The browser's errors, in words a user can act on.
function passkeyError(err) {
  if (!(err instanceof DOMException)) return err;
  if (err.name === 'NotAllowedError') return new Error('The passkey request was cancelled or timed out.');
  if (err.name === 'InvalidStateError') return new Error('This passkey is already registered for your account.');
  if (err.name === 'SecurityError') return new Error('Passkeys are not available on this site.');
  return new Error(`The passkey did not work (${err.name}).`);
}

async function createPasskey(json) {
  if (!passkeysSupported()) throw new Error('This browser does not support passkeys.');
  try {
    return credentialJSON(await navigator.credentials.create({ publicKey: creationOptions(json) }));
  } catch (err) {
    throw passkeyError(err);
  }
}

async function getPasskey(json) {
  if (!passkeysSupported()) throw new Error('This browser does not support passkeys.');
  try {
    return credentialJSON(await navigator.credentials.get({ publicKey: requestOptions(json) }));
  } catch (err) {
    throw passkeyError(err);
  }
}

// ---- Links from mails (API.md sections 4 and 10) --------------------------

// The token rides in the fragment, which no server and no Referer sees. Nothing is sent
// until the user clicks: a mail scanner that opens links must not spend the token.
const MAIL_LINKS = {
  '/report-login': {
    title: "This wasn't me",
    text: 'End the login this mail told you about, wherever it is. Then change your password.',
    button: 'End that login',
    path: '/auth/report-login',
    done: 'That login was ended. Change your password now.',
  },
  '/confirm-email': {
    title: 'Confirm your new email address',
    text: 'Make this address the one of your account.',
    button: 'Confirm',
    path: '/users/me/email/confirm',
    done: 'Your email address was changed.',
  },
};

function showMailLink(link, token) {
  $('#link-title').textContent = link.title;
  $('#link-text').textContent = link.text;
  $('#link-confirm').textContent = link.button;
  $('#link-confirm').onclick = async () => {
    try {
      await api('POST', link.path, { token });
      history.replaceState(null, '', '/');
      showNotice(link.done);
      await start();
    } catch (err) {
      showError(err);
    }
  };
  show('link');
}

// ---- Start ---------------------------------------------------------------

async function start() {
  if (!passkeysSupported()) {
    for (const id of ['#passkey-login', '#passkey-form']) $(id).hidden = true;
    $('#passkey-unsupported').hidden = false;
  }
  const fragmentToken = new URLSearchParams(location.hash.slice(1)).get('token');
  const token = location.pathname === '/reset-password' ? fragmentToken : null;
  const mailLink = fragmentToken ? MAIL_LINKS[location.pathname] : undefined;
  try {
    await fetchCsrf();
    await loadProviders().catch(showError);
    showSignInError();
    if (token) {
      show('reset');
      return;
    }
    if (mailLink) {
      showMailLink(mailLink, fragmentToken);
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
    } else if (new URLSearchParams(location.search).get('mfa_required') === '1') {
      // Back from an identity provider (API.md section 11) for a user with a second
      // factor: the challenge cookie is set, and the methods are not known here.
      history.replaceState(null, '', '/');
      startMfaStep(['totp', 'recovery_code', 'webauthn']);
      await loadItems();
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
