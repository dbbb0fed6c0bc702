"""An experiment whose target is served over HTTP: backend failures become recorded errors, and a rerun heals them."""

from experiment_support import scripted_toml
from test_openai_backend import FakeOpenAI, fake, server_state  # noqa: F401  (fixtures)

from sparring.experiments import parse_config, run_experiment
from sparring.experiments.summary import summarize
from sparring.store import Store


def endpoint_toml(base_url: str) -> str:
    text = scripted_toml(limit=4, concurrency=2)
    return text.replace('backend = "scripted"', f'backend = "openai"\nbase_url = "{base_url}"\nmax_retries = 0\n'
                                                 "backoff_base_s = 0.01\ntimeout_s = 5")


def test_http_failures_are_errors_and_a_rerun_retries_them(fake: FakeOpenAI, sqlite_url):  # noqa: F811
    fake.plan = [{"status": 503}] * 3  # with max_retries=0 each 503 fails its request
    text = endpoint_toml(fake.base_url)
    store = Store(sqlite_url)
    outcome = run_experiment(parse_config(text), text, store)
    assert outcome.errors >= 1 and outcome.finished + outcome.errors == outcome.total == 8
    summary = summarize(store, outcome.run_id)
    assert sum(t.errors for t in summary.targets) == outcome.errors
    assert "HTTP 503" in summary.errors[0] and "after 1 attempts" in summary.errors[0]
    for stored in store.conversations(outcome.run_id, ["error"]):
        assert not stored.transcript_scores

    again = run_experiment(parse_config(text), text, store)  # the server has recovered
    assert again.resumed and again.errors == 0 and again.finished == 8
    assert summarize(store, outcome.run_id).status == "finished"
    assert all(len(c.conversation.turns) >= 2 for c in store.conversations(outcome.run_id))
