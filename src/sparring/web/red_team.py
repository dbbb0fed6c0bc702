"""The red-team flow, as in the paper: content warning -> task description -> blind chat with N responses
per turn and a pick -> 0-4 success rating and optional harm tags.

Model calls are awaited in the request while other requests go on (the event loop
is free: llama.cpp runs on the compute thread). The human message is committed
before the call, so a slow or failing model loses nothing: the page shows what
went wrong and a Retry button that samples again for the pending message.
"""

from __future__ import annotations

import logging
import secrets

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from sparring.errors import ModelError
from sparring.models.base import SamplingParams
from sparring.redaction import redact
from sparring.scoring.aggregate import transcript_scores
from sparring.store.campaign_schema import AttemptRow, CampaignRow, TaskRow
from sparring.store.schema import ConversationRow, RunRow, TargetRow
from sparring.turn_step import sample_turn
from sparring.web import conversations as store
from sparring.web.context import WebContext, web_context
from sparring.web.conversations import ConversationView
from sparring.web.pages import redirect, render
from sparring.web.ratings import check_judgement
from sparring.web.request_limits import RowId
from sparring.web.security import Action, Viewer, action, page
from sparring.web.targets_config import CampaignComponents
from sparring.web.wellbeing import RED_TEAM_ROLES, break_due, open_campaign, opted_out, survey_due

log = logging.getLogger(__name__)
router = APIRouter()


@router.get("/", response_class=HTMLResponse)
def home(request: Request, viewer: Viewer = Depends(page()), ctx: WebContext = Depends(web_context)) -> Response:
    with ctx.transaction() as db:
        campaigns = list(db.scalars(select(CampaignRow).where(CampaignRow.status == "open")
                                    .order_by(CampaignRow.created_at.desc())))
        tasks = {t.campaign_id: t for t in db.scalars(select(TaskRow).where(
            TaskRow.user_id == viewer.user_id, TaskRow.status == "open"))}
    return render(request, "home.html", viewer=viewer, campaigns=campaigns, open_tasks=tasks)


def _open_campaign(ctx: WebContext, campaign_id: str) -> CampaignRow:
    with ctx.transaction() as db:
        return open_campaign(db, campaign_id)


@router.get("/campaigns/{campaign_id}", response_class=HTMLResponse)
def content_warning(request: Request, campaign_id: str, viewer: Viewer = Depends(page(*RED_TEAM_ROLES)),
                    ctx: WebContext = Depends(web_context)) -> Response:
    """The content warning with a preview of the work; continuing and skipping are both one click."""
    campaign = _open_campaign(ctx, campaign_id)
    with ctx.transaction() as db:
        task = store.open_task(db, campaign_id, viewer.user_id)
        done = store.finished_tasks(db, campaign_id, viewer.user_id)
    return render(request, "content_warning.html", viewer=viewer, campaign=campaign, task=task, tasks_done=done)


@router.post("/campaigns/{campaign_id}/tasks")
def begin_task(campaign_id: str, done: Action = Depends(action(*RED_TEAM_ROLES)),
               ctx: WebContext = Depends(web_context)) -> Response:
    campaign = _open_campaign(ctx, campaign_id)
    user_id = done.viewer.user_id
    try:
        with ctx.transaction() as db:
            if survey_due(db, campaign, user_id):
                return redirect(f"/campaigns/{campaign_id}/survey")
            task_id = store.start_task(db, campaign_id, user_id).id
    except IntegrityError:  # a concurrent request opened the task first (one open task per person and campaign)
        with ctx.transaction() as db:
            task = store.open_task(db, campaign_id, user_id)
        if task is None:
            raise HTTPException(409, "Your task changed meanwhile. Go back to the campaign and try again.") from None
        task_id = task.id
    return redirect(f"/tasks/{task_id}")


def _own_task(ctx: WebContext, task_id: int, viewer: Viewer) -> tuple[TaskRow, CampaignRow]:
    with ctx.transaction() as db:
        task = db.get(TaskRow, task_id)
        if task is None or task.user_id != viewer.user_id:
            raise HTTPException(404, "No such task.")
        campaign = db.get(CampaignRow, task.campaign_id)
    assert campaign is not None
    return task, campaign


