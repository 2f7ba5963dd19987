"""Pure logic: output host allow-list, image sniffing, backoff, poll spacing and progress."""

from __future__ import annotations

import pytest

from generation_worker.download import host_allowed, sniff_image
from generation_worker.progress import progress_of
from generation_worker.settings import WorkerSettings
from generation_worker.steps import backoff_seconds, poll_delay

ALLOWED = ("127.0.0.1", "replicate.delivery", "*.replicate.delivery")


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://replicate.delivery/xezq/abc/out-0.webp", True),
        ("https://pbxt.replicate.delivery/abc/out-0.png", True),
        ("http://127.0.0.1:8002/files/x/out-0.png", True),
        ("https://evil.example.com/out-0.png", False),
        ("https://replicate.delivery.evil.com/out-0.png", False),
        ("https://notreplicate.delivery/out-0.png", False),
        ("ftp://replicate.delivery/out-0.png", False),
        ("file:///etc/passwd", False),
        ("data:image/png;base64,AAAA", False),
        ("http://169.254.169.254/latest/meta-data", False),
    ],
)
def test_only_allowed_hosts_pass(url: str, ok: bool) -> None:
    assert host_allowed(url, ALLOWED) is ok


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"\x89PNG\r\n\x1a\n....", "image/png"),
        (b"\xff\xd8\xff\xe0....", "image/jpeg"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"GIF89a....", "image/gif"),
        (b"<html>not an image</html>", None),
        (b"", None),
    ],
)
def test_sniff_image(data: bytes, kind: str | None) -> None:
    assert sniff_image(data) == kind


def test_backoff_grows_exponentially_within_bounds() -> None:
    settings = WorkerSettings(retry_min_backoff_ms=100, retry_max_backoff_ms=10_000)
    for attempt in range(1, 6):
        low = 0.1 * 2 ** (attempt - 1)
        for _ in range(50):
            delay = backoff_seconds(settings, attempt, None)
            assert low <= delay <= min(2 * low, 10.0)


def test_backoff_is_capped_and_honours_retry_after() -> None:
    settings = WorkerSettings(retry_min_backoff_ms=100, retry_max_backoff_ms=1_000)
    assert all(backoff_seconds(settings, 20, None) <= 1.0 for _ in range(50))
    assert backoff_seconds(settings, 1, 7.0) == 7.0


def test_polls_slow_down_to_the_cap() -> None:
    settings = WorkerSettings(
        generation_poll_interval_seconds=1, generation_poll_max_interval_seconds=4
    )
    delays = [poll_delay(settings, n) for n in range(6)]
    assert delays == [1.0, 1.5, 2.25, 3.375, 4.0, 4.0]


@pytest.mark.parametrize(
    ("logs", "progress"),
    [
        (None, None),
        ("", None),
        ("Using seed: 42\n", None),
        ("Using seed: 42\n  0%|          | 0/4 [00:00<?, ?it/s]\n", 0.0),
        (
            "Using seed: 42\n  0%|          | 0/4 [00:00<?, ?it/s]\n"
            " 25%|██▌       | 1/4 [00:00<00:01,  2.56it/s]\n"
            " 50%|█████     | 2/4 [00:00<00:00,  2.73it/s]\n",
            0.5,
        ),
        # tqdm redrawing its line with carriage returns
        ("  0%|    | 0/28 [00:00<?, ?it/s]\r 46%|███ | 13/28 [00:03<00:04,  3.4it/s]", 13 / 28),
        ("step 3/4\nTotal safe images: 1 out of 1\n", 0.75),  # the last marker counts
        ("loading 2024/01/02 weights\n", None),  # a date is no step count
        ("progress: 37.5%\n", 0.375),
        ("7/0 steps, 150%\n", None),  # impossible values are ignored
    ],
)
def test_progress_is_the_last_step_marker_of_the_logs(
    logs: str | None, progress: float | None
) -> None:
    assert progress_of(logs) == progress


def test_with_webhooks_polls_are_a_rare_fallback() -> None:
    settings = WorkerSettings(
        replicate_webhook_base_url="https://api.example.com/",
        generation_webhook_poll_interval_seconds=30,
    )
    assert [poll_delay(settings, n) for n in range(3)] == [30.0, 30.0, 30.0]
    assert settings.replicate_webhook_base_url == "https://api.example.com"
    assert settings.webhook_events == ["start", "logs", "completed"]


@pytest.mark.parametrize(
    "setting",
    [
        {"replicate_webhook_base_url": "api.example.com"},
        {"replicate_webhook_base_url": "ftp://api.example.com"},
        {"replicate_webhook_base_url": "https://api.example.com/?x=1"},
        {"replicate_webhook_events_filter": "start,finished"},
        {"replicate_webhook_events_filter": " , "},
    ],
    ids=["no-scheme", "not-http", "query", "unknown-event", "no-event"],
)
def test_webhook_settings_are_checked_at_start_up(setting: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="replicate_webhook"):
        WorkerSettings(**setting)  # type: ignore[arg-type]
