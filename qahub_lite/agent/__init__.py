"""The agent that executes triggered tests: `qahub agent`, or embedded in `qahub serve`
(docs/triggers.md). It speaks HTTP to the server like any remote client: it may import the other
clients (client.py, payload.py), the parsers (reports/) and wire.py, never core, db, http, api,
web or app."""
