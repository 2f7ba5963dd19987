"""How far a running prediction is, from its logs: cog models print tqdm bars, one line per
update (` 50%|█████     | 2/4 [00:01<00:01,  2.00it/s]`), and the last one is the news."""

from __future__ import annotations

import re

_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # tqdm redraws its line with \r
# N/M steps, not a date (2024/01/02) or a rate (it/s)
_STEPS = re.compile(r"(?<![\d/])(\d{1,9})/(\d{1,9})(?![\d/])")
_PERCENT = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d+)?)%")


def progress_of(logs: str | None) -> float | None:
    """0..1 from the last line with a step marker: `N/M` (exact) before `NN%`; None if no
    line has one."""
    for line in reversed(_LINE_BREAK.split(logs or "")):
        for done, total in reversed(_STEPS.findall(line)):
            if int(total) > 0 and int(done) <= int(total):
                return int(done) / int(total)
        for percent in reversed(_PERCENT.findall(line)):
            if float(percent) <= 100:
                return float(percent) / 100
    return None
