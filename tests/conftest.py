"""Shared fixtures: real data from ../shared/data, scripted experiment configs, databases."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("SPARRING_CHROMIUM", "/usr/bin/chromium"))


def _unavailable(reason: str) -> None:
    """Skip locally; fail in CI (``SPARRING_REQUIRE_SERVICES=1``), where a skip would hide a broken setup."""
    if os.environ.get("SPARRING_REQUIRE_SERVICES"):
        pytest.fail(reason)
    pytest.skip(reason)


def find_shared_data() -> Path | None:
    env = os.environ.get("SPARRING_SHARED_DATA")
    if env:
        return Path(env)
    for parent in ROOT.parents:
        candidate = parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = find_shared_data()
    if path is None:
        _unavailable("../shared/data not found (set SPARRING_SHARED_DATA)")
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'sparring.db'}"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database on the PostgreSQL server at 127.0.0.1:5432 (trust auth), dropped afterwards."""
    psycopg = pytest.importorskip("psycopg")
    admin = os.environ.get("SPARRING_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
    name = f"sparring_test_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as error:
        _unavailable(f"PostgreSQL not reachable at {admin}: {error}")
    base = admin.rsplit("/", 1)[0]
    yield f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def chromium_executable() -> Path:
    """Debian's headless Chromium, driven through Playwright with ``executable_path`` (no browser download)."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[test]')")
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} not found (apt-get install chromium, or set SPARRING_CHROMIUM)")
    return CHROMIUM


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where browser tests keep screenshots: ``$SPARRING_TEST_ARTIFACTS``, else tests/artifacts (git-ignored)."""
    path = Path(os.environ.get("SPARRING_TEST_ARTIFACTS") or ROOT / "tests" / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path