@router.get("/tasks/{task_id}", response_class=HTMLResponse)
def task_page(request: Request, task_id: RowId, viewer: Viewer = Depends(page(*RED_TEAM_ROLES)),
              ctx: WebContext = Depends(web_context)) -> Response:
    task, campaign = _own_task(ctx, task_id, viewer)
    with ctx.transaction() as db:
        attempts = store.task_attempts(db, task_id)
        suggestions = [t for t in campaign.topics if t not in opted_out(db, campaign.id, viewer.user_id)]
    current = next((c for _, c in attempts if c.status == "open"), None)
    if current is not None and task.status == "open":
        return redirect(f"/conversations/{current.id}")
    return _task(request, viewer, task, campaign, attempts, suggestions, ctx)


def _task(request: Request, viewer: Viewer, task: TaskRow, campaign: CampaignRow,
          attempts: list[tuple[AttemptRow, ConversationRow]], suggestions: list[str],
          ctx: WebContext, status_code: int = 200, **extra: object) -> Response:
    return render(request, "task.html", status_code=status_code, viewer=viewer, task=task, campaign=campaign,
                  attempts=attempts, number=len(attempts) + 1, suggestions=suggestions,
                  break_minutes=break_due(viewer, campaign), **extra)


@router.post("/tasks/{task_id}/conversations")
def begin_conversation(request: Request, task_id: RowId, done: Action = Depends(action(*RED_TEAM_ROLES)),
                       ctx: WebContext = Depends(web_context)) -> Response:
    task, campaign = _own_task(ctx, task_id, done.viewer)
    description = done.get("task_description").strip()
    if task.status != "open" or campaign.status != "open":
        return redirect(f"/tasks/{task_id}")
    if not description or len(description) > 2000:
        with ctx.transaction() as db:
            attempts = store.task_attempts(db, task_id)
            suggestions = [t for t in campaign.topics if t not in opted_out(db, campaign.id, done.viewer.user_id)]
        return _task(request, done.viewer, task, campaign, attempts, suggestions, ctx, status_code=400,
                     description=description,
                     error="task_description: write one or two sentences (at most 2000 characters) about what you "
                           "will try.")
    try:
        with ctx.transaction() as db:
            # One read decides both: a concurrent submit that read the same attempts takes the same position,
            # hence the same conversation id, and collides on its primary key instead of adding a second one.
            attempts = store.task_attempts(db, task_id)
            if any(c.status == "open" for _, c in attempts) or len(attempts) >= campaign.conversations_per_task:
                return redirect(f"/tasks/{task_id}")  # a double submit: the first one started it
            targets = list(db.scalars(select(TargetRow.name).where(TargetRow.run_id == campaign.run_id)))
            conversation_id = store.start_conversation(db, task, campaign.run_id, done.viewer.user_id,
                                                       done.viewer.pseudonym, description, targets,
                                                       position=len(attempts))
    except IntegrityError:
        return redirect(f"/tasks/{task_id}")
    return redirect(f"/conversations/{conversation_id}")


@router.post("/tasks/{task_id}/skip")
def skip_task(task_id: RowId, done: Action = Depends(action(*RED_TEAM_ROLES)),
              ctx: WebContext = Depends(web_context)) -> Response:
    task, campaign = _own_task(ctx, task_id, done.viewer)
    _refuse_if_closed(campaign.status)
    with ctx.transaction() as db:
        row = db.get(TaskRow, task.id)
        if row is not None and row.status == "open":
            store.skip_task(db, row)
    return redirect(f"/campaigns/{campaign.id}?skipped=1")


# -- the chat ---------------------------------------------------------------------------------------------

def _own_conversation(ctx: WebContext, conversation_id: str, viewer: Viewer, writing: bool = False) -> ConversationView:
    """Another person's conversation is answered exactly like a missing one, so ids cannot be probed.

    ``writing``: the change is refused (409) when the campaign is closed; closed campaigns are read-only.
    """
    with ctx.transaction() as db:
        view = store.load_conversation(db, conversation_id)
    if view is None or view.user_id != viewer.user_id:
        raise HTTPException(404, "No such conversation.")
    if writing:
        _refuse_if_closed(view.campaign_status)
    return view


def _refuse_if_closed(campaign_status: str) -> None:
    if campaign_status != "open":
        raise HTTPException(409, "This campaign is closed: its conversations can be read but no longer changed.")


