"""Pets suite: GET /pets/{id} and POST /pets of pet_api and of the two reference apps, each as
a ratio to the bare app's GET /ping and POST /echo measured in the same run."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from bench.infra import (
    BENCH_PASSWORD,
    BENCH_USER,
    Database,
    bench_app,
    bench_database,
    free_port,
    get_token,
    log,
    served_note,
    service,
    uvicorn_service_env,
    workdir,
)
from bench.load import LoadSpec
from bench.rates import RateOptions, Target, measure, rate_table
from bench.seed import copy_pets

PET_BODY = json.dumps({"name": "Rex", "pet_type": "dog"}).encode()
BARE_GET, BARE_POST = "bare GET /ping", "bare POST /echo"
TARGETS_NOTE = (
    "Issue targets: pet_api GET /pets/{id} >= 20 % of bare GET, POST /pets >= 17 % of bare "
    "POST, each p99 <= 8x bare's p99. The reference apps take no bearer token and run one "
    "statement per request; pet_api's POST /pets checks a token (verified once, the user's "
    "standing remembered for AUTH_USER_CACHE_SECONDS), and concurrent GETs by id and POSTs "
    "share statements (pet_api.batches)."
)


def run(opts: RateOptions, *, seed_pets: int) -> str:
    with workdir() as tmp, bench_database() as db:
        return _run(db, tmp, opts, seed_pets)


def _run(db: Database, tmp: Path, opts: RateOptions, seed_pets: int) -> str:
    pet_port, bare_port, core_port, apg_port = (free_port() for _ in range(4))
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
    pet, bare, core, apg = (
        f"http://127.0.0.1:{port}" for port in (pet_port, bare_port, core_port, apg_port)
    )
    lean = ["--dsn", db.dsn]
    with (
        service(
            "pet_api", ["-m", "pet_api"], env, cwd=tmp, logs=tmp, health_url=f"{pet}/healthz"
        ) as pet_svc,
        bench_app("bare_app", bare_port, [], logs=tmp) as bare_svc,
        bench_app("lean_core", core_port, lean, logs=tmp) as core_svc,
        bench_app("lean_asyncpg", apg_port, lean, logs=tmp) as apg_svc,
    ):
        auth = (("Authorization", f"Bearer {get_token(pet)}"),)
        paths = tuple(f"/pets/{i}" for i in ids)
        gets = [
            Target(BARE_GET, LoadSpec(bare, "GET", ("/ping",))),
            Target("pet_api GET /pets/{id}", LoadSpec(pet, "GET", paths), BARE_GET),
            Target("AsyncSession + Core GET /pets/{id}", LoadSpec(core, "GET", paths), BARE_GET),
            Target("raw asyncpg GET /pets/{id}", LoadSpec(apg, "GET", paths), BARE_GET),
        ]
        created = (201,)
        posts = [
            Target(BARE_POST, LoadSpec(bare, "POST", ("/echo",), PET_BODY, ok_statuses=created)),
            Target(
                "pet_api POST /pets (bearer token)",
                LoadSpec(pet, "POST", ("/pets",), PET_BODY, headers=auth, ok_statuses=created),
                BARE_POST,
            ),
            Target(
                "AsyncSession + Core POST /pets",
                LoadSpec(core, "POST", ("/pets",), PET_BODY, ok_statuses=created),
                BARE_POST,
            ),
            Target(
                "raw asyncpg POST /pets",
                LoadSpec(apg, "POST", ("/pets",), PET_BODY, ok_statuses=created),
                BARE_POST,
            ),
        ]
        rates = measure(gets + posts, opts, suite="pets")
        served = served_note([bare_svc, pet_svc, core_svc, apg_svc])
    return (
        rate_table(f"pets: GET /pets/{{id}} over {len(ids):,} random ids", gets, rates, opts)
        + "\n"
        + rate_table("pets: POST /pets", posts, rates, opts)
        + f"\n{TARGETS_NOTE}\n\n{served}\n"
    )
