"""Live updates: `WebSocket /api/v1/ws` (API.md section 7).

router.py admits a socket and hands it to hub.py, which holds this worker's sockets;
broadcast.py brings every item event and every ended login, from whichever worker or
process, to each worker's hub; publish.py is what the item service calls to announce
a committed change.

What a client can rely on, beyond API.md:
- Admission: the session cookie, read exactly as for HTTP (one store round trip), and
  the Origin rule of the CSRF check (an Origin that is present must be our own or in
  CORS_ORIGINS; browsers always send one). Refusals answer the handshake with HTTP 403
  and the error envelope (`csrf_failed`, `not_authenticated`); 503 `service_unavailable`
  while Redis is unreachable. No database session is held: a socket costs the database
  nothing after the handshake (none at all when the user snapshot is cached).
- Messages: `{"type": "item.created" | "item.updated" | "item.deleted", "item": {...}}`
  with the item exactly as the HTTP API shows it, to every socket whose user may see
  it; an update that hides an item from someone reaches them as `item.deleted` with the
  item as they last saw it. An update that reveals an item is an `item.updated` for an
  id the client may not know: treat updates as upserts. `{"type": "ping"}` every 25 s:
  a client that hears nothing for about a minute should reconnect. Anything else is to
  be ignored (forward compatibility).
- Events are published after the commit only, never for a rolled-back change, at most
  once: a client reconnecting after a gap reloads what it shows.
- Close codes: in hub.py, the one place they are listed with what sends each.
"""
