"""``sparring components``: every registered component, by kind, with its arguments (types and defaults)."""

from __future__ import annotations

import json
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import typer
from rich.markup import escape

from sparring.terminal import console

KINDS = ("models", "interventions", "attacks", "converters", "scorers")


def _registries() -> dict[str, Any]:
    from sparring.attacks import attacks
    from sparring.attacks.converters import converters
    from sparring.interventions import interventions
    from sparring.models import models
    from sparring.scoring import scorers

    return {"models": models, "interventions": interventions, "attacks": attacks, "converters": converters,
            "scorers": scorers}


def describe(kind: str) -> list[dict[str, Any]]:
    """Name, one-line summary and arguments (name, type, default or required, help) of each component."""
    registry = _registries()[kind]
    described = []
    for name in registry.names():
        cls = registry.get(name)
        arguments = []
        for field_name, info in cls.Config.model_fields.items():
            required = info.is_required()
            arguments.append({
                "name": field_name,
                "type": type_name(info.annotation),
                "required": required,
                "default": None if required else _jsonable(info.get_default(call_default_factory=True)),
                "help": info.description or "",
            })
        # what the component declares it does, else its docstring's first line
        summary = getattr(cls, "description", "") or ((cls.__doc__ or "").strip().splitlines() or [""])[0]
        described.append({"name": name, "summary": summary, "arguments": arguments})
    return described


def type_name(annotation: Any) -> str:
    """``Literal['a', 'b']`` -> ``'a' | 'b'``; ``Annotated[float, ...]`` -> ``float``; ``list[X]`` -> ``list[X]``."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin is Annotated:
        return type_name(args[0])
    if origin in (Union, UnionType):
        return " | ".join("None" if a is type(None) else type_name(a) for a in args)
    if origin is not None:
        inner = ", ".join(type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]" if inner else getattr(origin, "__name__", str(origin))
    return getattr(annotation, "__name__", str(annotation))


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except TypeError:
        return repr(value)


def components(
    kind: Annotated[str | None, typer.Argument(help=f"One of: {', '.join(KINDS)}; default: all.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """List the components a config can name (model backends, interventions, attack kinds, scorers) and their arguments."""
    if kind is not None and kind not in KINDS:
        raise typer.BadParameter(f"unknown kind {kind!r}; expected one of: {', '.join(KINDS)}", param_hint="KIND")
    listing = {k: describe(k) for k in ([kind] if kind else KINDS)}
    if as_json:
        console.print_json(json.dumps(listing))
        return
    for each, entries in listing.items():
        console.print(f"[bold]{each}[/bold]")
        for entry in entries:
            console.print(f"  {escape(entry['name'])}: {escape(entry['summary'])}", soft_wrap=True)
            for argument in entry["arguments"]:
                default = "required" if argument["required"] else f"default {argument['default']!r}"
                help_text = f"  {argument['help']}" if argument["help"] else ""
                console.print(f"      {escape(argument['name'])} ({escape(argument['type'])}, {escape(default)}){escape(help_text)}",
                              soft_wrap=True)
