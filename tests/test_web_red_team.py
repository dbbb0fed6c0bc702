"""The red-team flow end to end over HTTP, on the scripted model, and its export through export_run."""

from __future__ import annotations

import asyncio
import gzip
import json
import re
from pathlib import Path

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from test_web_support import (  # noqa: F401  (web_fixture is a fixture)
    DISTINCT,
    Web,
    campaign_toml,
    csrf_of,
    end,
    follow,
    pick,
    post,
    send,
    start_conversation,
    web_fixture,
)

from sparring.datasets.export import export_run
from sparring.datasets.hh_rlhf import read_pairs
from sparring.store.campaign_schema import AttemptRow, TaskRow
from sparring.store.schema import (
    ConversationRow,
    PairRow,
    ScoreRow,
    TranscriptScoreRow,
    UtteranceRow,
)


def _utterances(web: Web, conversation_id: str) -> list[UtteranceRow]:
    with Session(web.ctx.engine) as db:
        return list(db.scalars(select(UtteranceRow).where(UtteranceRow.conversation_id == conversation_id)
                               .order_by(UtteranceRow.turn_index, UtteranceRow.sample_index)))


def test_full_task_then_export(web: Web, tmp_path: Path):
    admin = web.login("root", "admin")
    campaign = web.campaign(admin, responses_per_turn=3, conversations_per_task=2)
    red = web.login("rita", "red_teamer")

    warning = red.get(f"/campaigns/{campaign}")
    assert 'id="content-warning"' in warning.text and "Offensive content ahead." in warning.text
    conversation = start_conversation(red, campaign, "Get the assistant to explain lock picking")
    chat = red.get(f"/conversations/{conversation}")
    assert chat.status_code == 200 and 'id="message-form"' in chat.text
    assert "Get the assistant to explain lock picking" in chat.text

    for turn, choice in ((0, 2), (1, 0)):
        sent = send(red, conversation, f"Question number {turn}")
        assert sent.status_code == 303
        page = red.get(f"/conversations/{conversation}")
        assert len(re.findall(r'data-testid="response-\d"', page.text)) == 3  # N responses side by side
        assert pick(red, conversation, choice).status_code == 303

    rows = _utterances(web, conversation)
    assert [(u.turn_index, u.role) for u in rows] == [(0, "human"), (1, "assistant"), (1, "assistant"),
                                                     (1, "assistant"), (2, "human"), (3, "assistant"),
                                                     (3, "assistant"), (3, "assistant")]
    assert [u.sample_index for u in rows if u.picked and u.role == "assistant"] == [2, 0]
    with Session(web.ctx.engine) as db:
        pairs = list(db.scalars(select(PairRow).where(PairRow.conversation_id == conversation)))
        pseudonym = db.scalar(select(ConversationRow.red_team_member).where(ConversationRow.id == conversation))
        assert db.scalar(select(func.count()).select_from(ScoreRow).where(
            ScoreRow.conversation_id == conversation)) == 6  # every sample scored by the campaign's scorer
    assert sorted((p.turn_index, p.chosen_sample, p.rejected_sample) for p in pairs) == [
        (1, 0, 2), (1, 1, 2), (3, 1, 0), (3, 2, 0)]
    assert {p.source for p in pairs} == {f"person:{pseudonym}"} and pseudonym.startswith("rt-")

    tags = ["Weapons", "Property crime & vandalism"]
    assert end(red, conversation, 3, tags).status_code == 303
    with Session(web.ctx.engine) as db:
        row = db.get(ConversationRow, conversation)
        assert (row.status, row.rating, row.attack, row.n_turns) == ("finished", 3.0, "person", 4)
        assert db.get(AttemptRow, conversation).tags == tags
        aggregates = {(t.scorer, t.aggregate) for t in db.scalars(select(TranscriptScoreRow).where(
            TranscriptScoreRow.conversation_id == conversation))}
        assert ("refusal", "min") in aggregates and ("refusal", "task_description") in aggregates

    second = start_conversation(red, campaign, "Second attempt")
    send(red, second, "Hello")
    pick(red, second, 1)
    end(red, second, 0)
    task_page = red.get(f"/tasks/{_task_of(web, second)}")
    assert 'id="task-complete"' in task_page.text

    run_id = web.campaign_row(campaign).run_id
    result = export_run(web.ctx.store, run_id, tmp_path / "out")
    with gzip.open(tmp_path / "out" / "red_team_attempts.jsonl.gz", "rt", encoding="utf-8") as handle:
        records = json.load(handle)
    assert len(records) == result.conversations == 2
    first = next(r for r in records if r["task_description"].startswith("Get the assistant"))
    assert first["rating"] == 3.0 and first["red_team_member_id"] == 0  # one person: integers, as released
    meta = json.loads((tmp_path / "out" / "export_meta.json").read_text())
    assert meta["red_team_members"] == [{"id": 0, "kind": "person"}]  # pseudonyms never leave the database
    assert pseudonym not in (tmp_path / "out" / "export_meta.json").read_text()
    assert first["tags"] == tags  # the red teamer's own harm tags travel with the export
    assert next(r for r in records if r is not first)["tags"] is None
    assert first["transcript"].startswith("\n\nHuman: Question number 0\n\nAssistant: ")
    assert "\n\nHuman: Question number 1\n\nAssistant: " in first["transcript"]
    assert first["num_params"] == "1M" and first["model_type"] in ("plain lm", "context distillation")
    texts = {(u.turn_index, u.sample_index): u.text for u in rows}
    assert first["transcript"].endswith(texts[(3, 0)])
    assert first["min_harmlessness_score_transcript"] is not None
    exported = list(read_pairs(tmp_path / "out" / "comparison_pairs.jsonl"))
    with Session(web.ctx.engine) as db:
        stored_pairs = db.scalar(select(func.count()).select_from(PairRow)) or 0
    assert len(exported) + result.skipped_identical_pairs == stored_pairs == 4 + 2
    # the rejected side of each pair is the response the person picked as more harmful
    picked = {u.text for u in _utterances(web, conversation) + _utterances(web, second)
              if u.role == "assistant" and u.picked}
    for pair in exported:
        assert pair.chosen != pair.rejected
        assert any(pair.rejected.endswith(text) for text in picked)
    # the store reads campaigns like any run
    assert {c.unit.attack for c in web.ctx.store.conversations(run_id)} == {"person"}


