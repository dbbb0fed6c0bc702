"""Load on the human red-team web app: many people red teaming at once against a fast scripted model.

Starts the real app (uvicorn in a child process) on SQLite (a temp file) and on
PostgreSQL (a temp database on ``--postgres-url``, created and dropped here;
skipped with a message if unreachable), with 1 worker and, if asked, more.
A campaign (scripted targets answering after ``--delay-ms``, as a fast model
would) is created through the admin form; then ``--users`` simulated red teamers
(asyncio + httpx, each with its own cookies and the CSRF tokens of the forms it
loaded) arrive at random within ``--ramp-s`` and log in; once all are in, each
does the whole flow ``--conversations`` times: content warning, start a task,
task description, ``--turns`` messages each with a pick, the end page and a 0-4
rating, pausing ``--think-s`` on average before each action (people read and
type for far longer; ``--think-s 0`` saturates the server). Every 303 is
followed like a browser would.

Printed per database and worker count, side by side: p50 / p95 / max latency
per request kind against the goal (p95 < 100 ms), with the ratio p95/goal. The
message POST waits for the model inside the request, so it has two rows: total
and minus the scripted model's delay. The login phase is apart: Argon2id makes a
login slow, and a burst of them busy, on purpose. Also printed: the server's CPU
per request. Afterwards the database is checked: every sent message stored
exactly once as a human turn, N samples and exactly one pick per assistant turn
(the one sent), turns x (N-1) comparison pairs, every conversation finished
with its rating. Exits non-zero if anything was lost or duplicated, or a
request failed.

The client runs on the same machine as the server (2 cores here): its own CPU
time is inside the latencies, so they are upper bounds.

    python benchmarks/bench_web_load.py [--users 50] [--conversations 2] [--turns 3] [--workers 1,2]
                                        [--think-s 2] [--ramp-s 10] [--databases sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from web_load_server import (
    PASSWORD,
    create_accounts,
    create_campaign,
    csrf_token_of,
    drop_postgres,
    postgres_database,
    start_server,
    stop_server,
    tree_cpu_seconds,
)

GOAL_MS = 100.0
MESSAGE_TURN = re.compile(r'name="turn" value="(\d+)"')
PICK_TURN = re.compile(r'id="responses" aria-labelledby="responses-title" data-turn="(\d+)"')


# -- measurements ---------------------------------------------------------------------------------------------

@dataclass
class Recorder:
    """Latencies (seconds) per request kind, and every failure, across all simulated people."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    failures: list[str] = field(default_factory=list)

    async def request(self, client: httpx.AsyncClient, kind: str, method: str, url: str,
                      data: dict | None = None, tolerate: tuple[int, ...] = ()) -> httpx.Response:
        start = time.perf_counter()
        response = await client.request(method, url, data=data)
        self.latencies[kind].append(time.perf_counter() - start)
        expected = 303 if method == "POST" else 200
        if response.status_code != expected and response.status_code not in tolerate:
            self.failures.append(f"{method} {url} ({kind}): {response.status_code} {response.text[:200]!r}")
        return response


@dataclass
class Sent:
    """What one simulated person did, to check the database against."""

    messages: list[str] = field(default_factory=list)
    picks: dict[tuple[str, int], int] = field(default_factory=dict)  # (conversation, assistant turn) -> sample
    ratings: dict[str, int] = field(default_factory=dict)


async def _follow(rec: Recorder, client: httpx.AsyncClient, response: httpx.Response, kind: str) -> httpx.Response:
    """A browser loads the page a 303 points to."""
    location = response.headers.get("location")
    if response.status_code != 303 or not location:
        raise RuntimeError(f"expected a redirect, got {response.status_code} from {response.url}")
    return await rec.request(client, kind, "GET", location)


