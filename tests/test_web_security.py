"""Standing security regressions of the web app, on SQLite and PostgreSQL.

The route x role matrix covers every route the app has (a new route fails the
matrix until its expected access is written down here). The bursts send many
identical requests at once, as a double-clicking or hostile client would, and
check what the database holds afterwards. Nothing here measures time: the
throttle tests count password hashes, the body tests count bytes read.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import uuid
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from test_web_auth import _api_routes
from test_web_support import (  # noqa: F401  (web_fixture is a fixture)
    PASSWORD,
    Web,
    campaign_toml,
    csrf_of,
    end,
    follow,
    make_web,
    pick,
    post,
    send,
    start_conversation,
    web_fixture,
)

from sparring.store.campaign_schema import (
    AttemptRow,
    LoginAttemptRow,
    ReviewRow,
    TaskRow,
    TopicOptOutRow,
    UserRow,
    WellbeingSurveyRow,
)
from sparring.store.schema import ConversationRow, UtteranceRow
from sparring.web import passwords
from sparring.web.context import utcnow
from sparring.web.wellbeing import FEELINGS

BURST = 20


# -- databases ----------------------------------------------------------------------------------------------

@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A fresh, empty database of each kind (PostgreSQL: one created and dropped per test)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'security.db'}"
        return
    psycopg = pytest.importorskip("psycopg")
    admin = os.environ.get("SPARRING_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
    name = f"sparring_sec_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as error:
        if os.environ.get("SPARRING_REQUIRE_SERVICES"):
            pytest.fail(f"PostgreSQL not reachable at {admin}: {error}")
        pytest.skip(f"PostgreSQL not reachable at {admin}: {error}")
    yield f"{admin.rsplit('/', 1)[0]}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def site(db_url: str) -> Iterator[Web]:
    harness = make_web(db_url, wellbeing_min_responses=3)
    yield harness
    for client in harness.clients:
        client.close()
    harness.ctx.store.close()


# -- concurrent requests ---------------------------------------------------------------------------------------

async def _burst(web: Web, requests: list[tuple[str, str, dict, dict, str]]) -> list[httpx.Response]:
    """Send every (method, path, form, cookies, client address) at once, each on its own connection."""
    async def one(method: str, path: str, data: dict, cookies: dict, address: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=web.app, client=(address, 40000))  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", cookies=cookies) as client:
            return await client.request(method, path, data=data or None)

    return await asyncio.gather(*(one(*r) for r in requests))


def burst(web: Web, client, path: str, data: dict, n: int = BURST, address: str = "10.0.0.1") -> list[int]:  # type: ignore[no-untyped-def]
    """``n`` identical POSTs of one logged-in person at once; their status codes."""
    responses = asyncio.run(_burst(web, [("POST", path, data, dict(client.cookies), address)] * n))
    return [r.status_code for r in responses]


def _count(web: Web, query) -> int:  # type: ignore[no-untyped-def]
    with Session(web.ctx.engine) as db:
        return db.scalar(query) or 0


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Counts password verifications (each one an Argon2id hash) made by logins."""
    seen: Counter = Counter()
    real = passwords.verify_password

    def counting(password_hash: str | None, password: str) -> bool:
        seen["hashes"] += 1
        return real(password_hash, password)

    monkeypatch.setattr(passwords, "verify_password", counting)
    return seen


def _login_form(web: Web) -> tuple[dict, dict]:
    client = web.client()
    page = client.get("/login")
    return {"csrf_token": csrf_of(page.text), "next": "/"}, dict(client.cookies)


def logins(web: Web, attempts: list[tuple[str, str, str]]) -> list[int]:
    """(username, password, client address) all at once; their status codes."""
    form, cookies = _login_form(web)
    requests = [("POST", "/login", {**form, "username": u, "password": p}, cookies, a) for u, p, a in attempts]
    return [r.status_code for r in asyncio.run(_burst(web, requests))]


# -- 1, 2, 8: the login throttle ---------------------------------------------------------------------------------

