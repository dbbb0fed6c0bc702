"""Each model attacker end to end with the embedded SmolLM2 as its attacker model (llamacpp, the default).

Two targets face every attack: the embedded model itself, and a scripted model that always
refuses, so a searching or refining attacker has to keep going until its budget or its depth
stops it. Budgets and max_tokens are tiny: these check the wiring on a real model (stored
turns, what they cost, budgets kept, scores recorded), not how good the attacks are.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from experiment_support import scripted_toml

from sparring.experiments import parse_config, run_experiment
from sparring.experiments.summary import summarize
from sparring.store import Store
from sparring.store.repository import StoredConversation

pytestmark = pytest.mark.model

REFUSAL = "I'm sorry, but I can't help with that."


def embedded_toml(attack: str, turns: int = 2) -> str:
    """The attack (its TOML lines) against the embedded model and a scripted refuser; the refusal scorer judges."""
    return (f'name = "embedded-attackers"\nturns = {turns}\nsamples_per_turn = 1\n[sampling]\nmax_tokens = 24\n'
            '[scorer]\nname = "refusal"\n[picker]\nname = "refusal"\n'
            '[[models]]\nname = "smollm2"\nbackend = "llamacpp"\nsize = "135M"\nmode = "chat"\n'
            f'[[models]]\nname = "refuser"\nbackend = "scripted"\nsize = "1M"\nresponses = ["{REFUSAL}"]\n'
            '[[targets]]\nmodel = "smollm2"\nintervention = "none"\n'
            '[[targets]]\nmodel = "refuser"\nintervention = "none"\n'
            f"[[attacks]]\n{attack}")


def goals(shared_data: Path, kind: str, extra: str) -> str:
    return (f'kind = "{kind}"\npath = "{shared_data / "jbb" / "harmful-behaviors.csv"}"\ncolumn = "Goal"\n'
            f'id_column = "Index"\nlimit = 1\nmax_tokens = 32\n{extra}')


def run(text: str, store: Store, run_id: str) -> list[StoredConversation]:
    outcome = run_experiment(parse_config(text), text, store, run_id)
    assert (outcome.finished, outcome.errors) == (outcome.total, 0), store.conversations(run_id, ["error"])
    return store.conversations(run_id)


def spent(stored: StoredConversation) -> tuple[int, int, int]:
    """(queries, tokens, hidden) the conversation's human turns cost, as stored."""
    samples = [turn.samples[0] for turn in stored.conversation.human_turns]
    return (sum(s.queries or 0 for s in samples), sum(s.completion_tokens or 0 for s in samples if s.queries),
            sum(s.hidden or 0 for s in samples))


def check_scored_and_reported(store: Store, run_id: str, conversations: list[StoredConversation]) -> None:
    """Every reply was judged, and show's per-attack row adds up what the turns cost."""
    for stored in conversations:
        for reply in stored.conversation.assistant_turns:
            picked = reply.samples[reply.picked]
            assert "refusal" in picked.scores or "refusal" in picked.unscored
            assert picked.text.strip()
        assert ("refusal", "min") in stored.transcript_scores
    [row] = summarize(store, run_id).attacks
    assert (row.finished, row.errors) == (len(conversations), 0)
    assert row.queries == sum(spent(c)[0] for c in conversations)
    assert row.tokens == sum(spent(c)[1] for c in conversations)
    assert row.hidden == sum(spent(c)[2] for c in conversations)


def on_the_refuser(conversations: list[StoredConversation]) -> StoredConversation:
    [stored] = [c for c in conversations if c.unit.target.startswith("refuser")]
    return stored


def test_refine_with_the_paraphrase_converter_on_the_embedded_model(sqlite_url, shared_data):
    attack = goals(shared_data, "refine", "budget = {queries = 2, tokens = 64}\n"
                                          'converters = [{name = "paraphrase", max_tokens = 32}]\n')
    store = Store(sqlite_url)
    conversations = run(embedded_toml(attack), store, "refine")
    for stored in conversations:
        queries, tokens, _ = spent(stored)
        assert queries <= 2 and tokens <= 64  # the budget (the paraphraser's calls are its own)
    refused = on_the_refuser(conversations).conversation
    assert len(refused.human_turns) == 2  # the goal, then one revision: the refuser never gives in
    revision = refused.human_turns[1].samples[0]
    assert revision.queries and revision.queries >= 1 and revision.completion_tokens and revision.text.strip()
    assert refused.human_turns[0].samples[0].queries is None  # the goal as written: no attacker call
    check_scored_and_reported(store, "refine", conversations)
    store.close()


def test_tap_on_the_embedded_model(sqlite_url, shared_data):
    attack = goals(shared_data, "tap", 'on_topic = "off"\nbranching = 2\nwidth = 1\ndepth = 2\n'
                                       "budget = {queries = 5, tokens = 128}\n")
    store = Store(sqlite_url)
    conversations = run(embedded_toml(attack, turns=1), store, "tap")
    for stored in conversations:
        [human] = stored.conversation.human_turns  # the chosen prompt only
        queries, tokens, hidden = spent(stored)
        assert queries <= 5 and tokens <= 128 and human.text.strip()
    refused = on_the_refuser(conversations)
    queries, _, hidden = spent(refused)
    # no branch succeeds on the refuser: the search probes until its budget or depth ends it, keeping one
    assert hidden >= 1 and queries >= hidden + 2
    check_scored_and_reported(store, "tap", conversations)
    store.close()


def test_crescendo_on_the_embedded_model(sqlite_url, shared_data):
    attack = goals(shared_data, "crescendo", "max_turns = 2\nmax_backtracks = 1\nbudget = {queries = 6, tokens = 192}\n")
    store = Store(sqlite_url)
    conversations = run(embedded_toml(attack), store, "crescendo")
    for stored in conversations:
        queries, tokens, _ = spent(stored)
        assert queries <= 6 and tokens <= 192
        assert all(turn.samples[0].queries for turn in stored.conversation.human_turns)  # each turn written
    refused = on_the_refuser(conversations).conversation
    assert spent(on_the_refuser(conversations))[2] == 1  # its one backtrack was taken on the refuser
    assert len(refused.human_turns) == 2 and REFUSAL in refused.assistant_turns[0].text  # then it spoke anyway
    check_scored_and_reported(store, "crescendo", conversations)
    store.close()


def test_few_shot_on_the_embedded_model(sqlite_url):
    store = Store(sqlite_url)
    before = scripted_toml(limit=3)  # past successes to learn from: replayed dialogues a scripted target answered
    run_experiment(parse_config(before), before, store, "earlier")
    few_shot = 'kind = "few-shot"\nitems = 2\nexamples = 2\nmax_tokens = 32\nbudget = {queries = 2, tokens = 64}\n'
    conversations = run(embedded_toml(few_shot, turns=1), store, "few-shot")
    history = store.run("few-shot").components["history"]["few-shot"]
    openings = {c.conversation.human_turns[0].text for c in store.conversations("earlier")}
    assert history and set(history) <= openings
    for stored in conversations:
        [human] = stored.conversation.human_turns
        queries, tokens, _ = spent(stored)
        assert 1 <= queries <= 2 and 0 < tokens <= 64 and human.text.strip()
    check_scored_and_reported(store, "few-shot", conversations)
    store.close()
