"""Sending a payload to a hub: the chunked upload of its results, then its attachments.
Used by `qahub upload` and the pytest plugin.

The wire protocol (seeds 000 and 001, plus qahub-lite's run lifecycle):
- one chunk: `POST /api/v1/ingest` with `"status": "COMPLETED"`;
- several: the first chunk with `"status": "RUNNING"`, the others with
  `POST /api/v1/runs/{id}/results` (an upsert, so a retried chunk cannot duplicate), then
  `POST /api/v1/runs/{id}/finish`. If a chunk still fails after the client's retries, the run
  is finished as ERROR so that nobody waits for it forever;
- then each report attachment with `POST /api/v1/results/{result_id}/attachments`, the result
  found by its test case code (linked results) or its (suite, title) (unlinked ones), and its
  variant;
- then `verify`: the run's stored counts per status are compared with the parsed ones, so a
  result lost on the way is an error, never a silent gap.

Results whose test case code the library lacks are kept as unlinked results (listed in a
warning) unless `strict_codes` asks the server to reject them (seed 000's default).
"""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Callable
from pathlib import Path

import msgspec

from .client import ApiError, QahubClient
from .payload import Payload

# A chunk is closed at whichever comes first. 5,000 results validate in a few milliseconds on
# the server and stay far below its 64 MB body limit even with captured output.
DEFAULT_CHUNK_RESULTS = 5000
DEFAULT_CHUNK_BYTES = 16 * 1024 * 1024


class ItemError(msgspec.Struct):
    index: int  # into the payload's results, across all chunks
    error: str


class Outcome(msgspec.Struct):
    run_id: str
    short_id: str
    url: str
    accepted: int
    rejected: int
    errors: list[ItemError]
    chunks: int
    attachments_uploaded: int = 0
    attachments_skipped: int = 0
    unlinked: list[int] = []  # indexes of results kept unlinked because their code is unknown


class UploadFailed(Exception):
    """The upload did not complete. `run` is the short id of a run left behind (marked
    ERROR), if one had been created."""

    def __init__(self, message: str, run: str | None = None) -> None:
        super().__init__(message)
        self.run = run


Progress = Callable[[int, int], None]
Warn = Callable[[str], None]
_JSON = {"Content-Type": "application/json"}
_encoder = msgspec.json.Encoder()


def split(encoded: list[bytes], max_results: int, max_bytes: int) -> list[tuple[int, int]]:
    """(start, end) spans of `encoded` items, each at most `max_results` items and, unless a
    single item is larger on its own, `max_bytes` bytes. Always at least one span."""
    spans: list[tuple[int, int]] = []
    start, size = 0, 0
    for index, item in enumerate(encoded):
        if index > start and (index - start >= max_results or size + len(item) > max_bytes):
            spans.append((start, index))
            start, size = index, 0
        size += len(item) + 1
    spans.append((start, len(encoded)))
    return spans


def _body(fields: dict, items: list[bytes]) -> bytes:
    return _encoder.encode({**fields, "results": [msgspec.Raw(item) for item in items]})


