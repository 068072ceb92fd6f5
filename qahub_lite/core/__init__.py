"""The canonical model and the rules applied to it (ingest, verdicts, test health, triggers,
tenancy). Nothing here knows of HTTP: it may import db/, config and wire.py, never http, api, web
or the clients."""
