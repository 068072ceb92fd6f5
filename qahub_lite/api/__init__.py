"""The JSON API of every dialect (QA Hub, QualityPilot, QA.tech, Qualigate, agents): routes,
authentication, rate limits, the error contract and the OpenAPI document. It may import http/,
core/, config and the parsers (reports/), never db/ (core/errors.py re-exports storage errors),
web/ or the agent."""
