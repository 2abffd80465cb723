"""Sign-in with OpenID Connect (API.md section 11): `providers.py` (authlib's clients, one
per OIDC_PROVIDERS entry, and every call to a provider, bounded in time), `flow.py` (the
pending sign-in: state, nonce and PKCE verifier kept server-side, single use, behind a
cookie), `service.py` (what a callback decides: log in, create, link, refuse),
`repository.py` (the SQL of the oidc_identity table), `router.py` (the routes)."""
