"""Both pages are self-contained: every stylesheet, script and module import they name is served
by the service itself (there is no internet at run time, so no CDN), with the right type, and
the page carries its Content-Security-Policy. Served in-process; the apps' lifespans (database,
broker) are not needed for files."""

from __future__ import annotations

import re
from urllib.parse import urljoin

import httpx
import pytest
from fastapi import FastAPI
from playwright.async_api import Page

from gateway.app import create_app as create_gateway
from gateway.settings import GatewaySettings
from pet_api.app import create_app as create_pet_api
from pet_api.settings import PetApiSettings
from testkit.browser import accessibility_problems

ASSET = re.compile(r'(?:src|href)="(/ui/[^"]+)"')
IMPORT = re.compile(r'(?:from|import)\s+"([^"]+\.js)"')
TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}

pytestmark = pytest.mark.web


def apps() -> dict[str, FastAPI]:
    return {
        "gateway": create_gateway(GatewaySettings()),
        "pet_api": create_pet_api(PetApiSettings()),
    }


@pytest.mark.parametrize("name", ["gateway", "pet_api"])
async def test_the_page_and_everything_it_loads_are_served_here(name: str) -> None:
    app = apps()[name]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        page = await http.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "default-src 'self'" in policy
        assert "unsafe-inline" not in policy
        assert "<script>" not in page.text  # inline scripts and styles: the policy forbids them
        assert "style=" not in page.text
        assert not re.search(r'(?:src|href)="(?:https?:)?//', page.text), "an asset from elsewhere"

        pending = [urljoin("http://testserver/", path) for path in ASSET.findall(page.text)]
        seen: set[str] = set()
        while pending:
            url = pending.pop()
            if url in seen:
                continue
            seen.add(url)
            response = await http.get(url)
            assert response.status_code == 200, url
            suffix = url[url.rindex(".") :]
            assert response.headers["content-type"].startswith(TYPES[suffix]), url
            if suffix == ".js":
                for target in IMPORT.findall(response.text):
                    assert target.startswith(("/", "./")), f"{url} imports {target} from elsewhere"
                    pending.append(urljoin(url, target))
        assert any(url.endswith("/ui/core/session.js") for url in seen)  # the shared pieces
        assert any(url.endswith("/ui/core/base.css") for url in seen)
        metrics = (await http.get("/metrics")).text  # files are counted by folder, not unmatched
        assert 'route="/ui/core",status="200"' in metrics
        assert 'route="/ui/app",status="200"' in metrics


async def test_the_pages_are_not_part_of_the_api_document() -> None:
    for app in apps().values():
        paths = app.openapi()["paths"]
        assert "/" not in paths
        assert not [p for p in paths if p.startswith("/ui")]


async def test_with_media_redirected_to_s3_the_gallery_may_fetch_from_there() -> None:
    settings = GatewaySettings(
        storage_backend="s3", gateway_media_redirect=True, s3_public_url="http://localhost:9000/"
    )
    transport = httpx.ASGITransport(app=create_gateway(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        policy = (await http.get("/")).headers["content-security-policy"]
    assert "connect-src 'self' http://localhost:9000;" in policy


async def test_the_accessibility_check_can_fail(page: Page) -> None:
    """The browser tests' assert_accessible is only as good as this: a page with an unlabelled
    input, a nameless button and faint text is caught, rule by rule."""
    await page.set_content(
        '<html lang="en"><head><title>bad</title></head><body><main><input>'
        '<p style="color:#ccc;background:#fff">faint</p><button></button></main></body></html>'
    )
    found = {line.split(" ")[0] for line in await accessibility_problems(page)}
    assert {"label", "button-name", "color-contrast"} <= found
