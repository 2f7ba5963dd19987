"""How the bench's own apps are served: the way the issue states its baseline.

One uvicorn process, uvloop + httptools named explicitly (not "auto", so a missing extra fails
loudly instead of silently measuring asyncio + h11), no access log, no logging config.
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI


def port_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    return parser


def serve(app: FastAPI, *, host: str, port: int) -> None:
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
    )
