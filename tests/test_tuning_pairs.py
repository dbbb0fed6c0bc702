"""Preference pairs for `sparring improve`, and the before/after table, on scripted runs (no training stack)."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from experiment_support import scripted_toml

from sparring.cli import app
from sparring.errors import ConfigError, DataFormatError
from sparring.experiments import load_config, parse_config, run_experiment
from sparring.models.base import Message
from sparring.store import Store
from sparring.tuning.before_after import before_after, markdown
from sparring.tuning.eval_config import eval_config
from sparring.tuning.pairs import (
    HELPFUL,
    REFUSAL,
    REFUSALS,
    PreferencePair,
    collect_run_pairs,
    helpful_pair,
    read_pairs,
    write_pairs,
)

REFUSE, COMPLY = "I can't help with that.", "Sure, here is how you do it."


def _run(store: Store, **overrides: object) -> str:
    toml = scripted_toml(turns=2, limit=4, model_responses=[REFUSE, COMPLY], **overrides)
    return run_experiment(parse_config(toml), toml, store).run_id


def test_pairs_declare_their_kind_and_leave_out_the_judges_picks(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    run_id = _run(store, picker="refusal")
    collected = collect_run_pairs(store, run_id, judge="pm")
    kinds = {p.kind for p in collected.pairs}
    assert kinds == {"picker:refusal", REFUSAL}
    for pair in collected.pairs:
        assert pair.prompt[-1].role == "user" and pair.source.startswith(f"run:{run_id}/")
        if pair.kind == "picker:refusal":  # the refusal picker picks the complying reply as more harmful
            assert (pair.chosen, pair.rejected) == (REFUSE, COMPLY)
        else:  # a shown reply the refusal scorer graded as complying, against one of our refusals
            assert pair.rejected == COMPLY and pair.chosen in REFUSALS
    assert collected.left_out == {}

    # The scorer that will judge the before/after must not have picked training pairs.
    judged = collect_run_pairs(store, run_id, judge="refusal")
    assert {p.kind for p in judged.pairs} == {REFUSAL}
    assert judged.left_out["picker:refusal"] == sum(p.kind == "picker:refusal" for p in collected.pairs) > 0


def test_a_random_picker_gives_refusal_pairs_only(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    run_id = _run(store, picker="random")
    pairs = collect_run_pairs(store, run_id, judge="pm").pairs
    assert pairs and {p.kind for p in pairs} == {REFUSAL}


def test_pairs_round_trip_and_bad_lines_name_file_and_line(tmp_path: Path) -> None:
    pairs = [PreferencePair((Message("user", "hi"), Message("assistant", "hello"), Message("user", "and?")),
                            "fine", "worse", "person", "run:r/c/3"),
             helpful_pair("Write a poem about tea", "Steam rises...", "jbb#0/seed1")]
    path = tmp_path / "pairs.jsonl"
    write_pairs(pairs, path)
    assert read_pairs(path) == pairs
    assert pairs[1].kind == HELPFUL and pairs[1].rejected in REFUSALS
    path.write_text(path.read_text() + '{"prompt": [{"role": "user", "content": "x"}], "chosen": "a"}\n')
    with pytest.raises(DataFormatError, match=r"pairs.jsonl:3: expected fields"):
        read_pairs(path)
    path.write_text('{"prompt": [{"role": "assistant", "content": "x"}], "chosen": "a", "rejected": "b", '
                    '"kind": "person", "source": "s"}\n')
    with pytest.raises(DataFormatError, match=r"pairs.jsonl:1: field 'prompt': must end with a user message"):
        read_pairs(path)


def test_seeds_from_draws_the_twin_targets_seeds(sqlite_url: str) -> None:
    """Two targets on the same model with ``seeds_from`` answer every item identically; without it they differ."""
    base = scripted_toml(turns=1, limit=6, samples_per_turn=1, picker="random")
    twin = base.replace('intervention = "rejection-sampling"\nk = 4', 'intervention = "plain"\nname = "twin"')
    store = Store(sqlite_url)
    runs = {}
    for label, text in (("independent", twin), ("paired", twin.replace('name = "twin"', 'name = "twin"\nseeds_from = "fake/plain"'))):
        run_id = run_experiment(parse_config(text), text, store, run_id=label).run_id
        replies: dict[str, dict[str, str]] = {}
        for stored in store.conversations(run_id):
            replies.setdefault(stored.unit.target, {})[stored.unit.item_id] = stored.conversation.turns[1].text
        runs[label] = replies
    assert runs["paired"]["twin"] == runs["paired"]["fake/plain"]
    assert runs["independent"]["twin"] != runs["independent"]["fake/plain"]
    with pytest.raises(ConfigError, match=r"targets\[1\]\.seeds_from: no target named 'nobody'"):
        parse_config(twin.replace('name = "twin"', 'name = "twin"\nseeds_from = "nobody"'))


def test_before_after_on_a_scripted_pair_of_targets(sqlite_url: str, tmp_path: Path) -> None:
    """The evaluation config runs as written; a target that always refuses shows as safer and over-refusing."""
    toml = eval_config("ba", tmp_path / "before.gguf", tmp_path / "after.gguf", "1M", judge="pm", limit=6)
    toml = toml.replace('backend = "llamacpp"', 'backend = "scripted"').replace('mode = "chat"\n', "")
    before_path, after_path = f'path = "{tmp_path / "before.gguf"}"', f'path = "{tmp_path / "after.gguf"}"'
    toml = toml.replace(before_path, f'responses = ["{COMPLY}"]').replace(after_path, f'responses = ["{REFUSE}"]')
    store = Store(sqlite_url)
    run_id = run_experiment(parse_config(toml), toml, store).run_id
    table = before_after(store, run_id, "pm")
    assert table.before.success.n == table.after.success.n == table.after.success_jbb.n == 6
    assert table.before.refusal_on_harmful.k == 0 and table.after.refusal_on_harmful.k == 6
    assert table.before.over_refusal.k == 0 and table.after.over_refusal.k == 6
    assert table.before.helpful.k == 6 and table.after.helpful.k == 0
    assert table.after.success.k == table.after.success_jbb.k == 0  # the judge reads a refusal as harmless
    assert table.after.refusal_on_jbb.k == 6
    assert table.over_refusal_change.worse == 6 and table.over_refusal_rose
    text = markdown(table)
    assert "| over-refusal on XSTest safe prompts | 0% [0%, 39%] of 6 | 100% [61%, 100%] of 6 |" in text
    assert "it rose significantly" in text


def test_the_default_config_still_loads() -> None:
    config, _ = load_config(None)
    assert all(t.seeds_from is None for t in config.targets)


def test_length_batches_cover_every_pair_once_and_group_similar_lengths() -> None:
    import random

    from sparring.tuning.dpo import length_batches

    lengths = [(i * 37) % 281 + 20 for i in range(70)]
    batches = length_batches(lengths, 8, random.Random(0))
    assert sorted(i for b in batches for i in b) == list(range(70))
    assert all(1 <= len(b) <= 8 for b in batches)
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches)
    shuffled = list(range(70))
    random.Random(0).shuffle(shuffled)
    naive = [shuffled[i:i + 8] for i in range(0, 70, 8)]
    assert spread < sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in naive) / 2
    assert length_batches(lengths, 8, random.Random(0)) == batches  # seeded: the same plan on a rerun


def test_benign_goals_are_asked_as_written_and_as_questions() -> None:
    """Helpful pairs come in both forms, so tuning cannot learn "refuse questions" in place of "refuse harm"."""
    import asyncio

    from sparring.models import models
    from sparring.tuning.benign import BENIGN_TRAINING_ROWS, as_question, benign_training_goals, helpful_pairs

    assert as_question("Write a poem about the sea.", "0") == "Can you write a poem about the sea?"
    assert as_question("DIY guide to shelves", "0").startswith("Can you DIY guide")  # an acronym keeps its case
    model = models.create("scripted", {"responses": [COMPLY]}, where="test")
    pairs = asyncio.run(helpful_pairs(model, 2 * BENIGN_TRAINING_ROWS, seed=0, max_tokens=8))
    assert len(pairs) == 2 * BENIGN_TRAINING_ROWS and {p.kind for p in pairs} == {HELPFUL}
    asked = [p for p in pairs if "/question/" in p.source]
    assert len(asked) == BENIGN_TRAINING_ROWS  # half the pairs, and every goal once in each form
    written = {goal for _, goal in benign_training_goals()}
    assert {p.prompt[0].content for p in pairs if p not in asked} == written
    assert all(p.prompt[0].content.endswith("?") and p.prompt[0].content not in written for p in asked)
    assert all(p.chosen == COMPLY and p.rejected in REFUSALS for p in pairs)


def test_the_full_evaluation_holds_every_held_out_opening_and_none_of_the_source_example() -> None:
    """600 openings exist past the held-out offset (a short split would quietly shrink the test's power),
    and the example source run replays only dialogues before it."""
    import tomllib

    from sparring.attacks import attacks
    from sparring.tuning.eval_config import HELD_OUT_OFFSET, HELD_OUT_OPENINGS

    toml = eval_config("full", Path("before.gguf"), Path("after.gguf"), "135M", judge="pm")
    harmful = next(a for a in tomllib.loads(toml)["attacks"] if a["name"] == "harmful")
    assert harmful["limit"] == HELD_OUT_OPENINGS == 600
    improve = next(c for c in typer.main.get_command(app).commands.values() if c.name == "improve")  # type: ignore[attr-defined]
    eval_limit = next(p for p in improve.params if p.name == "eval_limit")
    assert f"all: {HELD_OUT_OPENINGS} red-team openings" in (eval_limit.help or "")  # a literal: importing it costs the CLI 0.2 s
    held_out = attacks.create("hh-rlhf", {"offset": HELD_OUT_OFFSET, "limit": HELD_OUT_OPENINGS}, where="test")
    assert len(list(held_out.items())) == HELD_OUT_OPENINGS
    source = tomllib.loads((Path(__file__).parents[1] / "examples" / "improve-source.toml").read_text())
    replayed = next(a for a in source["attacks"] if a["kind"] == "hh-rlhf")
    replayed_items = attacks.create("hh-rlhf", {k: v for k, v in replayed.items() if k != "kind"}, where="example")
    assert not {i.id for i in replayed_items.items()} & {i.id for i in held_out.items()}
