"""``create_app(settings)``: the FastAPI app with its routers, error pages and security headers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from sparring.store.campaign_schema import CampaignRow
from sparring.store.repository import Store
from sparring.store.schema import RunRow
from sparring.web import accounts, campaigns, red_team, reviews, wellbeing
from sparring.web.context import WebContext
from sparring.web.pages import redirect, render
from sparring.web.security import SESSION_COOKIE, LoginRequired, find_viewer
from sparring.web.settings import WebSettings
from sparring.web.targets_pool import TargetsPool

STATIC = Path(__file__).parent / "static"

# No inline or third-party scripts: the page's own files only.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def create_app(settings: WebSettings) -> FastAPI:
    context = WebContext(settings=settings, store=Store(settings.database_url, pool_size=settings.db_threads,
                                                               pre_ping=False),
                         pool=TargetsPool())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Sync handlers and database calls run on this many threads, each with its own pooled connection.
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.db_threads
        for campaign_id, targets_toml in await run_in_threadpool(_open_campaigns, context):
            context.pool.warm_in_background(campaign_id, targets_toml)
        yield
        await context.pool.aclose()

    app = FastAPI(title="Sparring red-team interface", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.web = context
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for module in (accounts, red_team, wellbeing, reviews, campaigns):
        app.include_router(module.router)

    @app.exception_handler(LoginRequired)
    async def login_required(_: Request, error: LoginRequired) -> Response:
        return redirect(f"/login?next={quote(error.next_path)}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        viewer = await run_in_threadpool(find_viewer, context, request.cookies.get(SESSION_COOKIE))
        message = error.detail if isinstance(error.detail, str) else "Something went wrong."
        if error.status_code == 404 and message == "Not Found":
            message = "No such page."
        return render(request, "error.html", status_code=error.status_code, viewer=viewer, status=error.status_code,
                      message=message)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, error: RequestValidationError) -> Response:
        viewer = await run_in_threadpool(find_viewer, context, request.cookies.get(SESSION_COOKIE))
        where = ", ".join(".".join(str(p) for p in item["loc"][1:]) or "request" for item in error.errors())
        return render(request, "error.html", status_code=400, viewer=viewer, status=400,
                      message=f"Bad request: check {where}.")

    @app.middleware("http")
    async def security_headers(request: Request, call_next):  # type: ignore[no-untyped-def]
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if response.headers.get("content-type", "").startswith("text/html"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    return app


def _open_campaigns(context: WebContext) -> list[tuple[str, str]]:
    with context.transaction() as db:
        return [(c, toml) for c, toml in db.execute(
            select(CampaignRow.id, RunRow.config_toml).join(RunRow, RunRow.id == CampaignRow.run_id)
            .where(CampaignRow.status == "open"))]
