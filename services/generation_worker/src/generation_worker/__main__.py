"""`python -m generation_worker`: one dramatiq worker process for the generation queue.

The worker runs in this process rather than under dramatiq's forking CLI: a supervisor that
signals the whole process group (honcho, some init systems) would otherwise hit the forked
child twice, and dramatiq's second-signal path leaves its non-daemon threads hanging until a
SIGKILL. Scale by running more processes (compose replicas), each with GENERATION_THREADS.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from dramatiq import Worker

from core.messaging import GENERATION_QUEUE

log = logging.getLogger("generation_worker")

# Seconds to let in-flight steps finish on shutdown; each step is short (one HTTP call or one
# download), and anything unfinished is redelivered by RabbitMQ anyway.
SHUTDOWN_TIMEOUT_MS = 20_000


def main() -> None:
    from generation_worker.actors import broker, settings  # configures logging and the broker

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    broker.emit_after("process_boot")  # starts TimeLimit's watchdog, as dramatiq's CLI does
    worker = Worker(broker, queues={GENERATION_QUEUE}, worker_threads=settings.generation_threads)
    worker.start()
    log.info("worker ready", extra={"threads": settings.generation_threads})
    stop.wait()
    worker.stop(timeout=SHUTDOWN_TIMEOUT_MS)
    broker.close()
    log.info("worker stopped")


if __name__ == "__main__":
    main()