def send(
    client: QahubClient, payload: Payload, *, chunk_results: int = DEFAULT_CHUNK_RESULTS,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES, progress: Progress | None = None, warn: Warn | None = None,
    strict_codes: bool = False,
) -> Outcome:
    """Create the run with all of `payload`'s results, then upload its attachments.

    Raises UploadFailed when the results could not all be stored (attachments that cannot be
    uploaded are only warned about: the results they belong to are in)."""
    warn = warn or (lambda message: None)
    encoded = [_encoder.encode(result) for result in payload.results]
    spans = split(encoded, max(1, chunk_results), max(1, chunk_bytes))
    total = len(encoded)
    head = msgspec.to_builtins(payload.run)
    head["status"] = "COMPLETED" if len(spans) == 1 else "RUNNING"
    # Tagged tests whose code is not in the library: kept unlinked, or rejected (seed 000).
    extra = {} if strict_codes else {"unknown_codes": "unlink"}
    head.update(extra)
    first_start, first_end = spans[0]
    try:
        answer = client.request(
            "POST", "/api/v1/ingest", content=_body(head, encoded[first_start:first_end]), headers=_JSON
        ).json()
    except ApiError as exc:
        raise UploadFailed(str(exc) if exc.status == 0 else f"the server refused the upload: {exc}") from None
    run_id, short_id = answer["run_id"], answer["short_id"]
    outcome = Outcome(run_id, short_id, answer.get("url", ""), 0, 0, [], len(spans))
    _tally(outcome, answer, first_start)
    if progress:
        progress(first_end, total)
    if len(spans) > 1:
        try:
            for start, end in spans[1:]:
                answer = client.request(
                    "POST", f"/api/v1/runs/{run_id}/results", content=_body(extra, encoded[start:end]), headers=_JSON
                ).json()
                _tally(outcome, answer, start)
                if progress:
                    progress(end, total)
            client.request("POST", f"/api/v1/runs/{run_id}/finish", json={"status": "COMPLETED"})
        except ApiError as exc:
            _finish_as_error(client, run_id)
            raise UploadFailed(
                f"run {short_id} is incomplete (marked ERROR) after {outcome.accepted} of {total} results: {exc}",
                short_id,
            ) from None
    coded = not strict_codes and any(r.get("test_case_code") for r in payload.results)
    if payload.attachments or coded:
        try:
            rows = _stored_rows(client, run_id)
        except ApiError as exc:
            rows = None
            warn(f"cannot list the run's results: {exc}")
        if rows is not None and coded:
            outcome.unlinked = _unlinked(payload, outcome, rows)
        if payload.attachments:
            if rows is None:
                warn("attachments not uploaded: the run's results could not be listed")
                outcome.attachments_skipped = len(payload.attachments)
            else:
                outcome.attachments_uploaded, outcome.attachments_skipped = upload_attachments(
                    client, payload, rows, warn
                )
    return outcome


def verify(client: QahubClient, payload: Payload, outcome: Outcome) -> str | None:
    """Compare what the server stored for the run with what was parsed and accepted: None when
    every status count agrees, else a sentence naming each difference."""
    from .payload import count

    refused = {e.index for e in outcome.errors}
    sent = count([r for i, r in enumerate(payload.results) if i not in refused])
    stored = client.get(f"/api/v1/runs/{outcome.run_id}").get("counts", {})
    differences = []
    for field, label in (("tests", "total"), ("passed", "passed"), ("failed", "failed"), ("broken", "broken"),
                         ("skipped", "skipped"), ("unknown", "unknown"), ("flaky", "flaky")):
        parsed = getattr(sent, field)
        have = int(stored.get(label, 0) or 0)
        if parsed != have:
            differences.append(f"{label}: parsed {parsed}, stored {have}")
    if not differences:
        return None
    return (f"run {outcome.short_id} does not hold what was parsed ({'; '.join(differences)}): "
            "some results were lost or merged on the way")


def _tally(outcome: Outcome, answer: dict, offset: int) -> None:
    outcome.accepted += int(answer.get("accepted", 0))
    outcome.rejected += int(answer.get("rejected", 0))
    for error in answer.get("errors") or []:
        outcome.errors.append(ItemError(int(error.get("index", 0)) + offset, str(error.get("error", ""))))


def confine(payload: Payload, root: Path, extra: list[Path], warn: Warn) -> int:
    """Keep only the attachments inside their report's folder, the repository root or an
    `extra` folder (`--attachments-from`), symlinks resolved first and held to the same rule:
    a report can name any path (`[[ATTACHMENT|/etc/passwd]]`, `../../`), and the upload must
    not send a file the user never meant to share. Returns how many were skipped (warned)."""
    roots = [os.path.realpath(p) for p in (root, *extra)]
    kept, skipped, secret = [], [], []
    for pending in payload.attachments:
        real = os.path.realpath(pending.path)
        allowed = roots + ([os.path.realpath(pending.report_dir)] if pending.report_dir else [])
        if _in_git_folder(real):
            # .git/config holds credentials (actions/checkout keeps its token there), .git/ the
            # whole history: never an attachment, whatever folder is allowed.
            secret.append(pending.path)
        elif any(_inside(real, folder) for folder in allowed):
            kept.append(pending)
        else:
            skipped.append(pending.path)
    payload.attachments = kept
    if skipped:
        warn(f"{len(skipped)} attachments skipped: outside the report's folder and the repository root "
             f"(widen with --attachments-from DIR): {_examples(skipped)}")
    if secret:
        warn(f"{len(secret)} attachments skipped: inside a .git folder (never sent): {_examples(secret)}")
    return len(skipped) + len(secret)