def _chat(request: Request, viewer: Viewer, view: ConversationView, ctx: WebContext, status_code: int = 200,
          **extra: object) -> Response:
    with ctx.transaction() as db:
        campaign = db.get(CampaignRow, view.campaign_id)
    assert campaign is not None
    state = view.state
    return render(request, "conversation.html", status_code=status_code, viewer=viewer, conversation=view,
                  campaign=campaign, state=state, generating=state == "awaiting_model" and ctx.is_locked(view.id),
                  closed=campaign.status != "open",
                  human_turns=sum(1 for t in view.turns if t.role == "human"),
                  break_minutes=break_due(viewer, campaign), **extra)


@router.get("/conversations/{conversation_id}", response_class=HTMLResponse)
def conversation_page(request: Request, conversation_id: str, viewer: Viewer = Depends(page(*RED_TEAM_ROLES)),
                      ctx: WebContext = Depends(web_context)) -> Response:
    return _chat(request, viewer, _own_conversation(ctx, conversation_id, viewer), ctx)


def _turn_field(done: Action) -> int:
    try:
        return int(done.get("turn"))
    except ValueError:
        raise HTTPException(400, "turn: expected the turn number the form was showing") from None


@router.post("/conversations/{conversation_id}/messages")
async def send_message(request: Request, conversation_id: str, done: Action = Depends(action(*RED_TEAM_ROLES)),
                       ctx: WebContext = Depends(web_context)) -> Response:
    text = done.get("message").strip()
    turn = _turn_field(done)
    async with ctx.conversation_lock(conversation_id):
        view = await run_in_threadpool(_own_conversation, ctx, conversation_id, done.viewer, True)
        if view.state != "awaiting_human" or view.next_index != turn:
            return redirect(f"/conversations/{conversation_id}")  # a double submit: the first one was taken
        limit = ctx.settings.max_message_chars
        if not text or len(text) > limit:
            return await run_in_threadpool(
                lambda: _chat(request, done.viewer, view, ctx, status_code=400, draft=done.get("message"),
                              error=f"message: write something to the assistant (at most {limit} characters)."))
        try:
            await run_in_threadpool(_write, ctx, store.add_human_turn, conversation_id, turn, text)
        except IntegrityError:
            return redirect(f"/conversations/{conversation_id}")
        await _respond(ctx, view.with_human_turn(text))
    return redirect(f"/conversations/{conversation_id}")


@router.post("/conversations/{conversation_id}/retry")
async def retry(conversation_id: str, done: Action = Depends(action(*RED_TEAM_ROLES)),
                ctx: WebContext = Depends(web_context)) -> Response:
    turn = _turn_field(done)
    async with ctx.conversation_lock(conversation_id):
        view = await run_in_threadpool(_own_conversation, ctx, conversation_id, done.viewer, True)
        if view.state == "awaiting_model" and view.next_index == turn:
            await _respond(ctx, view)
    return redirect(f"/conversations/{conversation_id}")


def _write(ctx: WebContext, function, *args: object) -> None:  # type: ignore[no-untyped-def]
    with ctx.transaction() as db:
        function(db, *args)


async def _components(ctx: WebContext, campaign_id: str) -> tuple[CampaignRow, CampaignComponents]:
    """The campaign (its sampling settings never change after creation) and its live targets, read once."""
    cached = ctx.pool.cached(campaign_id)
    if cached is not None:
        return cached

    def load() -> tuple[CampaignRow, str]:
        with ctx.transaction() as db:
            campaign = db.get(CampaignRow, campaign_id)
            run = db.get(RunRow, campaign.run_id) if campaign else None
        assert campaign is not None and run is not None
        return campaign, run.config_toml

    campaign, toml = await run_in_threadpool(load)
    components = await ctx.pool.get(campaign_id, toml)
    ctx.pool.remember_campaign(campaign)
    return campaign, components


