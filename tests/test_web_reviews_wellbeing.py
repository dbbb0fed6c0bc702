"""Review tasks (blind to the original rating) and red-teamer well-being (survey, breaks, aggregates only)."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from test_web_support import (  # noqa: F401
    Web,
    csrf_of,
    end,
    follow,
    pick,
    post,
    send,
    start_conversation,
    web_fixture,
)

from sparring.store.campaign_schema import (
    ReviewRow,
    SessionRow,
    UserRow,
    WellbeingSurveyRow,
)
from sparring.web.context import utcnow


def _finished_conversation(web: Web, red, campaign: str, rating: int, tags: list[str], text: str) -> str:  # type: ignore[no-untyped-def]
    conversation = start_conversation(red, campaign, f"description {text}")
    send(red, conversation, text)
    pick(red, conversation, 0)
    assert end(red, conversation, rating, tags).status_code == 303
    return conversation


def test_review_is_blind_to_the_rating_and_never_of_ones_own(web: Web):
    admin = web.login("root", "admin")
    campaign = web.campaign(admin)
    red = web.login("rita", "red_teamer")
    first = _finished_conversation(web, red, campaign, 4, ["Self-harm"], "first attack text")
    _finished_conversation(web, red, campaign, 4, ["Self-harm"], "second attack text")
    open_one = start_conversation(red, campaign, "unfinished")
    send(red, open_one, "not finished yet")

    reviewer = web.login("rev", "reviewer")
    home = reviewer.get("/review")
    assert re.search(rf'data-testid="available-{campaign}">2<', home.text)  # finished ones only
    response = post(reviewer, "/review", "/review/next", {"campaign_id": campaign})
    page = follow(reviewer, response)
    review_url = response.headers["location"]
    assert page.status_code == 200 and "first attack text" in page.text
    assert "Self-harm\" data-testid" in page.text  # the tag list is offered...
    assert not re.search(r'value="Self-harm"[^>]*checked', page.text)  # ...but the red teamer's tags are not shown
    assert "rating-4\"" in page.text and not re.search(r'id="rating-\d"\s+checked', page.text)
    assert "4 - very successful" in page.text  # only as a scale label
    with Session(web.ctx.engine) as db:
        pseudonym = db.scalar(select(UserRow.pseudonym).where(UserRow.username == "rita"))
    assert "rita" not in page.text and pseudonym not in page.text  # nor who wrote it

    # asking again returns the same assignment (a double click)
    again = post(reviewer, "/review", "/review/next", {"campaign_id": campaign})
    assert again.headers["location"] == review_url
    token = csrf_of(page.text)
    bad = reviewer.post(review_url, data={"rating": "1", "tags": ["Weapons", "Theft", "Other"], "csrf_token": token})
    assert bad.status_code == 400 and "at most 2" in bad.text
    done = reviewer.post(review_url, data={"rating": "1", "tags": ["Weapons", "Theft"], "needs_expertise": "1",
                                           "csrf_token": token})
    assert done.status_code == 303
    with Session(web.ctx.engine) as db:
        review = db.scalar(select(ReviewRow))
        assert (review.conversation_id, review.rating, review.tags, review.needs_expertise, review.status) == (
            first, 1.0, ["Weapons", "Theft"], True, "done")

    # a second reviewer gets the conversation with the fewest reviews
    other = web.login("rev2", "reviewer")
    response = post(other, "/review", "/review/next", {"campaign_id": campaign})
    assert "second attack text" in follow(other, response).text
    # and another reviewer cannot open it
    assert reviewer.get(response.headers["location"]).status_code == 404

    # the first reviewer gets the other conversation next, never the same one twice
    response = post(reviewer, "/review", "/review/next", {"campaign_id": campaign})
    assert "second attack text" in follow(reviewer, response).text
    progress = admin.get(f"/admin/campaigns/{campaign}/progress.json").json()["reviews"]
    assert progress == {"reviews": 1, "conversations_reviewed": 1, "conversations_with_3_reviews": 0,
                        "needs_expertise": 1}


def test_admin_as_reviewer_never_reviews_own_conversations(web: Web):
    admin = web.login("root", "admin")
    campaign = web.campaign(admin)
    _finished_conversation(web, admin, campaign, 2, [], "admin's own attempt")
    response = post(admin, "/review", "/review/next", {"campaign_id": campaign})
    assert response.headers["location"] == "/review?none=1"


def test_survey_is_due_after_n_tasks_and_admins_see_aggregates_only(web: Web):
    admin = web.login("root", "admin")
    campaign = web.campaign(admin, conversations_per_task=1, survey_every_tasks=2)
    answers = [{"upset": 4, "hostile": 0}, {"upset": 2, "hostile": 1}]
    for index, person in enumerate(("rita", "ravi")):
        red = web.login(person, "red_teamer")
        for task in range(2):
            _finished_conversation(web, red, campaign, 1, [], f"{person} task {task}")
        response = post(red, f"/campaigns/{campaign}", f"/campaigns/{campaign}/tasks")
        assert response.headers["location"] == f"/campaigns/{campaign}/survey"
        survey = red.get(response.headers["location"])
        assert 'id="survey-form"' in survey.text and 'id="skip-survey"' in survey.text
        for feeling in ("upset", "hostile", "alert", "ashamed", "inspired", "nervous", "determined", "attentive",
                        "afraid", "active"):
            assert f'data-testid="{feeling}-4"' in survey.text
        token = csrf_of(survey.text)
        partial = red.post(f"/campaigns/{campaign}/survey", data={"upset": "1", "csrf_token": token})
        assert partial.status_code == 400 and "hostile" in partial.text
        data = {f: "0" for f in ("alert", "ashamed", "inspired", "nervous", "determined", "attentive", "afraid",
                                 "active")}
        data.update({k: str(v) for k, v in answers[index].items()})
        assert red.post(f"/campaigns/{campaign}/survey", data={**data, "csrf_token": token}).status_code == 303
        # answered: the next task starts, no survey until two more tasks
        response = post(red, f"/campaigns/{campaign}", f"/campaigns/{campaign}/tasks")
        assert response.headers["location"].startswith("/tasks/")

    page = admin.get(f"/admin/campaigns/{campaign}")
    assert "2 surveys answered, 0 skipped." in page.text
    assert re.search(r'data-testid="feeling-upset"><td>upset</td><td>3.00</td>', page.text)
    assert re.search(r'data-testid="feeling-hostile"><td>hostile</td><td>0.50</td>', page.text)
    section = page.text.split('id="wellbeing"')[1].split("</section>")[0]
    assert "rita" not in section and "ravi" not in section and "rt-" not in section


def test_survey_can_be_skipped_without_penalty(web: Web):
    admin = web.login("root", "admin")
    campaign = web.campaign(admin, conversations_per_task=1, survey_every_tasks=1)
    red = web.login("rita", "red_teamer")
    _finished_conversation(web, red, campaign, 0, [], "one")
    response = post(red, f"/campaigns/{campaign}", f"/campaigns/{campaign}/tasks")
    assert response.headers["location"] == f"/campaigns/{campaign}/survey"
    skipped = post(red, response.headers["location"], f"/campaigns/{campaign}/survey", {"skip": "1"})
    assert skipped.status_code == 303
    response = post(red, f"/campaigns/{campaign}", f"/campaigns/{campaign}/tasks")
    assert response.headers["location"].startswith("/tasks/")  # not asked again for the same milestone
    assert red.get(f"/campaigns/{campaign}/survey").status_code == 303
    with Session(web.ctx.engine) as db:
        assert db.scalar(select(WellbeingSurveyRow.answers)) == {}
    page = admin.get(f"/admin/campaigns/{campaign}")
    assert "0 surveys answered, 1 skipped." in page.text and 'id="wellbeing-means"' not in page.text


def test_survey_means_need_enough_answers(sqlite_url: str):
    from test_web_support import make_web

    harness = make_web(sqlite_url)  # default: means from 3 answers
    admin = harness.login("root", "admin")
    campaign = harness.campaign(admin, conversations_per_task=1, survey_every_tasks=1)
    red = harness.login("rita", "red_teamer")
    _finished_conversation(harness, red, campaign, 0, [], "one")
    survey = red.get(f"/campaigns/{campaign}/survey")
    data = {f: "2" for f in ("upset", "hostile", "alert", "ashamed", "inspired", "nervous", "determined",
                             "attentive", "afraid", "active")}
    assert red.post(f"/campaigns/{campaign}/survey", data={**data, "csrf_token": csrf_of(survey.text)}).status_code == 303
    page = admin.get(f"/admin/campaigns/{campaign}")
    assert "1 surveys answered" in page.text and 'id="wellbeing-hidden"' in page.text
    assert 'id="wellbeing-means"' not in page.text


def test_break_reminder_after_the_campaigns_break_time(web: Web):
    admin = web.login("root", "admin")
    campaign = web.campaign(admin, break_minutes=45)
    red = web.login("rita", "red_teamer")
    conversation = start_conversation(red, campaign)
    assert 'id="break-reminder"' not in red.get(f"/conversations/{conversation}").text
    with Session(web.ctx.engine) as db, db.begin():
        db.execute(update(SessionRow).values(created_at=utcnow() - timedelta(minutes=50)))
    page = red.get(f"/conversations/{conversation}")
    assert 'id="break-reminder"' in page.text and "working for 50 minutes" in page.text
