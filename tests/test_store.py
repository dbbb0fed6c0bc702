from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from sparring.store import Store, default_database_path
from sparring.store.database import alembic_config
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
