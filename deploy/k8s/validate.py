"""Validate rendered Kubernetes manifests offline (`make lint`, after `make k8s`).

Core kinds are checked against the Kubernetes API's JSON schemas shipped by kubernetes-validate,
strictly: an unknown or misspelt field is an error, as are wrong types and missing required
fields. KEDA's kinds, which those schemas do not know, are checked against schemas/keda.yaml.
Any other kind fails: a manifest nobody can check does not pass by default.

    python deploy/k8s/validate.py [--kubernetes-version 1.32] build/k8s/dev.yaml ...
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from kubernetes_validate.utils import SchemaNotFoundError

KEDA_SCHEMA = Path(__file__).resolve().parent / "schemas" / "keda.yaml"
KEDA_API_VERSION = "keda.sh/v1alpha1"
# The oldest Kubernetes release the manifests are meant for (everything they use is GA there).
DEFAULT_KUBERNETES_VERSION = "1.30"


def documents(path: Path) -> Iterator[dict[str, Any]]:
    for doc in yaml.safe_load_all(path.read_text()):
        if doc is not None:
            yield doc


def problems(doc: dict[str, Any], version: str, keda: dict[str, Any]) -> list[str]:
    """Every way `doc` is invalid; empty when it is valid."""
    if not isinstance(doc.get("apiVersion"), str) or not isinstance(doc.get("kind"), str):
        return ["no apiVersion or kind"]
    if doc["apiVersion"] == KEDA_API_VERSION:
        if doc["kind"] not in keda["$defs"]:
            return [f"no schema for {KEDA_API_VERSION} {doc['kind']} in {KEDA_SCHEMA.name}"]
        validator = jsonschema.Draft202012Validator({**keda, "$ref": f"#/$defs/{doc['kind']}"})
        return [
            f"{'.'.join(map(str, error.absolute_path)) or '(top)'}: {error.message}"
            for error in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
        ]
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{'.'.join(map(str, error.path)) or '(top)'}: {error.message}"]
    except SchemaNotFoundError as error:
        return [error.message]
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--kubernetes-version", default=DEFAULT_KUBERNETES_VERSION)
    args = parser.parse_args(argv)
    keda = yaml.safe_load(KEDA_SCHEMA.read_text())

    checked = failed = 0
    for path in args.files:
        for doc in documents(path):
            checked += 1
            found = problems(doc, args.kubernetes_version, keda)
            if found:
                failed += 1
                name = f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
                for problem in found:
                    print(f"{path}: {name}: {problem}", file=sys.stderr)
    print(
        f"{checked - failed} of {checked} manifests valid "
        f"(Kubernetes {args.kubernetes_version}, {KEDA_API_VERSION})",
        file=sys.stderr,
    )
    return 1 if failed or not checked else 0


if __name__ == "__main__":
    raise SystemExit(main())
