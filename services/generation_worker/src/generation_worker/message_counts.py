"""How many messages this worker process took, written in its "worker stopped" log line.

`processed`: actor runs by actor (each delivery of a message, retries included). `delayed`:
deliveries off a delay queue (`*.DQ`), by actor: Dramatiq holds a delayed message until its
eta, then publishes it to its queue, where it is delivered (and processed) once more. So the
worker's AMQP deliveries are processed + delayed. The bench compares webhooks with polling by
these counts.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware


class MessageCounts(Middleware):
    def __init__(self) -> None:
        self._lock = threading.Lock()  # worker and consumer threads count at once
        self._processed: Counter[str] = Counter()
        self._delayed: Counter[str] = Counter()

    def before_delay_message(self, broker: dramatiq.Broker, message: Any) -> None:
        with self._lock:
            self._delayed[message.actor_name] += 1

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        with self._lock:
            self._processed[message.actor_name] += 1

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self.after_process_message(broker, message)

    def describe(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {"processed": dict(self._processed), "delayed": dict(self._delayed)}