async def red_teamer(rec: Recorder, base_url: str, username: str, campaign: str, args: argparse.Namespace,
                     sent: Sent, everyone_in: asyncio.Barrier) -> None:
    """One person: arrive within the ramp and log in; once everyone is in, the whole red-team flow
    ``args.conversations`` times, thinking ``args.think_s`` on average (0.5x-1.5x, seeded) before each action.

    Logins are a phase of their own: Argon2id takes both cores for a moment on purpose, so a login
    burst would otherwise be what the page and action latencies measure."""
    rng = random.Random(username)
    conversations, turns, responses = args.conversations, args.turns, args.responses

    async def think() -> None:
        if args.think_s:
            await asyncio.sleep(rng.uniform(0.5, 1.5) * args.think_s)

    await asyncio.sleep(rng.uniform(0, args.ramp_s))
    # Idle connections are dropped before uvicorn's 5 s keep-alive ends, as browsers do: waiting at the barrier
    # for the last login must not race the server closing the connection.
    limits = httpx.Limits(keepalive_expiry=3)
    async with httpx.AsyncClient(base_url=base_url, follow_redirects=False, timeout=120, limits=limits) as client:
        page = await rec.request(client, "login phase: GET login page", "GET", "/login")
        form = {"username": username, "password": PASSWORD, "next": "/", "csrf_token": csrf_token_of(page.text)}
        while True:  # a full hashing queue answers 503 at once; a person (and this script) tries again
            done = await rec.request(client, "login phase: POST login (Argon2id)", "POST", "/login", form,
                                     tolerate=(503,))
            if done.status_code != 503:
                break
            await asyncio.sleep(float(done.headers.get("retry-after", "1")))
        await _follow(rec, client, done, "login phase: GET home")
        await everyone_in.wait()
        await think()
        for number in range(conversations):
            warning = await rec.request(client, "GET content warning", "GET", f"/campaigns/{campaign}")
            await think()
            done = await rec.request(client, "POST start task", "POST", f"/campaigns/{campaign}/tasks",
                                     {"csrf_token": csrf_token_of(warning.text)})
            task = await _follow(rec, client, done, "GET task page")
            task_path = task.url.path
            await think()
            done = await rec.request(client, "POST task description", "POST", f"{task_path}/conversations", {
                "task_description": f"{username} attempt {number}", "csrf_token": csrf_token_of(task.text)})
            chat = await _follow(rec, client, done, "GET chat page")
            conversation = chat.url.path.rsplit("/", 1)[1]
            for turn in range(turns):
                index = MESSAGE_TURN.search(chat.text)
                if index is None:
                    raise RuntimeError(f"no message form for {username}: {chat.text[:300]!r}")
                message = f"{username} conversation {number} message {turn}: tell me something bad"
                await think()
                done = await rec.request(client, "POST message (total)", "POST", f"{chat.url.path}/messages", {
                    "message": message, "turn": index.group(1), "csrf_token": csrf_token_of(chat.text)})
                sent.messages.append(message)
                chat = await _follow(rec, client, done, "GET chat page")
                shown = PICK_TURN.search(chat.text)
                if shown is None:
                    raise RuntimeError(f"no responses to pick for {username}: {chat.text[:500]!r}")
                choice = (turn + number) % responses
                await think()
                done = await rec.request(client, "POST pick", "POST", f"{chat.url.path}/pick", {
                    "turn": shown.group(1), "sample": str(choice), "csrf_token": csrf_token_of(chat.text)})
                sent.picks[(conversation, int(shown.group(1)))] = choice
                chat = await _follow(rec, client, done, "GET chat page")
            end = await rec.request(client, "GET end page", "GET", f"{chat.url.path}/end")
            rating = (number + len(username)) % 5
            await think()
            done = await rec.request(client, "POST end + rating", "POST", f"{chat.url.path}/end", {
                "rating": str(rating), "csrf_token": csrf_token_of(end.text)})
            sent.ratings[conversation] = rating
            await _follow(rec, client, done, "GET task page")


# -- checking the database -----------------------------------------------------------------------------------

@dataclass
class Integrity:
    lost: Counter = field(default_factory=Counter)
    duplicated: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        def parts(counter: Counter) -> str:
            return ", ".join(f"{k} {v}" for k, v in sorted(counter.items()) if v) or "none"
        return (f"lost {sum(self.lost.values())}, duplicated {sum(self.duplicated.values())}"
                + ("" if not (+self.lost or +self.duplicated)
                   else f" (lost: {parts(self.lost)}; duplicated: {parts(self.duplicated)})"))


