#!/usr/bin/env bash
# Validate compose.yaml against the Compose specification and dclint's rules (deploy/dclintrc.yaml).
# dclint comes from npm, pinned below, installed once into .cache/dclint (git-ignored); after
# that this runs offline. Extra arguments go to dclint (e.g. --fix-dry-run).
set -euo pipefail

DCLINT_VERSION="3.1.0"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="${DCLINT_PREFIX:-$ROOT/.cache/dclint}"
BIN="$PREFIX/node_modules/.bin/dclint"

if [[ ! -x "$BIN" ]] || [[ "$("$BIN" --version 2>/dev/null || true)" != "$DCLINT_VERSION" ]]; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "dclint.sh: npm (Node.js) is needed to install dclint@$DCLINT_VERSION" >&2
        exit 1
    fi
    echo "dclint.sh: installing dclint@$DCLINT_VERSION into $PREFIX" >&2
    mkdir -p "$PREFIX"
    npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error "dclint@$DCLINT_VERSION" >&2
fi

cd "$ROOT"
# Any warning fails too: the rules we do not want are switched off in the config instead.
exec "$BIN" --config deploy/dclintrc.yaml --max-warnings 0 "$@" compose.yaml
