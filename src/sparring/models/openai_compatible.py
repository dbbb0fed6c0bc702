"""Any OpenAI-compatible HTTP server (vLLM, llama.cpp's server, a hosted API) as a model backend.

This is how Sparring scales past one machine: models are served elsewhere and
this backend keeps many requests in flight. The in-flight bound is per
endpoint, shared by every instance in the process, so several targets on one
server cannot overload it. Transient failures (timeouts, network errors, 429,
5xx) are retried with capped, jittered exponential backoff that honours
``Retry-After``; anything else fails at once with a short ``ModelError``.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import random
import ssl
import time
import weakref
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from sparring.errors import ConfigError, ModelError
from sparring.models.base import Completion, Mode, Model, Prompt, SamplingParams, models
from sparring.models.raw_format import raw_stops, render_raw
from sparring.redaction import redact

log = logging.getLogger(__name__)

_SNIPPET = 200
_RETRY_STATUS = {408, 409, 429}

# Semaphores belong to the event loop they were first used on, and tests (and
# sync entry points) run several loops in one process, so the bound is kept per
# (loop, base_url). A dead loop's entries go away with the loop.
_LIMITS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, tuple[int, asyncio.Semaphore]]] = (
    weakref.WeakKeyDictionary()
)


def endpoint_semaphore(base_url: str, concurrency: int) -> asyncio.Semaphore:
    """The in-flight bound for ``base_url`` on the running loop, shared by every model using that endpoint.

    Two models that declare different bounds for one endpoint are a config error, not a silent
    first-caller-wins: the shared bound would otherwise depend on which model spoke first.
    """
    per_loop = _LIMITS.setdefault(asyncio.get_running_loop(), {})
    bound, semaphore = per_loop.setdefault(base_url, (concurrency, asyncio.Semaphore(concurrency)))
    if bound != concurrency:
        raise ConfigError(f"concurrency: models on {redact(base_url)} declare {bound} and {concurrency}; "
                          "one endpoint has one bound, so give them the same value")
    return semaphore


def retry_after_seconds(value: str | None, cap: float) -> float | None:
    """Parse a ``Retry-After`` header (seconds or an HTTP date) into a wait, capped; None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # RFC 9110 dates are GMT
            return None
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), cap)


def _snippet(text: str) -> str:
    """Error bodies can echo the prompt or be huge: keep a short, single-line prefix."""
    flat = " ".join(text.split())
    return flat if len(flat) <= _SNIPPET else flat[:_SNIPPET] + "..."


class OpenAIConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(description="API root, e.g. http://127.0.0.1:8000/v1")
    model: str = Field("", description="model name sent with each request; empty: not sent")
    mode: Mode = Field("chat", description="chat: /chat/completions; raw: /completions with Human/Assistant text")
    api_key_env: str | None = Field(None, description="environment variable holding the API key")
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(5, ge=0)
    backoff_base_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(30.0, ge=0)
    concurrency: int = Field(8, ge=1, description="max in-flight requests per base_url, shared by all instances")
    use_n: bool = Field(False, description="one request with n; off: n requests with seeds seed+i (works everywhere)")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://, e.g. http://127.0.0.1:8000/v1")
        return value