def _task_of(web: Web, conversation_id: str) -> int:
    with Session(web.ctx.engine) as db:
        return db.get(AttemptRow, conversation_id).task_id


def test_model_output_is_escaped(web: Web):
    hostile = '<script>alert(1)</script><img src=x onerror="alert(2)"> & <b>bold</b>'
    admin = web.login("root", "admin")
    campaign = web.campaign(admin, toml=campaign_toml([hostile]))
    red = web.login("rita", "red_teamer")
    conversation = start_conversation(red, campaign, "<i>my</i> description")
    send(red, conversation, "<script>alert('me')</script>")
    for page in (red.get(f"/conversations/{conversation}"),):
        assert "<script>alert(1)</script>" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&#34;alert(2)&#34;&gt;" in page.text
        assert "<b>bold</b>" not in page.text and "&amp; &lt;b&gt;bold&lt;/b&gt;" in page.text
        assert "<script>alert('me')</script>" not in page.text and "<i>my</i>" not in page.text
    pick(red, conversation, 0)
    picked_page = red.get(f"/conversations/{conversation}")
    assert "<script>alert(1)</script>" not in picked_page.text and "&lt;script&gt;alert(1)" in picked_page.text
    end_page = red.get(f"/conversations/{conversation}/end")
    assert "<script>alert(1)</script>" not in end_page.text
    # the only scripts on the page are the app's own file
    assert re.findall(r"<script[^>]*>", picked_page.text) == ['<script src="/static/sparring.js" defer>']


def test_another_persons_conversation_is_not_found(web: Web):
    admin = web.login("root", "admin")
    campaign = web.campaign(admin)
    alice = web.login("alice", "red_teamer")
    bob = web.login("bob", "red_teamer")
    conversation = start_conversation(alice, campaign, "Alice's secret plan")
    send(alice, conversation, "alice writes this")
    page = bob.get(f"/conversations/{conversation}")
    assert page.status_code == 404 and "alice writes this" not in page.text
    assert bob.get("/conversations/does-not-exist").status_code == 404  # same answer as a missing id
    assert bob.get(f"/conversations/{conversation}/end").status_code == 404
    token = csrf_of(bob.get("/").text)
    for action, data in (("messages", {"message": "hijack", "turn": "2"}), ("pick", {"turn": "1", "sample": "0"}),
                         ("retry", {"turn": "2"}), ("end", {"rating": "4"}), ("skip", {})):
        response = bob.post(f"/conversations/{conversation}/{action}", data={**data, "csrf_token": token})
        assert response.status_code == 404, action
    assert bob.get(f"/tasks/{_task_of(web, conversation)}").status_code == 404
    assert len(_utterances(web, conversation)) == 3 and all("hijack" not in u.text for u in _utterances(web, conversation))
    with Session(web.ctx.engine) as db:
        assert db.get(ConversationRow, conversation).status == "open"


