"""Browser tests: the real app served by uvicorn on a free port, driven by headless Chromium.

Chromium is Debian's (``/usr/bin/chromium``), launched through Playwright without ``playwright
install``. Locally a missing Chromium skips; under FORESIGHT_REQUIRE_SERVICES=1 it fails.
Screenshots go to ``artifacts/screenshots/`` (gitignored; CI keeps them as test artifacts).
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from foresight.api import create_app
from foresight.mosquitto import free_port
from foresight.runtime import Runtime
from tests.foresight.people import api_runtime
from tests.services import missing_service

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


@dataclass
class LiveApp:
    runtime: Runtime
    url: str


@pytest.fixture(scope="module")
def live_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    """The app over the test world of tests/foresight/people.py, on http://127.0.0.1:<free port>."""
    rt = api_runtime(Path(tmp_path_factory.mktemp("web")))
    port = free_port()
    # Open live streams must not hold up shutdown: the server gives them a second.
    server = uvicorn.Server(uvicorn.Config(create_app(rt), host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, name="web-test-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)  # uvicorn offers no start event to wait on
    assert server.started, "the test server did not start"
    yield LiveApp(rt, f"http://127.0.0.1:{port}")
    server.should_exit = True
    thread.join(timeout=10)
    rt.engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Debian Chromium through Playwright."""
    if not CHROMIUM.exists() or shutil.which("chromium") is None:
        missing_service("chromium (apt-get install chromium chromium-driver)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def screenshot(page: object, name: str) -> Path:
    """Save a full-page screenshot under artifacts/screenshots/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    return path
