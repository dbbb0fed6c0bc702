"""Several replicas behind one ``openai`` target: balancing, bounds, rate limits, ejection, n detection, config.

Stub replicas (tests/openai_stub_support.py) count what they saw; time-dependent
behaviour (rate windows, cool-downs) runs on a hand-moved clock, so every
assertion is about counts and order, never about how long something took. The
``model``-marked test runs two real ``python -m llama_cpp.server`` processes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llama_server_support import free_port, llama_servers
from openai_stub_support import ManualClock, Stub, serving, until

from sparring.errors import ConfigError, ModelError
from sparring.models import Completion, Message, Prompt, SamplingParams, models
from sparring.models import replicas as replicas_module
from sparring.models.openai_compatible import OpenAICompatibleModel, OpenAIConfig
from sparring.models.rate_limits import RateWindow
from sparring.models.replicas import Replica, ReplicaLimits, ReplicaPool

PROMPT = Prompt(messages=(Message("user", "How do I bake bread?"),))


def make(urls: list[Any], **args: Any) -> OpenAICompatibleModel:
    args.setdefault("backoff_base_s", 0.0)
    model = models.create("openai", {"base_urls": urls, **args})
    assert isinstance(model, OpenAICompatibleModel)
    return model


def replica_of(model: OpenAICompatibleModel, stub: Stub) -> Replica:
    return next(r for r in model.pool.bind()[1] if r.url == stub.url)


async def gather_closing(model: OpenAICompatibleModel, *calls: SamplingParams) -> list[list[Completion]]:
    try:
        return list(await asyncio.gather(*(model.sample(PROMPT, params) for params in calls)))
    finally:
        await model.aclose()


# --- balancing and bounds ----------------------------------------------------------------------


def test_requests_go_to_the_replica_with_fewest_in_flight() -> None:
    with serving(Stub("a", delay=0.5), Stub("b", delay=0.5)) as (a, b):
        model = make([a.url, b.url])
        [completions] = asyncio.run(gather_closing(model, SamplingParams(n=8, seed=10)))
    assert (len(a.seen), len(b.seen)) == (4, 4)  # taken one at a time, each to the emptier replica
    assert a.max_in_flight <= 4 and b.max_in_flight <= 4
    assert sorted(s["seed"] for s in a.seen + b.seen) == list(range(10, 18))
    assert [c.text.split(" ", 1)[1] for c in completions] == [f"seed={10 + i} i=0" for i in range(8)]  # seed order


def test_a_slow_replica_gets_less_work() -> None:
    with serving(Stub("slow", delay=1.0), Stub("fast")) as (slow, fast):
        model = make([slow.url, fast.url], concurrency=2)
        asyncio.run(gather_closing(model, SamplingParams(n=12)))
    assert len(slow.seen) + len(fast.seen) == 12
    assert len(slow.seen) < len(fast.seen)


def test_each_replica_bound_holds_even_when_models_share_a_replica() -> None:
    with serving(Stub("a", delay=0.1), Stub("b", delay=0.1), Stub("c", delay=0.1)) as (a, b, c):
        left, right = make([a.url, b.url], concurrency=2), make([b.url, c.url], concurrency=2)

        async def both() -> None:
            try:
                await asyncio.gather(left.sample(PROMPT, SamplingParams(n=20)),
                                     right.sample(PROMPT, SamplingParams(n=20, seed=100)))
            finally:
                await left.aclose()
                await right.aclose()

        asyncio.run(both())
    assert len(a.seen) + len(b.seen) + len(c.seen) == 40
    peaks = (a.max_in_flight, b.max_in_flight, c.max_in_flight)
    assert max(peaks) == 2 and b.max_in_flight <= 2  # b is shared by both: still at most 2


def test_models_naming_one_replica_must_agree_on_its_limits() -> None:
    async def ask() -> None:
        url = "http://user:secret@127.0.0.1:9/v1"
        first = make([url, "http://127.0.0.1:10/v1"], requests_per_minute=60)
        second = make([url], requests_per_minute=120)
        first.pool.bind()
        with pytest.raises(ConfigError, match="requests_per_minute: .* declare 60 and 120") as raised:
            second.pool.bind()
        assert "secret" not in str(raised.value)

    asyncio.run(ask())


def test_a_waiter_cancelled_after_being_woken_passes_the_freed_slot_on() -> None:
    async def run() -> None:
        pool = ReplicaPool([("http://127.0.0.1:9/v1", ReplicaLimits(concurrency=1))])
        held = pool.try_take(1)
        assert not isinstance(held, tuple)
        second, third = asyncio.create_task(pool.acquire(1)), asyncio.create_task(pool.acquire(1))
        current = replicas_module.dispatcher()
        await until(lambda: len(current.waiters) == 2, "two requests waiting for the one slot")
        pool.release(held)  # wakes the second...
        second.cancel()  # ...which is cancelled before it runs: the slot must go to the third
        ticket = await asyncio.wait_for(third, 10)
        assert ticket.replica.in_flight == 1 and second.cancelled()
        pool.release(ticket)

    asyncio.run(run())


# --- rate limits -------------------------------------------------------------------------------


def test_rate_window_counts_requests_and_tokens() -> None:
    window = RateWindow(requests_per_minute=2, tokens_per_minute=100)
    assert window.ready_at(0.0, 30) == 0.0
    first = window.book(0.0, 30)
    window.book(10.0, 30)
    assert window.ready_at(20.0, 30) == 60.0  # two requests in the window: wait for the first to leave
    window.correct(first, 90)  # the reply said the first request cost 90 tokens
    assert window.counts(20.0) == (2, 120)
    assert window.ready_at(60.0, 30) == 60.0  # the first left the window at 60
    window.correct(first, 5)  # a correction after it left changes nothing
    assert window.counts(60.0) == (1, 30)
    tokens = RateWindow(None, 100)
    tokens.book(0.0, 60)
    tokens.book(5.0, 30)
    assert tokens.ready_at(6.0, 10) == 6.0  # 100 fits exactly
    assert tokens.ready_at(6.0, 20) == 60.0  # 110 does not: wait for the 60 to leave
    assert tokens.ready_at(6.0, 75) == 65.0  # nor 15 + 75 + ...: wait for both
    assert RateWindow(None, 10).ready_at(0.0, 500) == 0.0  # bigger than the budget: goes when the window is empty
    assert RateWindow(None, None).book(0.0, 1) is None


def test_requests_per_minute_admits_that_many_per_window() -> None:
    clock = ManualClock()
    with serving(Stub("a")) as (a,):
        model = make([a.url], requests_per_minute=3)

        counts: list[tuple[int, int]] = []

        async def run() -> list[list[Completion]]:
            current = replicas_module.dispatcher()
            current.clock = clock
            task = asyncio.create_task(gather_closing(model, SamplingParams(n=7)))
            [replica] = model.pool.bind()[1]
            for minute in range(3):
                expected = min(3 * (minute + 1), 7)
                await until(lambda e=expected: len(a.seen) == e and replica.in_flight == 0
                            and len(current.waiters) == 7 - e, f"{expected} requests sent, the rest waiting")
                counts.append((len(a.seen), replica.window.counts(clock.now)[0]))
                clock.now += 60.0
                current.poke()
            return await task

        [completions] = asyncio.run(run())
    assert counts == [(3, 3), (6, 3), (7, 1)]
    assert len(completions) == 7


def test_tokens_per_minute_books_the_estimate_then_the_reply_usage() -> None:
    clock = ManualClock()
    with serving(Stub("a", usage_total=45)) as (a,):
        model = make([a.url], tokens_per_minute=100)
        params = SamplingParams(n=1, max_tokens=8)

        async def run() -> tuple[int, tuple[int, int], int]:
            current = replicas_module.dispatcher()
            current.clock = clock

            async def one_after_another() -> None:
                for _ in range(4):
                    await model.sample(PROMPT, params)

            task = asyncio.create_task(one_after_another())
            [replica] = model.pool.bind()[1]
            await until(lambda: len(current.waiters) == 1, "the third request waits for tokens")
            first_window = len(a.seen), replica.window.counts(clock.now)
            clock.now += 60.0
            current.poke()
            await task
            await model.aclose()
            return first_window[0], first_window[1], len(a.seen)

        sent, booked, total = asyncio.run(run())
    # the estimate (~14 tokens) would let 7 in; the replies' 45 tokens each let only 2 in
    assert (sent, booked, total) == (2, (2, 90), 4)


# --- failures: ejection, recovery, all out -----------------------------------------------------


def test_a_failing_replica_is_taken_out_and_comes_back_after_its_cool_down() -> None:
    clock = ManualClock()
    with serving(Stub("bad", fail_status=503), Stub("good")) as (bad, good):
        model = make([bad.url, good.url], eject_after=2, eject_s=30.0)

        async def run() -> list[str]:
            replicas_module.dispatcher().clock = clock
            texts = []
            for i in range(6):  # one at a time: a tie goes to the replica that was sent less
                [completion] = await model.sample(PROMPT, SamplingParams(seed=i))
                texts.append(completion.text)
            assert (len(bad.seen), len(good.seen)) == (2, 6)  # two failures (retried on good), then out
            assert replica_of(model, bad).ejected_until == 30.0
            bad.fail_status = None  # it recovers, but is out until the clock reaches 30
            await model.sample(PROMPT, SamplingParams(seed=6))
            assert len(bad.seen) == 2
            clock.now = 30.0
            for i in range(2):
                [completion] = await model.sample(PROMPT, SamplingParams(seed=7 + i))
                texts.append(completion.text)
            await model.aclose()
            return texts

        texts = asyncio.run(run())
    assert len(bad.seen) == 4 and texts[-2:] == ["bad seed=7 i=0", "bad seed=8 i=0"]  # back, and less loaded
    assert all(t.startswith("good") for t in texts[:6])


def test_a_replica_that_is_down_costs_retries_not_conversations() -> None:
    clock = ManualClock()
    with serving(Stub("up")) as (up,):
        down = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: connection refused
        model = make([down, up.url], max_retries=1)

        async def run() -> tuple[list[list[Completion]], float]:
            replicas_module.dispatcher().clock = clock
            result = await gather_closing(model, *(SamplingParams(seed=i) for i in range(10)))
            return result, model.pool.bind()[1][0].ejected_until

        results, ejected_until = asyncio.run(run())
    assert [r[0].text for r in results] == [f"up seed={i} i=0" for i in range(10)]
    assert ejected_until == 30.0  # three refused connections in a row took it out


def test_when_every_replica_is_out_the_request_waits_for_the_first_back_then_fails_clearly() -> None:
    clock = ManualClock()
    with serving(Stub("a", fail_status=503), Stub("b", fail_status=500)) as (a, b):
        urls = [a.url.replace("http://", "http://user:secret@"), b.url]
        model = make(urls, eject_after=1, eject_s=30.0, max_retries=3)

        async def run() -> None:
            current = replicas_module.dispatcher()
            current.clock = clock
            task = asyncio.create_task(gather_closing(model, SamplingParams()))
            await until(lambda: len(current.waiters) == 1, "both out, the request waiting")
            assert (len(a.seen), len(b.seen)) == (1, 1)
            clock.now = 30.0  # both come back; the retry goes to the one that did not fail last
            current.poke()
            await task

        with pytest.raises(ModelError) as raised:
            asyncio.run(run())
    assert (len(a.seen), len(b.seen)) == (2, 2)
    message = str(raised.value)
    assert "after 4 attempts over 2 replicas" in message
    assert "HTTP 503" in message and "HTTP 500" in message and b.url in message
    assert "secret" not in message


def test_retry_after_pauses_only_that_replica() -> None:
    clock = ManualClock()
    with serving(Stub("busy", fail_status=429, retry_after="20"), Stub("free", delay=0.05)) as (busy, free):
        model = make([busy.url, free.url])

        async def run() -> list[list[Completion]]:
            replicas_module.dispatcher().clock = clock
            result = await gather_closing(model, SamplingParams(n=4))
            assert replica_of(model, busy).paused_until == 20.0
            return result

        [completions] = asyncio.run(run())
    assert len(busy.seen) == 2  # the two first picks; their retries and the rest went to the free one
    assert len(free.seen) == 4 and all(c.text.startswith("free") for c in completions)


# --- n: declared or detected -------------------------------------------------------------------


def test_use_n_auto_probes_once_per_replica_and_remembers() -> None:
    with serving(Stub("honours"), Stub("ignores", n_mode="ignore"), Stub("rejects", n_mode="reject")) as stubs:
        honours, ignores, rejects = stubs
        results: dict[str, tuple[list[list[Completion]], dict[str, bool]]] = {}
        for stub in stubs:
            results[stub.name] = asyncio.run(two_turns(make([stub.url], use_n="auto")))
        seeded = make([ignores.url], use_n=False)
        [reference] = asyncio.run(gather_closing(seeded, SamplingParams(n=3, seed=5)))
    assert [s.get("n") for s in honours.seen] == [3, 3]  # one request per turn, n found once and kept
    assert [c.text for c in results["honours"][0][0]] == [f"honours seed=5 i={i}" for i in range(3)]
    assert results["honours"][1] == {"/chat/completions": True}
    # ignores n: one probe, then n seeded requests per turn, exactly the seeds use_n = false sends
    assert [s.get("n") for s in ignores.seen[:7]] == [3] + [None] * 6
    assert [c.text for c in results["ignores"][0][0]] == [c.text for c in reference]
    assert [c.text for c in results["ignores"][0][1]] == [f"ignores seed={5 + i} i=0" for i in range(3)]
    assert results["ignores"][1] == {"/chat/completions": False}
    assert [s.get("n") for s in rejects.seen] == [3] + [None] * 6  # a 400 to n also means: no n here
    assert results["rejects"][1] == {"/chat/completions": False}


async def two_turns(model: OpenAICompatibleModel) -> tuple[list[list[Completion]], dict[str, bool]]:
    try:
        turns = [await model.sample(PROMPT, SamplingParams(n=3, seed=5)) for _ in range(2)]
        [replica] = model.pool.bind()[1]
        return turns, dict(replica.n_support)
    finally:
        await model.aclose()


def test_concurrent_turns_wait_for_the_one_probe() -> None:
    with serving(Stub("ignores", n_mode="ignore", delay=0.05)) as (ignores,):
        model = make([ignores.url], use_n="auto")
        results = asyncio.run(gather_closing(model, *(SamplingParams(n=2, seed=10 * k) for k in range(4))))
    assert sum(1 for s in ignores.seen if "n" in s) == 1
    assert len(ignores.seen) == 1 + 4 * 2
    assert [[c.text for c in r] for r in results] == [[f"ignores seed={10 * k + i} i=0" for i in range(2)]
                                                      for k in range(4)]


def test_a_probe_that_fails_in_transit_finds_nothing_and_the_retry_probes_again() -> None:
    with serving(Stub("honours", fail_first=1)) as (honours,):
        model = make([honours.url], use_n="auto", max_retries=1)
        result, n_support = asyncio.run(two_turns(model))
    assert [s.get("n") for s in honours.seen] == [3, 3, 3]  # 503 to the probe, the retried probe, the next turn
    assert n_support == {"/chat/completions": True}
    assert [c.text for c in result[0]] == [f"honours seed=5 i={i}" for i in range(3)]


def test_declared_use_n_on_a_server_that_ignores_it_says_what_to_set() -> None:
    with serving(Stub("ignores", n_mode="ignore")) as (ignores,):
        with pytest.raises(ModelError, match='did not return 3 choices .*use_n = "auto"'):
            asyncio.run(gather_closing(make([ignores.url], use_n=True), SamplingParams(n=3)))


# --- config ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "message"), [
    ({"base_url": "http://a/v1", "base_urls": ["http://b/v1"]},
     "base_urls: give base_url (one server) or base_urls (several replicas), not both"),
    ({}, "base_url: Field required"),
    ({"base_urls": []}, "base_urls: needs at least one URL"),
    ({"base_urls": ["http://a/v1", "b:8000/v1"]}, "base_urls[1].url: must start with http:// or https://"),
    ({"base_urls": [{"url": "http://a/v1", "concurency": 2}]}, "base_urls[0].concurency: unknown key"),
    ({"base_urls": [{"url": "http://a/v1", "concurrency": 0}]}, "base_urls[0].concurrency: Input should be greater"),
    ({"base_urls": [{"concurrency": 2}]}, "base_urls[0].url: Field required"),
    ({"base_urls": ["http://a/v1", "http://a/v1/"]}, "base_urls: [1] http://a/v1/ is listed twice"),
    ({"base_urls": ["http://a/v1"], "use_n": "sometimes"}, "use_n"),
    ({"base_urls": ["http://a/v1"], "requests_per_minute": 0}, "requests_per_minute: Input should be greater"),
    ({"base_urls": ["http://a/v1"], "eject_after": 0}, "eject_after: Input should be greater"),
])
def test_config_errors_name_the_field(args: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        models.create("openai", args)
    assert message in str(raised.value)


def test_config_accepts_one_url_or_several_with_their_own_limits() -> None:
    one = OpenAIConfig.model_validate({"base_url": "http://a/v1/"})
    several = OpenAIConfig.model_validate({
        "base_urls": ["http://a/v1", {"url": "http://b/v1/", "concurrency": 32, "tokens_per_minute": 9000}],
        "use_n": "auto", "concurrency": 4, "requests_per_minute": 600,
    })
    assert one.urls == ("http://a/v1",) and several.urls == ("http://a/v1", "http://b/v1")
    assert several.base_url is None and several.use_n == "auto"
    assert several.replicas() == [
        ("http://a/v1", ReplicaLimits(concurrency=4, requests_per_minute=600)),
        ("http://b/v1", ReplicaLimits(concurrency=32, requests_per_minute=600, tokens_per_minute=9000)),
    ]
    recorded = models.create("openai", several.model_dump()).spec.as_dict()["args"]  # recorded as written
    assert recorded["base_urls"] == ["http://a/v1", {"url": "http://b/v1/", "concurrency": 32, "tokens_per_minute": 9000}]
    assert recorded["base_url"] is None and one.model_dump()["base_urls"] is None


def test_a_replica_with_more_slots_takes_more_of_the_load() -> None:
    with serving(Stub("small", delay=0.2), Stub("big", delay=0.2)) as (small, big):
        model = make([{"url": small.url, "concurrency": 1}, {"url": big.url, "concurrency": 3}])
        asyncio.run(gather_closing(model, SamplingParams(n=4)))
    assert (len(small.seen), len(big.seen)) == (1, 3)  # busy per slot: 0/1, 0/3, 1/3, 2/3
    assert small.max_in_flight <= 1 and big.max_in_flight <= 3


def test_an_experiment_over_two_replicas_gives_the_same_transcripts_as_over_one(tmp_path: Path) -> None:
    from experiment_support import scripted_toml

    from sparring.experiments import parse_config, run_experiment
    from sparring.store import Store

    def run(base: str, name: str) -> list[Any]:
        text = scripted_toml(limit=4, concurrency=4).replace('backend = "scripted"', 'backend = "openai"\n' + base)
        store = Store(f"sqlite:///{tmp_path / name}")
        outcome = run_experiment(parse_config(text), text, store)
        assert (outcome.finished, outcome.errors) == (8, 0)
        return [stored.conversation.model_dump() for stored in store.conversations(outcome.run_id)]

    # both stubs answer by seed alone, as two replicas of one deterministic model would
    with serving(Stub("same", n_mode="ignore"), Stub("same", n_mode="ignore", delay=0.01)) as (a, b):
        over_two = run(f'base_urls = ["{a.url}", {{url = "{b.url}", concurrency = 2}}]\nuse_n = "auto"', "two.db")
        assert a.seen and b.seen
        over_one = run(f'base_url = "{a.url}"', "one.db")
    assert over_two == over_one


# --- two real llama_cpp.server replicas on the bundled SmolLM2 ----------------------------------


@pytest.fixture(scope="module")
def llama_replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[tuple[str, Path]]]:
    with llama_servers(tmp_path_factory.mktemp("llama_replicas"), 2, "--n_ctx", "1024", "--n_threads", "1") as started:
        yield started


@pytest.mark.model
def test_two_real_llama_cpp_server_replicas_share_the_samples(llama_replicas: list[tuple[str, Path]]) -> None:
    urls = [url for url, _ in llama_replicas]
    model = make(urls, concurrency=1, timeout_s=120, use_n="auto")
    prompt = Prompt(messages=(Message("user", "Write one sentence about the sea."),))

    async def run() -> tuple[list[Completion], list[int], list[dict[str, bool]]]:
        try:
            completions = await model.sample(prompt, SamplingParams(n=4, seed=11, max_tokens=16))
            replicas = model.pool.bind()[1]
            return completions, [r.sent for r in replicas], [r.n_support for r in replicas]
        finally:
            await model.aclose()

    completions, sent, n_support = asyncio.run(run())
    assert len(completions) == 4
    assert all(c.text.strip() and c.completion_tokens for c in completions)
    # llama.cpp's server answers n with one choice: the probe found that out, the samples went out seeded
    assert {"/chat/completions": False} in n_support
    assert sum(sent) == 5 and min(sent) >= 1  # the probe + 4 samples, over both replicas
    served = [log.read_text().count("POST /v1/chat/completions") for _, log in llama_replicas]
    assert sum(served) == 5 and min(served) >= 1, served
