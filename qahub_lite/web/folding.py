"""Long text on the dashboard's pages, bounded: a head shown, a little more folded under a
<details>, and the rest only behind a link to the full text.

A run page lists up to 50 failures, and each can carry a 1 MB error message, a 1 MB stack and
64 KB of output; rendered whole, 20 such failures made a 41 MB page. Folded, a failure costs a
few KB of HTML whatever it carries, and nothing is lost: the link serves the whole field.
"""

from __future__ import annotations

import msgspec


class Folded(msgspec.Struct):
    head: str  # shown as it is
    rest: str  # folded under <details> ("" when nothing is)
    rest_lines: int  # lines in `rest`, for its summary
    cut: bool  # the text goes on past head + rest: link to the full text
    size: int  # bytes of the whole text (UTF-8)

    @property
    def size_text(self) -> str:
        return human_size(self.size)


def fold(text: str | None, *, head_lines: int, head_chars: int, rest_chars: int) -> Folded | None:
    """The first `head_lines` lines (at most `head_chars` characters) as the head, then up to
    `rest_chars` more characters folded; whatever is left is only linked to."""
    if not text:
        return None
    size = len(text.encode("utf-8", errors="replace"))
    lines = text.split("\n", head_lines) if head_lines else ["", text]
    head = "\n".join(lines[:head_lines])[:head_chars] if head_lines else ""
    remainder = text[len(head):].removeprefix("\n")
    rest = remainder[:rest_chars]
    return Folded(head, rest, rest.count("\n") + 1 if rest else 0, len(rest) < len(remainder), size)


def human_size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / (1024 * 1024):.1f} MB"
