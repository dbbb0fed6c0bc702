"""Review tasks: reviewers rate and tag other people's finished conversations, blind to the original rating.

Three extra ratings per conversation let agreement (Fleiss' kappa) be measured
as in the paper; the next conversation offered is the one with the fewest reviews.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sparring.store.campaign_schema import AttemptRow, CampaignRow, ReviewRow
from sparring.store.schema import ConversationRow
from sparring.web import conversations as store
from sparring.web.context import WebContext, utcnow, web_context
from sparring.web.pages import redirect, render
from sparring.web.ratings import check_judgement
from sparring.web.request_limits import RowId
from sparring.web.security import Action, Viewer, action, page

REVIEW_ROLES = ("reviewer", "admin")
REVIEWS_WANTED = 3

router = APIRouter()


def available(db: Session, campaign: CampaignRow, reviewer_id: int) -> list[str]:
    """Finished conversations of others this reviewer has not reviewed, fewest reviews first."""
    mine = select(ReviewRow.conversation_id).where(ReviewRow.reviewer_id == reviewer_id)
    count = func.count(ReviewRow.id)
    rows = db.execute(
        select(ConversationRow.id, count)
        .join(AttemptRow, AttemptRow.conversation_id == ConversationRow.id)
        .outerjoin(ReviewRow, ReviewRow.conversation_id == ConversationRow.id)
        .where(ConversationRow.run_id == campaign.run_id, ConversationRow.status == "finished",
               AttemptRow.user_id != reviewer_id, ConversationRow.id.not_in(mine))
        .group_by(ConversationRow.id, ConversationRow.finished_at)
        .order_by(count, ConversationRow.finished_at, ConversationRow.id)
    )
    return [cid for cid, _ in rows]


@router.get("/review", response_class=HTMLResponse)
def review_home(request: Request, viewer: Viewer = Depends(page(*REVIEW_ROLES)),
                ctx: WebContext = Depends(web_context)) -> Response:
    with ctx.transaction() as db:
        campaigns = list(db.scalars(select(CampaignRow).order_by(CampaignRow.created_at.desc())))
        counts = {c.id: len(available(db, c, viewer.user_id)) for c in campaigns}
        done = db.scalar(select(func.count()).select_from(ReviewRow).where(
            ReviewRow.reviewer_id == viewer.user_id, ReviewRow.status == "done")) or 0
    return render(request, "review_home.html", viewer=viewer, campaigns=campaigns, counts=counts, reviews_done=done)


@router.post("/review/next")
def next_review(done: Action = Depends(action(*REVIEW_ROLES)), ctx: WebContext = Depends(web_context)) -> Response:
    campaign_id = done.get("campaign_id")
    reviewer = done.viewer.user_id
    try:
        with ctx.transaction() as db:
            campaign = db.get(CampaignRow, campaign_id)
            if campaign is None:
                raise HTTPException(404, f"campaign_id: no campaign {campaign_id!r}")
            pending = db.scalar(
                select(ReviewRow).join(ConversationRow, ConversationRow.id == ReviewRow.conversation_id)
                .where(ReviewRow.reviewer_id == reviewer, ReviewRow.status == "assigned",
                       ConversationRow.run_id == campaign.run_id))
            if pending is not None:
                return redirect(f"/reviews/{pending.id}")
            candidates = available(db, campaign, reviewer)
            if not candidates:
                return redirect("/review?none=1")
            review = ReviewRow(conversation_id=candidates[0], reviewer_id=reviewer, status="assigned",
                               needs_expertise=False, created_at=utcnow())
            db.add(review)
            db.flush()
            review_id = review.id
    except IntegrityError:
        return redirect("/review")
    return redirect(f"/reviews/{review_id}")


def _own_review(ctx: WebContext, review_id: int, viewer: Viewer) -> tuple[ReviewRow, store.ConversationView]:
    with ctx.transaction() as db:
        review = db.get(ReviewRow, review_id)
        if review is None or review.reviewer_id != viewer.user_id:
            raise HTTPException(404, "No such review.")
        view = store.load_conversation(db, review.conversation_id)
    if view is None:
        raise HTTPException(404, "No such review.")
    return review, view


@router.get("/reviews/{review_id}", response_class=HTMLResponse)
def review_page(request: Request, review_id: RowId, viewer: Viewer = Depends(page(*REVIEW_ROLES)),
                ctx: WebContext = Depends(web_context)) -> Response:
    review, view = _own_review(ctx, review_id, viewer)
    return render(request, "review.html", viewer=viewer, review=review, transcript=_picked_path(view),
                  chosen_tags=review.tags or [])


def _picked_path(view: store.ConversationView) -> list[tuple[str, str]]:
    """What a reviewer sees: the transcript as released, without the red teamer's rating or tags."""
    return [(turn.role, turn.text) for turn in view.turns]


@router.post("/reviews/{review_id}")
def submit_review(request: Request, review_id: RowId, done: Action = Depends(action(*REVIEW_ROLES)),
                  ctx: WebContext = Depends(web_context)) -> Response:
    review, view = _own_review(ctx, review_id, done.viewer)
    if review.status == "done":
        return redirect("/review")
    rating = done.get("rating")
    tags = [t for t in done.form.getlist("tags") if isinstance(t, str)]
    tags, error = check_judgement(rating, tags, "the red teamer was")
    if error:
        return render(request, "review.html", status_code=400, viewer=done.viewer, review=review,
                      transcript=_picked_path(view), chosen_tags=tags, rating=rating, error=error)
    with ctx.transaction() as db:  # guarded: a concurrent second submit finds it done and changes nothing
        db.execute(update(ReviewRow).where(ReviewRow.id == review_id, ReviewRow.status == "assigned").values(
            status="done", rating=float(rating), tags=tags or None,
            needs_expertise=done.get("needs_expertise") == "1", finished_at=utcnow()))
    return redirect("/review?saved=1")
