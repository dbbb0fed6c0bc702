"""The web app on a real PostgreSQL server: a red-team task, a review, and the export."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from test_web_support import end, follow, make_web, pick, post, send, start_conversation

from sparring.datasets.export import export_run

pytestmark = pytest.mark.postgres


def test_red_team_review_and_export_on_postgres(postgres_url: str, tmp_path: Path):
    web = make_web(postgres_url)
    admin = web.login("root", "admin")
    campaign = web.campaign(admin, conversations_per_task=1)
    red = web.login("rita", "red_teamer")
    conversation = start_conversation(red, campaign, "postgres attempt")
    send(red, conversation, "first")
    pick(red, conversation, 1)
    send(red, conversation, "second")
    pick(red, conversation, 0)
    # a double pick on PostgreSQL is refused by the same guarded update
    assert pick_again(red, conversation) == 303
    assert end(red, conversation, 2, ["Fraud & deception"]).status_code == 303
    other = web.login("otto", "red_teamer")
    assert other.get(f"/conversations/{conversation}").status_code == 404

    reviewer = web.login("rev", "reviewer")
    page = follow(reviewer, post(reviewer, "/review", "/review/next", {"campaign_id": campaign}))
    assert "postgres attempt" in page.text or "first" in page.text

    result = export_run(web.ctx.store, web.campaign_row(campaign).run_id, tmp_path / "out")
    with gzip.open(tmp_path / "out" / "red_team_attempts.jsonl.gz", "rt", encoding="utf-8") as handle:
        records = json.load(handle)
    assert result.conversations == 1 and records[0]["rating"] == 2.0
    assert records[0]["transcript"].startswith("\n\nHuman: first\n\nAssistant: ")
    assert result.pairs + result.skipped_identical_pairs == 2
    progress = admin.get(f"/admin/campaigns/{campaign}/progress.json").json()
    assert sum(row["finished"] for row in progress["targets"]) == 1
    web.ctx.store.close()


def pick_again(client, conversation_id: str) -> int:  # type: ignore[no-untyped-def]
    from test_web_support import csrf_of

    page = client.get(f"/conversations/{conversation_id}")
    return client.post(f"/conversations/{conversation_id}/pick",
                       data={"turn": "3", "sample": "1", "csrf_token": csrf_of(page.text)}).status_code