def _in_git_folder(real: str) -> bool:
    return ".git" in Path(real).parts


def _inside(path: str, folder: str) -> bool:
    try:
        return os.path.commonpath([path, folder]) == folder
    except ValueError:  # different drives on Windows
        return False


def _finish_as_error(client: QahubClient, run_id: str) -> None:
    try:
        client.request("POST", f"/api/v1/runs/{run_id}/finish", json={"status": "ERROR"})
    except ApiError:
        pass  # the server is gone; the run stays RUNNING and the caller already reports why


def _result_key(test_case_code: str | None, suite: str | None, title: str | None, variant: str | None) -> tuple:
    # Linked results are stored under their test case (whose title replaces the report's).
    if test_case_code:
        return ("code", test_case_code, variant or "")
    return ("test", suite or "", title or "", variant or "")


def _stored_rows(client: QahubClient, run_id: str) -> list[dict]:
    rows: list[dict] = []
    cursor = None
    while True:
        params = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"/api/v1/runs/{run_id}/results", params=params)
        rows.extend(page.get("data", []))
        cursor = page.get("next_cursor")
        if not cursor:
            return rows


def _unlinked(payload: Payload, outcome: Outcome, rows: list[dict]) -> list[int]:
    """Indexes of results sent with a code that were stored without one (unknown codes)."""
    linked = {(r.get("test_case_code"), r.get("variant") or "") for r in rows if r.get("test_case_code")}
    refused = {e.index for e in outcome.errors}
    return [
        i for i, r in enumerate(payload.results)
        if r.get("test_case_code") and i not in refused and (r["test_case_code"], r.get("variant") or "") not in linked
    ]


def upload_attachments(client: QahubClient, payload: Payload, rows: list[dict], warn: Warn) -> tuple[int, int]:
    """Upload each pending attachment to its result. Returns (uploaded, skipped); skips are
    warned about with their reason, grouped (a report whose files were not kept would
    otherwise print one line per file). Stops early only when the server cannot be reached."""
    ids: dict[tuple, str] = {}
    for row in rows:
        for key in (
            _result_key(row.get("test_case_code"), row.get("suite"), row.get("title"), row.get("variant")),
            # A result kept unlinked because its code is unknown is found by suite and title.
            _result_key(None, row.get("suite"), row.get("title"), row.get("variant")),
        ):
            ids.setdefault(key, str(row["id"]))
    uploaded = 0
    missing: list[str] = []
    orphaned: list[str] = []
    refused = 0
    for position, pending in enumerate(payload.attachments):
        path = Path(pending.path)
        result = payload.results[pending.index]
        result_id = ids.get(_result_key(
            result.get("test_case_code"), result.get("suite"), result.get("title"), result.get("variant")
        )) or ids.get(_result_key(None, result.get("suite"), result.get("title"), result.get("variant")))
        if result_id is None:
            orphaned.append(path.name)
            continue
        if not path.is_file():
            missing.append(str(path))
            continue
        content_type = pending.content_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        try:
            client.request(
                "POST", f"/api/v1/results/{result_id}/attachments",
                files=lambda: {"file": (path.name, path.open("rb"), content_type)},
            )
            uploaded += 1
        except OSError as exc:
            warn(f"attachment skipped, cannot read {path}: {exc.strerror or exc}")
            refused += 1
        except ApiError as exc:
            if exc.status == 0 or exc.status >= 500:
                left = len(payload.attachments) - position
                warn(f"attachments stopped, {left} not uploaded: {exc}")
                return uploaded, len(missing) + len(orphaned) + refused + left
            # 413 too large, 400 a type the server does not keep: the server decides, by content.
            warn(f"attachment {path} not accepted: {exc.message}")
            refused += 1
    if missing:
        warn(f"{len(missing)} attachment files not found, skipped: {_examples(missing)}")
    if orphaned:
        warn(f"{len(orphaned)} attachments skipped because their results were rejected: {_examples(orphaned)}")
    return uploaded, len(missing) + len(orphaned) + refused


def _examples(items: list[str], shown: int = 3) -> str:
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more
