"""The browser page each API serves at `/`: one HTML file of the service's own, its scripts
under /ui/app/, and the assets every page shares (the look, signing in, calling the API with
its 422 messages shown by the fields, following event streams) under /ui/core/.

Plain files and ES modules, no build step and nothing from a CDN: the service serves every
byte the page needs. The page is outside the OpenAPI document (it is not part of the API)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fastapi import FastAPI, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

CORE_ASSETS = Path(__file__).parent / "static"


class _Assets(StaticFiles):
    """A folder of files, which names itself as the request's route (as a matched API route
    is named), so that request metrics count its files under its path, not as unmatched."""

    def __init__(self, directory: Path, path: str) -> None:
        super().__init__(directory=directory)
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = self
        await super().__call__(scope, receive, send)


def page_headers(fetch_from: Sequence[str] = ()) -> dict[str, str]:
    """Scripts and styles only from this origin, never inline; images also from blob: URLs
    (the pages fetch media with the bearer token and show the bytes). The API is on 'self';
    `fetch_from` adds origins the page fetches from too (presigned S3 URLs)."""
    more = "".join(f" {origin}" for origin in fetch_from)
    return {
        "Content-Security-Policy": f"default-src 'self'; connect-src 'self'{more}; "
        "img-src 'self' blob: data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }


def install_web_ui(app: FastAPI, pages: Path, *, fetch_from: Sequence[str] = ()) -> None:
    """Serve `pages/index.html` at `/`, `pages/*` at /ui/app/ and the shared assets at
    /ui/core/."""
    index = (pages / "index.html").read_bytes()  # once, at startup
    headers = page_headers(fetch_from)

    @app.get("/", include_in_schema=False)
    async def page() -> Response:
        return Response(index, media_type="text/html; charset=utf-8", headers=headers)

    for path, directory in (("/ui/core", CORE_ASSETS), ("/ui/app", pages)):
        app.mount(path, _Assets(directory, path))
