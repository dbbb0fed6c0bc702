"""``create_app(settings)``: the FastAPI app with its routers, error pages, request limits and security headers.

Error pages are generic: an unexpected exception or a database failure shows
a fixed message, and its details go to the server log (redacted), never to the page.
"""

from __future__ import annotations

import logging
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
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from sparring.store.campaign_schema import CampaignRow
from sparring.store.opening import open_store
from sparring.store.schema import RunRow
from sparring.web import accounts, campaigns, red_team, reviews, wellbeing
from sparring.web.context import WebContext
from sparring.web.pages import redirect, render
from sparring.web.request_limits import RequestLimits
from sparring.web.security import SESSION_COOKIE, LoginRequired, Viewer, find_viewer
from sparring.web.settings import WebSettings
from sparring.web.targets_pool import TargetsPool

STATIC = Path(__file__).parent / "static"
log = logging.getLogger(__name__)

# No inline or third-party scripts: the page's own files only.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def create_app(settings: WebSettings) -> FastAPI:
    """Raises ``DatabaseUnusable`` (one line) when the database cannot be opened, upgraded or written."""
    context = WebContext(settings=settings, store=open_store(settings.database_url, pool_size=settings.db_threads,
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

    async def viewer_of(request: Request) -> Viewer | None:
        try:
            return await run_in_threadpool(find_viewer, context, request.cookies.get(SESSION_COOKIE))
        except SQLAlchemyError:  # the error page must not fail in turn
            return None

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        viewer = await viewer_of(request)
        message = error.detail if isinstance(error.detail, str) else "Something went wrong."
        if error.status_code == 404 and message == "Not Found":
            message = "No such page."
        return render(request, "error.html", status_code=error.status_code, viewer=viewer, status=error.status_code,
                      message=message)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, error: RequestValidationError) -> Response:
        viewer = await viewer_of(request)
        where = ", ".join(".".join(str(p) for p in item["loc"][1:]) or "request" for item in error.errors())
        return render(request, "error.html", status_code=400, viewer=viewer, status=400,
                      message=f"Bad request: check {where}.")

    @app.exception_handler(SQLAlchemyError)
    async def database_error(request: Request, error: SQLAlchemyError) -> Response:
        log.error("database error on %s %s", request.method, request.url.path, exc_info=error)
        return render(request, "error.html", status_code=503, viewer=None, status=503,
                      message="The database could not complete this request. Try again in a moment, and tell "
                              "an admin if it keeps happening.")

    @app.exception_handler(Exception)
    async def server_error(request: Request, error: Exception) -> Response:
        return render(request, "error.html", status_code=500, viewer=None, status=500,
                      message="Something went wrong on the server. The details are in the server log.")

    # Innermost first: the limits run before routing and body parsing; security headers wrap every answer.
    app.add_middleware(RequestLimits, max_body_bytes=settings.max_body_bytes)

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
