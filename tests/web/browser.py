"""Real-browser test helpers: the web app served by uvicorn on a free loopback port, and headless Chromium.

The TestClient tests check each route; these drive the pages the way a customer or an operator does (links
taken from the sent emails, forms clicked), so cookies, redirects, forms and the layout are exercised for real.
"""

from __future__ import annotations

import dataclasses
import email
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from email.policy import default as default_policy
from html.parser import HTMLParser
from pathlib import Path

import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver

from tests.factories import REPO
from tracker.app import App
from tracker.config import WebSettings
from tracker.web.app import create_app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
ARTIFACTS = REPO / "test-artifacts"  # screenshots for a person to look at; ignored by git
WAIT = 20  # seconds: the bound on every wait for the browser or the server
ADMIN_PASSWORD = "test-password"
CHROME_ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
               "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--window-size=1280,900")


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, if they cannot: CI installs Chromium, so CI runs them."""
    if CHROMIUM is None or CHROMEDRIVER is None:
        return ("headless Chromium tests need `chromium` and `chromedriver` on PATH "
                "(Debian: apt-get install chromium chromium-driver)")
    return None


def _free_socket() -> socket.socket:
    """A listening loopback socket on a port the system chose: bound before the server starts, so no other
    process can take the port in between, and early connections wait in the backlog."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


def configure_web(app: App, port: int) -> None:
    """Give the daemon a [web] at the test server, for the pages and for the links the outbox writes."""
    web = WebSettings(host="127.0.0.1", port=port, public_url=f"http://127.0.0.1:{port}",
                      admin_password=ADMIN_PASSWORD)
    app.config = app.outbox.config = dataclasses.replace(app.config, web=web)


@contextmanager
def serve(app: App) -> Iterator[str]:
    """Serve `create_app(app)` with uvicorn in a background thread; yields the base URL."""
    sock = _free_socket()
    port = sock.getsockname()[1]
    configure_web(app, port)
    config = uvicorn.Config(create_app(app), log_level="warning", access_log=False, lifespan="off", ws="none",
                            timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + WAIT
        while not server.started:  # a bounded wait for the start-up, which also notices a server that died
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the test web server did not start on port {port}")
            thread.join(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(WAIT)
        sock.close()


@contextmanager
def chrome(profile: Path) -> Iterator[WebDriver]:
    """A headless Chromium driven by the system's chromedriver, with its own throw-away profile."""
    options = Options()
    for argument in (*CHROME_ARGS, f"--user-data-dir={profile}"):
        options.add_argument(argument)
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.set_page_load_timeout(WAIT)
        driver.set_script_timeout(WAIT)
        yield driver
    finally:
        driver.quit()


def screenshot(driver: WebDriver, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    assert driver.save_screenshot(str(path)), f"could not save {path}"
    return path


@contextmanager
def phone(driver: WebDriver, width: int = 390, height: int = 844) -> Iterator[None]:
    """Render the page as a phone does: a width × height viewport at scale 1, touch, mobile layout."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": True})
    try:
        yield
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def read_eml(path: Path) -> EmailMessage:
    return email.message_from_bytes(path.read_bytes(), policy=default_policy)  # type: ignore[return-value]


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self._open: list[tuple[str, list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._open.append((dict(attrs).get("href") or "", []))

    def handle_data(self, data: str) -> None:
        for _href, texts in self._open:
            texts.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open:
            href, texts = self._open.pop()
            self.links.append((" ".join("".join(texts).split()), href))


def html_links(message: EmailMessage) -> dict[str, str]:
    """The links of the email's HTML part, by their visible text (the first link with a text wins)."""
    parser = _Links()
    parser.feed(message.get_body(preferencelist=("html",)).get_content())
    found: dict[str, str] = {}
    for text, href in parser.links:
        found.setdefault(text, href)
    return found
