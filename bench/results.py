"""`--write-results`: put a run's tables into bench/RESULTS.md between two markers, so notes
written by hand around them survive the next run."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
BEGIN = "<!-- bench:begin: written by `python -m bench --write-results`; edits inside are lost -->"
END = "<!-- bench:end -->"


def write(body: str, path: Path = RESULTS) -> None:
    block = f"{BEGIN}\n\n{body.strip()}\n\n{END}"
    text = path.read_text() if path.exists() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + block + tail
    else:
        text = f"# Benchmark results\n\n{block}\n"
    path.write_text(text)
