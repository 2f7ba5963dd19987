"""The webhooks-vs-polling table counts messages per job as its note says (no timing)."""

from __future__ import annotations

from bench.generate import JobsOutcome, _webhooks_table


def test_messages_per_job_are_actor_runs_plus_delay_hops() -> None:
    polling = JobsOutcome(
        terminal=10,
        succeeded=10,
        drained=True,
        processed={"generate_media": 10, "poll_generation": 30},
        delayed={"poll_generation": 30},
        mock_calls={"get": 30},
    )
    hooked = JobsOutcome(
        terminal=10,
        succeeded=9,
        failed=1,
        drained=False,
        processed={"generate_media": 10, "prediction_webhook": 30, "poll_generation": 10},
        delayed={"poll_generation": 10},
    )
    table = _webhooks_table(10, 2.0, polling, hooked, "jpg", "start,completed")
    rows = [line for line in table.splitlines() if line.startswith(("| polling", "| webhooks"))]
    assert rows[0].startswith("| polling | 7.0 | 4.0 | 3.0 | 0.0 | 3.0 |")
    assert rows[1].startswith("| webhooks (queues not drained) | 6.0 | 5.0 | 1.0 | 3.0 | 0.0 |")
    assert "events start, completed" in table