def test_concurrent_guesses_are_counted_before_any_hashing(site: Web, hashes: Counter):
    """Finding 1: 100 wrong passwords at once for one username: only the limit's worth are verified."""
    site.add_user("victim", "admin")
    codes = logins(site, [("victim", f"guess {i:03d}", "10.1.1.1") for i in range(100)])
    limit = site.ctx.settings.login_max_failures
    assert hashes["hashes"] <= limit
    failed = Counter(codes)[401]
    assert 1 <= failed <= limit and set(codes) <= {401, 429, 503}  # 503: refused while others were being checked
    # the right password is checked only while the failures stay under the limit: never more than the limit in all
    assert logins(site, [("victim", PASSWORD, "10.1.1.1")]) == [429 if failed == limit else 303]


def test_a_success_does_not_erase_failures(site: Web):
    """Finding 1: a login in between used to delete the failures, giving a guesser a fresh allowance."""
    site.add_user("victim", "red_teamer")
    address = "10.1.1.2"
    assert logins(site, [("victim", "wrong one", address)] * 1) == [401]
    for _ in range(3):
        assert logins(site, [("victim", "wrong one", address)]) == [401]
    assert logins(site, [("victim", PASSWORD, address)]) == [303]
    assert logins(site, [("victim", "wrong one", address)]) == [401]  # the fifth failure
    assert logins(site, [("victim", "wrong one", address)]) == [429]


def test_a_login_flood_from_one_address_hashes_little_and_a_real_login_gets_in(site: Web, hashes: Counter):
    """Finding 2: 300 bad logins at once from one address, and one real login from elsewhere among them."""
    site.add_user("realperson", "red_teamer")
    flood = [(f"user{i % 50}", "bad password", "10.2.2.2") for i in range(300)]
    codes = logins(site, flood[:150] + [("realperson", PASSWORD, "10.3.3.3")] + flood[150:])
    assert codes[150] == 303  # the real login was not starved
    assert hashes["hashes"] <= site.ctx.settings.login_max_failures_per_address + 1
    refused = Counter(codes[:150] + codes[151:])
    assert refused[429] + refused[503] >= 300 - site.ctx.settings.login_max_failures_per_address
    assert _count(site, select(func.count()).select_from(LoginAttemptRow)) <= 20  # refused ones leave no row


def test_a_full_hashing_queue_answers_busy_without_hashing(sqlite_url: str, monkeypatch: pytest.MonkeyPatch):
    """Finding 2: beyond ``login_max_waiting`` queued checks a login is told to retry at once, unhashed."""
    web = make_web(sqlite_url, login_max_waiting=3)
    names = [f"person{i}" for i in range(9)]
    for name in names:
        web.add_user(name, "red_teamer")
    release, started = threading.Event(), Counter()

    def blocked(password_hash: str | None, password: str) -> bool:
        started["hashes"] += 1
        release.wait(60)
        return False

    monkeypatch.setattr(passwords, "verify_password", blocked)
    form, cookies = _login_form(web)

    async def scenario() -> list[int]:
        tasks = [asyncio.ensure_future(_burst(web, [("POST", "/login", {**form, "username": n, "password": "x" * 9},
                                                      cookies, f"10.4.0.{i}")])) for i, n in enumerate(names)]
        while sum(t.done() for t in tasks) < len(names) - 3:  # the busy answers come back while 3 wait
            await asyncio.sleep(0.01)
        release.set()
        return [(await t)[0].status_code for t in tasks]

    codes = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert Counter(codes) == {503: 6, 401: 3} and started["hashes"] == 3
    assert _count(web, select(func.count()).select_from(LoginAttemptRow)) == 3  # a busy answer is not a failure
    web.ctx.store.close()


