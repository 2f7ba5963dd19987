"""asyncio helpers the services share."""

from __future__ import annotations

import asyncio


def raise_if_cancelling() -> None:
    """Raise CancelledError if the current task has been asked to stop.

    Some libraries lose a cancellation that arrives at the wrong moment (aiormq turns one
    during connect into a connection error; an RPC that completes as the cancellation lands
    returns normally). A long-running loop calls this where it would otherwise carry on, so a
    task that was cancelled does stop, instead of waiting for the next event forever."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
