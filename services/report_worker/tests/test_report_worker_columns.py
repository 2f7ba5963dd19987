"""Cells and timestamps: exact text for the edge cases, whichever code path produces it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from report_worker.columns import cell, display_width, utc


@pytest.mark.parametrize(
    ("value", "width", "right", "expected"),
    [
        ("Rex", 6, False, "Rex   "),
        ("Rex", 6, True, "   Rex"),
        ("Rexford", 7, False, "Rexford"),  # fits exactly
        ("Rexford!", 7, False, "Rexfor…"),  # one too many: cut, with the ellipsis
        (1234, 6, True, "  1234"),  # not a string
        ("", 3, False, "   "),
        ("猫猫猫", 6, False, "猫猫猫"),  # two columns each
        ("猫猫猫", 5, False, "猫猫…"),
        ("猫猫猫猫", 6, False, "猫猫… "),  # no half a cat: the ellipsis, then one pad
        ("Cafe\u0301", 5, False, "Cafe\u0301 "),  # the combining accent takes no column
        ("Zoë", 4, True, " Zoë"),
        ("a\tb\nc\x7fd", 8, False, "a b c d "),  # control characters shown as spaces
        ("tab\tat the end of a long name", 8, False, "tab at …"),
        ("\u200bzero", 5, False, "\u200bzero "),  # a format character (Cf) has no width
    ],
)
def test_cell(value: object, width: int, right: bool, expected: str) -> None:
    assert cell(value, width, right=right) == expected
    assert display_width(expected) == width


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC),
        datetime(2026, 11, 24, 12, 0, 0, 999_999, tzinfo=UTC),  # truncated, never rounded
        datetime(2026, 1, 1, 1, 30, tzinfo=timezone(timedelta(hours=2))),  # the previous day
        datetime(2026, 6, 1, 23, 59, 59, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
        datetime(999, 3, 4, 5, 6, 7, tzinfo=UTC),  # a year below 1000
        datetime(1, 1, 1, 0, 0, 0, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
    ],
)
def test_utc_is_strftime_in_utc_to_the_second(value: datetime) -> None:
    assert utc(value) == value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def test_utc_examples() -> None:
    assert utc(datetime(2026, 11, 24, 12, 0, 0, 500_000, tzinfo=UTC)) == "2026-11-24 12:00:00"
    shifted = datetime(2026, 1, 1, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    assert utc(shifted) == "2025-12-31 23:30:00"
