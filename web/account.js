'use strict';

// The account part of the Security page (API.md sections 4, 10 and 11): sessions, the
// security log, the email change, personal access tokens, export and deletion. Loaded
// after app.js, whose helpers it uses ($, api, el, onClick, onSubmit, formatTime, state).
// Sensitive actions go through api(), which asks to re-authenticate when the session is
// not fresh (403 reauthentication_required) and then retries.

const EVENTS_PAGE = 20;
const SCOPES = ['profile:read', 'items:read', 'items:write'];
const account = { eventsOffset: 0 };

async function loadAccount() {
  if (!state.user) return;
  $('#email-current').textContent = state.user.email;
  await Promise.all([loadSessions(), loadEvents(true), loadTokens()]);
}

function resetAccount() {
  for (const id of ['#session-list', '#event-list', '#token-list']) $(id).replaceChildren();
  $('#email-form').reset();
  $('#token-form').reset();
  $('#email-pending').hidden = true;
  hideNewToken();
}

// ---- Sessions --------------------------------------------------------------

async function loadSessions() {
  const sessions = await api('GET', '/users/me/sessions');
  if (!state.user) return;
  const rows = sessions.map((login) => {
    const li = el('li');
    li.dataset.sessionId = login.id;
    const label = `${login.user_agent || 'unknown browser'} · ${login.ip || 'unknown address'}`;
    li.append(el('span', 'session-name', login.current ? `${label} (this browser)` : label));
    const factors = login.aal >= 2 ? 'two factors' : 'password';
    li.append(el('small', 'meta', `Since ${formatTime(login.created_at)} · seen ${formatTime(login.last_seen_at)} · ${factors}`));
    const button = el('button', 'delete session-end', login.current ? 'Log out' : 'End');
    button.type = 'button';
    button.setAttribute('aria-label', `End the session ${label}`);
    onClick(button, async () => {
      if (login.current) closeLive(); // our own 4401 is not a logout elsewhere
      await api('DELETE', `/users/me/sessions/${encodeURIComponent(login.id)}`);
      if (login.current) {
        loggedOut('You ended this session.');
        return;
      }
      showNotice('Session ended.');
      await loadSessions();
    });
    li.append(button);
    return li;
  });
  $('#session-list').replaceChildren(...rows);
}

// ---- Security log ------------------------------------------------------------

const EVENT_NAMES = {
  login: 'Logged in',
  login_failed: 'Wrong password',
  logout: 'Logged out',
  logout_all: 'Logged out everywhere',
  session_revoked: 'Session ended',
  refresh_reuse_detected: 'A stolen refresh token was refused',
  reauthenticated: 'Confirmed it was you',
  new_device_login: 'Logged in from a new browser',
  login_reported: '"This wasn\'t me" ended a login',
  token_created: 'Access token created',
  token_revoked: 'Access token revoked',
};

async function loadEvents(first) {
  if (first) account.eventsOffset = 0;
  const page = await api('GET', `/users/me/security-events?limit=${EVENTS_PAGE}&offset=${account.eventsOffset}`);
  if (!state.user) return;
  const rows = page.items.map((entry) => {
    const li = el('li');
    li.dataset.event = entry.event;
    li.append(el('span', 'event-name', EVENT_NAMES[entry.event] || entry.event.replaceAll('_', ' ')));
    const where = [entry.ip, entry.user_agent].filter(Boolean).join(' · ');
    li.append(el('small', 'meta', `${formatTime(entry.created_at)}${where ? ` · ${where}` : ''}`));
    return li;
  });
  if (first) $('#event-list').replaceChildren(...rows);
  else $('#event-list').append(...rows);
  account.eventsOffset += page.items.length;
  $('#events-more').hidden = account.eventsOffset >= page.total;
}

onClick($('#events-more'), () => loadEvents(false));

// ---- Email change ------------------------------------------------------------

onSubmit($('#email-form'), async (data) => {
  const answer = await api('POST', '/users/me/email', {
    email: data.get('email'),
    current_password: data.get('current_password'),
  });
  $('#email-form').reset();
  $('#email-pending-address').textContent = answer.pending_email;
  $('#email-pending').hidden = false;
  showNotice(`Check ${answer.pending_email}: the change is made when you open the link sent there.`);
  await loadEvents(true);
});

// ---- Personal access tokens -----------------------------------------------------

async function loadTokens() {
  const tokens = await api('GET', '/users/me/tokens');
  if (!state.user) return;
  const now = Date.now();
  const rows = tokens.map((token) => {
    const li = el('li');
    li.dataset.tokenId = String(token.id);
    li.append(el('span', 'token-name', `${token.name} (${token.scopes.join(', ')})`));
    const used = token.last_used_at ? formatTime(token.last_used_at) : 'never';
    const expired = Date.parse(token.expires_at) <= now ? 'expired' : `expires ${formatTime(token.expires_at)}`;
    li.append(el('small', 'meta', `Created ${formatTime(token.created_at)} · ${expired} · last used ${used}`));
    const button = el('button', 'delete token-delete', 'Delete');
    button.type = 'button';
    button.setAttribute('aria-label', `Delete token ${token.name}`);
    onClick(button, async () => {
      await api('DELETE', `/users/me/tokens/${token.id}`);
      showNotice(`Token "${token.name}" deleted: it no longer works.`);
      await Promise.all([loadTokens(), loadEvents(true)]);
    });
    li.append(button);
    return li;
  });
  $('#token-list').replaceChildren(...rows);
  $('#token-empty').hidden = rows.length > 0;
}

onSubmit($('#token-form'), async (data) => {
  const scopes = SCOPES.filter((scope) => data.get(scope) === 'on');
  const created = await api('POST', '/users/me/tokens', {
    name: data.get('name'),
    scopes,
    expires_in_days: Number(data.get('expires_in_days')),
  });
  $('#token-form').reset();
  $('#token-value').textContent = created.token;
  $('#token-new').hidden = false;
  await Promise.all([loadTokens(), loadEvents(true)]);
});

function hideNewToken() {
  $('#token-value').textContent = '';
  $('#token-new').hidden = true;
}

// Shown once: gone from the page once the user says they have it.
$('#token-saved').addEventListener('click', hideNewToken);

// ---- Export and deletion ---------------------------------------------------------

onClick($('#export'), async () => {
  const data = await api('GET', '/users/me/export');
  const blob = new Blob([JSON.stringify(data, null, 2)], { type: 'application/json' });
  const link = el('a');
  link.href = URL.createObjectURL(blob);
  link.download = `account-export-${data.exported_at.slice(0, 10).replaceAll('-', '')}.json`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  showNotice('Your data was downloaded.');
  await loadEvents(true);
});

onClick($('#delete-account'), async () => {
  if (!window.confirm('Delete your account, your items and everything else? This cannot be undone.')) return;
  closeLive(); // our own 4401 is not a logout elsewhere
  await api('DELETE', '/users/me');
  loggedOut('Your account was deleted.');
});
