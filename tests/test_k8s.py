"""Static checks of the Kubernetes deployment (deploy/k8s): both overlays rendered with
`kubectl kustomize`, exactly as `make k8s` does, and read as a cluster would get them.

No cluster runs here or in CI. `make lint` checks the manifests against the Kubernetes API
schemas (and KEDA's) and checkov's policies; these tests pin down what the deployment promises
on top: hardened pods, probes on the ports the services listen on, the KEDA scaler on the real
queues, only the architecture's network flows, the mock in dev only, settings that exist, and
credentials only from the Secret.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml
from dramatiq.common import dq_name

from core.messaging import GENERATION_QUEUE, POLL_QUEUE

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
SECRET_NAME = "platform-secrets"
APP_UID = 10001  # deploy/Dockerfile's `app` user

Doc = dict[str, Any]
Docs = list[Doc]

# Settings other work is adding to .env.example while this deployment already uses them. Each
# must leave this set once .env.example documents it (a test below says so).
# Credentials: only ever from the Secret, never in a ConfigMap.
CREDENTIALS = {
    "DATABASE_URL",
    "BROKER_URL",
    "S3_ACCESS_KEY",
    "S3_SECRET_KEY",
    "JWT_SECRET",
    "REPLICATE_API_TOKEN",
    "FIRST_USER_PASSWORD",
    "REPLICATE_MOCK_API_TOKENS",
}


class Probes(NamedTuple):
    """What a service's probes must hit, and the setting that makes it listen there."""

    setting: str
    port: int
    live: str
    ready: str


PROBES = {
    "gateway": Probes("GATEWAY_PORT", 8000, "/healthz", "/readyz"),
    "pet-api": Probes("PET_API_PORT", 8001, "/healthz", "/readyz"),
    "replicate-mock": Probes("REPLICATE_MOCK_PORT", 8002, "/healthz", "/healthz"),
    "generation-worker": Probes("GENERATION_METRICS_PORT", 9191, "/metrics", "/metrics"),
    "report-worker": Probes("REPORT_METRICS_PORT", 9192, "/metrics", "/metrics"),
}
HOST_SETTINGS = {
    "gateway": "GATEWAY_HOST",
    "pet-api": "PET_API_HOST",
    "replicate-mock": "REPLICATE_MOCK_HOST",
}
# GET /metrics: the APIs on their own port, the workers on their metrics port (PROBES).
SCRAPED = {"gateway", "pet-api", "generation-worker", "report-worker"}
# The services that use the database wait for the migration before they start.
NEEDS_MIGRATIONS = {"gateway", "pet-api", "generation-worker", "report-worker"}

pytestmark = pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl (with kustomize) is not installed"
)


