"""Pets suite: pet_api GET /pets/{id} and POST /pets next to a bare FastAPI app, same run."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from bench.infra import (
    BENCH_PASSWORD,
    BENCH_USER,
    REPO_ROOT,
    Database,
    bench_database,
    free_port,
    get_token,
    log,
    service,
    uvicorn_service_env,
    workdir,
)
from bench.load import HEADER, LoadOptions, LoadProcess, LoadSpec, load_row
from bench.seed import copy_pets
from bench.table import markdown

PET_BODY = json.dumps({"name": "Rex", "pet_type": "dog"}).encode()


def run(opts: LoadOptions, *, seed_pets: int) -> str:
    with workdir() as tmp, bench_database() as db:
        return _run(db, tmp, opts, seed_pets)


def _run(db: Database, tmp: Path, opts: LoadOptions, seed_pets: int) -> str:
    pet_port, bare_port = free_port(), free_port()
    env = {
        **uvicorn_service_env(db),
        "PET_API_HOST": "127.0.0.1",
        "PET_API_PORT": str(pet_port),
        "FIRST_USER_USERNAME": BENCH_USER,
        "FIRST_USER_PASSWORD": BENCH_PASSWORD,
        "PET_API_READS_REQUIRE_AUTH": "false",
    }
    log(f"pets: seeding {seed_pets:,} pets")
    ids = asyncio.run(copy_pets(db.dsn, 0, seed_pets))
    pet_url, bare_url = f"http://127.0.0.1:{pet_port}", f"http://127.0.0.1:{bare_port}"
    with (
        service(
            "pet_api", ["-m", "pet_api"], env, cwd=tmp, logs=tmp, health_url=f"{pet_url}/healthz"
        ),
        service(
            "bare_app",
            ["-m", "bench.bare_app", "--port", str(bare_port)],
            {},
            cwd=REPO_ROOT,
            logs=tmp,
            health_url=f"{bare_url}/healthz",
        ),
        LoadProcess() as load,
    ):
        token = get_token(pet_url)
        auth = (("Authorization", f"Bearer {token}"),)
        targets = [
            ("bare GET /ping", opts.apply(LoadSpec(bare_url, "GET", ("/ping",)))),
            (
                "bare POST /echo",
                opts.apply(LoadSpec(bare_url, "POST", ("/echo",), PET_BODY, ok_statuses=(201,))),
            ),
            (
                "pet GET /pets/{id}",
                opts.apply(LoadSpec(pet_url, "GET", tuple(f"/pets/{i}" for i in ids))),
            ),
            (
                "pet POST /pets",
                opts.apply(
                    LoadSpec(
                        pet_url,
                        "POST",
                        ("/pets",),
                        PET_BODY,
                        headers=auth,
                        ok_statuses=(201,),
                    )
                ),
            ),
        ]
        rows = []
        for label, spec in targets:
            log(f"pets: {label} for {opts.duration}s x {opts.connections} connections")
            result = load.run(spec)
            rows.append(load_row(label, result))
    title = (
        f"pets: {opts.connections} connections, {opts.duration:g} s each "
        f"(after {opts.warmup:g} s warm-up), {seed_pets:,} seeded pets"
    )
    return markdown(title, HEADER, rows)
