"""The reference apps' messages are what the gateway's dramatiq broker would send."""

from __future__ import annotations

import json
from pathlib import Path

import dramatiq

from bench import results
from bench.amqp import generate_message_body, queue_arguments
from core.messaging import MAX_PRIORITY, generate_message


def test_message_decodes_as_the_gateways() -> None:
    ours = dramatiq.Message.decode(generate_message_body("job-1"))
    theirs = generate_message("job-1")
    fields = ("queue_name", "actor_name", "args", "kwargs", "options")
    assert {f: getattr(ours, f) for f in fields} == {f: getattr(theirs, f) for f in fields}
    assert set(json.loads(generate_message_body("x"))) == set(theirs.asdict())


def test_queue_arguments_match_dramatiq() -> None:
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    broker = RabbitmqBroker.__new__(RabbitmqBroker)
    broker.max_priority = MAX_PRIORITY  # the generation queue is a priority queue
    assert queue_arguments("generation") == broker._build_queue_arguments("generation")  # type: ignore[no-untyped-call]


def test_results_keep_text_outside_the_markers(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    results.write("first", path)
    assert "first" in path.read_text()
    path.write_text("notes above\n" + path.read_text() + "notes below\n")
    results.write("second", path)
    text = path.read_text()
    assert "second" in text
    assert "first" not in text
    assert text.startswith("notes above\n")
    assert text.endswith("notes below\n")
