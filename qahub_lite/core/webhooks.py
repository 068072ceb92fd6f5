"""Webhooks: per-project subscriptions to `run.completed`, `run.regressed` and `test.flaky`,
the bodies they receive, and their signature.

A body is built once, when its event is queued, in the hook's format, and stored in the outbox
(outbox.py) byte for byte: every attempt sends, and signs, the same bytes.

- json: {"id": event id, "event", "created_at", "project": {id, slug, name}, "data": {...}}
- slack / mattermost: {"text": "..."} for incoming webhooks (Slack's <url|label> links,
  Mattermost's [label](url) ones).

Signature (docs/health.md shows how to check it): `X-Qahub-Timestamp: <unix seconds>` and
`X-Qahub-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" with the hook's secret>`.
The timestamp is the attempt's, so a receiver can refuse replays of old deliveries.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from urllib.parse import urlsplit

import msgspec

from ..db import webhooks as webhooks_db
from .clock import new_id, now_ms, to_iso
from .errors import Invalid, NotFound

EVENTS = ("run.completed", "run.regressed", "test.flaky", "failure.new", "test.quarantined", "test.unquarantined")
FORMATS = ("json", "slack", "mattermost")
SECRET_PREFIX = "whsec_"
# A delivery asked for by hand to check a receiver (core/webhook_ping.py); no hook subscribes to it.
TEST_EVENT = "webhook.test"


class Webhook(msgspec.Struct):
    id: str
    project_id: str
    url: str
    events: list[str]
    format: str
    active: bool
    description: str | None
    created_at: str | None
    updated_at: str | None


class NewWebhook(msgspec.Struct):
    """The answer to a creation: the secret is shown this once."""

    webhook: Webhook
    secret: str


class WebhookList(msgspec.Struct):
    data: list[Webhook]


def _webhook(row) -> Webhook:
    return Webhook(row["id"], row["project_id"], row["url"], row["events"].split(), row["format"], bool(row["active"]),
                   row["description"], to_iso(row["created_at"]), to_iso(row["updated_at"]))


def without_secrets(hook: Webhook) -> Webhook:
    """The hook as a key below admin sees it: a Slack or Mattermost incoming-webhook URL is
    itself the credential to post into the channel, so only its scheme and host are shown."""
    parts = urlsplit(hook.url)
    return msgspec.structs.replace(hook, url=f"{parts.scheme}://{parts.hostname or ''}/…")


def _check(url: str | None, events: list[str] | None, fmt: str | None) -> None:
    if url is not None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise Invalid("url must be an absolute http:// or https:// URL")
    if events is not None:
        unknown = sorted(set(events) - set(EVENTS))
        if unknown or not events:
            raise Invalid(f"events must be a non-empty list of {', '.join(EVENTS)}" +
                          (f" (unknown: {', '.join(unknown)})" if unknown else ""))
    if fmt is not None and fmt not in FORMATS:
        raise Invalid(f"format must be one of {', '.join(FORMATS)}")


def create_webhook(
    conn, tenant_id: str, project_id: str, *, url: str, events: list[str], fmt: str = "json",
    description: str | None = None, active: bool = True, secret: str | None = None,
) -> NewWebhook:
    _check(url, events, fmt)
    secret = secret or SECRET_PREFIX + secrets.token_urlsafe(32)
    hook_id = new_id()
    webhooks_db.insert_webhook(
        conn, hook_id=hook_id, tenant_id=tenant_id, project_id=project_id, url=url,
        events=" ".join(dict.fromkeys(events)), fmt=fmt, active=active, description=description, secret=secret,
        now=now_ms(),
    )
    return NewWebhook(get_webhook(conn, tenant_id, hook_id), secret)


def get_webhook(conn, tenant_id: str, hook_id: str) -> Webhook:
    row = webhooks_db.get_webhook(conn, tenant_id, hook_id)
    if row is None:
        raise NotFound("Webhook not found")
    return _webhook(row)


def list_webhooks(conn, project_id: str) -> WebhookList:
    return WebhookList([_webhook(r) for r in webhooks_db.list_webhooks(conn, project_id)])


def update_webhook(conn, tenant_id: str, hook_id: str, changes: dict) -> Webhook:
    """Change url, events, format, active, description or secret."""
    get_webhook(conn, tenant_id, hook_id)
    _check(changes.get("url"), changes.get("events"), changes.get("format"))
    columns = {}
    for key, value in changes.items():
        if key == "events":
            value = " ".join(dict.fromkeys(value))
        elif key == "active":
            value = int(value)
        elif key not in ("url", "format", "description", "secret"):
            raise Invalid(f"cannot update {key}")
        columns[key] = value
    webhooks_db.update_webhook(conn, hook_id, columns, now_ms())
    return get_webhook(conn, tenant_id, hook_id)


def delete_webhook(conn, tenant_id: str, hook_id: str) -> None:
    """Delete a hook with its deliveries, pending ones too."""
    get_webhook(conn, tenant_id, hook_id)
    webhooks_db.delete_webhook(conn, hook_id)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver does (tests use it; docs/health.md shows it in a few lines)."""
    expected = sign(secret, int(timestamp), body)
    return hmac.compare_digest(expected, signature)


# --- bodies ---------------------------------------------------------------------------------


