"""A model named inside another component's arguments (a judge's or an attacker's backend), checked like a top-level one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BeforeValidator, ValidationInfo

from sparring.models.base import models
from sparring.registry import validate_nested


def _check_model_spec(value: Any, info: ValidationInfo) -> dict[str, Any]:
    """``{backend = name, ...}`` validated by that backend's Config, so errors name e.g. ``model.base_url``."""
    if not isinstance(value, Mapping):
        raise ValueError('expected a table such as {backend = "llamacpp"}')
    return validate_nested(models, "backend", {"backend": "llamacpp", **value}, info.context)


ModelSpec = Annotated[dict[str, Any], BeforeValidator(_check_model_spec)]
"""Declare with ``Field(default_factory=lambda: {"backend": "llamacpp"}, validate_default=True)``."""


def backend_args(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The backend's own arguments: the spec without its ``backend`` key."""
    return {k: v for k, v in spec.items() if k != "backend"}
