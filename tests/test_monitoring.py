"""The monitoring files compose ships: every metric the dashboard plots is one the code
exports (a renamed metric would leave an empty panel, silently), and Prometheus scrapes each
service where it serves its metrics."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
MONITORING = ROOT / "deploy" / "monitoring"
# Every module that defines metrics (importing registers them).
METRIC_MODULES = [
    "core.metrics",
    "core.replicate.client",
    "core.storage.metrics",
    "gateway.outbox",
    "gateway.webhook_sender",
    "generation_worker.metrics",
    "report_worker.metrics",
]
OURS = re.compile(r"\b(?:generation|http|replicate|storage|report|outbox|webhook)_[a-z_]+\b")


def exported_names() -> set[str]:
    for module in METRIC_MODULES:
        importlib.import_module(module)
    return set(REGISTRY._names_to_collectors)  # every sample name: _total, _bucket, ...


def test_every_metric_on_the_dashboard_is_exported() -> None:
    dashboard = json.loads((MONITORING / "grafana" / "dashboards" / "pipeline.json").read_text())
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {name for expr in expressions for name in OURS.findall(expr)}
    assert used, "the dashboard plots none of our metrics?"
    assert used <= exported_names(), sorted(used - exported_names())
    assert any("rabbitmq_detailed_queue_messages_ready" in e for e in expressions)


def test_prometheus_scrapes_each_service_on_its_metrics_port() -> None:
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]
    }
    assert targets == {
        "gateway": ["gateway:8000"],
        "pet-api": ["pet-api:8001"],
        "generation-worker": ["generation-worker:9191"],  # GENERATION_METRICS_PORT's default
        "report-worker": ["report-worker:9192"],  # REPORT_METRICS_PORT's default
        "rabbitmq": ["rabbitmq:15692"],
    }
    plugins = (MONITORING / "enabled_plugins").read_text()
    assert "rabbitmq_prometheus" in plugins
