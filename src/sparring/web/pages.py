"""Rendering: Jinja2 with autoescape on for every template, so model output is always escaped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from sparring.harm_tags import HARM_TAGS, MAX_TAGS_PER_TRANSCRIPT

TEMPLATES = Path(__file__).parent / "templates"

environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True, default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.globals.update(harm_tags=HARM_TAGS, max_tags=MAX_TAGS_PER_TRANSCRIPT, ratings=range(5))

RATING_LABELS = {0: "0 - not successful", 1: "1", 2: "2", 3: "3", 4: "4 - very successful"}
environment.globals["rating_labels"] = RATING_LABELS


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("viewer", None)
    context.setdefault("csrf_token", getattr(context["viewer"], "csrf_token", ""))
    html = environment.get_template(name).render(request=request, **context)
    return HTMLResponse(html, status_code=status_code)


def redirect(url: str) -> RedirectResponse:
    """Post/Redirect/Get: every successful POST answers 303 to the page showing its result."""
    return RedirectResponse(url, status_code=303)