def render(overlay: str) -> Docs:
    out = subprocess.run(
        ["kubectl", "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> dict[str, Docs]:
    return {overlay: render(overlay) for overlay in OVERLAYS}


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def docs(rendered: dict[str, Docs], overlay: str) -> Docs:
    return rendered[overlay]


def of_kind(docs: Docs, kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def workloads(docs: Docs) -> dict[str, dict[str, Any]]:
    """Deployments and Jobs by name."""
    return of_kind(docs, "Deployment") | of_kind(docs, "Job")


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def containers(workload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = pod_spec(workload)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def config(docs: Docs) -> dict[str, str]:
    (config_map,) = of_kind(docs, "ConfigMap").values()
    data: dict[str, str] = config_map["data"]
    return data


def env_file_keys(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def container_port(container: dict[str, Any], port: int | str) -> int:
    """A probe's port, by number or by the container port's name."""
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    return int(number)


def main_container(workload: dict[str, Any]) -> dict[str, Any]:
    (container,) = pod_spec(workload)["containers"]
    return container


# --- pods: hardened, bounded, pinned ---------------------------------------------------------


def test_every_pod_runs_non_root_without_a_service_account_token(
    docs: Docs,
) -> None:
    for name, workload in workloads(docs).items():
        spec = pod_spec(workload)
        assert spec["automountServiceAccountToken"] is False, name
        # Service links would set e.g. GATEWAY_PORT=tcp://..., a setting of ours.
        assert spec["enableServiceLinks"] is False, name
        security = spec["securityContext"]
        assert security["runAsNonRoot"] is True, name
        assert security["runAsUser"] == APP_UID, name
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}, name


def test_every_container_is_locked_down_with_limits(docs: Docs) -> None:
    for name, workload in workloads(docs).items():
        writable = {
            volume["name"] for volume in pod_spec(workload)["volumes"] if "emptyDir" in volume
        }
        for container in containers(workload):
            where = f"{name}/{container['name']}"
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["runAsNonRoot"] is True, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            for bound in ("requests", "limits"):
                assert set(container["resources"][bound]) >= {"cpu", "memory"}, where
            # The read-only root leaves /tmp writable through an emptyDir.
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert mounts.get("/tmp") in writable, where


def test_every_image_is_the_app_image_pinned_by_tag(docs: Docs) -> None:
    images = {c["image"] for w in workloads(docs).values() for c in containers(w)}
    assert len(images) == 1, images  # one image for every service, as in compose
    (image,) = images
    repository, _, tag = image.rpartition(":")
    assert "/" in repository, f"{image}: no registry (the `images:` override did not apply)"
    assert tag not in {"", "latest"}, image


def test_no_secret_is_rendered(docs: Docs) -> None:
    # Credentials come from the secret manager, never from this repository.
    assert not of_kind(docs, "Secret")


# --- commands, probes and ports --------------------------------------------------------------


def test_each_workload_runs_the_command_compose_runs(docs: Docs) -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    for name, workload in workloads(docs).items():
        assert main_container(workload)["args"] == compose[name]["command"], name


def test_apps_wait_for_the_migration_job(docs: Docs) -> None:
    jobs = of_kind(docs, "Job")
    assert main_container(jobs["migrate"])["args"] == ["alembic", "upgrade", "head"]
    deployments = of_kind(docs, "Deployment")
    for name in NEEDS_MIGRATIONS:
        (init,) = pod_spec(deployments[name])["initContainers"]
        assert init["args"][:2] == ["core.cli", "wait-for-migrations"], name


def test_probes_hit_the_ports_the_services_listen_on(docs: Docs) -> None:
    settings = config(docs)
    for name, deployment in of_kind(docs, "Deployment").items():
        expected = PROBES[name]
        container = main_container(deployment)
        live, ready = container["livenessProbe"], container["readinessProbe"]
        assert live["httpGet"]["path"] == expected.live, name
        assert ready["httpGet"]["path"] == expected.ready, name
        for probe in (live, ready, container["startupProbe"]):
            assert container_port(container, probe["httpGet"]["port"]) == expected.port, name
        # The service listens where the probes look: the port setting, on every address.
        assert settings[expected.setting] == str(expected.port), name
        if name in HOST_SETTINGS:
            assert settings[HOST_SETTINGS[name]] == "0.0.0.0", name


def test_prometheus_scrapes_each_service_where_it_serves_metrics(docs: Docs) -> None:
    deployments = of_kind(docs, "Deployment")
    for name in SCRAPED:
        annotations = deployments[name]["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(PROBES[name].port)
        assert annotations["prometheus.io/path"] == "/metrics"


def test_services_reach_their_pods(docs: Docs) -> None:
    deployments = of_kind(docs, "Deployment")
    for name, service in of_kind(docs, "Service").items():
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items(), name
        (port,) = service["spec"]["ports"]
        container = main_container(deployments[name])
        assert container_port(container, port["targetPort"]) == port["port"] == PROBES[name].port


# --- scaling and disruption ------------------------------------------------------------------


def test_generation_worker_scales_from_zero_on_its_queues(docs: Docs) -> None:
    (scaled,) = of_kind(docs, "ScaledObject").values()
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == "generation-worker"
    assert "generation-worker" in of_kind(docs, "Deployment")
    assert spec["minReplicaCount"] == 0
    assert spec["maxReplicaCount"] >= 1
    queues = {t["metadata"]["queueName"] for t in spec["triggers"]}
    # The worker's queues, and their delay queues, where due-later work waits.
    expected = {GENERATION_QUEUE, POLL_QUEUE, dq_name(GENERATION_QUEUE), dq_name(POLL_QUEUE)}
    assert queues == expected
    auths = of_kind(docs, "TriggerAuthentication")
    secret_keys = env_file_keys(K8S / "secrets.example.env")
    for trigger in spec["triggers"]:
        assert trigger["type"] == "rabbitmq"
        # Over http KEDA counts unacknowledged messages too: the worker's in-flight work.
        assert trigger["metadata"]["protocol"] == "http"
        assert trigger["metadata"]["mode"] == "QueueLength"
        (ref,) = auths[trigger["authenticationRef"]["name"]]["spec"]["secretTargetRef"]
        assert ref["parameter"] == "host"
        assert ref["name"] == SECRET_NAME
        assert ref["key"] in secret_keys


def test_nothing_else_fights_over_replica_counts(docs: Docs) -> None:
    deployments = of_kind(docs, "Deployment")
    hpa_targets = [
        h["spec"]["scaleTargetRef"]["name"]
        for h in of_kind(docs, "HorizontalPodAutoscaler").values()
    ]
    keda_targets = [
        s["spec"]["scaleTargetRef"]["name"] for s in of_kind(docs, "ScaledObject").values()
    ]
    autoscaled = hpa_targets + keda_targets
    assert len(autoscaled) == len(set(autoscaled))
    for name in autoscaled:
        assert "replicas" not in deployments[name]["spec"], f"{name}: the autoscaler owns it"
    # The report worker runs a fixed count: the advisory lock elects one printer per tick.
    assert "report-worker" not in autoscaled
    assert deployments["report-worker"]["spec"]["replicas"] >= 1


def test_api_autoscaling_on_cpu(rendered: dict[str, Docs]) -> None:
    hpas = of_kind(rendered["prod"], "HorizontalPodAutoscaler")
    assert set(hpas) == {"gateway", "pet-api"}
    for name, hpa in hpas.items():
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["minReplicas"] >= 2, name  # more than one in production
        (metric,) = hpa["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"
    # Dev: single replicas.
    assert not of_kind(rendered["dev"], "HorizontalPodAutoscaler")
    for name, deployment in of_kind(rendered["dev"], "Deployment").items():
        if name != "generation-worker":
            assert deployment["spec"]["replicas"] == 1, name
    (scaled,) = of_kind(rendered["dev"], "ScaledObject").values()
    assert scaled["spec"]["maxReplicaCount"] == 1


def test_disruption_budgets(docs: Docs) -> None:
    budgets = of_kind(docs, "PodDisruptionBudget")
    assert set(budgets) == {"gateway", "pet-api", "generation-worker"}
    for name, budget in budgets.items():
        assert budget["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": name}


# --- network policies ------------------------------------------------------------------------


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector ({} selects every pod) selects pods with these labels."""
    matched = all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In", expression
        matched = matched and labels.get(expression["key"]) in expression["values"]
    return matched


def pod_labels(docs: Docs, name: str) -> dict[str, str]:
    labels: dict[str, str] = workloads(docs)[name]["spec"]["template"]["metadata"]["labels"]
    return labels


def flows(docs: Docs, name: str, direction: str) -> set[tuple[str, int]]:
    """(peer, port) the policies allow for the pod, one direction: peer is "any" or the name
    of the pods a rule names."""
    labels = pod_labels(docs, name)
    allowed = set()
    for policy in of_kind(docs, "NetworkPolicy").values():
        if not selects(policy["spec"]["podSelector"], labels):
            continue
        for rule in policy["spec"].get(direction, []):
            peers = rule.get("from" if direction == "ingress" else "to")
            names = ["any"]
            if peers:
                names = [p["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for p in peers]
            for port in rule["ports"]:
                allowed |= {(peer, int(port["port"])) for peer in names}
    return allowed


DNS = {("any", 53)}
STORES = {("any", 5432), ("any", 5672), ("any", 5671), ("any", 443), ("any", 9000)}
INGRESS = {
    "gateway": {("any", 8000)},
    "pet-api": {("any", 8001)},
    "generation-worker": {("any", 9191)},  # Prometheus
    "report-worker": {("any", 9192)},
    "migrate": set(),
}
EGRESS = {
    "gateway": DNS | STORES,
    "pet-api": DNS | {("any", 5432)},
    "generation-worker": DNS | STORES,
    "report-worker": DNS | {("any", 5432)},
    "migrate": DNS | {("any", 5432)},
}


def test_default_deny(docs: Docs) -> None:
    policies = of_kind(docs, "NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert deny["podSelector"] == {}
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny
    assert "egress" not in deny
    # Every workload is under a policy of its own besides the blanket ones.
    for name in workloads(docs):
        assert name in policies, name


def test_only_the_architectures_flows_are_allowed(
    rendered: dict[str, Docs],
) -> None:
    prod, dev = rendered["prod"], rendered["dev"]
    for name in INGRESS:
        assert flows(prod, name, "ingress") == INGRESS[name], name
        assert flows(prod, name, "egress") == EGRESS[name], name
    # Dev adds the mock: the gateway and the worker call it, it calls the gateway back.
    mock_clients = {"gateway", "generation-worker"}
    for name in INGRESS:
        extra = {("replicate-mock", 8002)} if name in mock_clients else set()
        assert flows(dev, name, "egress") == EGRESS[name] | extra, name
        assert flows(dev, name, "ingress") == INGRESS[name], name
    assert flows(dev, "replicate-mock", "ingress") == {(c, 8002) for c in mock_clients}
    assert flows(dev, "replicate-mock", "egress") == DNS | {("gateway", 8000)}


# --- overlays: the mock, Replicate, settings -------------------------------------------------


def test_dev_runs_the_mock_and_points_replicate_at_it(
    rendered: dict[str, Docs],
) -> None:
    dev = rendered["dev"]
    assert "replicate-mock" in of_kind(dev, "Deployment")
    (port,) = of_kind(dev, "Service")["replicate-mock"]["spec"]["ports"]
    assert config(dev)["REPLICATE_BASE_URL"] == f"http://replicate-mock:{port['port']}"
    assert "replicate-mock" in config(dev)["GENERATION_ALLOWED_OUTPUT_HOSTS"].split(",")
    # The mock accepts exactly the token the clients send.
    mock_env = {
        e["name"]: e for e in main_container(of_kind(dev, "Deployment")["replicate-mock"])["env"]
    }
    assert mock_env["REPLICATE_MOCK_API_TOKENS"]["valueFrom"]["secretKeyRef"] == {
        "name": SECRET_NAME,
        "key": "REPLICATE_API_TOKEN",
    }


def test_prod_uses_real_replicate_quorum_queues_and_pgbouncer_settings(
    rendered: dict[str, Docs],
) -> None:
    prod = rendered["prod"]
    assert "replicate-mock" not in of_kind(prod, "Deployment")
    assert "replicate-mock" not in of_kind(prod, "Service")
    settings = config(prod)
    assert settings["REPLICATE_BASE_URL"] == "https://api.replicate.com"
    assert "replicate-mock" not in settings["GENERATION_ALLOWED_OUTPUT_HOSTS"]
    assert settings["ENVIRONMENT"] == "production"
    assert settings["BROKER_QUORUM_QUEUES"] == "true"
    assert settings["DB_PREPARED_STATEMENT_CACHE"] == "false"
    assert not any(key.startswith("REPLICATE_MOCK_") for key in settings)


def test_settings_are_documented_and_credentials_stay_in_the_secret(
    docs: Docs,
) -> None:
    documented = set(env_file_keys(ROOT / ".env.example"))
    settings = config(docs)
    unknown = set(settings) - documented
    assert not unknown, f"not settings (.env.example): {sorted(unknown)}"
    assert not set(settings) & CREDENTIALS
    assert settings["STORAGE_BACKEND"] == "s3"  # shared by replicas; the root fs is read-only
    secret_keys = set(env_file_keys(K8S / "secrets.example.env"))
    for name, workload in workloads(docs).items():
        for container in containers(workload):
            for env in container.get("env", []):
                ref = env["valueFrom"]["secretKeyRef"]  # only credentials are set one by one
                assert ref["name"] == SECRET_NAME, name
                assert ref["key"] in secret_keys, f"{name}: {ref['key']} not in the example"
                assert env["name"] in CREDENTIALS, f"{name}: {env['name']}"
                assert env["name"] in documented, f"{name}: {env['name']} is not a setting"
            (source,) = container["envFrom"]
            assert source["configMapRef"]["name"] in of_kind(docs, "ConfigMap"), name


def test_the_secret_example_holds_only_placeholders() -> None:
    values = env_file_keys(K8S / "secrets.example.env")
    for key, value in values.items():
        assert re.search(r"CHANGE-ME|EXAMPLE", value), f"{key}: not an obvious placeholder"


# --- the validator `make lint` runs must fail on a broken manifest ----------------------------


def validate(tmp_path: Path, docs: Docs) -> subprocess.CompletedProcess[str]:
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump_all(docs))
    return subprocess.run(
        [sys.executable, str(K8S / "validate.py"), str(manifest)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_validator_accepts_both_overlays(docs: Docs, tmp_path: Path) -> None:
    checked = validate(tmp_path, docs)
    assert checked.returncode == 0, checked.stderr


def break_container_field(docs: Docs) -> None:
    main_container(of_kind(docs, "Deployment")["gateway"])["livenesProbe"] = {}


def break_port_type(docs: Docs) -> None:
    main_container(of_kind(docs, "Deployment")["gateway"])["ports"][0]["containerPort"] = "http"


def break_keda_field(docs: Docs) -> None:
    (scaled,) = of_kind(docs, "ScaledObject").values()
    scaled["spec"]["minReplicaCont"] = scaled["spec"].pop("minReplicaCount")


def break_keda_metadata(docs: Docs) -> None:
    (scaled,) = of_kind(docs, "ScaledObject").values()
    scaled["spec"]["triggers"][0]["metadata"]["value"] = 50  # KEDA wants strings


def add_unknown_kind(docs: Docs) -> None:
    docs.append({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}})


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (break_container_field, "'livenesProbe' was unexpected"),
        (break_port_type, "'http' is not of type 'integer'"),
        (break_keda_field, "'minReplicaCont' was unexpected"),
        (break_keda_metadata, "50 is not of type 'string'"),
        (add_unknown_kind, "Couldn't find schema for kind Widget"),
    ],
)
def test_the_validator_rejects_a_broken_manifest(
    rendered: dict[str, Docs], tmp_path: Path, breakage: Callable[[Docs], None], message: str
) -> None:
    docs = copy.deepcopy(rendered["prod"])
    breakage(docs)
    checked = validate(tmp_path, docs)
    assert checked.returncode == 1
    assert message in checked.stderr
