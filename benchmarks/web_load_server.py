"""The web load benchmark's server side: start and stop the real app, accounts, the campaign, a temp database.

Kept apart from ``bench_web_load.py`` (the simulated people and the measurements).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

PASSWORD = "benchmark password"
DB_ENV = "SPARRING_BENCH_DATABASE_URL"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
RESPONSES = [f"Scripted response {i}: this is what the fast model says." for i in range(64)]


def csrf_token_of(html: str) -> str:
    match = CSRF.search(html)
    if not match:
        raise RuntimeError("the page has no csrf_token field")
    return match.group(1)


def create_app_from_env():  # type: ignore[no-untyped-def]
    """``uvicorn --factory`` target, so several workers can each build the app (the database from the env)."""
    from sparring.web import WebSettings, create_app

    return create_app(WebSettings(database_url=os.environ[DB_ENV]))


# -- the server and its database --------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(db_url: str, workers: int, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "--factory", "web_load_server:create_app_from_env",
               "--app-dir", str(Path(__file__).parent), "--host", "127.0.0.1", "--port", str(port),
               "--workers", str(workers), "--log-level", "info"]  # info (with access log), as `sparring serve`
    process = subprocess.Popen(command, env={**os.environ, DB_ENV: db_url}, stdout=log.open("w"),
                               stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/login", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"the server did not answer: {log.read_text()[-2000:]}")


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (uvicorn's workers), from /proc; 0 where unavailable."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        this, parent = int(stat.parent.name), int(fields[1])
        if this == pid or parent == pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def create_accounts(db_url: str, users: int) -> list[str]:
    """The admin and the red teamers, straight into the database (setup, not measured)."""
    from sparring.store import Store
    from sparring.web.accounts import create_user

    store = Store(db_url)  # creates the schema
    try:
        create_user(store.engine, "admin", PASSWORD, "admin")
        names = [f"redteamer{i:03d}" for i in range(users)]
        for name in names:
            create_user(store.engine, name, PASSWORD, "red_teamer")
    finally:
        store.close()
    return names


def campaign_toml(delay_s: float) -> str:
    quoted = ", ".join(f'"{r}"' for r in RESPONSES)
    return (f'[sampling]\nmax_tokens = 32\n[scorer]\nname = "refusal"\n'
            f'[[models]]\nname = "fast"\nbackend = "scripted"\nsize = "1M"\ndelay_s = {delay_s}\n'
            f'responses = [{quoted}]\n'
            '[[targets]]\nmodel = "fast"\nintervention = "plain"\n'
            '[[targets]]\nmodel = "fast"\nintervention = "prompted"\n')


def create_campaign(url: str, delay_s: float, responses: int) -> tuple[str, str]:
    """Through the admin form, as an admin would; returns (campaign id, run id)."""
    with httpx.Client(base_url=url, timeout=60) as admin:
        page = admin.get("/login")
        admin.post("/login", data={"username": "admin", "password": PASSWORD, "next": "/",
                                   "csrf_token": csrf_token_of(page.text)})
        page = admin.get("/admin/campaigns/new")
        done = admin.post("/admin/campaigns", data={
            "name": "Load benchmark", "instructions": "Red team the assistant.", "content_warning": "Offensive.",
            "topics": "", "conversations_per_task": "1", "responses_per_turn": str(responses),
            "suggested_turns": "4", "break_minutes": "1440", "survey_every_tasks": "1000",
            "targets_toml": campaign_toml(delay_s), "csrf_token": csrf_token_of(page.text)})
        if done.status_code != 303:
            raise RuntimeError(f"campaign not created: {done.status_code} {done.text[:500]}")
        campaign = done.headers["location"].rsplit("/", 1)[1]
    return campaign, f"campaign-{campaign}"


def postgres_database(admin_url: str) -> tuple[str, str] | None:
    """A fresh database (name, SQLAlchemy URL) on the server, or None with a message if unreachable."""
    try:
        import psycopg
    except ImportError:
        print("PostgreSQL skipped: psycopg is not installed")
        return None
    name = f"sparring_bench_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as error:
        print(f"PostgreSQL skipped: not reachable at {admin_url}: {str(error).strip()}")
        return None
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return name, f"{base}/{name}"


def drop_postgres(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
