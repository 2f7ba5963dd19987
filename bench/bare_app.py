"""The floor to compare the services against: a minimal FastAPI app, no database.

`python -m bench.bare_app --port N [--no-access-log]` serves it with uvicorn the way the
services serve themselves (one process, `log_config=None`).
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel, Field

app = FastAPI(title="bench bare app")


class Echo(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    pet_type: str = Field(min_length=1, max_length=16)


@app.get("/ping")
async def ping() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/echo", status_code=201)
async def echo(body: Echo) -> Echo:
    return body


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--no-access-log", action="store_true")
    args = parser.parse_args()
    uvicorn.run(
        app, host=args.host, port=args.port, log_config=None, access_log=not args.no_access_log
    )


if __name__ == "__main__":
    main()
