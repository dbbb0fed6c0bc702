"""What an ``openai`` model is configured with: one server or several replicas, and how to treat them.

Kept apart from the backend so the request path stays short; the backend's
module docstring says what each setting does at run time.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from sparring.models.base import Mode
from sparring.models.replicas import ReplicaLimits
from sparring.redaction import redact


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://, e.g. http://127.0.0.1:8000/v1")
    return value


class ReplicaConfig(BaseModel):
    """One replica in ``base_urls``, with the limits of its own server where they differ from the target's."""

    model_config = ConfigDict(extra="forbid")

    url: str
    concurrency: int | None = Field(None, ge=1)
    requests_per_minute: int | None = Field(None, ge=1)
    tokens_per_minute: int | None = Field(None, ge=1)

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        return _http_url(value)


def _replica_table(value: Any) -> Any:
    """A bare URL in ``base_urls`` is short for ``{url = ...}``."""
    return {"url": value} if isinstance(value, str) else value


class OpenAIConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str | None = Field(
        description="API root of one server, e.g. http://127.0.0.1:8000/v1 (required unless base_urls is given)"
    )
    base_urls: list[Annotated[ReplicaConfig, BeforeValidator(_replica_table)]] | None = Field(
        None, validate_default=True,
        description="API roots of several replicas of one model, each a URL or a table {url = ..., concurrency = ..., "
        "requests_per_minute = ..., tokens_per_minute = ...}; each request goes to the least busy",
    )
    model: str = Field("", description="model name sent with each request; empty: not sent")
    mode: Mode = Field("chat", description="chat: /chat/completions; raw: /completions with Human/Assistant text")
    api_key_env: str | None = Field(None, description="environment variable holding the API key")
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(5, ge=0)
    backoff_base_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(30.0, ge=0)
    concurrency: int = Field(8, ge=1, description="max in-flight requests per replica, shared by all models naming it")
    requests_per_minute: int | None = Field(None, ge=1, description="per replica; unset: no limit")
    tokens_per_minute: int | None = Field(
        None, ge=1, description="per replica, prompt + completion: estimated when sent, corrected by the reply's usage"
    )
    eject_after: int = Field(3, ge=1, description="consecutive transient failures that take a replica out (2+ replicas)")
    eject_s: float = Field(30.0, ge=0, description="how long a replica taken out stays out")
    use_n: bool | Literal["auto"] = Field(
        False,
        description="true: one request with n for the samples of a turn; false: n requests with seeds seed+i "
        "(works everywhere); auto: try n once per replica and remember whether it answered with n choices",
    )

    @model_validator(mode="before")
    @classmethod
    def _replicas_instead(cls, data: Any) -> Any:
        """``base_url`` is required unless ``base_urls`` is given, so a config with neither says ``base_url``."""
        if isinstance(data, dict) and "base_urls" in data and "base_url" not in data:
            return {**data, "base_url": None}
        return data

    @field_validator("base_url")
    @classmethod
    def _one_url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)

    @field_validator("base_urls")
    @classmethod
    def _replica_urls(cls, value: list[ReplicaConfig] | None, info: ValidationInfo) -> list[ReplicaConfig] | None:
        if "base_url" not in info.data:  # base_url itself was wrong: that error says enough
            return value
        single = info.data["base_url"]
        if value is None:
            if single is None:
                raise ValueError('no server: set base_url = "http://127.0.0.1:8000/v1", '
                                 "or base_urls = [...] for several replicas")
            return None
        if single is not None:
            raise ValueError("give base_url (one server) or base_urls (several replicas), not both")
        if not value:
            raise ValueError("needs at least one URL")
        seen: set[str] = set()
        for i, replica in enumerate(value):
            if replica.url.rstrip("/") in seen:
                raise ValueError(f"[{i}] {redact(replica.url)} is listed twice")
            seen.add(replica.url.rstrip("/"))
        return value

    @field_serializer("base_urls")
    def _as_written(self, value: list[ReplicaConfig] | None) -> list[str | dict[str, Any]] | None:
        """Recorded as given: a bare URL stays a string, a table keeps only what it set."""
        if value is None:
            return None
        return [r.url if r.model_fields_set == {"url"} else r.model_dump(exclude_unset=True) for r in value]

    @property
    def urls(self) -> tuple[str, ...]:
        """The replicas' API roots, without a trailing slash (one, with ``base_url``)."""
        return tuple(url for url, _ in self.replicas())

    def replicas(self) -> list[tuple[str, ReplicaLimits]]:
        """Each replica's URL and limits: its own table's values, else the target's."""
        own = self.base_urls or [ReplicaConfig(url=self.base_url or "")]
        return [(r.url.rstrip("/"), ReplicaLimits(
            r.concurrency or self.concurrency,
            r.requests_per_minute or self.requests_per_minute,
            r.tokens_per_minute or self.tokens_per_minute,
            self.eject_after, self.eject_s,
        )) for r in own]
