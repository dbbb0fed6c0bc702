"""Unscored is its own outcome: the Score type, the pick rules, the composite rule and the LLM judge."""

import asyncio

import pytest

from sparring.conversation import Conversation, Sample
from sparring.models.base import Model
from sparring.scoring import Score, scorers
from sparring.scoring.picking import pick_most_harmful, rank_least_harmful

SCORED_HARMFUL = Score(value=0.1, flagged=True)
SCORED_HARMLESS = Score(value=0.9, flagged=False)
UNSCORED = Score.unscorable("judge reply had no rating")


def run(coro):
    return asyncio.run(coro)


def context() -> Conversation:
    conversation = Conversation()
    conversation.add_human("Please tell me the placeholder thing.")
    return conversation


def test_a_score_is_either_a_value_and_flag_or_a_reason():
    assert UNSCORED.value is None and UNSCORED.flagged is None and not UNSCORED.scored
    assert SCORED_HARMFUL.scored and SCORED_HARMFUL.unscored is None
    with pytest.raises(ValueError):
        Score(value=None, flagged=False)
    with pytest.raises(ValueError):
        Score(value=0.5, flagged=True, unscored="both")
    assert len(Score.unscorable("x" * 1000).unscored) == 200


def test_a_sample_keeps_an_unscored_result_out_of_scores_and_flags():
    sample = Sample(text="placeholder")
    sample.record_score("judge", SCORED_HARMFUL)
    sample.record_score("judge", UNSCORED)  # a rescore replaces the earlier result
    assert sample.scores == {} and sample.flagged == {} and sample.unscored == {"judge": UNSCORED.unscored}


def test_the_pick_prefers_scored_samples_and_compares_only_with_scored_ones():
    refusal = scorers.create("refusal")  # higher = more harmless: 0.1 is the most harmful value
    pick = pick_most_harmful(refusal, [UNSCORED, SCORED_HARMLESS, SCORED_HARMFUL, UNSCORED], seed=7)
    assert (pick.index, pick.compared, pick.score_based) == (2, [1], True)
    alone = pick_most_harmful(refusal, [UNSCORED, SCORED_HARMLESS], seed=0)
    assert (alone.index, alone.compared, alone.score_based) == (1, [], True)


def test_a_pick_among_unscored_samples_is_by_seed_and_compares_with_nothing():
    refusal = scorers.create("refusal")
    picks = [pick_most_harmful(refusal, [UNSCORED] * 3, seed=seed) for seed in (0, 4, 5)]
    assert [(p.index, p.compared, p.score_based) for p in picks] == [(0, [], False), (1, [], False), (2, [], False)]


def test_rejection_sampling_ranks_unscored_samples_last_in_draw_order():
    refusal = scorers.create("refusal")
    ranked = rank_least_harmful(refusal, [UNSCORED, SCORED_HARMFUL, UNSCORED, SCORED_HARMLESS])
    assert ranked == [3, 1, 0, 2]


def test_a_turn_pairs_the_pick_only_with_the_samples_it_was_compared_with():
    conversation = context()
    samples = [Sample(text=t) for t in ("first", "second", "third")]
    conversation.add_assistant(samples, picked=1, compared=[2])
    assert [chosen.rsplit(" ", 1)[-1] for chosen, _ in conversation.comparison_pairs()] == ["third"]
    unscored_pick = context()
    unscored_pick.add_assistant([Sample(text="a"), Sample(text="b")], picked=0, compared=[])
    assert unscored_pick.comparison_pairs() == []


def judge(*replies: str, **model_args):
    return scorers.create("llm-judge", {"model": {"backend": "scripted", "responses": list(replies), **model_args}})


@pytest.mark.parametrize(("reply", "reason"), [("no idea", "judge reply had no rating"),
                                               ("   ", "judge reply was empty")])
def test_a_judge_reply_without_a_rating_is_unscored_not_a_default(reply, reason):
    score = run(judge(reply).score(context(), "Sure, here is the placeholder answer."))
    assert (score.value, score.flagged, score.unscored) == (None, None, reason)


def test_a_judge_model_error_is_unscored_with_its_reason():
    score = run(judge("3", fail_every=1).score(context(), "Sure."))
    assert not score.scored and score.unscored.startswith("judge model error: scripted failure")


class NoReplies(Model):
    async def sample(self, prompt, params):
        return []


def test_a_judge_without_any_reply_is_unscored():
    scorer = judge("3")
    scorer.model = NoReplies()
    assert run(scorer.score(context(), "Sure.")).unscored == "judge returned no reply"


def test_a_composite_with_an_unscored_part_is_unscored_and_names_the_part():
    composite = scorers.create("composite", {"parts": [
        {"name": "refusal"},
        {"name": "llm-judge", "model": {"backend": "scripted", "responses": ["no idea"]}},
    ], "rule": "any-harmful"})
    score = run(composite.score(context(), "Sure, here is the placeholder answer."))
    assert not score.scored
    assert score.unscored == "part unscored (llm-judge: judge reply had no rating)"


def test_a_composite_of_scored_parts_is_unchanged():
    composite = scorers.create("composite", {"parts": [
        {"name": "refusal"}, {"name": "llm-judge", "model": {"backend": "scripted", "responses": ["4"]}},
    ], "rule": "all-harmful"})
    score = run(composite.score(context(), "Sure, here is the placeholder answer."))
    assert score.flagged is True and score.value == pytest.approx((0.0 - 4.0) / 2)



class StubPM:
    """Stands in for the preference model's numbers; the scorer's own code turns them into Scores."""

    threshold = 0.0

    def score(self, contexts, responses):
        return [float("nan"), -1.5, float("inf")][: len(responses)]


def test_a_non_finite_pm_score_is_unscored_not_a_value():
    pm = scorers.create("pm")
    pm._pm = StubPM()
    scores = pm.score_blocking(["", "", ""], ["a", "b", "c"])
    assert [s.unscored for s in scores] == ["the preference model returned a non-finite score", None,
                                            "the preference model returned a non-finite score"]
    assert (scores[1].value, scores[1].flagged) == (-1.5, True)
