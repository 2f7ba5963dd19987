"""Static checks of the container files: compose.yaml, deploy/Dockerfile, deploy/Procfile.

No Docker engine runs on the development machines or in CI, so these files are never built or
started there. These tests pin down what they promise instead: which services exist, that the
app services share one image, their commands, ports, healthchecks, start order, volumes and
settings, that no real secret is written down, and that the image is multi-stage, non-root and
free of dev tools. (`make lint` adds hadolint and dclint.)
"""

from __future__ import annotations

import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
PROCFILE = ROOT / "deploy" / "Procfile"

INFRA = {"db", "rabbitmq", "minio"}
MONITORING = {"prometheus", "grafana"}
# compose service -> the image's command (ENTRYPOINT is `python -m`)
APP_COMMANDS = {
    "migrate": ["alembic", "upgrade", "head"],
    "pet-api": ["pet_api"],
    "report-worker": ["report_worker"],
    "gateway": ["gateway"],
    "generation-worker": ["generation_worker"],
    "replicate-mock": ["replicate_mock"],
}
APP = set(APP_COMMANDS)
LONG_RUNNING = (INFRA | MONITORING | APP) - {"migrate"}
MODULES = ["pet_api", "report_worker", "gateway", "generation_worker", "replicate_mock"]

HEALTHY = "service_healthy"
DONE = "service_completed_successfully"
DEPENDS_ON = {
    "db": {},
    "rabbitmq": {},
    "prometheus": {},
    "grafana": {"prometheus": HEALTHY},
    "minio": {},
    "replicate-mock": {},
    "migrate": {"db": HEALTHY},
    "pet-api": {"migrate": DONE},
    "report-worker": {"migrate": DONE},
    "gateway": {"migrate": DONE, "rabbitmq": HEALTHY, "minio": HEALTHY},
    "generation-worker": {
        "migrate": DONE,
        "rabbitmq": HEALTHY,
        "minio": HEALTHY,
        "replicate-mock": HEALTHY,
    },
}
# service -> published (host port == container port), always on 127.0.0.1
PORTS = {
    "gateway": {8000},
    "pet-api": {8001},
    "replicate-mock": {8002},
    "minio": {9000, 9001},
    "rabbitmq": {5672, 15672},
    "prometheus": {9090},
    "grafana": {3000},
}
HTTP_APIS = {"gateway": 8000, "pet-api": 8001, "replicate-mock": 8002}
# The only credentials compose may spell out: the development defaults documented in
# compose.yaml's header (each one overridable through ${VAR:-default}).
DEV_DEFAULTS = {"postgres", "app", "minioadmin", "mock-token", "admin"}
SECRET_KEY = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|_PASS$|_KEY$")
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?::?-(?P<default>[^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())  # resolves the anchors and `<<` merges
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]  # type: ignore[no-any-return]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def resolved(value: str, shell: dict[str, str] | None = None) -> str:
    """What compose makes of ${VAR:-default} (nested too) given these variables (none: a
    fresh checkout without .env)."""
    shell = shell or {}
    innermost = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?::?-(?P<default>[^${}]*))?\}")
    while (match := innermost.search(value)) is not None:
        replacement = shell.get(match.group("name")) or match.group("default") or ""
        value = value[: match.start()] + replacement + value[match.end() :]
    return value


def resolved_environment(service: dict[str, Any], **shell: str) -> dict[str, str]:
    return {k: resolved(v, shell) for k, v in environment(service).items()}


def published(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(host ip, host port, container port) of each `ip:host:container` entry."""
    out = []
    for entry in service.get("ports", []):
        assert isinstance(entry, str), f"port {entry!r} should be a quoted string"
        ip, host, container = entry.split(":")
        out.append((ip, int(host), int(container)))
    return out


def strings(node: Any) -> Iterator[tuple[str, str]]:
    """Every (key, string value) pair anywhere in the document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, str):
                yield str(key), value
            else:
                yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, str):
                yield "", item
            else:
                yield from strings(item)


# --- compose.yaml --------------------------------------------------------------------------------


def test_every_service_is_defined(services: dict[str, Any]) -> None:
    assert set(services) == INFRA | MONITORING | APP