def test_targets_are_blind_and_balanced(web: Web):
    admin = web.login("root", "admin")
    campaign = web.campaign(admin, conversations_per_task=4)
    red = web.login("rita", "red_teamer")
    targets = []
    for i in range(4):
        conversation = start_conversation(red, campaign, f"attempt {i}")
        send(red, conversation, "hi")
        page = red.get(f"/conversations/{conversation}")
        for secret in ("alpha-target", "beta-target", "plain", "prompted", "scripted", "fake"):
            assert secret not in page.text
        pick(red, conversation, 0)
        end(red, conversation, 1)
        with Session(web.ctx.engine) as db:
            targets.append(db.get(ConversationRow, conversation).target)
    assert sorted(targets) == ["alpha-target", "alpha-target", "beta-target", "beta-target"]
    admin_page = admin.get(f"/admin/campaigns/{campaign}")
    assert "alpha-target" in admin_page.text and "beta-target" in admin_page.text
    progress = admin.get(f"/admin/campaigns/{campaign}/progress.json").json()
    assert {row["target"]: row["finished"] for row in progress["targets"]} == {"alpha-target": 2, "beta-target": 2}
    assert sum(row["picks"] for row in progress["targets"]) == 4


def test_failing_model_keeps_the_message_and_retry_answers_it(web: Web):
    admin = web.login("root", "admin")
    campaign = web.campaign(admin, toml=campaign_toml(DISTINCT, fail_every=2))
    red = web.login("rita", "red_teamer")
    conversation = start_conversation(red, campaign)
    send(red, conversation, "first message")  # call 1 succeeds
    pick(red, conversation, 0)
    send(red, conversation, "my carefully typed second message")  # call 2 fails
    page = red.get(f"/conversations/{conversation}")
    assert 'id="model-error"' in page.text and "The assistant failed" in page.text
    assert "my carefully typed second message" in page.text and 'id="retry"' in page.text
    assert [u.text for u in _utterances(web, conversation) if u.turn_index == 2] == ["my carefully typed second message"]
    turn = re.search(r'name="turn" value="(\d+)"', page.text).group(1)
    retried = red.post(f"/conversations/{conversation}/retry", data={"turn": turn, "csrf_token": csrf_of(page.text)})
    assert retried.status_code == 303
    page = red.get(f"/conversations/{conversation}")
    assert 'id="model-error"' not in page.text and 'data-testid="response-1"' in page.text
    rows = _utterances(web, conversation)
    assert [(u.turn_index, u.role) for u in rows][-3:] == [(2, "human"), (3, "assistant"), (3, "assistant")]
    assert sum(1 for u in rows if u.role == "human") == 2  # the message was not duplicated
    with Session(web.ctx.engine) as db:
        assert db.get(ConversationRow, conversation).error is None


def test_slow_model_times_out_with_a_retry(sqlite_url: str):
    from test_web_support import make_web

    harness = make_web(sqlite_url, model_timeout_s=0.05)
    admin = harness.login("root", "admin")
    campaign = harness.campaign(admin, toml=campaign_toml(DISTINCT, delay_s=5))
    red = harness.login("rita", "red_teamer")
    conversation = start_conversation(red, campaign)
    send(red, conversation, "are you there?")
    page = red.get(f"/conversations/{conversation}")
    assert "did not answer within 0.05 seconds" in page.text and 'id="retry"' in page.text
    assert "are you there?" in page.text


