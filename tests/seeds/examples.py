"""Example payloads cut out of the seed documents, verbatim, for tests to send."""

from __future__ import annotations

import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent


def seed_text(number: str) -> str:
    (path,) = HERE.glob(f"{number}_*.txt")
    return path.read_text(encoding="utf-8")


def first_json_after(text: str, marker: str) -> dict:
    """The first balanced JSON object after `marker` in a seed document."""
    start = text.index("{", text.index(marker))
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return json.loads(text[start : i + 1])
    raise ValueError(f"no balanced JSON after {marker!r}")


def seed000_ingest_body() -> dict:
    """Seed 000's `POST /api/v1/ingest` request body."""
    return first_json_after(seed_text("000"), "Request body")


def seed001_upsert_body() -> dict:
    """Seed 001's bulk-upsert request body."""
    return first_json_after(seed_text("001"), "Bulk-upsert results\nPOST")


def seed002_payload() -> dict:
    """Seed 002's QualityPilot payload, with its // comments removed."""
    text = seed_text("002")
    block = text[text.index("{", text.index("Payload")) :]
    block = re.sub(r"//[^\n]*", "", block)
    return first_json_after(block, "{")
