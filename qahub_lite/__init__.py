"""qahub-lite: a self-hosted test-results hub in one executable. This file owns the version and
imports nothing; the layers below it are named in README.md ("Architecture") and enforced by
tests/test_layers.py."""

__version__ = "0.1.0"
