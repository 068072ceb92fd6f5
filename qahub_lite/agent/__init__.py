"""The agent that executes triggered tests: `qahub agent`, or embedded in `qahub serve`
(docs/triggers.md). It speaks HTTP to the server like any remote client."""