def test_double_submit_creates_no_duplicate(web: Web):
    """Two identical message posts and two picks in flight at once: one turn, one pick, no error page."""
    admin = web.login("root", "admin")
    campaign = web.campaign(admin, toml=campaign_toml(DISTINCT, delay_s=0.2))
    red = web.login("rita", "red_teamer")
    conversation = start_conversation(red, campaign)
    page = red.get(f"/conversations/{conversation}")
    form = {"message": "only once please", "turn": "0", "csrf_token": csrf_of(page.text)}

    async def twice(path: str, data: dict) -> list[int]:
        transport = httpx.ASGITransport(app=web.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver",
                                     cookies=dict(red.cookies)) as client:
            responses = await asyncio.gather(client.post(path, data=data), client.post(path, data=data))
        return [r.status_code for r in responses]

    assert asyncio.run(twice(f"/conversations/{conversation}/messages", form)) == [303, 303]
    rows = _utterances(web, conversation)
    assert [(u.turn_index, u.role) for u in rows] == [(0, "human"), (1, "assistant"), (1, "assistant")]
    pick_form = {"turn": "1", "sample": "1", "csrf_token": form["csrf_token"]}
    assert asyncio.run(twice(f"/conversations/{conversation}/pick", pick_form)) == [303, 303]
    with Session(web.ctx.engine) as db:
        assert db.scalar(select(func.count()).select_from(PairRow)) == 1
    # a stale form (the turn it showed is gone) is a redirect back, never a 500 or a new turn
    stale = red.post(f"/conversations/{conversation}/messages", data=form)
    assert stale.status_code == 303 and len(_utterances(web, conversation)) == 3
    # starting the same conversation twice from one task page starts one
    task = _task_of(web, conversation)
    end(red, conversation, 2)
    page = red.get(f"/tasks/{task}")
    data = {"task_description": "twice", "csrf_token": csrf_of(page.text)}
    first = red.post(f"/tasks/{task}/conversations", data=data)
    again = red.post(f"/tasks/{task}/conversations", data=data)
    assert first.status_code == again.status_code == 303
    with Session(web.ctx.engine) as db:
        assert db.scalar(select(func.count()).select_from(AttemptRow).where(AttemptRow.task_id == task)) == 2


def test_validation_errors_name_the_field_and_keep_the_text(web: Web):
    admin = web.login("root", "admin")
    campaign = web.campaign(admin)
    red = web.login("rita", "red_teamer")
    conversation = start_conversation(red, campaign)
    too_long = "x" * 5000
    response = send(red, conversation, too_long)
    assert response.status_code == 400 and "message: write something" in response.text and too_long in response.text
    send(red, conversation, "ok")
    pick(red, conversation, 0)
    page = red.get(f"/conversations/{conversation}/end")
    token = csrf_of(page.text)
    bad = red.post(f"/conversations/{conversation}/end", data={"rating": "7", "csrf_token": token})
    assert bad.status_code == 400 and "rating: choose" in bad.text
    three = red.post(f"/conversations/{conversation}/end", data={
        "rating": "2", "tags": ["Weapons", "Theft", "Fraud & deception"], "csrf_token": token})
    assert three.status_code == 400 and "tags: at most 2" in three.text
    unknown = red.post(f"/conversations/{conversation}/end", data={"rating": "2", "tags": ["Made up"], "csrf_token": token})
    assert unknown.status_code == 400 and "unknown harm tag" in unknown.text
    with Session(web.ctx.engine) as db:
        assert db.get(ConversationRow, conversation).status == "open"


def test_skipping_a_conversation_and_a_task(web: Web):
    admin = web.login("root", "admin")
    campaign = web.campaign(admin, conversations_per_task=2)
    red = web.login("rita", "red_teamer")
    conversation = start_conversation(red, campaign)
    send(red, conversation, "hmm, not this")
    skipped = post(red, f"/conversations/{conversation}", f"/conversations/{conversation}/skip")
    assert skipped.status_code == 303
    task = _task_of(web, conversation)
    page = red.get(f"/tasks/{task}")
    assert 'id="description-form"' in page.text and "Conversation 2 of 2" in page.text
    out = post(red, f"/tasks/{task}", f"/tasks/{task}/skip")
    assert out.status_code == 303 and out.headers["location"] == f"/campaigns/{campaign}?skipped=1"
    assert "Skipping never counts against you" in red.get(out.headers["location"]).text
    with Session(web.ctx.engine) as db:
        assert db.get(ConversationRow, conversation).status == "skipped"
        assert db.get(AttemptRow, conversation).skipped is True
        assert db.get(TaskRow, task).status == "skipped"
    # skipped conversations are not exported
    run_id = web.campaign_row(campaign).run_id
    assert web.ctx.store.conversations(run_id, ["finished"]) == []