async def _respond(ctx: WebContext, view: ConversationView) -> None:
    """Sample the campaign's N responses for the pending human turn, score them, store them unpicked.

    Any failure is stored as the conversation's error (the message, never the model's output) and
    shown with a Retry button; the human turn stays. ``view`` is the conversation as stored, its
    last turn the person's message (the caller holds the conversation's lock).
    """
    conversation_id = view.id
    campaign, components = await _components(ctx, view.campaign_id)
    target = components.targets.get(view.target)
    conversation = view.as_conversation()
    index = view.next_index
    sampling = components.sampling
    params = SamplingParams(n=campaign.responses_per_turn, seed=store.turn_seed(conversation_id, index),
                            temperature=sampling.temperature, top_p=sampling.top_p, max_tokens=campaign.max_tokens)
    timeout = ctx.settings.model_timeout_s
    try:
        if target is None:
            raise ModelError("this conversation's target is no longer configured")
        # the same step as an automated run; the person picks in a later request
        turn = await sample_turn(target, conversation, params, components.all_scorers, respond_timeout=timeout)
    except TimeoutError:
        await run_in_threadpool(_write, ctx, store.set_error, conversation_id,
                                f"The assistant did not answer within {timeout:g} seconds.")
        return
    except Exception as error:  # a backend's message is adversarial: it may hold secrets and names the target
        reference = secrets.token_hex(4)
        detail = redact(f"{type(error).__name__}: {error}")
        log.warning("model call failed for conversation %s (error %s, target %s): %s", conversation_id, reference,
                    view.target, detail, exc_info=not isinstance(error, ModelError))
        ctx.pool.record_error(view.campaign_id, f"error {reference}, target {view.target}: {detail}")
        await run_in_threadpool(_write, ctx, store.set_error, conversation_id,
                                f"The assistant failed to answer (error {reference}).")
        return
    try:
        await run_in_threadpool(_write, ctx, store.add_samples, conversation_id, index, turn.samples)
    except IntegrityError:
        pass  # another process answered this turn first; its responses stand


@router.post("/conversations/{conversation_id}/pick")
async def pick_response(conversation_id: str, done: Action = Depends(action(*RED_TEAM_ROLES)),
                        ctx: WebContext = Depends(web_context)) -> Response:
    turn = _turn_field(done)
    try:
        sample = int(done.get("sample"))
    except ValueError:
        raise HTTPException(400, "sample: expected the number of the response you picked") from None
    async with ctx.conversation_lock(conversation_id):
        view = await run_in_threadpool(_own_conversation, ctx, conversation_id, done.viewer, True)
        if view.state != "awaiting_pick" or view.turns[-1].index != turn:
            return redirect(f"/conversations/{conversation_id}")
        n = len(view.turns[-1].texts)
        if not 0 <= sample < n:
            raise HTTPException(400, f"sample: expected a response number from 0 to {n - 1}")
        try:
            await run_in_threadpool(_write, ctx, store.pick, conversation_id, turn, sample, n,
                                    f"person:{done.viewer.pseudonym}")
        except IntegrityError:
            pass
    return redirect(f"/conversations/{conversation_id}")


@router.get("/conversations/{conversation_id}/end", response_class=HTMLResponse)
def end_page(request: Request, conversation_id: str, viewer: Viewer = Depends(page(*RED_TEAM_ROLES)),
             ctx: WebContext = Depends(web_context)) -> Response:
    view = _own_conversation(ctx, conversation_id, viewer)
    if view.state != "awaiting_human" or view.exchanges == 0:
        return redirect(f"/conversations/{conversation_id}")
    return render(request, "end.html", viewer=viewer, conversation=view, chosen_tags=[])


@router.post("/conversations/{conversation_id}/end")
async def end_conversation(request: Request, conversation_id: str, done: Action = Depends(action(*RED_TEAM_ROLES)),
                           ctx: WebContext = Depends(web_context)) -> Response:
    rating = done.get("rating")
    tags = [t for t in done.form.getlist("tags") if isinstance(t, str)]
    async with ctx.conversation_lock(conversation_id):
        view = await run_in_threadpool(_own_conversation, ctx, conversation_id, done.viewer, True)
        if view.state != "awaiting_human" or view.exchanges == 0:
            return redirect(f"/conversations/{conversation_id}")
        tags, error = check_judgement(rating, tags, "you were")
        if error:
            return render(request, "end.html", status_code=400, viewer=done.viewer, conversation=view,
                          chosen_tags=tags, rating=rating, error=error)
        _, components = await _components(ctx, view.campaign_id)
        scores = await transcript_scores(view.as_conversation(), components.all_scorers)
        await run_in_threadpool(_write, ctx, store.finish, view, int(rating), tags, scores)
    return redirect(f"/tasks/{view.task_id}")


@router.post("/conversations/{conversation_id}/skip")
async def skip_conversation(conversation_id: str, done: Action = Depends(action(*RED_TEAM_ROLES)),
                            ctx: WebContext = Depends(web_context)) -> Response:
    async with ctx.conversation_lock(conversation_id):
        view = await run_in_threadpool(_own_conversation, ctx, conversation_id, done.viewer, True)
        if view.status == "open":
            await run_in_threadpool(_write, ctx, store.skip, view)
    return redirect(f"/tasks/{view.task_id}")
