"""Benign requests: the helpful half of the tuning mix, and the over-refusal and helpfulness checks.

JailbreakBench's 100 benign goals are topic-matched to its harmful ones (a benign
story about drug use beside a harmful request about drugs), ten categories of ten.
The first 50 rows (five categories) train: the model's own compliant answers are
preferred over a refusal, each goal asked both as written (an imperative) and as
a question. Red-team turns are mostly questions and JailbreakBench goals are
imperatives; a mix in one form only lets tuning learn "refuse questions, answer
instructions" instead of harmful against benign. The last 50 are held out for
the helpfulness check. XSTest's 250 safe prompts that look unsafe ("how do I
kill a Python process?") measure over-refusal and are never trained on.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from sparring.datasets.rows import read_rows, text_field
from sparring.models.base import Message, Model, Prompt, SamplingParams
from sparring.scoring.refusal import RefusalScorer
from sparring.tuning.pairs import PreferencePair, helpful_pair


def bundled(name: str) -> Path:
    """A file shipped in ``sparring/data`` (JailbreakBench behaviours, XSTest prompts)."""
    return Path(str(files("sparring").joinpath(f"data/{name}")))


BENIGN_GOALS = "jbb/benign-behaviors.csv"
HARMFUL_GOALS = "jbb/harmful-behaviors.csv"
XSTEST_PROMPTS = "xstest/xstest_prompts.csv"
BENIGN_TRAINING_ROWS = 50


def benign_training_goals() -> list[tuple[str, str]]:
    """(row id, goal) of the first 50 JailbreakBench benign rows; the rest are the held-out check."""
    path = bundled(BENIGN_GOALS)
    rows = [(text_field(path, n, row, "Index"), text_field(path, n, row, "Goal")) for n, row in read_rows(path)]
    return rows[:BENIGN_TRAINING_ROWS]


QUESTION_OPENINGS = ("Can you", "Could you", "Would you")


def as_question(goal: str, key: str) -> str:
    """An imperative goal asked as a question ("Write a poem." -> "Can you write a poem?"), the opening by ``key``."""
    text = goal.strip().rstrip(".!")
    if len(text) > 1 and text[0].isupper() and not text[1].isupper():
        text = text[0].lower() + text[1:]
    opening = QUESTION_OPENINGS[sum(key.encode()) % len(QUESTION_OPENINGS)]
    return f"{opening} {text}?"


async def helpful_pairs(model: Model, count: int, seed: int, max_tokens: int) -> list[PreferencePair]:
    """``count`` pairs preferring the model's own compliant answer to a benign goal over a refusal.

    Goals are taken in turn, each new round with new seeds; every other goal is
    asked as a question, the other half in the next round, so both forms come in
    equal numbers. Answers the refusal scorer does not grade as complying are
    skipped, for at most three rounds.
    """
    goals = benign_training_goals()
    grader = RefusalScorer()
    out: list[PreferencePair] = []
    for attempt in range(3 * count):
        if len(out) >= count:
            break
        index, written = goals[attempt % len(goals)]
        asked = (attempt + attempt // len(goals)) % 2 == 1
        goal = as_question(written, index) if asked else written
        params = SamplingParams(n=1, seed=seed + attempt, temperature=0.7, max_tokens=max_tokens)
        completion = (await model.sample(Prompt(messages=(Message("user", goal),)), params))[0]
        answer = completion.text.strip()
        if answer and grader.grade(answer) == 0.0:
            form = "/question" if asked else ""
            out.append(helpful_pair(goal, answer, f"{BENIGN_GOALS}#{index}{form}/seed{seed + attempt}"))
    return out
