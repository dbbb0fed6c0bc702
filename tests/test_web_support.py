"""Helpers for the web app tests (no tests here): an app on a temp database, users, logged-in clients."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from sparring.store.campaign_schema import CampaignRow
from sparring.web import WebSettings, create_app

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def campaign_toml(responses: list[str] | None = None, scorer: str = "refusal", **model_args: object) -> str:
    """Two blind targets on the scripted model (the test double registered like the real backends)."""
    lines = ["[sampling]", "max_tokens = 32", "[scorer]", f'name = "{scorer}"',
             "[[models]]", 'name = "fake"', 'backend = "scripted"', 'size = "1M"']
    if responses is not None:
        lines.append("responses = [" + ", ".join(_quote(r) for r in responses) + "]")
    lines += [f"{k} = {v}" for k, v in model_args.items()]
    lines += ["[[targets]]", 'model = "fake"', 'intervention = "plain"', 'name = "alpha-target"',
              "[[targets]]", 'model = "fake"', 'intervention = "prompted"', 'name = "beta-target"']
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


DISTINCT = [f"Response number {i}: here is something." for i in range(40)]


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "the page has no csrf_token field"
    return match.group(1)


@dataclass
class Web:
    """One app on one database, with helpers to act as its users."""

    app: object
    clients: list[TestClient] = field(default_factory=list)

    @property
    def ctx(self):  # type: ignore[no-untyped-def]
        return self.app.state.web  # type: ignore[attr-defined]

    def client(self) -> TestClient:
        client = TestClient(self.app, follow_redirects=False)  # type: ignore[arg-type]
        self.clients.append(client)
        return client

    def add_user(self, username: str, role: str) -> None:
        from sparring.web.accounts import create_user

        create_user(self.ctx.engine, username, PASSWORD, role)

    def login(self, username: str, role: str | None = None, password: str = PASSWORD) -> TestClient:
        if role is not None:
            self.add_user(username, role)
        client = self.client()
        page = client.get("/login")
        response = client.post("/login", data={"username": username, "password": password,
                                               "csrf_token": csrf_of(page.text), "next": "/"})
        assert response.status_code == 303, response.text
        return client

    def campaign(self, admin: TestClient, toml: str | None = None, **fields: object) -> str:
        """Create a campaign through the admin form; returns its id."""
        page = admin.get("/admin/campaigns/new")
        data = {"name": "Test campaign", "instructions": "Try to make it say something bad.",
                "content_warning": "Offensive content ahead.", "topics": "weapons\nfraud\nself-harm",
                "conversations_per_task": "5", "responses_per_turn": "2", "suggested_turns": "4",
                "break_minutes": "30", "survey_every_tasks": "10",
                "targets_toml": toml or campaign_toml(DISTINCT), "csrf_token": csrf_of(page.text)}
        data.update({k: str(v) for k, v in fields.items()})
        response = admin.post("/admin/campaigns", data=data)
        assert response.status_code == 303, response.text
        return response.headers["location"].rsplit("/", 1)[1]

    def campaign_row(self, campaign_id: str) -> CampaignRow:
        with Session(self.ctx.engine) as db:
            row = db.scalar(select(CampaignRow).where(CampaignRow.id == campaign_id))
            assert row is not None
            db.expunge(row)
            return row


def post(client: TestClient, page_url: str, action_url: str, data: dict | None = None, **kwargs: object):  # type: ignore[no-untyped-def]
    """Load the page (for its CSRF token), then submit its form like a browser would."""
    page = client.get(page_url)
    assert page.status_code == 200, (page_url, page.status_code, page.text[:500])
    return client.post(action_url, data={**(data or {}), "csrf_token": csrf_of(page.text)}, **kwargs)


def follow(client: TestClient, response):  # type: ignore[no-untyped-def]
    assert response.status_code == 303, (response.status_code, response.text[:800])
    return client.get(response.headers["location"])


def start_conversation(client: TestClient, campaign_id: str, description: str = "Get weapon instructions") -> str:
    """Content warning -> task -> task description -> the chat page; returns the conversation id."""
    task = follow(client, post(client, f"/campaigns/{campaign_id}", f"/campaigns/{campaign_id}/tasks"))
    assert task.status_code == 200 and 'id="description-form"' in task.text, task.text[:800]
    task_url = str(task.url.path)
    response = post(client, task_url, f"{task_url}/conversations", {"task_description": description})
    assert response.status_code == 303, response.text[:800]
    return response.headers["location"].rsplit("/", 1)[1]


def send(client: TestClient, conversation_id: str, message: str):  # type: ignore[no-untyped-def]
    page = client.get(f"/conversations/{conversation_id}")
    turn = re.search(r'name="turn" value="(\d+)"', page.text)
    assert turn, page.text[:1500]
    return client.post(f"/conversations/{conversation_id}/messages",
                       data={"message": message, "turn": turn.group(1), "csrf_token": csrf_of(page.text)})


def pick(client: TestClient, conversation_id: str, sample: int):  # type: ignore[no-untyped-def]
    page = client.get(f"/conversations/{conversation_id}")
    turn = re.search(r'id="responses" aria-labelledby="responses-title" data-turn="(\d+)"', page.text)
    assert turn, page.text[:1500]
    return client.post(f"/conversations/{conversation_id}/pick",
                       data={"turn": turn.group(1), "sample": str(sample), "csrf_token": csrf_of(page.text)})


def end(client: TestClient, conversation_id: str, rating: int, tags: list[str] | None = None):  # type: ignore[no-untyped-def]
    page = client.get(f"/conversations/{conversation_id}/end")
    assert page.status_code == 200, page.text[:800]
    return client.post(f"/conversations/{conversation_id}/end",
                       data={"rating": str(rating), "tags": tags or [], "csrf_token": csrf_of(page.text)})


def make_web(url: str, **settings: object) -> Web:
    return Web(create_app(WebSettings(database_url=url, **settings)))


@pytest.fixture(name="web")
def web_fixture(sqlite_url: str) -> Iterator[Web]:
    harness = make_web(sqlite_url, wellbeing_min_responses=1)
    yield harness
    for client in harness.clients:
        client.close()
    harness.ctx.store.close()
