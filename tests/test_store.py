from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, inspect

from sparring.conversation import Conversation
from sparring.errors import ConflictError
from sparring.store import Store, default_database_path, repository
from sparring.store.database import alembic_config
from sparring.store.repository import FinishWrite, TurnWrite, UnitRecord
from sparring.store.schema import Base


def test_migrations_create_exactly_the_declared_schema(sqlite_url):
    store = Store(sqlite_url)
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    assert "alembic_version" in inspect(store.engine).get_table_names()


def test_opening_twice_is_idempotent(sqlite_url):
    first = Store(sqlite_url)
    first.open_run("r", "hash", "", {}, [{"name": "t", "size": "1M", "model_type": "plain lm", "spec": {}}], [])
    tables = inspect(first.engine).get_table_names()
    first.close()
    again = Store(sqlite_url)  # upgrading an up-to-date database changes nothing and loses nothing
    assert inspect(again.engine).get_table_names() == tables
    assert again.run_ids() == ["r"]
    with again.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == \
            ScriptDirectory.from_config(alembic_config()).get_current_head()
    again.close()


def test_default_database_lives_in_the_user_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_database_path() == tmp_path / "sparring" / "sparring.db"


def test_postgres_schema_matches_too(postgres_url):
    store = Store(postgres_url)
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def _plan(count: int, read: list[int], fail_at: int | None = None) -> Iterator[UnitRecord]:
    for index in range(count):
        if index == fail_at:
            raise RuntimeError("the plan broke mid-way")
        read.append(index)
        yield UnitRecord(f"c{index:03d}", "t", "a", f"item{index}", 0, "goal", "a")


def test_a_plan_is_registered_lazily_in_chunks_whole_or_not_at_all(sqlite_url, monkeypatch):
    monkeypatch.setattr(repository, "_PLAN_CHUNK", 3)
    store = Store(sqlite_url)
    target = [{"name": "t", "size": "1M", "model_type": "plain lm", "spec": {}}]
    with pytest.raises(RuntimeError):  # one transaction: a plan that fails half-way registers nothing
        store.open_run("r", "hash", "", {}, target, _plan(10, [], fail_at=7))
    assert store.run_ids() == []

    inserts: list[int] = []  # rows in each INSERT of planned conversations

    def count(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.startswith("INSERT INTO conversations"):
            inserts.append(len(parameters) if executemany else 1)

    event.listen(store.engine, "before_cursor_execute", count)
    read: list[int] = []
    assert store.open_run("r", "hash", "", {}, target, _plan(10, read)) is False
    assert read == list(range(10)) and inserts == [3, 3, 3, 1]  # the plan is read and written a chunk at a time
    store.set_status("r", "finished")
    store.apply([FinishWrite("c004", 0)])
    # a resume with a longer plan adds the missing units and leaves the known ones as they are
    assert store.open_run("r", "hash", "", {}, target, _plan(12, [])) is True
    conversations = {c.unit.id: c.status for c in store.conversations("r")}
    assert len(conversations) == 12 and conversations["c004"] == "finished"
    assert [c.unit.id for c in store.conversations("r", ids=["c003", "c001"])] == ["c001", "c003"]


def test_a_second_writer_of_the_same_turns_gets_a_conflict_naming_the_conversation_and_nothing_is_kept(sqlite_url):
    store = Store(sqlite_url)
    store.open_run("r", "hash", "", {}, [{"name": "t", "size": "1M", "model_type": "plain lm", "spec": {}}],
                   list(_plan(2, [])))
    conversation = Conversation()
    conversation.add_human("hello")
    turn = TurnWrite("c001", list(enumerate(conversation.turns)))
    store.apply([turn])
    with pytest.raises(ConflictError, match=r"conversation c001 was written by another process.*run the command again"):
        store.apply([FinishWrite("c000", 1), turn])  # one transaction: c000's finish is not kept either
    assert {c.unit.id: c.status for c in store.conversations("r")} == {"c000": "open", "c001": "open"}
