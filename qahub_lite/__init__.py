"""qahub-lite: a self-hosted test-results hub in one executable."""

__version__ = "0.1.0"
