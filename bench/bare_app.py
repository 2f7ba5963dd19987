"""The baseline every rate is divided by: a minimal FastAPI app, no database.

`python -m bench.bare_app --port N` serves it as bench/serve.py says: one uvicorn process,
uvloop + httptools, access log off.
"""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel, Field

from bench.serve import port_parser, serve

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
    args = port_parser("python -m bench.bare_app").parse_args()
    serve(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
