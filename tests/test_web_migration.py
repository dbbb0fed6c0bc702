"""Migration 0003 on a database that already holds campaign data, including what the old races left behind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session
from test_web_security import db_url  # noqa: F401  (fixture: SQLite and PostgreSQL)
from test_web_support import make_web

from sparring.store.campaign_schema import TaskRow, WellbeingSurveyRow
from sparring.store.database import MIGRATIONS, upgrade
from sparring.web.passwords import hash_password
from sparring.web.security import token_hash


def _at_revision(url: str, revision: str):  # type: ignore[no-untyped-def]
    engine = create_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    return engine


def test_upgrade_keeps_data_and_resolves_old_duplicates(db_url: str):  # noqa: F811
    engine = _at_revision(db_url, "0002")
    now = datetime.now(UTC)
    rows = [
        ("INSERT INTO users (id, username, password_hash, role, pseudonym, active, created_at) VALUES "
         "(1, 'rita', :hash, 'red_teamer', 'rt-1', :yes, :now)", {}),
        ("INSERT INTO runs (id, config_hash, config_toml, components, status, created_at, updated_at) VALUES "
         "('campaign-c', 'h', '', '{}', 'running', :now, :now)", {}),
        ("INSERT INTO campaigns (id, run_id, name, instructions, content_warning, topics, conversations_per_task, "
         "responses_per_turn, suggested_turns, break_minutes, survey_every_tasks, max_tokens, status, created_at) "
         "VALUES ('c', 'campaign-c', 'C', 'i', 'w', '[]', 5, 2, 4, 30, 10, 32, 'open', :now)", {}),
        ("INSERT INTO tasks (id, campaign_id, user_id, status, created_at) VALUES (1, 'c', 1, 'open', :now)", {}),
        ("INSERT INTO tasks (id, campaign_id, user_id, status, created_at) VALUES (2, 'c', 1, 'open', :now)", {}),
        ("INSERT INTO tasks (id, campaign_id, user_id, status, created_at) VALUES (3, 'c', 1, 'finished', :now)", {}),
        ("INSERT INTO wellbeing_surveys (id, user_id, campaign_id, answers, tasks_done, created_at) VALUES "
         "(1, 1, 'c', '{}', 10, :now)", {}),
        ("INSERT INTO wellbeing_surveys (id, user_id, campaign_id, answers, tasks_done, created_at) VALUES "
         "(2, 1, 'c', '{}', 10, :now)", {}),
        ("INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) VALUES "
         "(:token, 1, 'csrf', :now, :later)", {}),
    ]
    params = {"hash": hash_password("correct horse battery"), "yes": True, "now": now,
              "later": now + timedelta(hours=1), "token": token_hash("live-session-token")}
    with engine.begin() as connection:
        for sql, _ in rows:
            connection.execute(text(sql), params)
    upgrade(engine)
    with Session(engine) as db:
        assert db.scalar(select(func.count()).select_from(TaskRow).where(TaskRow.status == "open")) == 1
        assert db.scalar(select(TaskRow.id).where(TaskRow.status == "open")) == 2  # the newest stays open
        assert db.scalar(select(TaskRow.status).where(TaskRow.id == 1)) == "skipped"
        assert db.scalar(select(func.count()).select_from(WellbeingSurveyRow)) == 1
    engine.dispose()

    web = make_web(db_url)
    client = web.client()
    client.cookies.set("sparring_session", "live-session-token")
    assert client.get("/").status_code == 200  # the live session survived the upgrade
    web.ctx.store.close()
