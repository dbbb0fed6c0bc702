"""The OpenAI-compatible backend against real HTTP servers on 127.0.0.1.

A scripted starlette/uvicorn server (429 with Retry-After, 5xx, hangs, delays)
checks retries, timeouts and the shared in-flight bound over real sockets; the
``model``-marked test runs llama-cpp-python's own OpenAI server on the bundled
SmolLM2 GGUF.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from llama_server_support import free_port, llama_servers
from openai_stub_support import ManualClock, until

from sparring.errors import ConfigError, ModelError
from sparring.models import Message, Prompt, SamplingParams, models
from sparring.models.openai_compatible import OpenAICompatibleModel, OpenAIConfig, retry_after_seconds
from sparring.models.raw_format import render_raw

PROMPT = Prompt(messages=(Message("user", "How do I bake bread?"),), preamble="You are a careful assistant.")


@dataclass
class Seen:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    at: float


@dataclass
class FakeOpenAI:
    """What the scripted server saw, and what it should do next (``plan`` is consumed one action per request).

    An action is a dict: ``{"status": 429, "headers": {...}, "body": "..."}`` answers with that
    error, ``{"hang": s}`` or ``{"delay": s}`` sleeps first; no action (or no status) answers normally.
    """

    base_url: str = ""
    plan: list[dict[str, Any]] = field(default_factory=list)
    delay: float = 0.0
    requests: list[Seen] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    def reset(self) -> None:
        self.plan.clear()
        self.requests.clear()
        self.delay = 0.0
        self.in_flight = self.max_in_flight = 0


def _reply(path: str, body: dict[str, Any]) -> dict[str, Any]:
    n = body.get("n", 1)
    seed = body.get("seed")
    choices: list[dict[str, Any]] = []
    for i in range(n):
        text = f"  answer seed={seed} i={i}\n"
        if path.endswith("/chat/completions"):
            choices.append({"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"})
        else:
            choices.append({"index": i, "text": text, "finish_reason": "length"})
    return {"object": "x", "choices": choices[::-1], "usage": {"prompt_tokens": 11, "completion_tokens": 4 * n}}


def _app(state: FakeOpenAI) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def handle(request: Request) -> Response:
        body = await request.json()
        state.requests.append(Seen(request.url.path, body, dict(request.headers), time.monotonic()))
        action = state.plan.pop(0) if state.plan else {}
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            pause = action.get("hang", action.get("delay", state.delay))
            if pause:
                await asyncio.sleep(pause)
            if "status" in action:
                return Response(action.get("body", "error"), action["status"], headers=action.get("headers"))
            return JSONResponse(_reply(request.url.path, body))
        finally:
            state.in_flight -= 1

    paths = ("/v1/chat/completions", "/v1/completions")
    return Starlette(routes=[Route(p, handle, methods=["POST"]) for p in paths])


@pytest.fixture(scope="module")
def server_state() -> Iterator[FakeOpenAI]:
    uvicorn = pytest.importorskip("uvicorn", reason="needs uvicorn: pip install 'llama-cpp-python[server]'")
    state = FakeOpenAI()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP proto: asyncio sets NODELAY
    sock.bind(("127.0.0.1", 0))
    state.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    config = uvicorn.Config(_app(state), log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "test server did not start"
        time.sleep(0.01)
    yield state
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture
def fake(server_state: FakeOpenAI) -> FakeOpenAI:
    server_state.reset()
    return server_state


def make(fake: FakeOpenAI, **args: Any) -> OpenAICompatibleModel:
    args.setdefault("backoff_base_s", 0.01)
    model = models.create("openai", {"base_url": fake.base_url, **args})
    assert isinstance(model, OpenAICompatibleModel)
    return model


async def sample_and_close(model: OpenAICompatibleModel, prompt: Prompt, params: SamplingParams) -> list[Any]:
    try:
        return await model.sample(prompt, params)
    finally:
        await model.aclose()


def test_chat_request_carries_prompt_and_sampling_params(fake: FakeOpenAI) -> None:
    model = make(fake, model="smol")
    params = SamplingParams(n=1, seed=7, temperature=0.3, top_p=0.9, max_tokens=20, stop=("END",))
    [completion] = asyncio.run(sample_and_close(model, PROMPT, params))
    [seen] = fake.requests
    assert seen.path == "/v1/chat/completions"
    assert seen.body["messages"] == [
        {"role": "system", "content": "You are a careful assistant."},
        {"role": "user", "content": "How do I bake bread?"},
    ]
    assert {k: seen.body[k] for k in ("model", "temperature", "top_p", "max_tokens", "seed", "stop")} == {
        "model": "smol", "temperature": 0.3, "top_p": 0.9, "max_tokens": 20, "seed": 7, "stop": ["END"],
    }
    assert "n" not in seen.body
    assert completion.text == "answer seed=7 i=0"
    assert (completion.finish_reason, completion.prompt_tokens, completion.completion_tokens) == ("stop", 11, 4)
    assert model.spec.as_dict()["args"]["base_url"] == fake.base_url


def test_n_samples_are_n_requests_with_distinct_seeds(fake: FakeOpenAI) -> None:
    completions = asyncio.run(sample_and_close(make(fake), PROMPT, SamplingParams(n=4, seed=100)))
    assert sorted(r.body["seed"] for r in fake.requests) == [100, 101, 102, 103]
    assert [c.text for c in completions] == [f"answer seed={100 + i} i=0" for i in range(4)]


def test_use_n_sends_one_request(fake: FakeOpenAI) -> None:
    completions = asyncio.run(sample_and_close(make(fake, use_n=True), PROMPT, SamplingParams(n=3, seed=5)))
    [seen] = fake.requests
    assert (seen.body["n"], seen.body["seed"]) == (3, 5)
    assert [c.text for c in completions] == [f"answer seed=5 i={i}" for i in range(3)]  # ordered by index
    assert [c.completion_tokens for c in completions] == [12, None, None]  # request usage counted once


def test_raw_mode_posts_rendered_text_to_completions_with_human_stop(fake: FakeOpenAI) -> None:
    model = make(fake, mode="raw")
    [completion] = asyncio.run(sample_and_close(model, PROMPT, SamplingParams(seed=3, stop=("###",))))
    [seen] = fake.requests
    assert seen.path == "/v1/completions"
    assert seen.body["prompt"] == render_raw(PROMPT)
    assert seen.body["stop"] == ["###", "\n\nHuman:"]
    assert "messages" not in seen.body
    assert (completion.text, completion.finish_reason) == ("answer seed=3 i=0", "length")


def test_5xx_is_retried_until_success(fake: FakeOpenAI) -> None:
    fake.plan = [{"status": 500}, {"status": 503}, {"status": 502}]
    [completion] = asyncio.run(sample_and_close(make(fake), PROMPT, SamplingParams(seed=1)))
    assert completion.text == "answer seed=1 i=0"
    assert len(fake.requests) == 4
    assert {r.body["seed"] for r in fake.requests} == {1}  # a retry resends the same request


def test_retry_after_pauses_the_endpoint_for_that_long(fake: FakeOpenAI) -> None:
    from sparring.models import replicas

    fake.plan = [{"status": 429, "headers": {"Retry-After": "7"}}]
    model = make(fake, backoff_base_s=0.0)
    clock = ManualClock()  # the backend waits on this clock, so the test moves time instead of waiting

    async def run() -> list[Any]:
        current = replicas.dispatcher()
        current.clock = clock
        task = asyncio.create_task(sample_and_close(model, PROMPT, SamplingParams()))
        await until(lambda: len(current.waiters) == 1, "the retry waiting for Retry-After")
        assert model.pool.bind()[1][0].paused_until == 7.0
        clock.now = 6.9
        current.poke()
        await until(lambda: len(current.waiters) == 1, "the retry still waiting at 6.9 s")
        assert len(fake.requests) == 1
        clock.now = 7.0
        current.poke()
        return await task

    [completion] = asyncio.run(run())
    assert completion.text == "answer seed=0 i=0"
    assert len(fake.requests) == 2


def test_retry_after_parsing_and_cap() -> None:
    assert retry_after_seconds("2", cap=30) == 2.0
    assert retry_after_seconds("120", cap=30) == 30.0
    assert retry_after_seconds("-4", cap=30) == 0.0
    assert retry_after_seconds(None, cap=30) is None
    assert retry_after_seconds("soon", cap=30) is None
    later = email.utils.formatdate(time.time() + 10, usegmt=True)
    assert 5.0 < retry_after_seconds(later, cap=30) <= 10.0  # type: ignore[operator]
    assert retry_after_seconds(later, cap=3) == 3.0
    assert retry_after_seconds(email.utils.formatdate(time.time() - 60, usegmt=True), cap=30) == 0.0


def test_400_fails_at_once_with_a_short_message(fake: FakeOpenAI) -> None:
    fake.plan = [{"status": 400, "body": "bad request: " + "x" * 10_000}]
    with pytest.raises(ModelError) as caught:
        asyncio.run(sample_and_close(make(fake), PROMPT, SamplingParams()))
    assert len(fake.requests) == 1
    message = str(caught.value)
    assert "HTTP 400" in message and fake.base_url in message and "bad request" in message
    assert len(message) < 400


def test_malformed_success_is_a_model_error_not_a_crash(fake: FakeOpenAI) -> None:
    fake.plan = [{"status": 200, "body": "<html>proxy page</html>"}, {"status": 200, "body": '{"choices": []}'}]
    with pytest.raises(ModelError, match="invalid JSON"):
        asyncio.run(sample_and_close(make(fake), PROMPT, SamplingParams()))
    with pytest.raises(ModelError, match="did not return 1 choices"):
        asyncio.run(sample_and_close(make(fake), PROMPT, SamplingParams()))
    assert len(fake.requests) == 2


def test_exhausted_retries_raise_model_error_with_attempt_count(fake: FakeOpenAI) -> None:
    fake.plan = [{"status": 503, "body": "overloaded"}] * 3
    with pytest.raises(ModelError, match=r"HTTP 503 .* after 3 attempts"):
        asyncio.run(sample_and_close(make(fake, max_retries=2), PROMPT, SamplingParams()))
    assert len(fake.requests) == 3


def test_hanging_server_times_out_into_model_error(fake: FakeOpenAI) -> None:
    fake.plan = [{"hang": 3.0}, {"hang": 3.0}]
    with pytest.raises(ModelError, match=r"timeout .* after 2 attempts"):
        asyncio.run(sample_and_close(make(fake, timeout_s=0.3, max_retries=1), PROMPT, SamplingParams()))
    assert len(fake.requests) == 2


def test_slow_answer_within_the_timeout_succeeds(fake: FakeOpenAI) -> None:
    fake.plan = [{"delay": 0.3}]
    [completion] = asyncio.run(sample_and_close(make(fake, timeout_s=5, max_retries=0), PROMPT, SamplingParams()))
    assert completion.text == "answer seed=0 i=0"
    assert len(fake.requests) == 1


def test_refused_connection_is_retried_then_reported() -> None:
    model = models.create("openai", {"base_url": f"http://127.0.0.1:{free_port()}/v1", "max_retries": 1,
                                     "backoff_base_s": 0.01})
    with pytest.raises(ModelError, match=r"network error .* after 2 attempts"):
        asyncio.run(sample_and_close(model, PROMPT, SamplingParams()))  # type: ignore[arg-type]


def test_concurrency_bound_is_shared_per_endpoint_across_instances_and_loops(fake: FakeOpenAI) -> None:
    fake.delay = 0.05
    first, second = make(fake, concurrency=3), make(fake, concurrency=3)

    async def burst() -> list[Any]:
        try:
            results = await asyncio.gather(
                first.sample(PROMPT, SamplingParams(n=8)), second.sample(PROMPT, SamplingParams(n=8, seed=50))
            )
        finally:
            await first.aclose()
            await second.aclose()
        return [c for batch in results for c in batch]

    for _ in range(2):  # a second event loop gets its own semaphore and clients, and still works
        assert len(asyncio.run(burst())) == 16
    assert len(fake.requests) == 32
    assert fake.max_in_flight == 3


def test_one_failed_sample_fails_the_call(fake: FakeOpenAI) -> None:
    fake.delay = 0.05
    fake.plan = [{"status": 404, "body": "no such model"}]
    with pytest.raises(ModelError, match="HTTP 404"):
        asyncio.run(sample_and_close(make(fake, concurrency=1), PROMPT, SamplingParams(n=3)))
    assert len(fake.requests) < 3  # the pending siblings were cancelled, not sent


def test_api_key_comes_from_the_environment_and_is_never_recorded(fake: FakeOpenAI) -> None:
    os.environ["SPARRING_TEST_KEY"] = "sk-test-secret"
    try:
        model = make(fake, api_key_env="SPARRING_TEST_KEY")
        asyncio.run(sample_and_close(model, PROMPT, SamplingParams()))
        assert fake.requests[0].headers["authorization"] == "Bearer sk-test-secret"
        assert "sk-test-secret" not in repr(model.spec.as_dict()) + repr(model.config)
        fake.plan = [{"status": 401, "body": "invalid key"}]
        with pytest.raises(ModelError) as caught:
            asyncio.run(sample_and_close(model, PROMPT, SamplingParams()))
        assert "sk-test-secret" not in str(caught.value)
    finally:
        del os.environ["SPARRING_TEST_KEY"]
    with pytest.raises(ConfigError, match="SPARRING_TEST_KEY"):
        make(fake, api_key_env="SPARRING_TEST_KEY")


def test_config_rejects_unknown_keys() -> None:
    with pytest.raises(ConfigError, match="temprature: unknown key"):
        models.create("openai", {"base_url": "http://127.0.0.1:1/v1", "temprature": 0.5})
    with pytest.raises(ConfigError, match="base_url: .*http://"):
        models.create("openai", {"base_url": "127.0.0.1:8000/v1"})
    defaults = OpenAIConfig.model_validate({"base_url": "http://x/v1"})
    assert (defaults.concurrency, defaults.max_retries, defaults.use_n, defaults.mode) == (8, 5, False, "chat")


# --- llama-cpp-python's own OpenAI-compatible server on the bundled SmolLM2 ----------------------


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with llama_servers(tmp_path_factory.mktemp("llama_server"), 1, "--n_ctx", "2048") as [(base_url, _)]:
        yield base_url


@pytest.mark.model
def test_real_llama_cpp_server_chat_and_raw(llama_server: str) -> None:
    chat = models.create("openai", {"base_url": llama_server, "timeout_s": 120, "concurrency": 2})
    raw = models.create("openai", {"base_url": llama_server, "mode": "raw", "timeout_s": 120, "concurrency": 2})
    prompt = Prompt(messages=(Message("user", "Write one sentence about the sea."),))
    params = SamplingParams(n=2, seed=11, temperature=0.8, max_tokens=24)

    async def run() -> tuple[list[Any], list[Any], list[Any]]:
        try:
            # llama.cpp reuses its cached prompt: a prompt cached exactly as the last request left it is
            # sampled from the fresh batch logits, otherwise the last prompt token is replayed, and the two
            # differ slightly. A warm-up that leaves prompt + generated tokens cached puts every compared
            # request on the replay path.
            await chat.sample(prompt, SamplingParams(n=1, max_tokens=4))
            pair = await chat.sample(prompt, params)
            again = await chat.sample(prompt, SamplingParams(n=1, seed=11, temperature=0.8, max_tokens=24))
            raw_one = await raw.sample(prompt, SamplingParams(n=1, seed=3, max_tokens=24))
            return pair, again, raw_one
        finally:
            await chat.aclose()
            await raw.aclose()

    pair, again, [raw_completion] = asyncio.run(run())
    assert len(pair) == 2
    for completion in (*pair, raw_completion):
        assert isinstance(completion.text, str) and completion.text.strip()
        assert completion.completion_tokens and completion.completion_tokens > 0
    assert again[0].text == pair[0].text  # same seed, same text
    assert "\n\nHuman:" not in raw_completion.text


def test_models_sharing_an_endpoint_must_declare_the_same_bound() -> None:
    from sparring.models.replicas import ReplicaLimits, dispatcher

    async def ask() -> None:
        first = dispatcher().replica("http://user:secret@127.0.0.1:9/v1", ReplicaLimits(4))
        assert dispatcher().replica("http://user:secret@127.0.0.1:9/v1", ReplicaLimits(4)) is first  # one per endpoint
        with pytest.raises(ConfigError, match="concurrency: .* declare 4 and 8") as raised:
            dispatcher().replica("http://user:secret@127.0.0.1:9/v1", ReplicaLimits(8))
        assert "secret" not in str(raised.value)

    asyncio.run(ask())