def test_app_services_share_one_image_and_build(services: dict[str, Any]) -> None:
    blocks = {(repr(services[name]["image"]), repr(services[name]["build"])) for name in APP}
    assert len(blocks) == 1, blocks
    build = services["pet-api"]["build"]
    assert build["context"] == "."
    assert (ROOT / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    assert ":" in services["pet-api"]["image"]
    raw = COMPOSE.read_text()
    assert raw.count("dockerfile:") == 1, "the build block is written once, as an anchor"


def test_infrastructure_images_are_pinned(services: dict[str, Any]) -> None:
    for name in INFRA | MONITORING:
        image = services[name]["image"]
        repo, _, tag = image.rpartition(":")
        assert repo, image
        assert tag not in {"", "latest", "stable"}, image
        assert "build" not in services[name]
    assert services["db"]["image"].startswith("postgres:16")
    assert re.fullmatch(r"rabbitmq:[34][.\d]*-management", services["rabbitmq"]["image"])
    assert services["minio"]["image"].startswith("minio/minio:RELEASE.")


@pytest.mark.parametrize(("name", "command"), APP_COMMANDS.items())
def test_app_service_commands(services: dict[str, Any], name: str, command: list[str]) -> None:
    assert services[name]["command"] == command


def test_each_service_module_can_run_with_python_m() -> None:
    for module in MODULES:
        main = ROOT / "services" / module / "src" / module / "__main__.py"
        assert main.is_file(), f"`python -m {module}` needs {main.relative_to(ROOT)}"


def test_published_ports(services: dict[str, Any]) -> None:
    found = {name: published(svc) for name, svc in services.items() if svc.get("ports")}
    assert set(found) == set(PORTS)
    for name, entries in found.items():
        assert {host for _, host, _ in entries} == PORTS[name], name
        for ip, host, container in entries:
            assert ip == "127.0.0.1", f"{name} publishes {host} on every interface"
            assert host == container


def test_apis_listen_on_all_interfaces_inside_the_container(services: dict[str, Any]) -> None:
    for name, port in HTTP_APIS.items():
        prefix = name.replace("-", "_").upper()
        env = environment(services[name])
        assert env[f"{prefix}_HOST"] == "0.0.0.0"
        assert int(env[f"{prefix}_PORT"]) == port


def test_healthchecks(services: dict[str, Any]) -> None:
    with_check = {name for name, svc in services.items() if svc.get("healthcheck")}
    assert with_check == INFRA | MONITORING | set(HTTP_APIS)
    assert "pg_isready" in services["db"]["healthcheck"]["test"]
    assert "rabbitmq-diagnostics" in services["rabbitmq"]["healthcheck"]["test"]
    assert services["minio"]["healthcheck"]["test"][1:] == ["mc", "ready", "local"]
    for name, port in HTTP_APIS.items():
        test = " ".join(services[name]["healthcheck"]["test"])
        assert f"http://127.0.0.1:{port}/healthz" in test, name
    for svc in services.values():
        if "healthcheck" in svc:
            assert svc["healthcheck"]["test"][0] == "CMD"
            assert {"interval", "timeout", "retries"} <= set(svc["healthcheck"])


def test_start_order(services: dict[str, Any]) -> None:
    actual = {
        name: {dep: cond["condition"] for dep, cond in (svc.get("depends_on") or {}).items()}
        for name, svc in services.items()
    }
    assert actual == DEPENDS_ON
    # every service_healthy target really has a healthcheck, and migrate is a one-shot
    for conditions in actual.values():
        for dep, cond in conditions.items():
            if cond == HEALTHY:
                assert "healthcheck" in services[dep], dep
            if cond == DONE:
                assert services[dep]["restart"] == "no", dep


def test_restart_policies(services: dict[str, Any]) -> None:
    for name in LONG_RUNNING:
        assert services[name]["restart"] == "unless-stopped", name
    assert services["migrate"]["restart"] == "no"


def test_named_volumes(compose: dict[str, Any], services: dict[str, Any]) -> None:
    assert "db-data:/var/lib/postgresql/data" in services["db"]["volumes"]
    assert "minio-data:/data" in services["minio"]["volumes"]
    assert services["minio"]["command"][:2] == ["server", "/data"]
    assert {"db-data", "minio-data"} <= set(compose["volumes"])
    for svc in services.values():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            assert source in compose["volumes"], f"{volume}: a named volume, not a host path"


def test_app_services_read_env_file_then_point_at_compose_hosts(services: dict[str, Any]) -> None:
    for name in APP:
        svc = services[name]
        assert svc["env_file"] == [{"path": ".env", "required": False}], name
        env = resolved_environment(svc)
        assert urlsplit(env["DATABASE_URL"]).hostname == "db"
        assert env["DATABASE_URL"].startswith("postgresql+asyncpg://")
        assert urlsplit(env["BROKER_URL"]).hostname == "rabbitmq"
        assert env["BROKER_URL"].startswith("amqp://")
        assert env["STORAGE_BACKEND"] == "s3"
        assert env["S3_ENDPOINT"] == "minio:9000"
        assert env["S3_SECURE"] == "false"
        assert urlsplit(env["REPLICATE_BASE_URL"]).hostname == "replicate-mock"
        assert env["REPLICATE_MOCK_PUBLIC_URL"] == "http://replicate-mock:8002"
        assert "replicate-mock" in env["GENERATION_ALLOWED_OUTPUT_HOSTS"].split(",")
        # inside a container, loopback is the container itself: only the browser-facing
        # presigned-URL base may name the host
        for key, value in env.items():
            if key != "S3_PUBLIC_URL":
                assert "127.0.0.1" not in value, (name, key)
                assert "localhost" not in value, (name, key)


def test_mock_and_worker_agree_on_the_token(services: dict[str, Any]) -> None:
    for shell in ({}, {"REPLICATE_MOCK_TOKEN": "custom"}):
        worker = resolved_environment(services["generation-worker"], **shell)
        mock = resolved_environment(services["replicate-mock"], **shell)
        assert worker["REPLICATE_API_TOKEN"] in mock["REPLICATE_MOCK_API_TOKENS"].split(",")


def test_two_settings_switch_compose_to_real_replicate(services: dict[str, Any]) -> None:
    real = {
        "COMPOSE_REPLICATE_BASE_URL": "https://api.replicate.com",
        "COMPOSE_REPLICATE_API_TOKEN": "r8_example",
    }
    worker = resolved_environment(services["generation-worker"], **real)
    assert worker["REPLICATE_BASE_URL"] == "https://api.replicate.com"
    assert worker["REPLICATE_API_TOKEN"] == "r8_example"
    assert "replicate.delivery" in worker["GENERATION_ALLOWED_OUTPUT_HOSTS"].split(",")
    mock = resolved_environment(services["replicate-mock"], **real)
    assert "r8_example" not in mock["REPLICATE_MOCK_API_TOKENS"]


def test_no_secret_literals(compose: dict[str, Any]) -> None:
    for key, value in strings(compose):
        for match in INTERPOLATION.finditer(value):
            default = match.group("default")
            if default is not None and default.startswith("${"):
                continue  # nested: its innermost default is checked through resolved() below
            if SECRET_KEY.search(match.group("name")) or SECRET_KEY.search(key):
                assert default is None or default in DEV_DEFAULTS, (key, value)
        if SECRET_KEY.search(key):
            # a secret is only ever ${VAR:-dev default} (possibly nested), never a literal
            assert value.startswith("${"), (key, value)
            assert value.endswith("}"), (key, value)
            assert resolved(value) in DEV_DEFAULTS, (key, value)
        # credentials inside URLs come from variables too
        if "://" in value:
            assert urlsplit(INTERPOLATION.sub("VAR", value)).password in {None, "VAR"}, value
    assert "JWT_SECRET" not in COMPOSE.read_text(), "JWT_SECRET comes from .env only"


# --- deploy/Dockerfile ---------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or not stripped:
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending
    out = []
    for line in lines:
        instruction, _, args = line.partition(" ")
        out.append((instruction.upper(), args.strip()))
    return out


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instruction, args in dockerfile_instructions():
        if instruction == "FROM":
            result.append([])
        elif instruction != "ARG" or result:
            assert result, "only ARG may come before the first FROM"
        if result:
            result[-1].append((instruction, args))
    return result


def test_dockerfile_is_multi_stage_with_pinned_bases() -> None:
    froms = [args for instruction, args in dockerfile_instructions() if instruction == "FROM"]
    assert len(froms) >= 2
    for args in froms:
        image, _, alias = args.partition(" AS ")
        assert alias, f"every stage is named: {args}"
        _, _, tag = image.rpartition(":")
        assert tag not in {"", "latest"}, image
        assert "/" not in tag, f"{image} has no tag"
    assert froms[-1].startswith("python:3.11-slim")


def test_runtime_stage_runs_as_non_root_without_build_tools() -> None:
    runtime = stages()[-1]
    users = [args for instruction, args in runtime if instruction == "USER"]
    assert users, "the runtime stage sets USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert [i for i, _ in runtime].index("USER") > max(
        n for n, (i, _) in enumerate(runtime) if i == "RUN"
    ), "nothing runs as root after USER"
    text = " ".join(args for _, args in runtime)
    assert "uv " not in text, "uv stays in the builder"
    assert "/uv" not in text, "uv stays in the builder"
    assert "pip install" not in text
    copies = [args for instruction, args in runtime if instruction == "COPY"]
    assert any("--from=builder" in c and "/app/.venv" in c for c in copies)
    assert any(c.split()[0] == "alembic.ini" for c in copies)
    assert any(c.split()[0] == "migrations" for c in copies)
    env = " ".join(args for instruction, args in runtime if instruction == "ENV")
    assert "/app/.venv/bin" in env
    entrypoint = [args for instruction, args in runtime if instruction == "ENTRYPOINT"]
    assert entrypoint == ['["python", "-m"]']


