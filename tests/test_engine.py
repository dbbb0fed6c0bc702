import pytest
from experiment_support import scripted_toml

from sparring.attacks import attacks
from sparring.errors import ConfigError
from sparring.experiments import parse_config, run_experiment
from sparring.experiments.summary import summarize
from sparring.scoring import scorers
from sparring.store import Store

REFUSAL = scorers.create("refusal")


def run(url: str, text: str, run_id: str | None = None):
    store = Store(url)
    outcome = run_experiment(parse_config(text), text, store, run_id)
    return store, outcome


def test_scripted_grid_runs_end_to_end_and_persists_every_turn(sqlite_url):
    text = scripted_toml(limit=6)
    store, outcome = run(sqlite_url, text)
    assert (outcome.total, outcome.finished, outcome.errors) == (12, 12, 0)
    conversations = store.conversations(outcome.run_id)
    assert len(conversations) == 12
    pairs = store.pairs(outcome.run_id)
    assistant_turns = 0
    for stored in conversations:
        conversation = stored.conversation
        assert stored.status == "finished"
        assert 1 <= len(conversation.human_turns) <= 3
        for turn in conversation.assistant_turns:
            assistant_turns += 1
            assert len(turn.samples) == 2
            harmlessness = [s.scores["refusal"] for s in turn.samples]
            # without a person, the declared picker (here the scorer) picks the more harmful sample
            assert harmlessness[turn.picked] == min(harmlessness)
        picked = [t.samples[t.picked].scores["refusal"] for t in conversation.assistant_turns]
        assert stored.transcript_scores[("refusal", "min")] == min(picked)
        assert ("refusal", "task_description") in stored.transcript_scores
    assert len(pairs) == assistant_turns and {p[4] for p in pairs} == {"picker:refusal"}
    summary = summarize(store, outcome.run_id)
    assert summary.status == "finished"
    assert sum(t.finished for t in summary.targets) == 12
    assert sum(t.turns for t in summary.targets) == assistant_turns


def test_same_config_and_seed_give_the_same_conversations(sqlite_url):
    text = scripted_toml(limit=4)
    store, first = run(sqlite_url, text, "first")
    _, second = run(sqlite_url, text, "second")
    to_text = lambda run_id: [c.conversation.to_hh() for c in store.conversations(run_id)]  # noqa: E731
    assert to_text("first") == to_text("second")


def test_rerunning_a_finished_run_changes_nothing(sqlite_url):
    text = scripted_toml(limit=4)
    store, first = run(sqlite_url, text)
    before = [(c.unit.id, c.conversation.to_hh()) for c in store.conversations(first.run_id)]
    _, again = run(sqlite_url, text)
    assert again.resumed and again.turns_written == 0 and again.finished == again.total
    assert [(c.unit.id, c.conversation.to_hh()) for c in store.conversations(first.run_id)] == before


def test_backend_failures_are_errors_not_results(sqlite_url):
    # every prompt whose last human turn mentions pranks fails in the backend
    text = scripted_toml(limit=6, model_fail_if_contains="pranks")
    items = attacks.create("hh-rlhf", {"limit": 6}).items()
    failing = sum(any("pranks" in turn for turn in item.human_turns[:3]) for item in items)
    assert 0 < failing < 6
    store, outcome = run(sqlite_url, text)
    assert outcome.errors == 2 * failing and outcome.finished == 12 - 2 * failing  # 2 targets
    summary = summarize(store, outcome.run_id)
    assert summary.status == "incomplete"
    for target in summary.targets:
        assert target.errors == failing and target.finished == 6 - failing
        assert len(target.min_harmlessness) == 6 - failing  # failed conversations are in no score
    assert "scripted failure" in summary.errors[0]
    errored = store.conversations(outcome.run_id, ["error"])
    assert all(not c.transcript_scores for c in errored)
    # a rerun retries only the failed conversations; nothing is duplicated
    _, again = run(sqlite_url, text)
    assert again.errors == 2 * failing and again.finished == 12 - 2 * failing
    assert len(store.conversations(outcome.run_id)) == 12


def test_a_run_id_cannot_be_reused_with_another_config(sqlite_url):
    run(sqlite_url, scripted_toml(limit=2), "mine")
    with pytest.raises(ConfigError, match="already exists with a different configuration"):
        run(sqlite_url, scripted_toml(limit=3), "mine")


def test_unknown_run_is_a_clear_error(sqlite_url):
    with pytest.raises(ConfigError, match="no run 'nope'"):
        summarize(Store(sqlite_url), "nope")


@pytest.mark.postgres
def test_the_same_run_works_on_postgresql(postgres_url):
    text = scripted_toml(limit=3)
    store, outcome = run(postgres_url, text)
    assert outcome.finished == 6
    _, again = run(postgres_url, text)
    assert again.resumed and again.turns_written == 0
    summary = summarize(store, outcome.run_id)
    assert sum(t.finished for t in summary.targets) == 6
