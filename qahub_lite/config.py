"""Configuration: one msgspec Struct tree decoded from `qahub.toml`, loaded once and passed down.

Rules (DESIGN.md, STYLE.md habit 4):
- unknown keys and wrong types stop the start, and the error names the key's path;
- every key is in the shipped `qahub.toml` with its default and a comment (tests/test_config.py);
- relative paths are relative to the config file's folder;
- environment overrides: `QAHUB_<SECTION>_<KEY>` for every key, plus the short aliases below.
Nothing here is read at import time.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
Positive = Annotated[int, msgspec.Meta(ge=1)]
NonNegative = Annotated[int, msgspec.Meta(ge=0)]


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: Port = 8080
    # The base URL people and CI use to reach this server; `dashboard_url` and `url` fields
    # of API answers are built from it. Empty: http://<host>:<port>.
    public_url: str = ""
    # Largest request body accepted (413 above it). Attachments have their own limit.
    max_body_bytes: Positive = 64 * 1024 * 1024
    # Seconds a graceful stop may take in all: requests in flight get all but the last 2 (then
    # 503), the app's shutdown the rest (api/shutdown.py). Past it plus 1 s the process exits 1.
    shutdown_timeout_s: Positive = 8
    # Seconds a client has to send a request's headers before its connection is closed: a
    # client that trickles headers (slowloris) cannot hold a connection open for longer.
    header_timeout_s: Annotated[int, msgspec.Meta(ge=1, le=300)] = 10
    # Seconds a request body may pause between two chunks, and seconds it may take in all,
    # before it is answered 408 and its connection closed: a body trickled one byte at a time
    # cannot hold a connection for ever (api/admission.py).
    body_idle_timeout_s: Annotated[int, msgspec.Meta(ge=1, le=300)] = 10
    body_timeout_s: Annotated[int, msgspec.Meta(ge=1, le=3600)] = 300
    # Connections served at once; more wait in the listen backlog. Each is a file descriptor:
    # the start raises the process' soft open-files limit to fit when the hard limit allows.
    max_connections: Annotated[int, msgspec.Meta(ge=64, le=1_000_000)] = 4096
    # Requests in progress from one client address; the next is answered 429 at once. Keeps
    # one client from taking the slots everyone else needs (/healthz and /readyz are never
    # capped). Behind a reverse proxy every client has the proxy's address: raise it, or set
    # 0 (off) and let the proxy limit clients.
    max_requests_per_client: NonNegative = 256


class StorageConfig(_Section):
    # Empty: the SQLite file data_dir/qahub.db (the embedded engine). A PostgreSQL URL
    # ("postgresql://user@host:5432/qahub"): that database, which several `qahub serve` nodes may
    # share (docs/scaling.md); data_dir then holds attachments and backups, on a shared folder.
    url: Annotated[str, msgspec.Meta(pattern=r"^(|postgres(ql)?://.+)$")] = ""
    data_dir: str = "data"
    # FULL: a 2xx answer survives power loss. NORMAL: survives a process crash only.
    synchronous: Literal["FULL", "NORMAL"] = "FULL"
    busy_timeout_ms: NonNegative = 5000
    # Read-only connections for queries; writes have their own single connection.
    reader_connections: Positive = 4
    # Most queued write operations committed together in one transaction.
    max_group_commit: Positive = 256
    # Minutes between passive WAL checkpoints by the background job.
    checkpoint_interval_minutes: Positive = 5


class AttachmentsConfig(_Section):
    # Largest attachment in bytes (seed 001: 10 MB, ATTACHMENT_MAX_BYTES overrides).
    max_bytes: Positive = 10 * 1024 * 1024


class RetentionConfig(_Section):
    # Unlinked results (no test case in the library) not updated for this long are deleted. 0 keeps them.
    unlinked_days: NonNegative = 30
    # Minutes between sweeps by the in-process job. 0 disables the job (manual sweeps still work).
    sweep_interval_minutes: NonNegative = 60
    # Results deleted per transaction, so that a sweep never holds the writer for long.
    batch_size: Positive = 500


class LoggingConfig(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"
    # One line per request (method, path, status, duration); keys are never printed.
    access_log: bool = True


class QualityPilotConfig(_Section):
    # Cases kept per `POST /api/v1/test-runs`; the rest are dropped while the run's summary is
    # kept (seed 002: 10,000), and the answer says how many were dropped.
    max_cases: Positive = 10_000
    # A tenant-wide write key posting a `repo` that no project has creates that project
    # (named after the repo). false: such posts are answered 404 until a project has the repo.
    create_projects: bool = True


class RateLimitsConfig(_Section):
    # Length of the sliding window, in seconds, for every limit below.
    window_s: Positive = 60
    # Requests per window and API key for each route group; 0 turns that group's limit off.
    # QualityPilot's POST /api/v1/test-runs (seed 002: 60 per 60 s).
    qualitypilot_ingest: NonNegative = 60
    # Qualigate's /api/v1/trigger, /api/v1/results and /api/v1/ci-config (seed 004: 30 a minute).
    qualigate: NonNegative = 30
    # Every other route that takes an API key.
    default: NonNegative = 1200


class DashboardConfig(_Section):
    # Hours a dashboard sign-in lasts without a visit; an active user stays signed in.
    session_hours: Positive = 168
    # Failed sign-ins allowed per user name and client address within the window; then 429.
    login_attempts: Positive = 5
    # The sliding window of login_attempts, in seconds.
    login_window_s: Positive = 900
    # Seconds between reloads of the page of a run that is still running.
    refresh_s: Positive = 10
    # Rows per page in the runs list and in a run's results.
    page_size: Annotated[int, msgspec.Meta(ge=10, le=1000)] = 50


class JobsConfig(_Section):
    # Seconds an agent's claim on a job lasts; its heartbeats (every third of it) renew it. A
    # lease that runs out (the agent died or lost the network) turns the job's unfinished tests
    # into TIMEOUT.
    lease_s: Positive = 60
    # Seconds a queued job waits for an agent before its tests become TIMEOUT. 0: forever.
    queue_timeout_s: NonNegative = 3600
    # Longest an agent's request for work is held open while nothing is queued (long-poll).
    max_poll_s: Annotated[int, msgspec.Meta(ge=1, le=120)] = 30
    # Long-polls waiting for work at once, per API key and in all; the next one is answered
    # 429 with retry_after (agents wait and ask again), so waiting agents can never take the
    # connections other requests need.
    max_polls_per_key: Positive = 16
    max_polls: Positive = 512
    # Seconds between checks for expired leases and queue timeouts.
    check_interval_s: Positive = 5


class AgentConfig(_Section):
    # Run an agent inside `qahub serve`, for a developer on one machine. A team server leaves
    # this off and runs `qahub agent` on test machines.
    enabled: bool = False
    # The tenant (name or id) whose jobs the embedded agent runs. Empty: the first tenant.
    tenant: str = ""
    # Its agent.toml (the same file `qahub agent --config` reads), relative to this file.
    config: str = "agent.toml"


Ratio = Annotated[float, msgspec.Meta(gt=0, le=1)]


class FlakyConfig(_Section):
    """Flakiness (docs/health.md writes out every formula these keys feed)."""

    # N: a test's flakiness is judged over its results in the last N completed runs of the
    # project's default branch (infrastructure failures left out).
    window_runs: Annotated[int, msgspec.Meta(ge=2, le=500)] = 30
    # Fewest results in the window before the flip rate may flag a test.
    min_samples: Annotated[int, msgspec.Meta(ge=2, le=500)] = 10
    # Flip rate (status changes / (results - 1)) at or above which a test is flaky.
    flip_threshold: Ratio = 0.2
    # A run in which at least this share of executed tests failed is an infrastructure
    # failure, left out of flakiness, grades and baselines.
    infra_failure_ratio: Ratio = 0.8
    # Only runs with at least this many executed tests can be judged infrastructure failures
    # (in a project of three tests, three failures are more likely a real break).
    infra_min_tests: Positive = 10
    # M: a flagged test is cleared only after this many clean passes in a row.
    clear_after_clean_runs: Annotated[int, msgspec.Meta(ge=1, le=500)] = 10
    # A test whose last this many results all failed is broken (failing every time lately).
    broken_after_failures: Annotated[int, msgspec.Meta(ge=1, le=500)] = 3


class GradeConfig(_Section):
    # Fewest completed runs in the window for a grade; below it: "not enough data".
    min_runs: Positive = 5
    # Seconds between gradings of the trend's day rows that changed since they were graded.
    refresh_interval_s: Positive = 60


class WebhooksConfig(_Section):
    # Seconds between looks into the outbox for deliveries that are due. 0 stops delivery
    # (events still queue up and go out once it is back on).
    poll_interval_s: NonNegative = 2
    # Seconds one delivery attempt may take, from connecting to the end of the answer.
    timeout_s: Positive = 10
    # Seconds before the first retry of a failed delivery; each retry waits twice as long...
    retry_base_s: Positive = 30
    # ...but never longer than this.
    retry_max_s: Positive = 3600
    # Hours after which a delivery that never got a 2xx answer is given up (it can still be
    # redelivered by hand).
    retry_for_hours: Positive = 24
    # Most deliveries sent at once by one look into the outbox.
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=500)] = 20
    # Days finished deliveries and their attempts are kept. 0 keeps them forever.
    keep_days: NonNegative = 30
    # Internal networks webhooks may reach, e.g. ["10.0.0.0/8", "127.0.0.1"]. Deliveries go only
    # to public addresses otherwise: loopback, private, link-local (cloud metadata) and other
    # non-public addresses are refused, judged on the address connected to, after DNS
    # (docs/robustness.md, "Webhooks aimed inside").
    allow_networks: list[str] = []

    def __post_init__(self) -> None:
        for entry in self.allow_networks:
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                raise ValueError(f"allow_networks: {entry!r} is not an IP address or network "
                                 "(write e.g. 10.0.0.0/8, 127.0.0.1 or fd00::/8)") from None


class BackupConfig(_Section):
    # Folder of scheduled backups and of `qahub backup` without --to. Empty: <data folder>/backups.
    dir: str = ""
    # Minutes between scheduled backups written by the server. 0 turns them off.
    interval_minutes: NonNegative = 1440
    # Scheduled backups kept (each is a full copy); manual ones are never removed.
    keep: Positive = 3


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    storage: StorageConfig = msgspec.field(default_factory=StorageConfig)
    attachments: AttachmentsConfig = msgspec.field(default_factory=AttachmentsConfig)
    retention: RetentionConfig = msgspec.field(default_factory=RetentionConfig)
    logging: LoggingConfig = msgspec.field(default_factory=LoggingConfig)
    qualitypilot: QualityPilotConfig = msgspec.field(default_factory=QualityPilotConfig)
    rate_limits: RateLimitsConfig = msgspec.field(default_factory=RateLimitsConfig)
    dashboard: DashboardConfig = msgspec.field(default_factory=DashboardConfig)
    jobs: JobsConfig = msgspec.field(default_factory=JobsConfig)
    agent: AgentConfig = msgspec.field(default_factory=AgentConfig)
    flaky: FlakyConfig = msgspec.field(default_factory=FlakyConfig)
    grade: GradeConfig = msgspec.field(default_factory=GradeConfig)
    webhooks: WebhooksConfig = msgspec.field(default_factory=WebhooksConfig)
    backup: BackupConfig = msgspec.field(default_factory=BackupConfig)
    # Where the config was read from; relative paths are resolved against its folder.
    base_dir: str = "."

    @property
    def data_dir(self) -> Path:
        return (Path(self.base_dir) / self.storage.data_dir).resolve()

    @property
    def db_path(self) -> Path:
        return self.data_dir / "qahub.db"

    @property
    def attachments_dir(self) -> Path:
        return self.data_dir / "attachments"

    @property
    def backup_dir(self) -> Path:
        if self.backup.dir:
            return (Path(self.base_dir) / self.backup.dir).resolve()
        return self.data_dir / "backups"

    @property
    def public_url(self) -> str:
        if self.server.public_url:
            return self.server.public_url.rstrip("/")
        host = self.server.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"http://{host}:{self.server.port}"


class ConfigError(Exception):
    """A config that cannot be used; the message names the file and the key."""


# Short names people expect, next to the systematic QAHUB_<SECTION>_<KEY> form.
ENV_ALIASES: dict[str, tuple[str, str]] = {
    "QAHUB_HOST": ("server", "host"),
    "QAHUB_PORT": ("server", "port"),
    "QAHUB_PUBLIC_URL": ("server", "public_url"),
    "QAHUB_DATA_DIR": ("storage", "data_dir"),
    "ATTACHMENT_MAX_BYTES": ("attachments", "max_bytes"),  # the name seed 001 uses
}


def _sections() -> dict[str, type[msgspec.Struct]]:
    out = {}
    for field in msgspec.structs.fields(Config):
        if isinstance(field.type, type) and issubclass(field.type, msgspec.Struct):
            out[field.name] = field.type
    return out


def env_overrides(environ: dict[str, str]) -> list[tuple[str, str, str, str]]:
    """(env name, section, key, raw value) for every override present in `environ`."""
    found = []
    for section, struct in _sections().items():
        for field in msgspec.structs.fields(struct):
            name = f"QAHUB_{section}_{field.name}".upper()
            if name in environ:
                found.append((name, section, field.name, environ[name]))
    for name, (section, key) in ENV_ALIASES.items():
        if name in environ:
            found.append((name, section, key, environ[name]))
    return found


def _field_type(section: str, key: str) -> Any:
    struct = _sections()[section]
    for field in msgspec.structs.fields(struct):
        if field.name == key:
            return field.type
    raise KeyError(key)


def load_config(path: str | Path | None, environ: dict[str, str] | None = None) -> Config:
    """Read `path` (None: defaults only), apply environment overrides, validate strictly."""
    environ = dict(os.environ) if environ is None else environ
    raw: dict[str, Any] = {}
    base_dir = Path.cwd()
    if path is not None:
        path = Path(path)
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found (create one with `qahub init`)") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        # absolute(), not resolve(): the shipped top-level qahub.toml is a symlink into the
        # package, and its data folder belongs beside the link, not beside the target.
        base_dir = path.absolute().parent
        where = str(path)
    else:
        where = "built-in defaults"
    if "base_dir" in raw:
        raise ConfigError(f"{where}: unknown key `base_dir`")
    for name, section, key, value in env_overrides(environ):
        try:
            converted = msgspec.convert(value, _field_type(section, key), strict=False)
        except msgspec.ValidationError as exc:
            raise ConfigError(f"environment variable {name}: {exc}") from None
        raw.setdefault(section, {})
        if not isinstance(raw[section], dict):
            raise ConfigError(f"{where}: `{section}` must be a table")
        raw[section][key] = converted
    raw["base_dir"] = str(base_dir)
    try:
        return msgspec.convert(raw, Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def default_config_text() -> str:
    """The commented default `qahub.toml` shipped inside the package (what `qahub init` writes)."""
    return (Path(__file__).parent / "qahub.toml").read_text(encoding="utf-8")
