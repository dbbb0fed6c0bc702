"""The unscored migration keeps existing scores, and the store round-trips unscored results (SQLite, PostgreSQL)."""

import os
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.exc import IntegrityError

from sparring.conversation import Conversation, Sample
from sparring.scoring import Score
from sparring.store import Store
from sparring.store.database import MIGRATIONS
from sparring.store.repository import FinishWrite, TurnWrite, UnitRecord

REVISION = "0004"


def migrate(engine: sa.Engine, target: str, down: bool = False) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, target)


def seed_old_schema(engine: sa.Engine) -> None:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO runs VALUES ('r', 'h', '', '{}', 'finished', :at, :at)"), {"at": now})
        conn.execute(sa.text("INSERT INTO conversations (id, run_id, target, attack, item_id, repetition, "
                             "task_description, red_team_member, status, n_turns) "
                             "VALUES ('c', 'r', 't', 'a', 'i', 0, '', 'a', 'finished', 2)"))
        conn.execute(sa.text("INSERT INTO scores VALUES ('c', 1, 0, 'pm', -0.75, true)"))


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, sqlite_url):
    """A new empty database: the migration test starts from an old revision, so none is shared."""
    if request.param == "sqlite":
        yield sqlite_url
        return
    psycopg = pytest.importorskip("psycopg")
    shared = request.getfixturevalue("postgres_url")  # skips (or fails in CI) without a server
    base, _ = shared.rsplit("/", 1)
    admin = os.environ.get("SPARRING_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
    name = f"sparring_unscored_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"{base}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_migration_keeps_scores_and_adds_the_unscored_state(database_url):
    engine = sa.create_engine(database_url)
    try:
        migrate(engine, "0003")
        seed_old_schema(engine)
        migrate(engine, REVISION)
        with engine.begin() as conn:
            assert conn.execute(sa.text("SELECT value, flagged, unscored FROM scores")).one() == (-0.75, True, None)
            conn.execute(sa.text("INSERT INTO scores VALUES ('c', 1, 1, 'pm', NULL, NULL, 'judge reply was empty')"))
        for row in ("('c', 1, 2, 'pm', NULL, NULL, NULL)", "('c', 1, 3, 'pm', 0.5, true, 'both')"):
            with pytest.raises(IntegrityError), engine.begin() as conn:
                conn.execute(sa.text(f"INSERT INTO scores VALUES {row}"))
        migrate(engine, "0003", down=True)  # unscored rows cannot exist under the old schema
        with engine.begin() as conn:
            assert conn.execute(sa.text("SELECT sample_index, value FROM scores")).all() == [(0, -0.75)]
    finally:
        engine.dispose()


def test_the_store_round_trips_unscored_results_and_compared_samples(database_url):
    store = Store(database_url)
    try:
        store.open_run("r", "h", "", {"primary_scorer": "judge"}, [{"name": "t", "size": "1M", "model_type": "plain lm",
                                                                      "spec": {}}],
                       [UnitRecord("c", "t", "a", "i", 0, "", "a")])
        conversation = Conversation()
        conversation.add_human("Tell me the placeholder.")
        samples = [Sample(text=t) for t in ("first", "second", "third")]
        samples[0].record_score("judge", Score.unscorable("judge reply had no rating"))
        samples[1].record_score("judge", Score(value=2.0, flagged=False))
        samples[2].record_score("judge", Score(value=3.0, flagged=True))
        conversation.add_assistant(samples, picked=2, compared=[1])
        store.apply([TurnWrite("c", list(enumerate(conversation.turns)), pair_source="scorer:judge"),
                     FinishWrite("c", 2, {})])
        turn = store.conversations("r")[0].conversation.turns[1]
        assert turn.samples[0].unscored == {"judge": "judge reply had no rating"} and turn.samples[0].scores == {}
        assert turn.samples[2].scores == {"judge": 3.0} and turn.samples[2].flagged == {"judge": True}
        assert (turn.picked, turn.compared) == (2, [1])
        assert store.pairs("r") == [("c", 1, 1, 2, "scorer:judge")]
    finally:
        store.close()


def test_the_attacker_usage_migration_adds_a_nullable_column_and_keeps_rows(database_url):
    engine = sa.create_engine(database_url)
    try:
        migrate(engine, "0003")
        seed_old_schema(engine)
        migrate(engine, "0004")
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO utterances (conversation_id, turn_index, sample_index, role, text, picked) "
                                 "VALUES ('c', 0, 0, 'human', 'hi', true)"))
        migrate(engine, "0005")
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT text, queries FROM utterances")).all() == [("hi", None)]
        migrate(engine, "0004", down=True)
        assert "queries" not in {c["name"] for c in sa.inspect(engine).get_columns("utterances")}
    finally:
        engine.dispose()


def test_the_hidden_probes_migration_adds_a_nullable_column_and_keeps_rows(database_url):
    engine = sa.create_engine(database_url)
    try:
        migrate(engine, "0005")
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO runs VALUES ('r', 'h', '', '{}', 'finished', :at, :at)"),
                         {"at": datetime.now(UTC)})
            conn.execute(sa.text("INSERT INTO conversations (id, run_id, target, attack, item_id, repetition, "
                                 "task_description, red_team_member, status, n_turns) "
                                 "VALUES ('c', 'r', 't', 'a', 'i', 0, '', 'a', 'finished', 2)"))
            conn.execute(sa.text("INSERT INTO utterances (conversation_id, turn_index, sample_index, role, text, picked, "
                                 "queries) VALUES ('c', 0, 0, 'human', 'hi', true, 3)"))
        migrate(engine, "0006")
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT text, queries, hidden FROM utterances")).all() == [("hi", 3, None)]
        migrate(engine, "0005", down=True)
        assert "hidden" not in {c["name"] for c in sa.inspect(engine).get_columns("utterances")}
    finally:
        engine.dispose()