def test_many_real_logins_from_one_address_are_never_locked_out(db_url: str):
    """Refusals caused only by logins still being checked say "try again" (503), never "too many failures"."""
    site = make_web(db_url, login_max_failures_per_address=3)  # an office of 8 behind one address, a low limit
    names = [f"office{i}" for i in range(8)]
    for name in names:
        site.add_user(name, "red_teamer")
    codes = logins(site, [(name, PASSWORD, "10.7.7.7") for name in names])
    assert set(codes) <= {303, 503}  # "busy, try again", never "locked": how many get in at once depends on timing
    for name, code in zip(names, codes, strict=True):  # each retry on its own gets in
        if code == 503:
            assert logins(site, [(name, PASSWORD, "10.7.7.7")]) == [303], name
    assert _count(site, select(func.count()).select_from(LoginAttemptRow)) == 0
    site.ctx.store.close()


def test_guesses_from_elsewhere_do_not_lock_the_person_out(site: Web):
    """Finding 8: five bad guesses for the admin from one address; the admin logs in from another."""
    site.add_user("boss", "admin")
    for _ in range(5):
        assert logins(site, [("boss", "guessing", "10.5.5.5")]) == [401]
    assert logins(site, [("boss", PASSWORD, "10.5.5.5")]) == [429]
    assert logins(site, [("boss", PASSWORD, "10.6.6.6")]) == [303]


# -- 3: well-being means -----------------------------------------------------------------------------------------

def test_wellbeing_means_need_that_many_different_people(site: Web):
    admin = site.login("root", "admin")
    campaign = site.campaign(admin)
    for name in ("ann", "ben", "cid"):
        site.add_user(name, "red_teamer")
    with Session(site.ctx.engine) as db:
        users = {u.username: u.id for u in db.scalars(select(UserRow))}

    def survey(name: str, tasks_done: int, value: int) -> None:
        with Session(site.ctx.engine) as db, db.begin():
            db.add(WellbeingSurveyRow(user_id=users[name], campaign_id=campaign, tasks_done=tasks_done,
                                      answers={f: value for f in FEELINGS}, created_at=utcnow()))

    for milestone in (10, 20, 30, 40):  # one person, four surveys
        survey("ann", milestone, 4)
    page = admin.get(f"/admin/campaigns/{campaign}")
    assert 'id="wellbeing-hidden"' in page.text and 'id="wellbeing-means"' not in page.text
    survey("ben", 10, 0)
    assert 'id="wellbeing-hidden"' in admin.get(f"/admin/campaigns/{campaign}").text
    survey("cid", 10, 1)
    page = admin.get(f"/admin/campaigns/{campaign}")
    assert 'id="wellbeing-means"' in page.text
    # each person counts once: (4 + 0 + 1) / 3, not (4 * 4 + 0 + 1) / 6
    assert re.search(r'data-testid="feeling-upset"><td>upset</td><td>1\.67<', page.text)


# -- 4: backend errors ---------------------------------------------------------------------------------------------