def test_dependencies_are_locked_and_without_dev_tools() -> None:
    instructions = dockerfile_instructions()
    arg_values = {
        args.split("=", 1)[0]: args.split("=", 1)[1].strip('"')
        for instruction, args in instructions
        if instruction == "ARG" and "=" in args
    }
    runs = [args for instruction, args in instructions if instruction == "RUN"]
    syncs = [args for args in runs if "uv sync" in args]
    assert len(syncs) == 2, "dependencies first, then the workspace packages"
    assert "--no-install-workspace" in syncs[0]
    for sync in syncs:
        assert "--frozen" in sync
        assert "--no-dev" in sync
        assert "--mount=type=cache" in sync
        for forbidden in ("--all-packages", "--all-groups", "--group", "--dev ", "testkit"):
            assert forbidden not in sync, forbidden
        expanded = sync.replace("$PACKAGES", arg_values.get("PACKAGES", ""))
        packages = set(re.findall(r"--package[= ](\S+)", expanded))
        names = {
            tomllib.loads(p.read_text())["project"]["name"]
            for p in (ROOT / "services").glob("*/pyproject.toml")
        }
        assert packages == names, "every service, and nothing else (core comes with them)"


def test_builder_sees_every_workspace_member() -> None:
    """uv needs every workspace member's pyproject.toml to read the lock."""
    builder_copies = [args for instruction, args in stages()[1] if instruction == "COPY"]
    sources = {word for c in builder_copies for word in shlex.split(c)[:-1]}
    members = {
        str(p.relative_to(ROOT))
        for glob in ("libs/*/pyproject.toml", "services/*/pyproject.toml")
        for p in ROOT.glob(glob)
    }
    assert members | {"pyproject.toml", "uv.lock"} <= sources


def test_dockerignore_keeps_local_state_out() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {"**/.venv", ".git", ".env", ".cache"} <= ignored


# --- deploy/Procfile (make run) ------------------------------------------------------------------


def test_procfile_runs_every_service() -> None:
    processes = dict(
        line.split(":", 1)
        for line in PROCFILE.read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert list(processes) == MODULES
    for name, command in processes.items():
        assert command.strip() == f"exec python -m {name}", command
    makefile = (ROOT / "Makefile").read_text()
    assert "honcho start -f deploy/Procfile" in makefile
