"""Any OpenAI-compatible HTTP server (vLLM, llama.cpp's server, a hosted API) as a model backend.

This is how Sparring scales past one machine: models are served elsewhere and
this backend keeps many requests in flight, on one server or spread over
several replicas of it (``base_urls``; ``sparring.models.replicas`` holds the
balancing, the per-replica bounds and rate limits, and taking a failing replica
out). Transient failures (timeouts, network errors, 429, 5xx) are retried with
capped, jittered exponential backoff, on another replica where there is one; a
429's ``Retry-After`` pauses the replica that sent it. Anything else fails at
once with a short ``ModelError``.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import random
import ssl
import time
from typing import Any

import httpx

from sparring.errors import ConfigError, ModelError
from sparring.models.base import Completion, Model, Prompt, SamplingParams, models
from sparring.models.openai_config import OpenAIConfig, ReplicaConfig
from sparring.models.raw_format import raw_stops, render_raw
from sparring.models.replicas import ReplicaPool, Ticket
from sparring.redaction import redact

__all__ = ["OpenAICompatibleModel", "OpenAIConfig", "ReplicaConfig", "retry_after_seconds"]

log = logging.getLogger(__name__)

_SNIPPET = 200
_RETRY_STATUS = {408, 409, 429}


class _NoN(Exception):
    """The replica answers a request with ``n`` with one choice: sample with one seeded request per sample."""


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


def _estimated_tokens(body: dict[str, Any], max_tokens: int, n: int) -> int:
    """A request's cost before the reply says: about four characters a token, plus every token it may generate."""
    text = body.get("prompt") or "".join(str(m.get("content", "")) for m in body.get("messages", []))
    return len(text) // 4 + 1 + max_tokens * n


def _used_tokens(data: dict[str, Any]) -> int | None:
    usage = data.get("usage")
    if not isinstance(usage, dict):
        return None
    total = usage.get("total_tokens")
    if isinstance(total, int):
        return total
    parts = [usage.get("prompt_tokens"), usage.get("completion_tokens")]
    return sum(p for p in parts if isinstance(p, int)) if any(isinstance(p, int) for p in parts) else None