def test_topic_opt_outs_change_the_suggestions(web: Web):
    admin = web.login("root", "admin")
    campaign = web.campaign(admin)
    red = web.login("rita", "red_teamer")
    saved = post(red, f"/campaigns/{campaign}/topics", f"/campaigns/{campaign}/topics",
                 {"opt_out": ["self-harm", "weapons"]})
    assert saved.status_code == 303
    page = red.get(f"/campaigns/{campaign}/topics")
    assert re.search(r'value="self-harm" data-testid="opt-out-2"\s+checked', page.text)
    task = follow(red, post(red, f"/campaigns/{campaign}", f"/campaigns/{campaign}/tasks"))
    suggestions = re.findall(r'<li data-testid="topic-suggestion">([^<]*)</li>', task.text)
    assert suggestions == ["fraud"]
    other = web.login("otto", "red_teamer")  # opt-outs are per person
    task = follow(other, post(other, f"/campaigns/{campaign}", f"/campaigns/{campaign}/tasks"))
    assert re.findall(r'<li data-testid="topic-suggestion">([^<]*)</li>', task.text) == ["weapons", "fraud", "self-harm"]
    bad = post(red, f"/campaigns/{campaign}/topics", f"/campaigns/{campaign}/topics", {"opt_out": ["aliens"]})
    assert bad.status_code == 400 and "opt_out" in bad.text


def test_campaign_form_errors_name_the_key(web: Web):
    admin = web.login("root", "admin")
    page = admin.get("/admin/campaigns/new")
    assert 'name="targets_toml"' in page.text and "smollm2-135m" in page.text  # the embedded model by default
    bad_toml = campaign_toml(DISTINCT).replace('model = "fake"\nintervention = "prompted"', 'model = "nope"\nintervention = "prompted"')
    base = {"name": "c", "instructions": "i", "content_warning": "w", "topics": "", "conversations_per_task": "5",
            "responses_per_turn": "2", "suggested_turns": "4", "break_minutes": "30", "survey_every_tasks": "10"}
    response = post(admin, "/admin/campaigns/new", "/admin/campaigns", {**base, "targets_toml": bad_toml})
    assert response.status_code == 400 and "targets[1].model: no model named &#39;nope&#39;" in response.text
    assert "nope" in response.text  # the form keeps what was typed
    response = post(admin, "/admin/campaigns/new", "/admin/campaigns",
                    {**base, "targets_toml": campaign_toml(DISTINCT, temperture=1)})
    assert response.status_code == 400 and "models[0].temperture: unknown key" in response.text
    response = post(admin, "/admin/campaigns/new", "/admin/campaigns",
                    {**base, "responses_per_turn": "1", "targets_toml": campaign_toml(DISTINCT)})
    assert response.status_code == 400 and "responses_per_turn" in response.text
    with Session(web.ctx.engine) as db:  # nothing half-written
        from sparring.store.campaign_schema import CampaignRow
        from sparring.store.schema import RunRow

        assert db.scalar(select(func.count()).select_from(RunRow)) == 0
        assert db.scalar(select(func.count()).select_from(CampaignRow)) == 0


def test_closed_campaign_takes_no_new_work(web: Web):
    admin = web.login("root", "admin")
    campaign = web.campaign(admin)
    red = web.login("rita", "red_teamer")
    assert 'id="open-campaign-' in red.get("/").text
    closed = post(admin, f"/admin/campaigns/{campaign}", f"/admin/campaigns/{campaign}/status", {"status": "closed"})
    assert closed.status_code == 303
    assert red.get(f"/campaigns/{campaign}").status_code == 404
    assert 'id="no-campaigns"' in red.get("/").text


def test_a_response_the_scorer_cannot_judge_is_stored_unscored_and_the_conversation_goes_on(web: Web):
    """An LLM judge whose reply has no rating: the web path records 'unscored', never a number, and carries on."""
    judge = '[scorer]\nname = "llm-judge"\nmodel = {backend = "scripted", responses = ["no rating in this reply"]}'
    admin = web.login("root", "admin")
    campaign = web.campaign(admin, toml=campaign_toml(DISTINCT).replace('[scorer]\nname = "refusal"', judge))
    red = web.login("rita", "red_teamer")
    conversation = start_conversation(red, campaign)
    assert send(red, conversation, "First question").status_code == 303
    assert pick(red, conversation, 1).status_code == 303
    assert send(red, conversation, "Second question").status_code == 303  # the stored turn reads back
    with Session(web.ctx.engine) as db:
        rows = list(db.scalars(select(ScoreRow).where(ScoreRow.conversation_id == conversation)))
    judged = [r for r in rows if r.scorer == "llm-judge"]
    assert len(judged) == 4 and all(r.value is None and r.flagged is None for r in judged)
    assert {r.unscored for r in judged} == {"judge reply had no rating"}
    assert all(r.value is not None for r in rows if r.scorer == "refusal")  # the refusal rate is still measured
