"""`sparring report` on a released-format file, a run and a campaign."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from experiment_support import scripted_toml
from report_support import write_small_planted
from sqlalchemy import insert, update
from typer.testing import CliRunner

from sparring.analysis.dataset import read_source
from sparring.cli import app
from sparring.experiments import parse_config, run_experiment
from sparring.store import Store
from sparring.store.campaign_schema import AttemptRow, CampaignRow, TaskRow, UserRow
from sparring.store.schema import ConversationRow

runner = CliRunner()


def _report(args: list[str], output: Path) -> str:
    result = runner.invoke(app, ["report", *args, "-o", str(output)])
    assert result.exit_code == 0, result.output
    assert output.is_file() and "Content warning" in output.read_text(encoding="utf-8")
    assert f"report: {output}" in result.output.replace("\n", "")
    assert "time per part:" in result.output
    return output.read_text(encoding="utf-8")


def test_report_on_a_released_file(tmp_path: Path):
    path = tmp_path / "red_team_attempts.jsonl.gz"
    write_small_planted(path)
    html = _report([str(path), "--no-map"], tmp_path / "out" / "report.html")
    figures = tmp_path / "out" / "report_figures"
    assert (figures / "fig1_cells.png").is_file() and (figures / "fig1_cells.svg").is_file()
    assert f"Sample: {len(read_source(str(path)).attempts):,} attempts" in html
    assert "embeddings switched off" in html


def test_report_on_a_run_compared_with_a_file(tmp_path: Path, sqlite_url: str):
    text = scripted_toml(limit=5)
    store = Store(sqlite_url)
    outcome = run_experiment(parse_config(text), text, store)
    store.close()
    path = tmp_path / "red_team_attempts.jsonl.gz"
    write_small_planted(path)
    html = _report([outcome.run_id, "--db", sqlite_url, "--compare", str(path), "--no-map"], tmp_path / "run.html")
    assert f"run {outcome.run_id}" in html
    assert 'id="comparison"' in html and "not available for this source: no extra reviews" in html


def test_report_on_a_campaign(tmp_path: Path, sqlite_url: str):
    text = scripted_toml(limit=3)
    store = Store(sqlite_url)
    outcome = run_experiment(parse_config(text), text, store)
    conversations = [c.unit.id for c in store.conversations(outcome.run_id, ["finished"])]
    at = datetime.now(UTC)
    with store.engine.begin() as conn:
        conn.execute(insert(UserRow), [{"id": i, "username": f"user{i}", "password_hash": "-", "role": "red_teamer",
                                        "pseudonym": f"pseudo-{i}", "active": True, "created_at": at} for i in (1, 2)])
        conn.execute(insert(CampaignRow).values(id="spring", run_id=outcome.run_id, name="Spring", instructions="",
                                                content_warning="", topics=[], status="open", created_at=at))
        conn.execute(insert(TaskRow), [{"id": i, "campaign_id": "spring", "user_id": i, "status": "finished",
                                        "created_at": at} for i in (1, 2)])
        conn.execute(insert(AttemptRow), [
            {"conversation_id": cid, "task_id": 1 + i % 2, "user_id": 1 + i % 2, "position": i,
             "tags": ["Theft"] if i % 3 == 0 else None, "skipped": False, "started_at": at}
            for i, cid in enumerate(conversations)])
        for i, cid in enumerate(conversations):
            conn.execute(update(ConversationRow).where(ConversationRow.id == cid).values(rating=float(i % 5)))
    store.close()
    html = _report(["spring", "--db", sqlite_url], tmp_path / "campaign.html")
    assert "campaign spring" in html and "Theft" in html
    assert "fewer than 20 transcripts" in html  # six attempts: too few to map, said rather than failed
