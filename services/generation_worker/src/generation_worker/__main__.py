"""`python -m generation_worker`: one Dramatiq worker process for the generation queues.

The worker runs in this process rather than under Dramatiq's forking CLI: a supervisor that
signals the whole process group (honcho, some init systems) would otherwise hit the forked
child twice, and Dramatiq's second-signal path leaves its threads hanging until a SIGKILL.
Scale with more processes (replicas), each with GENERATION_THREADS.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading

from dramatiq import Worker

from core.logging import configure_logging, load_settings
from core.messaging import QUEUES, AsyncPublishingBroker, create_publisher, run_on_worker_loop
from core.metrics import serve_metrics
from core.tracing import setup_tracing
from generation_worker.actors import declare_actors
from generation_worker.message_counts import MessageCounts
from generation_worker.resources import WorkerResources
from generation_worker.settings import WorkerSettings

log = logging.getLogger("generation_worker")

# Milliseconds to let in-flight steps finish on shutdown; each is short (one HTTP call or one
# download), and anything unfinished is redelivered by RabbitMQ anyway.
SHUTDOWN_TIMEOUT_MS = 20_000
# All the real work runs on one event loop thread, next to Dramatiq's worker and consumer
# threads. Each time the loop releases the GIL (every select) it may wait up to the switch
# interval to get it back; at CPython's default 5 ms that wait was the bottleneck under load
# (1,000 jobs: 19.6 s at 5 ms, 16.5 s at 0.5 ms, same run).
GIL_SWITCH_INTERVAL_SECONDS = 0.0005


def main() -> None:
    settings = load_settings("generation_worker", WorkerSettings)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_SECONDS)
    configure_logging("generation_worker", settings.log_level)
    setup_tracing("generation_worker")  # before any client or database is built
    publisher = create_publisher(settings)
    broker = AsyncPublishingBroker(settings, publisher, run_on_worker_loop)
    resources = WorkerResources(settings)
    broker.add_middleware(resources)  # after AsyncIO: see WorkerResources
    counts = MessageCounts()
    broker.add_middleware(counts)
    declare_actors(broker, resources)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: stop.set())

    broker.emit_after("process_boot")  # starts TimeLimit's watchdog, as Dramatiq's CLI does
    worker = Worker(broker, queues=set(QUEUES), worker_threads=settings.generation_threads)
    worker.start()
    serve_metrics(settings.generation_metrics_port, service="generation_worker")
    run_on_worker_loop(resources.context())  # opens the clients, starts the job gauges
    log.info("worker ready", extra={"threads": settings.generation_threads})
    stop.wait()
    log.info("shutting down")
    worker.stop(timeout=SHUTDOWN_TIMEOUT_MS)
    broker.close()
    log.info("worker stopped", extra={"messages": counts.describe()})


if __name__ == "__main__":
    main()