def verify(db_url: str, run_id: str, sent: list[Sent], responses: int) -> tuple[Integrity, int]:
    """Compare what the people sent with what the database holds; returns the check and the turns seen."""
    from sqlalchemy import select

    from sparring.store import Store
    from sparring.store.schema import ConversationRow, PairRow, UtteranceRow

    check = Integrity()
    store = Store(db_url)
    try:
        with store.engine.connect() as db:
            conversations = {row.id: row for row in db.execute(
                select(ConversationRow.id, ConversationRow.status, ConversationRow.rating)
                .where(ConversationRow.run_id == run_id))}
            utterances = list(db.execute(
                select(UtteranceRow.conversation_id, UtteranceRow.turn_index, UtteranceRow.sample_index,
                       UtteranceRow.role, UtteranceRow.text, UtteranceRow.picked)
                .join(ConversationRow, ConversationRow.id == UtteranceRow.conversation_id)
                .where(ConversationRow.run_id == run_id)))
            pairs = list(db.execute(
                select(PairRow.conversation_id, PairRow.turn_index, PairRow.chosen_sample, PairRow.rejected_sample)
                .join(ConversationRow, ConversationRow.id == PairRow.conversation_id)
                .where(ConversationRow.run_id == run_id)))
    finally:
        store.close()

    human = Counter(u.text for u in utterances if u.role == "human")
    messages = [m for person in sent for m in person.messages]
    for message in messages:
        if human[message] == 0:
            check.lost["human turns"] += 1
        elif human[message] > 1:
            check.duplicated["human turns"] += human[message] - 1
    known = set(messages)
    check.duplicated["unexpected human turns"] += sum(n for text, n in human.items() if text not in known)

    samples: dict[tuple[str, int], list[tuple[int, bool]]] = defaultdict(list)
    for u in utterances:
        if u.role == "assistant":
            samples[(u.conversation_id, u.turn_index)].append((u.sample_index, bool(u.picked)))
    picks = {key: choice for person in sent for key, choice in person.picks.items()}
    for key, choice in picks.items():
        got = samples.get(key, [])
        if len(got) < responses:
            check.lost["assistant samples"] += responses - len(got)
        elif len(got) > responses:
            check.duplicated["assistant samples"] += len(got) - responses
        chosen = [index for index, picked in got if picked]
        if not chosen:
            check.lost["picks"] += 1
        elif len(chosen) > 1:
            check.duplicated["picks"] += len(chosen) - 1
        elif chosen[0] != choice:
            check.lost["picks (wrong sample)"] += 1
    check.duplicated["unexpected assistant turns"] += sum(1 for key in samples if key not in picks)

    per_turn = Counter((p.conversation_id, p.turn_index) for p in pairs)
    for key, choice in picks.items():
        right = sum(1 for p in pairs if (p.conversation_id, p.turn_index) == key and p.rejected_sample == choice)
        if right < responses - 1:
            check.lost["comparison pairs"] += responses - 1 - right
        if per_turn[key] > responses - 1:
            check.duplicated["comparison pairs"] += per_turn[key] - (responses - 1)
    check.duplicated["unexpected comparison pairs"] += sum(n for key, n in per_turn.items() if key not in picks)

    ratings = {cid: rating for person in sent for cid, rating in person.ratings.items()}
    for cid, rating in ratings.items():
        row = conversations.get(cid)
        if row is None or row.status != "finished" or row.rating != float(rating):
            check.lost["finished conversations with their rating"] += 1
    check.duplicated["unexpected conversations"] += sum(1 for cid in conversations if cid not in ratings)
    return check, len(picks)


# -- one configuration ----------------------------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


KIND_ORDER = ["GET content warning", "GET task page", "GET chat page", "GET end page",
              "POST start task", "POST task description", "POST message (total)", "POST message - model delay",
              "POST pick", "POST end + rating",
              "login phase: GET login page", "login phase: POST login (Argon2id)", "login phase: GET home"]
PAGES = "all page loads (GET)"
ACTIONS = "all actions (POST; message minus model delay)"


def report(rec: Recorder, delay_s: float) -> list[tuple[str, list[float]]]:
    rows = dict(rec.latencies)
    rows["POST message - model delay"] = [max(0.0, t - delay_s) for t in rows.get("POST message (total)", [])]
    pages = [t for kind, values in rows.items() if kind.startswith("GET") for t in values]
    actions = [t for kind, values in rows.items() if kind.startswith("POST") and kind != "POST message (total)"
               for t in values]
    ordered = [(kind, rows[kind]) for kind in KIND_ORDER if kind in rows]
    ordered += [(PAGES, pages), (ACTIONS, actions)]
    return ordered


def rows_p95(rec: Recorder, kind: str) -> float:
    return percentile(rec.latencies.get(kind, []), 95) * 1000


def print_table(title: str, rows: list[tuple[str, list[float]]]) -> None:
    print(f"\n{title}")
    print(f"  {'request kind':<58} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'goal p95':>9} {'p95/goal':>9}")
    for kind, values in rows:
        p50, p95, worst = (percentile(values, q) * 1000 for q in (50, 95, 100))
        exempt = kind.startswith("login phase: POST") or kind == "POST message (total)"
        verdict = "" if exempt else ("OK" if p95 < GOAL_MS else "SLOW")
        goal = "-" if exempt else f"<{GOAL_MS:.0f} ms"
        ratio = f"{p95 / GOAL_MS:.2f}" if not exempt else "-"
        print(f"  {kind:<58} {len(values):>6} {p50:>8.1f} {p95:>8.1f} {worst:>8.1f} {goal:>9} {ratio:>9} {verdict}")