@models.register("openai")
class OpenAICompatibleModel(Model):
    """Sends chat or raw completion requests to one OpenAI-compatible server or several replicas, with retries."""

    description = "Any OpenAI-compatible server (vLLM, llama.cpp server, hosted APIs), one or several replicas."
    Config = OpenAIConfig

    def __init__(self, config: OpenAIConfig) -> None:
        self.config = config
        self.urls = config.urls
        if config.api_key_env and not os.environ.get(config.api_key_env):
            raise ConfigError(f"api_key_env: environment variable {config.api_key_env} is not set")
        self.pool = ReplicaPool(config.replicas())
        self._ssl: ssl.SSLContext | None = None
        self._clients: list[httpx.AsyncClient] = []
        self._free: dict[str, list[httpx.AsyncClient]] = {}
        self._clients_loop: asyncio.AbstractEventLoop | None = None

    def _borrow(self, url: str) -> httpx.AsyncClient:
        """A single-connection client for ``url`` (give it back to ``self._free[url]``).

        httpcore's pool rescans every connection on each request, so one client with C
        connections costs O(C) per request; C clients of one connection each stay O(1).
        A replica's slot is taken first, so at most ``concurrency`` clients exist per
        replica. Clients are loop-bound, so a new event loop gets new ones.
        """
        loop = asyncio.get_running_loop()
        if self._clients_loop is not loop:
            self._clients, self._free, self._clients_loop = [], {}, loop
        free = self._free.setdefault(url, [])
        if free:
            return free.pop()
        client = self._new_client()
        self._clients.append(client)
        return client

    def _new_client(self) -> httpx.AsyncClient:
        if self._ssl is None:  # building a TLS context costs ~30 ms: share it between clients
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
        if params.n == 1 or self.config.use_n is True:
            return await self._request(prompt, params, params.seed, params.n)
        if self.config.use_n == "auto":
            try:
                return await self._request(prompt, params, params.seed, params.n, probe=True)
            except _NoN:
                pass  # this replica ignores n: the seeded requests below, exactly as with use_n = false
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

    async def _request(self, prompt: Prompt, params: SamplingParams, seed: int, n: int,
                       probe: bool = False) -> list[Completion]:
        path, body = self._body(prompt, params, seed, n)
        data, url = await self._post(path, body, _estimated_tokens(body, params.max_tokens, n), n if probe else None)
        return self._parse(data, url + path, n)

    async def _post(self, path: str, body: dict[str, Any], tokens: int,
                    probe_n: int | None) -> tuple[dict[str, Any], str]:
        """Send ``body`` until a replica answers or the retry budget is spent; the reply and who answered.

        With ``probe_n`` (``use_n = "auto"``) a replica known to ignore n raises ``_NoN``
        before sending, and the first such request on a replica finds out (others wait for it).
        """
        attempts = self.config.max_retries + 1
        attempt, avoid, problem, url = 0, None, "", self.urls[0]
        last: dict[str, str] = {}
        while attempt < attempts:
            ticket = await self.pool.acquire(tokens, avoid)
            replica, url = ticket.replica, ticket.replica.url
            probing = False
            if probe_n is not None:
                gate = replica.n_gate(path)  # synchronous after acquire: one prober per replica
                if gate is False or isinstance(gate, asyncio.Future):
                    self.pool.release(ticket)
                    if gate is False:
                        raise _NoN
                    await asyncio.shield(gate)  # another request is finding out; the slot is free meanwhile
                    continue
                probing = gate is None
            attempt += 1
            try:
                outcome = await self._attempt(ticket, url + path, body)
            except ModelError:
                self.pool.release(ticket)
                if probing:  # refused with n: fall back (a refusal that is not about n comes back there)
                    replica.end_probe(path, False)
                    raise _NoN from None
                raise
            except BaseException:
                self.pool.release(ticket)
                if probing:
                    replica.end_probe(path, None)
                raise
            if isinstance(outcome, dict):
                self.pool.succeeded(ticket, _used_tokens(outcome))
                if probing:
                    choices = outcome.get("choices")
                    got = len(choices) if isinstance(choices, list) else None
                    replica.end_probe(path, True if got == probe_n else False if got == 1 else None)
                    if got == 1:
                        raise _NoN
                return outcome, url
            problem, retry_after = outcome
            self.pool.failed(ticket, retry_after)
            if probing:
                replica.end_probe(path, None)
            last[url] = problem
            avoid = replica
            if attempt == attempts:
                break
            wait = 0.0  # a Retry-After paused the replica: acquire waits for it, or picks another
            if retry_after is None:  # full jitter: uniform in [0, min(cap, base * 2^k)]
                ceiling = min(self.config.backoff_max_s, self.config.backoff_base_s * 2 ** (attempt - 1))
                wait = random.uniform(0.0, ceiling)
            log.info("openai: %s from %s; retry %d/%d in %.2fs", problem, redact(url), attempt, attempts - 1, wait)
            if wait > 0:
                await asyncio.sleep(wait)
        if len(self.urls) == 1:
            raise ModelError(f"openai: {problem} from {redact(url)} after {attempts} attempts")
        each = "; ".join(f"{redact(u)}: {p}" for u, p in last.items())
        raise ModelError(f"openai: {problem} from {redact(url)} after {attempts} attempts "
                         f"over {len(self.urls)} replicas (last error of each: {each})")

    async def _attempt(self, ticket: Ticket, url: str, body: dict[str, Any]) -> dict[str, Any] | tuple[str, float | None]:
        """One request: the reply, or a transient problem and its Retry-After; ``ModelError`` if not retryable."""
        client = self._borrow(ticket.replica.url)
        try:
            response = await client.post(url, json=body)
        except httpx.TimeoutException as error:
            return f"timeout ({type(error).__name__})", None
        except httpx.TransportError as error:
            return f"network error ({type(error).__name__})", None
        finally:
            self._free[ticket.replica.url].append(client)
        status = response.status_code
        if 200 <= status < 300:
            try:
                data = response.json()
            except ValueError:
                raise ModelError(f"openai: {redact(url)} returned invalid JSON: {_snippet(response.text)}") from None
            if not isinstance(data, dict):
                raise ModelError(f"openai: {redact(url)} returned JSON that is not an object")
            return data
        if status not in _RETRY_STATUS and status < 500:
            raise ModelError(f"openai: HTTP {status} from {redact(url)} (not retried): {_snippet(response.text)}")
        return f"HTTP {status}", retry_after_seconds(response.headers.get("retry-after"), self.config.backoff_max_s)

    def _parse(self, data: dict[str, Any], where: str, n: int) -> list[Completion]:
        choices = data.get("choices")
        if not isinstance(choices, list) or len(choices) != n or not all(isinstance(c, dict) for c in choices):
            hint = ' (a server that ignores n needs use_n = "auto" or false)' if n > 1 else ""
            raise ModelError(f"openai: {redact(where)} did not return {n} choices{hint}")
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
        clients, self._clients, self._free = self._clients, [], {}
        if self._clients_loop is asyncio.get_running_loop():  # a dead loop's connections can't be closed
            for client in clients:
                await client.aclose()
