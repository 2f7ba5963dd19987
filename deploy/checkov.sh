#!/usr/bin/env bash
# Policy checks with checkov (settings and reasoned skips: deploy/checkov.yaml). Arguments go to
# checkov; `make lint` passes the rendered manifests and the Dockerfile. `--install-only`
# installs and exits (`make install` does that).
#
# checkov pins old releases of boto3, packaging, networkx and more, which would pull the
# workspace's dev environment back (pytest, moto, ...), so it gets its own virtual environment,
# .cache/checkov (git-ignored), installed from deploy/checkov-requirements.txt: every package
# pinned with its hashes. It is reinstalled only when that file changes; after that this runs
# offline.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CHECKOV_VENV:-$ROOT/.cache/checkov}"
REQUIREMENTS="$ROOT/deploy/checkov-requirements.txt"
STAMP="$VENV/requirements.sha256"
UV="${UV:-uv}"

wanted="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
if [[ ! -x "$VENV/bin/checkov" ]] || [[ "$(cat "$STAMP" 2>/dev/null || true)" != "$wanted" ]]; then
    echo "checkov.sh: installing checkov into $VENV" >&2
    rm -rf "$VENV"
    "$UV" venv --quiet --python 3.11 "$VENV"
    "$UV" pip install --quiet --python "$VENV/bin/python" --require-hashes --no-deps \
        -r "$REQUIREMENTS"
    echo "$wanted" >"$STAMP"
fi
if [[ "${1:-}" == "--install-only" ]]; then
    exit 0
fi

cd "$ROOT"
# A file checkov cannot parse fails the run instead of being skipped.
export CKV_PARSE_ERROR_FAIL=true
exec "$VENV/bin/checkov" --config-file deploy/checkov.yaml "$@"