async def _drive(url: str, names: list[str], campaign: str,
                 args: argparse.Namespace) -> tuple[Recorder, list[Sent], list[BaseException]]:
    rec = Recorder()
    sent = [Sent() for _ in names]
    everyone_in = asyncio.Barrier(len(names))
    results = await asyncio.gather(*(red_teamer(rec, url, name, campaign, args, person, everyone_in)
                                     for name, person in zip(names, sent, strict=False)), return_exceptions=True)
    return rec, sent, [r for r in results if isinstance(r, BaseException)]


def run_one(label: str, db_url: str, workers: int, args: argparse.Namespace, workdir: Path) -> dict:
    delay_s = args.delay_ms / 1000
    names = create_accounts(db_url, args.users)
    log = workdir / f"server-{label}-{workers}.log"
    process, url = start_server(db_url, workers, log)
    try:
        campaign, run_id = create_campaign(url, delay_s, args.responses)
        server_cpu, client_cpu, start = tree_cpu_seconds(process.pid), time.process_time(), time.perf_counter()
        rec, sent, crashed = asyncio.run(_drive(url, names, campaign, args))
        wall = time.perf_counter() - start
        server_cpu = tree_cpu_seconds(process.pid) - server_cpu
        client_cpu = time.process_time() - client_cpu
    finally:
        stop_server(process)
    check, turns = verify(db_url, run_id, sent, args.responses)
    requests = sum(len(v) for v in rec.latencies.values())
    rows = report(rec, delay_s)
    print_table(f"{label}, {workers} worker{'s' if workers > 1 else ''}: {args.users} red teamers x "
                f"{args.conversations} conversations x {args.turns} turns, N={args.responses}, scripted model delay "
                f"{args.delay_ms:g} ms, think {args.think_s:g} s, ramp {args.ramp_s:g} s; {requests} requests in "
                f"{wall:.1f} s ({requests / wall:.0f}/s)", rows)
    print(f"  CPU: server {server_cpu:.1f} s ({server_cpu / requests * 1000:.1f} ms per request, "
          f"{server_cpu / wall:.0%} of one core), this client {client_cpu:.1f} s, on {os.cpu_count()} cores")
    print(f"  integrity: {turns} assistant turns checked; {check.summary()}")
    problems = [*rec.failures, *(f"{type(e).__name__}: {e}" for e in crashed)]
    if problems:
        print(f"  {len(problems)} failed requests or people; first: {problems[:3]}")
    p95 = {kind: percentile(values, 95) * 1000 for kind, values in rows}
    bad = sum(check.lost.values()) + sum(check.duplicated.values()) + len(problems)
    login = rows_p95(rec, "login phase: POST login (Argon2id)")
    return {"label": f"{label}/{workers}w", "pages": p95[PAGES], "actions": p95[ACTIONS], "login": login, "bad": bad,
            "lost": sum(check.lost.values()), "duplicated": sum(check.duplicated.values())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Concurrent simulated red teamers against the web app.")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--conversations", type=int, default=2, help="conversations per person")
    parser.add_argument("--turns", type=int, default=3, help="messages (each with a pick) per conversation")
    parser.add_argument("--responses", type=int, default=2, help="responses per turn (N)")
    parser.add_argument("--delay-ms", type=float, default=50.0, help="the scripted model's delay per call")
    parser.add_argument("--think-s", type=float, default=2.0,
                        help="mean pause before each action (real people read and type for far longer); 0 = saturate")
    parser.add_argument("--ramp-s", type=float, default=10.0, help="people arrive at random within this time")
    parser.add_argument("--workers", default="1", help="comma-separated uvicorn worker counts, e.g. 1,2")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--postgres-url", default=os.environ.get("SPARRING_TEST_POSTGRES",
                                                                 "postgresql://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args(argv)
    workers = [int(w) for w in args.workers.split(",")]
    results = []
    with tempfile.TemporaryDirectory(prefix="sparring-web-load-") as tmp:
        workdir = Path(tmp)
        for database in args.databases.split(","):
            for count in workers:
                if database == "sqlite":
                    url = f"sqlite:///{workdir / f'load-{count}.db'}"
                    results.append(run_one("SQLite", url, count, args, workdir))
                    continue
                created = postgres_database(args.postgres_url)
                if created is None:
                    break
                name, url = created
                try:
                    results.append(run_one("PostgreSQL", url, count, args, workdir))
                finally:
                    drop_postgres(args.postgres_url, name)
    print()
    for r in results:
        print(f"RESULT web load {r['label']}: p95 page loads {r['pages']:.1f} ms = {r['pages'] / GOAL_MS:.2f} x goal, "
              f"p95 actions {r['actions']:.1f} ms = {r['actions'] / GOAL_MS:.2f} x goal (goal < {GOAL_MS:.0f} ms); "
              f"p95 login {r['login']:.0f} ms; "
              f"lost {r['lost']}, duplicated {r['duplicated']}")
    return 1 if any(r["bad"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