class Subscriber(msgspec.Struct):
    id: str
    events: list[str]
    format: str


def subscribers(conn, project_id: str) -> list[Subscriber]:
    return [Subscriber(r["id"], r["events"].split(), r["format"])
            for r in webhooks_db.active_subscribers(conn, project_id)]


def _slack_escape(text: str) -> str:
    # Slack reads links and mentions (<url|label>, <!channel>, <@U123>) only between < and >.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# Mattermost renders Markdown: a test title like "[click](https://evil.example)" or "@channel"
# would become a link or ping everybody. Markdown punctuation gets a backslash; mentions, bare
# URLs and "www." (which Mattermost links without any Markdown) get a zero-width space that
# breaks them while the text reads the same.
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|~<>=:])")
_ZWSP = "\u200b"


def _mattermost_escape(text: str) -> str:
    text = _MARKDOWN.sub(r"\\\1", text)
    for token in ("@", "#", "~"):  # mentions, hashtags (searches), channel links
        text = text.replace(token, token + _ZWSP)
    return re.sub(r"(?i)(www)(\\\.)", r"\1" + _ZWSP + r"\2", text.replace("\\:", "\\:" + _ZWSP))


def _link(fmt: str, url: str, label: str) -> str:
    if fmt == "slack":
        return f"<{url}|{_slack_escape(label)}>"
    return f"[{_mattermost_escape(label)}]({url})"


def _plain(fmt: str, text: str) -> str:
    return _slack_escape(text) if fmt == "slack" else _mattermost_escape(text)


def _code(fmt: str, text: str) -> str:
    """A short value (a branch) as inline code; a backtick in it would end the code span early."""
    text = text.replace("`", "'")
    # Markdown is not read inside code, but be sure no mention is either.
    return f"`{_slack_escape(text)}`" if fmt == "slack" else f"`{text.replace('@', '@' + _ZWSP)}`"


def chat_text(fmt: str, event: str, project: dict, data: dict) -> str:
    """One message for a chat channel, with a link to the run."""
    if event == TEST_EVENT:
        return f"[{_plain(fmt, project['name'])}] {data['message']}"
    if event in ("failure.new", "test.quarantined", "test.unquarantined"):
        return _triage_text(fmt, event, project, data)
    run = data["run"]
    where = _code(fmt, run["branch"]) if run.get("branch") else "no branch"
    head = f"[{_plain(fmt, project['name'])}] Run {_link(fmt, run['url'], run['name'])} on {where}"
    c = run["counts"]
    if event == "run.completed":
        verdict = (run.get("verdict") or run["status"]).lower()
        return (
            f"{head} finished {verdict}: {c['passed']} passed, {c['failed']} failed, {c['broken']} broken, "
            f"{c['skipped']} skipped ({c['flaky']} flaky)"
        )
    if event == "run.regressed":
        lines = [f"{head} regressed: {data['new_failures_total']} new failure(s) against the baseline"]
        lines += [f"• {_plain(fmt, f['title'])} ({f['status']})" for f in data["new_failures"][:10]]
        if data["new_failures_total"] > 10:
            lines.append(f"… and {data['new_failures_total'] - 10} more")
        return "\n".join(lines)
    lines = [f"{head}: {len(data['tests'])} test(s) turned flaky"]
    lines += [
        f"• {_plain(fmt, t['title'])} (flip rate {t['flip_rate']:.0%}, passed on retry {t['retry_rate']:.0%})"
        for t in data["tests"][:10]
    ]
    return "\n".join(lines)


def _triage_text(fmt: str, event: str, project: dict, data: dict) -> str:
    """Triage events (core/triage_events.py) have no run summary: a signature or a test."""
    head = f"[{_plain(fmt, project['name'])}]"
    if event == "failure.new":
        lines = [f"{head} {len(data['signatures'])} new kind(s) of failure"]
        lines += [f"• {_plain(fmt, s['exception_type'])}: {_plain(fmt, (s['example'] or '')[:120])}"
                  for s in data["signatures"][:10]]
        return "\n".join(lines)
    test = data["test"]
    verb = "quarantined" if event == "test.quarantined" else "released from quarantine"
    why = f" ({_plain(fmt, data['reason'])})" if data.get("reason") else ""
    return f"{head} {_plain(fmt, test['title'])} {verb} by {_plain(fmt, data['actor'])}{why}"


def build_body(fmt: str, event: str, event_id: str, created_at: int, project: dict, data: dict) -> str:
    """The one envelope of every delivery, a real event's or a test's, in the hook's format."""
    if fmt == "json":
        envelope = {"id": event_id, "event": event, "created_at": to_iso(created_at), "project": project, "data": data}
        return msgspec.json.encode(envelope).decode()
    return msgspec.json.encode({"text": chat_text(fmt, event, project, data)}).decode()


def enqueue(conn, hooks: list[Subscriber], event: str, project: dict, data: dict) -> int:
    """Writer operation: queue `event` for every hook subscribed to it; returns how many."""
    wanted = [h for h in hooks if event in h.events]
    if not wanted:
        return 0
    event_id, now = new_id(), now_ms()
    webhooks_db.insert_deliveries(conn, [
        (new_id(), h.id, event_id, event, build_body(h.format, event, event_id, now, project, data), now, None, now)
        for h in wanted
    ])
    return len(wanted)