@pytest.fixture
def failing_backend() -> Iterator[int]:
    """An OpenAI-compatible server that answers every request 404 with a revealing body."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = b'{"error": "model secret-model-name not found on internal-host-7"}'
            self.rfile.read(int(self.headers.get("content-length") or 0))
            self.send_response(404)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_backend_errors_reach_red_teamers_only_as_a_reference(web: Web, failing_backend: int,
                                                               caplog: pytest.LogCaptureFixture):
    url = f"http://apiuser:s3cretpw@127.0.0.1:{failing_backend}/v1"
    toml = "\n".join(["[sampling]", "max_tokens = 16", "[scorer]", 'name = "refusal"', "[[models]]",
                      'name = "remote"', 'backend = "openai"', f'base_url = "{url}"', 'model = "secret-model-name"',
                      'size = "1B"', "[[targets]]", 'model = "remote"', 'intervention = "plain"',
                      'name = "hidden-target"']) + "\n"
    admin = web.login("root", "admin")
    campaign = web.campaign(admin, toml=toml)
    red = web.login("rita", "red_teamer")
    conversation = start_conversation(red, campaign)
    with caplog.at_level("WARNING"):
        send(red, conversation, "hello")
    page = red.get(f"/conversations/{conversation}").text
    reference = re.search(r"The assistant failed to answer \(error ([0-9a-f]{8})\)", page)
    assert reference, page[-2000:]
    for secret in ("s3cretpw", "apiuser", "secret-model-name", "internal-host", "hidden-target", "127.0.0.1",
                   "HTTP 404", "openai"):
        assert secret not in page, secret
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert reference.group(1) in logged and "secret-model-name" in logged and "s3cretpw" not in logged
    admin_page = admin.get(f"/admin/campaigns/{campaign}").text
    assert reference.group(1) in admin_page and "***@127.0.0.1" in admin_page and "s3cretpw" not in admin_page


# -- 5: check-then-insert races -----------------------------------------------------------------------------------

def _red_teamer_in_campaign(site: Web, **fields: object) -> tuple[object, str, str]:
    """A campaign on the scripted model and a logged-in red teamer; (client, campaign id, CSRF token)."""
    admin = site.login("root", "admin")
    campaign = site.campaign(admin, toml=campaign_toml(), **fields)
    red = site.login("rita", "red_teamer")
    return red, campaign, csrf_of(red.get(f"/campaigns/{campaign}").text)


def test_a_burst_of_task_starts_opens_one_task(site: Web):
    red, campaign, token = _red_teamer_in_campaign(site)
    codes = burst(site, red, f"/campaigns/{campaign}/tasks", {"csrf_token": token})
    assert set(codes) == {303}
    assert _count(site, select(func.count()).select_from(TaskRow).where(TaskRow.status == "open")) == 1


def test_a_burst_of_conversation_starts_starts_one(site: Web):
    red, campaign, token = _red_teamer_in_campaign(site, conversations_per_task=1)
    task = follow(red, red.post(f"/campaigns/{campaign}/tasks", data={"csrf_token": token})).url.path
    codes = burst(site, red, f"{task}/conversations", {"csrf_token": token, "task_description": "once"})
    assert set(codes) == {303}
    assert _count(site, select(func.count()).select_from(AttemptRow)) == 1
    assert _count(site, select(func.count()).select_from(ConversationRow)) == 1


def test_bursts_of_surveys_topics_and_reviews_store_one_of_each(site: Web):
    red, campaign, token = _red_teamer_in_campaign(site, conversations_per_task=1, survey_every_tasks=1)
    conversation = start_conversation(red, campaign)
    send(red, conversation, "hi")
    pick(red, conversation, 0)
    assert end(red, conversation, 1).status_code == 303
    survey = {"csrf_token": token, **{f: "2" for f in FEELINGS}}
    assert set(burst(site, red, f"/campaigns/{campaign}/survey", survey)) == {303}
    assert _count(site, select(func.count()).select_from(WellbeingSurveyRow)) == 1

    codes = burst(site, red, f"/campaigns/{campaign}/topics", {"csrf_token": token, "opt_out": ["weapons", "fraud"]})
    assert set(codes) == {303}
    assert _count(site, select(func.count()).select_from(TopicOptOutRow)) == 2

    reviewer = site.login("rev", "reviewer")
    review_token = csrf_of(reviewer.get("/review").text)
    codes = burst(site, reviewer, "/review/next", {"csrf_token": review_token, "campaign_id": campaign})
    assert set(codes) == {303}
    assert _count(site, select(func.count()).select_from(ReviewRow)) == 1


# -- 7 and 10: the edge ---------------------------------------------------------------------------------------------

def test_nul_bytes_and_ids_out_of_range_are_4xx_on_every_route(site: Web):
    admin = site.login("root", "admin")
    site.campaign(admin)
    paths = {route.path: route.methods for route in _api_routes(site.app.routes)}
    assert len(paths) >= 25
    token = csrf_of(admin.get("/").text)
    checked = 0
    for path, methods in paths.items():
        if path == "/logout":
            continue  # would end the session the other checks use
        variants = {re.sub(r"\{\w+\}", "a%00b", path)}
        if re.search(r"\{(task|review|user)_id\}", path):
            variants |= {re.sub(r"\{\w+\}", str(n), path) for n in (2**31, 2**63, 2**64, -1, 0)}
        for url in variants | {f"{path.split('{')[0]}?next=%00"}:
            for method in methods & {"GET", "POST"}:
                response = admin.request(method, url, data={"csrf_token": token} if method == "POST" else None)
                assert 400 <= response.status_code < 500 or response.status_code in (200, 303), (method, url)
                checked += 1
        if "POST" in methods and "{" not in path and path not in ("/login", "/logout"):
            response = admin.post(path, data={"csrf_token": token, "name": "a\x00b", "message": "x\x00",
                                              "campaign_id": "c\x00", "username": "u\x00"})
            assert response.status_code == 400 and "NUL" in response.text, path
    assert checked > 60
    refused = admin.get("/?next=%00")
    assert refused.status_code == 400 and refused.headers["x-frame-options"] == "DENY"  # the edge's own answer
    broken = admin.post("/admin/users", content=b"--x\r\nbroken", headers={
        "content-type": "multipart/form-data; boundary=x"})
    assert 400 <= broken.status_code < 500  # never a 500, however the body is broken
    anonymous = site.client()
    page = anonymous.get("/login")
    response = anonymous.post("/login", data={"username": "a\x00", "password": "p\x00",
                                              "csrf_token": csrf_of(page.text)})
    assert response.status_code == 400


def test_model_output_with_nul_does_not_break_the_conversation(site: Web):
    admin = site.login("root", "admin")
    toml = campaign_toml(["NUL-HERE one", "NUL-HERE two"]).replace("NUL-HERE", "bad\\u0000output")  # a TOML escape
    campaign = site.campaign(admin, toml=toml)
    red = site.login("rita", "red_teamer")
    conversation = start_conversation(red, campaign)
    assert send(red, conversation, "hello").status_code == 303
    with Session(site.ctx.engine) as db:
        texts = list(db.scalars(select(UtteranceRow.text).where(UtteranceRow.conversation_id == conversation,
                                                                  UtteranceRow.role == "assistant")))
    assert len(texts) == 2 and all("\x00" not in t and "bad\ufffdoutput" in t for t in texts)
    assert pick(red, conversation, 1).status_code == 303
    assert send(red, conversation, "again").status_code == 303
    assert 'data-testid="response-1"' in red.get(f"/conversations/{conversation}").text


def test_large_bodies_are_refused_before_they_are_read(web: Web):
    """Finding 10: a 1 GiB anonymous upload to /login; declared or streamed, it is cut off at the limit."""
    limit = web.ctx.settings.max_body_bytes
    pulled = Counter()
    chunk = b"x" * 65536

    async def body():  # type: ignore[no-untyped-def]
        for _ in range((1 << 30) // len(chunk)):
            pulled["chunks"] += 1
            yield chunk

    async def upload(headers: dict) -> httpx.Response:
        transport = httpx.ASGITransport(app=web.app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.post("/login", content=body(), headers=headers)

    declared = asyncio.run(upload({"content-length": str(1 << 30),
                                   "content-type": "application/x-www-form-urlencoded"}))
    assert declared.status_code == 413 and pulled["chunks"] <= 1
    pulled.clear()
    streamed = asyncio.run(upload({"content-type": "application/x-www-form-urlencoded"}))
    assert streamed.status_code == 413 and pulled["chunks"] <= limit // len(chunk) + 2
    files = web.client().post("/login", files={"upload": ("a.bin", b"x" * 1000)})
    assert files.status_code == 400  # no route takes files: refused before anything is spooled


# -- 12: closed campaigns ---------------------------------------------------------------------------------------------

def test_a_closed_campaign_is_read_only(site: Web):
    admin = site.login("root", "admin")
    campaign = site.campaign(admin, conversations_per_task=2)
    red = site.login("rita", "red_teamer")
    conversation = start_conversation(red, campaign)
    send(red, conversation, "first")
    page = red.get(f"/conversations/{conversation}")
    token = csrf_of(page.text)
    assert post(admin, f"/admin/campaigns/{campaign}", f"/admin/campaigns/{campaign}/status",
                {"status": "closed"}).status_code == 303
    before = _count(site, select(func.count()).select_from(UtteranceRow))
    writes = [("pick", {"turn": "1", "sample": "0"}), ("messages", {"turn": "1", "message": "more"}),
              ("retry", {"turn": "1"}), ("end", {"rating": "3"}), ("skip", {})]
    for name, data in writes:
        response = red.post(f"/conversations/{conversation}/{name}", data={**data, "csrf_token": token})
        assert response.status_code == 409, name
    task = _count(site, select(func.max(TaskRow.id)))
    assert red.post(f"/tasks/{task}/skip", data={"csrf_token": token}).status_code == 409
    assert red.post(f"/tasks/{task}/conversations", data={"csrf_token": token, "task_description": "x"}
                    ).status_code == 303
    assert _count(site, select(func.count()).select_from(UtteranceRow)) == before
    assert _count(site, select(func.count()).select_from(UtteranceRow).where(UtteranceRow.picked.is_(True),
                                                                            UtteranceRow.role == "assistant")) == 0
    assert _count(site, select(func.count()).select_from(ConversationRow).where(ConversationRow.status == "open")) == 1
    assert _count(site, select(func.count()).select_from(AttemptRow)) == 1
    chat = red.get(f"/conversations/{conversation}")
    assert chat.status_code == 200 and 'id="campaign-closed"' in chat.text and "/pick" not in chat.text


# -- the route x role matrix ------------------------------------------------------------------------------------------

ANON, OWNER, OTHER, REVIEWER, ADMIN = "anonymous", "red_teamer", "other red teamer", "reviewer", "admin"
ROLES = (ANON, OWNER, OTHER, REVIEWER, ADMIN)
RED = {OWNER: "ok", OTHER: "ok", REVIEWER: 403, ADMIN: "ok"}
OWN_RED = {OWNER: "ok", OTHER: 404, REVIEWER: 403, ADMIN: 404}  # admins have no conversations of their own
REVIEW = {OWNER: 403, OTHER: 403, REVIEWER: "ok", ADMIN: "ok"}
OWN_REVIEW = {OWNER: 403, OTHER: 403, REVIEWER: "ok", ADMIN: 404}
ADMIN_ONLY = {OWNER: 403, OTHER: 403, REVIEWER: 403, ADMIN: "ok"}
ANYONE = {OWNER: "ok", OTHER: "ok", REVIEWER: "ok", ADMIN: "ok"}

# Every route and who may use it ("ok": 200 or a redirect within the app). Anonymous visitors always go to /login.
MATRIX: dict[tuple[str, str], dict[str, object]] = {
    ("GET", "/"): ANYONE,
    ("POST", "/logout"): ANYONE,
    ("GET", "/admin/users"): ADMIN_ONLY,
    ("POST", "/admin/users"): ADMIN_ONLY,
    ("POST", "/admin/users/{user_id}"): ADMIN_ONLY,
    ("GET", "/admin/campaigns"): ADMIN_ONLY,
    ("GET", "/admin/campaigns/new"): ADMIN_ONLY,
    ("POST", "/admin/campaigns"): ADMIN_ONLY,
    ("GET", "/admin/campaigns/{campaign_id}"): ADMIN_ONLY,
    ("GET", "/admin/campaigns/{campaign_id}/progress.json"): ADMIN_ONLY,
    ("POST", "/admin/campaigns/{campaign_id}/status"): ADMIN_ONLY,
    ("GET", "/campaigns/{campaign_id}"): RED,
    ("POST", "/campaigns/{campaign_id}/tasks"): RED,
    ("GET", "/campaigns/{campaign_id}/topics"): RED,
    ("POST", "/campaigns/{campaign_id}/topics"): RED,
    ("GET", "/campaigns/{campaign_id}/survey"): RED,
    ("POST", "/campaigns/{campaign_id}/survey"): RED,
    ("GET", "/tasks/{task_id}"): OWN_RED,
    ("POST", "/tasks/{task_id}/conversations"): OWN_RED,
    ("POST", "/tasks/{task_id}/skip"): OWN_RED,
    ("GET", "/conversations/{conversation_id}"): OWN_RED,
    ("POST", "/conversations/{conversation_id}/messages"): OWN_RED,
    ("POST", "/conversations/{conversation_id}/retry"): OWN_RED,
    ("POST", "/conversations/{conversation_id}/pick"): OWN_RED,
    ("GET", "/conversations/{conversation_id}/end"): OWN_RED,
    ("POST", "/conversations/{conversation_id}/end"): OWN_RED,
    ("POST", "/conversations/{conversation_id}/skip"): OWN_RED,
    ("GET", "/review"): REVIEW,
    ("POST", "/review/next"): REVIEW,
    ("GET", "/reviews/{review_id}"): OWN_REVIEW,
    ("POST", "/reviews/{review_id}"): OWN_REVIEW,
}
# POSTs whose "ok" would change what the other rows of the matrix read: checked for refusals only.
REFUSALS_ONLY = {("POST", "/logout"), ("POST", "/admin/campaigns/{campaign_id}/status"),
                 ("POST", "/tasks/{task_id}/skip"), ("POST", "/conversations/{conversation_id}/skip"),
                 ("POST", "/admin/users/{user_id}")}


def test_route_role_matrix(site: Web):
    routes = {(method, route.path) for route in _api_routes(site.app.routes) for method in route.methods
              if method in ("GET", "POST") and route.path != "/login"}
    assert routes == set(MATRIX), f"routes without an expected access here: {routes ^ set(MATRIX)}"
    admin = site.login("root", "admin")
    campaign = site.campaign(admin)
    clients = {ROLES[0]: site.client(), OWNER: site.login("rita", "red_teamer"),
               OTHER: site.login("otto", "red_teamer"), REVIEWER: site.login("rev", "reviewer"), ADMIN: admin}
    owner = clients[OWNER]
    finished = start_conversation(owner, campaign, "finished one")
    send(owner, finished, "hello")
    pick(owner, finished, 0)
    end(owner, finished, 2)
    conversation = start_conversation(owner, campaign, "open one")
    send(owner, conversation, "hello")
    review = follow(clients[REVIEWER], post(clients[REVIEWER], "/review", "/review/next", {"campaign_id": campaign}))
    ids = {"campaign_id": campaign, "conversation_id": conversation, "review_id": review.url.path.rsplit("/", 1)[1],
           "task_id": str(_count(site, select(func.max(TaskRow.id)))),
           "user_id": str(_count(site, select(func.min(AttemptRow.user_id))))}
    tokens = {role: csrf_of(c.get("/login" if role == ANON else "/").text) for role, c in clients.items()}
    form = {"turn": "3", "sample": "0", "rating": "2", "message": "m", "task_description": "d", "status": "open",
            "campaign_id": campaign, "action": "end_sessions", "name": ""}
    before = _count(site, select(func.count()).select_from(UtteranceRow))
    failures = []
    for (method, path), expected in MATRIX.items():
        url = re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], path)
        for role in ROLES:
            want = "login" if role == ANON else expected[role]
            if want == "ok" and (method, path) in REFUSALS_ONLY:
                continue
            data = {**form, "csrf_token": tokens[role]} if method == "POST" else None
            response = clients[role].request(method, url, data=data)
            got = response.status_code
            if want == "login":
                ok = got == 303 and response.headers["location"].startswith("/login")
            elif want == "ok":
                ok = got in (200, 303) or (got == 400 and method == "POST")  # 400: the dummy form, after the checks
            else:
                ok = got == want
            if not ok:
                failures.append(f"{method} {path} as {role}: {got}, expected {want}")
    assert not failures, "\n".join(failures)
    # the refusals wrote nothing: the owner's conversation holds what the owner sent, still open
    assert _count(site, select(func.count()).select_from(UtteranceRow)) == before
    with Session(site.ctx.engine) as db:
        assert db.scalar(select(ConversationRow.status).where(ConversationRow.id == conversation)) == "open"
