"""Fixed-width text cells that stay aligned whatever a pet's name contains."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime

ELLIPSIS = "…"


def _char_width(char: str) -> int:
    """Terminal columns a character takes: 0 for combining marks, 2 for wide East Asian."""
    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def _printable(text: str) -> str:
    # A newline or tab inside a name would break the table: show it as a space.
    return "".join(" " if unicodedata.category(c) == "Cc" else c for c in text)


def display_width(text: str) -> int:
    if text.isascii():  # the common case, and a hot loop on a million rows
        return len(text)
    return sum(_char_width(c) for c in text)


def cell(value: object, width: int, *, right: bool = False) -> str:
    """`value` aligned in exactly `width` columns, cut with an ellipsis if too long."""
    text = str(value)
    if len(text) <= width and text.isascii() and text.isprintable():
        # The common case, once per row: one column per character, nothing to cut.
        return text.rjust(width) if right else text.ljust(width)
    if not text.isprintable():
        text = _printable(text)
    if display_width(text) > width:
        kept: list[str] = []
        used = 0
        for char in text:
            w = _char_width(char)
            if used + w > width - 1:
                break
            kept.append(char)
            used += w
        text = "".join(kept) + ELLIPSIS
    padding = " " * (width - display_width(text))
    return padding + text if right else text + padding


def utc(value: datetime) -> str:
    """`2026-11-24 12:00:00` in UTC, to the second."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    if value.year < 1000:  # how many digits strftime gives such a year depends on the platform
        return value.strftime("%Y-%m-%d %H:%M:%S")
    # The same text as strftime at a third of the cost (this runs once per row); %-formatting
    # is also faster here than format specifiers.
    return "%d-%02d-%02d %02d:%02d:%02d" % (  # noqa: UP031
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
    )


def thousands(value: int) -> str:
    return f"{value:,}"