@models.register("openai")
class OpenAICompatibleModel(Model):
    """Sends chat or raw completion requests to an OpenAI-compatible server, with retries and a shared bound."""

    description = "Any OpenAI-compatible server (vLLM, llama.cpp server, hosted APIs); chat or raw mode."
    Config = OpenAIConfig

    def __init__(self, config: OpenAIConfig) -> None:
        self.config = config
        self.base_url = config.base_url.rstrip("/")
        if config.api_key_env and not os.environ.get(config.api_key_env):
            raise ConfigError(f"api_key_env: environment variable {config.api_key_env} is not set")
        self._ssl: ssl.SSLContext | None = None
        self._clients: list[httpx.AsyncClient] = []
        self._lanes: asyncio.Queue[httpx.AsyncClient | None] | None = None
        self._lanes_loop: asyncio.AbstractEventLoop | None = None

    async def _borrow(self) -> tuple[asyncio.Queue[httpx.AsyncClient | None], httpx.AsyncClient]:
        """Borrow one of ``concurrency`` single-connection clients (give it back to the returned queue).

        httpcore's pool rescans every connection on each request, so one client with C
        connections costs O(C) per request; C clients of one connection each stay O(1).
        Clients are loop-bound, so a new event loop gets new lanes.
        """
        loop = asyncio.get_running_loop()
        if self._lanes is None or self._lanes_loop is not loop:
            self._clients, self._lanes_loop = [], loop
            self._lanes = asyncio.Queue()
            for _ in range(self.config.concurrency):
                self._lanes.put_nowait(None)  # a client is made on first use
        lanes = self._lanes
        client = await lanes.get()
        if client is None:
            client = self._new_client()
            self._clients.append(client)
        return lanes, client

    def _new_client(self) -> httpx.AsyncClient:
        if self._ssl is None:  # building a TLS context costs ~30 ms: share it between lanes
            self._ssl = httpx.create_ssl_context()
        headers = {}
        if self.config.api_key_env:  # read at use, never kept on the config
            headers["Authorization"] = f"Bearer {os.environ.get(self.config.api_key_env, '')}"
        return httpx.AsyncClient(
            verify=self._ssl,
            timeout=httpx.Timeout(self.config.timeout_s),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            headers=headers,
        )

    async def sample(self, prompt: Prompt, params: SamplingParams) -> list[Completion]:
        if params.n <= 0:
            return []
        if self.config.use_n or params.n == 1:
            return await self._request(prompt, params, params.seed, params.n)
        tasks = [asyncio.create_task(self._request(prompt, params, params.seed + i, 1)) for i in range(params.n)]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:  # one failure fails the call; don't leave siblings running
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return [completion for result in results for completion in result]

    def _body(self, prompt: Prompt, params: SamplingParams, seed: int, n: int) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = dict(
            temperature=params.temperature, top_p=params.top_p, max_tokens=params.max_tokens, seed=seed
        )
        if self.config.model:
            body["model"] = self.config.model
        if n != 1:
            body["n"] = n
        if self.config.mode == "raw":
            body["prompt"] = render_raw(prompt)
            body["stop"] = list(raw_stops(params.stop))
            return "/completions", body
        messages = [{"role": "system", "content": prompt.preamble}] if prompt.preamble else []
        messages += [{"role": m.role, "content": m.content} for m in prompt.messages]
        body["messages"] = messages
        if params.stop:
            body["stop"] = list(params.stop)
        return "/chat/completions", body

    async def _request(self, prompt: Prompt, params: SamplingParams, seed: int, n: int) -> list[Completion]:
        path, body = self._body(prompt, params, seed, n)
        data = await self._post(path, body)
        return self._parse(data, path, n)

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        url = self.base_url + path
        attempts = self.config.max_retries + 1
        limit = endpoint_semaphore(self.base_url, self.config.concurrency)
        problem = ""
        for attempt in range(1, attempts + 1):
            wait: float | None = None
            try:
                async with limit:  # held in flight only, not while backing off
                    lanes, client = await self._borrow()
                    try:
                        response = await client.post(url, json=body)
                    finally:
                        lanes.put_nowait(client)
            except httpx.TimeoutException as error:
                problem = f"timeout ({type(error).__name__})"
            except httpx.TransportError as error:
                problem = f"network error ({type(error).__name__})"
            else:
                status = response.status_code
                if 200 <= status < 300:
                    try:
                        data = response.json()
                    except ValueError:
                        raise ModelError(f"openai: {url} returned invalid JSON: {_snippet(response.text)}") from None
                    if not isinstance(data, dict):
                        raise ModelError(f"openai: {url} returned JSON that is not an object")
                    return data
                if status not in _RETRY_STATUS and status < 500:
                    raise ModelError(f"openai: HTTP {status} from {url} (not retried): {_snippet(response.text)}")
                problem = f"HTTP {status}"
                wait = retry_after_seconds(response.headers.get("retry-after"), self.config.backoff_max_s)
            if attempt == attempts:
                break
            if wait is None:  # full jitter: uniform in [0, min(cap, base * 2^k)]
                ceiling = min(self.config.backoff_max_s, self.config.backoff_base_s * 2 ** (attempt - 1))
                wait = random.uniform(0.0, ceiling)
            log.info("openai: %s from %s; retry %d/%d in %.2fs", problem, url, attempt, attempts - 1, wait)
            await asyncio.sleep(wait)
        raise ModelError(f"openai: {problem} from {url} after {attempts} attempts")

    def _parse(self, data: dict[str, Any], path: str, n: int) -> list[Completion]:
        choices = data.get("choices")
        if not isinstance(choices, list) or len(choices) != n or not all(isinstance(c, dict) for c in choices):
            raise ModelError(f"openai: {self.base_url}{path} did not return {n} choices")
        usage: dict[str, Any] = data["usage"] if isinstance(data.get("usage"), dict) else {}
        out = []
        for k, choice in enumerate(sorted(choices, key=lambda c: int(c.get("index") or 0))):
            message: dict[str, Any] = choice["message"] if isinstance(choice.get("message"), dict) else {}
            text = choice.get("text") if self.config.mode == "raw" else message.get("content")
            # With n > 1 usage covers the whole request: it goes on the first completion so sums stay right.
            out.append(
                Completion(
                    text=text.strip() if isinstance(text, str) else "",
                    finish_reason=choice.get("finish_reason"),
                    prompt_tokens=usage.get("prompt_tokens") if k == 0 else None,
                    completion_tokens=usage.get("completion_tokens") if k == 0 else None,
                )
            )
        return out

    async def aclose(self) -> None:
        clients, self._clients, self._lanes = self._clients, [], None
        if self._lanes_loop is asyncio.get_running_loop():  # a dead loop's connections can't be closed
            for client in clients:
                await client.aclose()
