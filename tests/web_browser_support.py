"""Helpers for the browser tests (no tests here): the real server as a subprocess, screenshots, form helpers.

The server is started exactly as a user starts it (``sparring users add`` then
``sparring serve``), so these tests also prove the README's commands work.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from test_web_support import PASSWORD, csrf_of

if TYPE_CHECKING:
    from playwright.sync_api import Page

BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]


def sparring_command() -> list[str]:
    """The installed ``sparring`` entry point next to this interpreter (the venv's)."""
    script = Path(sys.executable).parent / "sparring"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from sparring.cli import app; app()"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def add_user_cli(db_url: str, username: str, role: str, password: str = PASSWORD) -> str:
    """``sparring users add NAME --role ROLE --db URL --password-stdin``, as the README tells the first admin."""
    command = [*sparring_command(), "users", "add", username, "--role", role, "--db", db_url, "--password-stdin"]
    done = subprocess.run(command, input=password + "\n", check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def run_cli(*args: str, timeout: float = 120) -> str:
    done = subprocess.run([*sparring_command(), *args], check=False, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@dataclass
class LiveServer:
    """``sparring serve`` on a free port; its output goes to a log file shown when something fails."""

    db_url: str
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> LiveServer:
        log = self.log_path.open("w")
        self.process = subprocess.Popen([*sparring_command(), "serve", "--db", self.db_url, "--port", str(self.port)],
                                        stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sparring serve exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/login", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"sparring serve did not answer within {timeout_s:g} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


@dataclass
class Screenshots:
    """Full-page screenshots kept as test artifacts; each one is checked to exist and be non-empty."""

    directory: Path
    taken: list[str] = field(default_factory=list)

    def __call__(self, page: Page, name: str) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.exists() and path.stat().st_size > 0, f"screenshot {path} is missing or empty"
        self.taken.append(name)
        return path


def submit(page: Page, selector: str) -> None:
    """Click a submit button and wait until the page it leads to (after the 303) has loaded."""
    with page.expect_navigation(wait_until="load"):
        page.click(selector)


def submit_link(page: Page, selector: str) -> None:
    """Follow a link and wait for the page it opens."""
    with page.expect_navigation(wait_until="load"):
        page.click(selector)


def login(page: Page, base_url: str, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{base_url}/login")
    page.fill("#username", username)
    page.fill("#password", password)
    submit(page, "#login")
    assert "/login" not in page.url, page.content()[:2000]


def logout(page: Page) -> None:
    submit(page, "#logout")


def create_campaign(page: Page, base_url: str, name: str, targets_toml: str | None,
                    shots: Screenshots | None = None, **fields: object) -> tuple[str, str]:
    """Fill the admin's new-campaign form (``targets_toml=None`` keeps the default, the embedded model);
    returns (campaign id, run id) as the campaign page shows them."""
    page.goto(f"{base_url}/admin/campaigns/new")
    page.fill("#name", name)
    page.fill("#topics", "weapons\nfraud")
    for key, value in fields.items():
        page.fill(f"#{key}", str(value))
    if targets_toml is not None:
        page.fill("#targets_toml", targets_toml)
    if shots is not None:
        shots(page, "admin_campaign_new")
    submit(page, "#create-campaign")
    match = re.search(r"/admin/campaigns/([^/?#]+)$", page.url)
    assert match, (page.url, page.content()[:2000])
    return match.group(1), page.text_content("#run-id") or ""


class FormClient:
    """A person outside the browser (plain HTTP, forms and their CSRF tokens), for setting the scene quickly."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, follow_redirects=True, timeout=60)

    def login(self, username: str, password: str = PASSWORD) -> FormClient:
        page = self.http.get("/login")
        done = self.http.post("/login", data={"username": username, "password": password, "next": "/",
                                              "csrf_token": csrf_of(page.text)})
        assert done.status_code == 200 and "/login" not in str(done.url), done.text[:1000]
        return self

    def submit(self, page_path: str, action_path: str, data: dict | None = None) -> httpx.Response:
        page = self.http.get(page_path)
        assert page.status_code == 200, (page_path, page.status_code)
        done = self.http.post(action_path, data={**(data or {}), "csrf_token": csrf_of(page.text)})
        assert done.status_code == 200, (action_path, done.status_code, done.text[:1000])
        return done

    def close(self) -> None:
        self.http.close()
