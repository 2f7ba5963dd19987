"""`python -m generation_worker`: run the dramatiq worker for the generation queue."""

from __future__ import annotations

import os
import sys

from generation_worker.settings import WorkerSettings


def main() -> None:
    settings = WorkerSettings()
    args = [
        sys.executable,
        "-m",
        "dramatiq",
        "generation_worker.actors",
        "--processes",
        str(settings.generation_processes),
        "--threads",
        str(settings.generation_threads),
        "--queues",
        "generation",
    ]
    os.execv(sys.executable, args)  # noqa: S606 - replaces this process with dramatiq's CLI


if __name__ == "__main__":
    main()
