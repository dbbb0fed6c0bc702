"""Helpers for tests that run experiments (no tests here): a small experiment on the scripted model."""

from __future__ import annotations


def scripted_toml(**overrides: object) -> str:
    """A small experiment on the scripted model: 2 targets x the bundled hh-rlhf replay."""
    head = {"name": "scripted", "turns": 3, "samples_per_turn": 2, "concurrency": 8}
    scorer = overrides.pop("scorer", "refusal")  # engine tests use the fast scorer; the PM has its own tests
    picker = overrides.pop("picker", scorer)  # declared: these tests check the scorer's picks and the pairs they form
    head.update({k: v for k, v in overrides.items() if not k.startswith("model_")})
    model_args = {k.removeprefix("model_"): v for k, v in overrides.items() if k.startswith("model_")}
    lines = [f"{k} = {toml_value(v)}" for k, v in head.items() if k != "limit"]
    lines += ["[scorer]", f"name = {toml_value(scorer)}"]
    lines += ["[picker]", f"name = {toml_value(picker)}"]
    lines += ["[[models]]", 'name = "fake"', 'backend = "scripted"', 'size = "1M"']
    lines += [f"{k} = {toml_value(v)}" for k, v in model_args.items()]
    lines += ["[[targets]]", 'model = "fake"', 'intervention = "plain"']
    lines += ["[[targets]]", 'model = "fake"', 'intervention = "rejection-sampling"', "k = 4"]
    lines += ["[[attacks]]", 'kind = "hh-rlhf"', f"limit = {overrides.get('limit', 10)}"]
    return "\n".join(lines) + "\n"


def toml_value(value: object) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return str(value)
