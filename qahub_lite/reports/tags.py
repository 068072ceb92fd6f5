"""Test-case codes and tags found in titles, markers, properties and annotations.

A result is linked to a hub test case by a *code* such as ``TC-042``. Teams write it in several
places depending on the tool, and every place below was seen in real reports:

* in the title: ``@qa-hub('TC-042') login works`` (any runner; Go turns the spaces that follow
  into ``_``, Playwright keeps it in the title and also lists ``qa-hub('TC-042')`` as a tag);
* as a pytest marker ``@pytest.mark.qahub("TC-042")`` that a report recorded as a keyword;
* as a property (``record_property("qa_hub_case", "TC-100")``, JUnit ``<property>``);
* as a Playwright annotation ``{type: "qa-hub", description: "TC-042"}``.

The title is left untouched: it is the test's identity in the hub, and stripping the tag would
make the same test look new the day someone adds one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# `@qa-hub('TC-042')`, `qa-hub("TC-042")` (Playwright tag form, no "@"), `qahub(TC-042)`
# (marker repr), `qa_hub('TC-042')`. The code itself is a conservative identifier so that a
# stray parenthesis in a title cannot swallow the rest of it.
_CODE_RE = re.compile(
    r"""@?\bqa[-_]?hub\(\s*(?:code\s*=\s*)?['"]?(?P<code>[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63})['"]?\s*\)""",
    re.IGNORECASE,
)
# Plain `@smoke` style tags: an "@" at the start of the title or after whitespace/punctuation
# (so that e-mail addresses such as a@b.c are not tags).
_TAG_RE = re.compile(r"(?:^|(?<=[\s\[(,_]))@(?P<tag>[A-Za-z][\w.:-]*)")

# Property / annotation names that carry a code. Compared after lower-casing and turning "-"
# into "_". Deliberately short: unknown properties stay metadata, not identity.
CODE_KEYS = frozenset({"qa_hub", "qahub", "qa_hub_case", "qa_hub_id", "qa_hub_code", "test_case_code"})
# Property names that carry tags: `<property name="tag" value="smoke"/>` (JUnit, written by
# record_property or a listener), NUnit's `Category`, xUnit.net's `Category` trait. The plural
# forms may hold several, comma-separated.
TAG_KEYS = frozenset({"tag", "tags", "category", "categories"})


def normalize_key(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def code_in_text(text: str | None) -> str | None:
    """The first code written as ``qa-hub('TC-042')`` (with or without "@") in `text`."""
    if not text or "hub" not in text.lower():  # cheap pre-check: runs on every title
        return None
    match = _CODE_RE.search(text)
    return match.group("code") if match else None


def tags_in_title(title: str) -> list[str]:
    """``@word`` tags written in a title, without the "@", in order, without the qa-hub code."""
    if "@" not in title:
        return []
    found: list[str] = []
    for match in _TAG_RE.finditer(title):
        tag = match.group("tag")
        if normalize_key(tag) in ("qa_hub", "qahub"):
            continue
        if tag not in found:
            found.append(tag)
    return found


def extract(
    title: str,
    *,
    tags: Iterable[str] = (),
    properties: Iterable[tuple[str, str]] = (),
    annotations: Iterable[tuple[str, str | None]] = (),
    keywords: Iterable[str] = (),
) -> tuple[list[str], str | None]:
    """Return ``(tags, test_case_code)`` for one test.

    Priority of the code, most explicit first: annotation, property, marker/keyword, tag list,
    title. Tags are the tool's own tags (leading "@" removed) followed by ``@tags`` in the title.
    """
    code: str | None = None
    for kind, description in annotations:
        if code is None and description and normalize_key(kind) in CODE_KEYS:
            code = description.strip()
    property_tags: list[str] = []
    for name, value in properties:
        key = normalize_key(name)
        if code is None and value and key in CODE_KEYS:
            code = value.strip()
        elif value and key in TAG_KEYS:
            property_tags.extend(part.strip() for part in value.split(",") if part.strip())
    for keyword in keywords:
        if code is None:
            code = code_in_text(keyword)
    out: list[str] = []
    for tag in (*tags, *property_tags):
        tag = tag.lstrip("@")
        tag_code = code_in_text(tag)
        if tag_code:
            code = code or tag_code
            continue
        if tag and tag not in out:
            out.append(tag)
    if code is None:
        code = code_in_text(title)
    for tag in tags_in_title(title):
        if tag not in out:
            out.append(tag)
    return out, code
