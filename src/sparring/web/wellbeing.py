"""Red-teamer well-being: topic opt-outs, the break reminder, and the paper's 10-feeling survey.

Answering the survey is voluntary: when one is due the person sees it once and
may submit or skip it; a skip is recorded (empty answers) and costs nothing.
Admins only ever see means per feeling, and only once at least
``wellbeing_min_responses`` different people answered: each person's own mean
counts once, so one person answering many surveys is never shown as the campaign.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sparring.store.campaign_schema import (
    CampaignRow,
    TopicOptOutRow,
    WellbeingSurveyRow,
)
from sparring.web.context import WebContext, utcnow, web_context
from sparring.web.conversations import finished_tasks
from sparring.web.pages import redirect, render
from sparring.web.security import Action, Viewer, action, page

FEELINGS: tuple[str, ...] = ("upset", "hostile", "alert", "ashamed", "inspired", "nervous", "determined",
                             "attentive", "afraid", "active")
RED_TEAM_ROLES = ("red_teamer", "admin")

router = APIRouter()


def break_due(viewer: Viewer, campaign: CampaignRow) -> int | None:
    """Minutes worked in this login once they reach the campaign's break time, else None."""
    minutes = int((utcnow() - viewer.session_started) / timedelta(minutes=1))
    return minutes if minutes >= campaign.break_minutes else None


def survey_due(db: Session, campaign: CampaignRow, user_id: int) -> bool:
    """Due after every ``survey_every_tasks`` finished tasks, until answered or skipped."""
    done = finished_tasks(db, campaign.id, user_id)
    milestone = done - done % campaign.survey_every_tasks
    if milestone == 0:
        return False
    asked = db.scalar(select(func.max(WellbeingSurveyRow.tasks_done)).where(
        WellbeingSurveyRow.campaign_id == campaign.id, WellbeingSurveyRow.user_id == user_id))
    return asked is None or asked < milestone


def opted_out(db: Session, campaign_id: str, user_id: int) -> set[str]:
    return set(db.scalars(select(TopicOptOutRow.topic).where(TopicOptOutRow.campaign_id == campaign_id,
                                                             TopicOptOutRow.user_id == user_id)))


def wellbeing_aggregate(db: Session, campaign_id: str, min_responses: int) -> dict[str, Any]:
    """Means per feeling over people (each person's mean counts once), shown from ``min_responses`` people on.

    No per-person rows ever leave this function.
    """
    by_person: dict[int, list[dict[str, int]]] = {}
    total = 0
    for row in db.scalars(select(WellbeingSurveyRow).where(WellbeingSurveyRow.campaign_id == campaign_id)):
        total += 1
        if row.answers:
            by_person.setdefault(row.user_id, []).append(row.answers)
    answered = sum(len(surveys) for surveys in by_person.values())
    result: dict[str, Any] = {"n": answered, "people": len(by_person), "skipped": total - answered,
                              "min_responses": min_responses, "means": None}
    if by_person and len(by_person) >= min_responses:
        person_means = [{f: sum(a[f] for a in surveys) / len(surveys) for f in FEELINGS}
                        for surveys in by_person.values()]
        result["means"] = {f: round(sum(m[f] for m in person_means) / len(person_means), 2) for f in FEELINGS}
    return result


def open_campaign(db: Session, campaign_id: str) -> CampaignRow:
    """An open campaign, or 404: a closed one takes no new work."""
    campaign = db.get(CampaignRow, campaign_id)
    if campaign is None or campaign.status != "open":
        raise HTTPException(404, f"No open campaign {campaign_id!r}.")
    return campaign


@router.get("/campaigns/{campaign_id}/topics", response_class=HTMLResponse)
def topics_page(request: Request, campaign_id: str, viewer: Viewer = Depends(page(*RED_TEAM_ROLES)),
                ctx: WebContext = Depends(web_context)) -> Response:
    with ctx.transaction() as db:
        campaign = open_campaign(db, campaign_id)
        chosen = opted_out(db, campaign_id, viewer.user_id)
    return render(request, "topics.html", viewer=viewer, campaign=campaign, opted_out=chosen,
                  saved=request.query_params.get("saved") == "1")


@router.post("/campaigns/{campaign_id}/topics")
def save_topics(campaign_id: str, done: Action = Depends(action(*RED_TEAM_ROLES)),
                ctx: WebContext = Depends(web_context)) -> Response:
    picked = [t for t in done.form.getlist("opt_out") if isinstance(t, str)]
    with ctx.transaction() as db:
        campaign = open_campaign(db, campaign_id)
    unknown = [t for t in picked if t not in campaign.topics]
    if unknown:
        raise HTTPException(400, f"opt_out: {unknown[0]!r} is not one of this campaign's topics")
    user_id = done.viewer.user_id
    try:
        with ctx.transaction() as db:
            db.execute(delete(TopicOptOutRow).where(TopicOptOutRow.campaign_id == campaign_id,
                                                    TopicOptOutRow.user_id == user_id))
            for topic in dict.fromkeys(picked):
                db.add(TopicOptOutRow(user_id=user_id, campaign_id=campaign_id, topic=topic))
    except IntegrityError:
        pass  # a concurrent save of the same form: one of them stands, both asked for the same set
    return redirect(f"/campaigns/{campaign_id}/topics?saved=1")


@router.get("/campaigns/{campaign_id}/survey", response_class=HTMLResponse)
def survey_page(request: Request, campaign_id: str, viewer: Viewer = Depends(page(*RED_TEAM_ROLES)),
                ctx: WebContext = Depends(web_context)) -> Response:
    with ctx.transaction() as db:
        campaign = open_campaign(db, campaign_id)
        if not survey_due(db, campaign, viewer.user_id):
            return redirect(f"/campaigns/{campaign_id}")
    return render(request, "survey.html", viewer=viewer, campaign=campaign, feelings=FEELINGS, answers={})


@router.post("/campaigns/{campaign_id}/survey")
def submit_survey(request: Request, campaign_id: str, done: Action = Depends(action(*RED_TEAM_ROLES)),
                  ctx: WebContext = Depends(web_context)) -> Response:
    skipped = done.get("skip") == "1"
    answers: dict[str, int] = {}
    missing = []
    for feeling in FEELINGS:
        value = done.get(feeling)
        if value in {"0", "1", "2", "3", "4"}:
            answers[feeling] = int(value)
        else:
            missing.append(feeling)
    with ctx.transaction() as db:
        campaign = open_campaign(db, campaign_id)
        if not survey_due(db, campaign, done.viewer.user_id):
            return redirect(f"/campaigns/{campaign_id}")
        if missing and not skipped:
            return render(request, "survey.html", status_code=400, viewer=done.viewer, campaign=campaign,
                          feelings=FEELINGS, answers=answers,
                          error=f"{', '.join(missing)}: choose a value from 0 (not at all) to 4 (extremely), "
                                "or skip the survey.")
    try:
        with ctx.transaction() as db:  # a concurrent duplicate collides on (user, campaign, tasks_done)
            db.add(WellbeingSurveyRow(user_id=done.viewer.user_id, campaign_id=campaign_id,
                                      answers={} if skipped else answers,
                                      tasks_done=finished_tasks(db, campaign_id, done.viewer.user_id),
                                      created_at=utcnow()))
    except IntegrityError:
        pass  # the same survey was just submitted: the first answer stands
    return redirect(f"/campaigns/{campaign_id}")
