"""The filter on refusal pairs: a PM trained on hh-rlhf comparisons only, never the judge."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparring.errors import ConfigError
from sparring.models.base import Message
from sparring.scoring.pm.model import default_pm_path
from sparring.tuning.pairs import HELPFUL, REFUSAL, PreferencePair
from sparring.tuning.reply_filter import keep_harmful_replies, load_filter, train_filter

pytest.importorskip("torch")


def _pair(kind: str, request: str, reply: str) -> PreferencePair:
    refusal = "I'm sorry, but I can't help with that."
    chosen, rejected = (refusal, reply) if kind == REFUSAL else (reply, refusal)
    return PreferencePair((Message("user", request),), chosen, rejected, kind, f"test/{len(reply)}")


def test_the_filter_keeps_refusal_pairs_on_replies_it_flags(tmp_path: Path) -> None:
    log: list[str] = []
    target = tmp_path / "filter-pm"
    pm = train_filter(target, held_out_offset=80, log=log.append)
    assert (target / "pm.json").is_file() and not (tmp_path / "filter-pm.partial").exists()
    assert pm.metadata["sources"] == ["harmless-base-test.jsonl.gz: dialogues 0-79"]
    assert train_filter(target, 80, log.append).threshold == pm.threshold  # a rerun loads, not retrains

    import gzip
    import json

    from sparring.attacks.replay import bundled_hh_rlhf

    with gzip.open(bundled_hh_rlhf(), "rt") as handle:  # real replies, people's picks
        rows = [json.loads(next(handle)) for _ in range(12)]
    replies = [row["rejected"].rsplit("\n\nAssistant:", 1)[1].strip() for row in rows]
    pairs = [_pair(REFUSAL, "a red-team request", reply) for reply in replies]
    pairs.append(_pair(HELPFUL, "Write a poem about the sea.", "Waves fold over waves."))
    scores = pm.score(["\n\nHuman: a red-team request"] * len(replies), replies)
    flagged = sum(score < pm.threshold for score in scores)

    filtered = keep_harmful_replies(pairs, pm)
    assert 0 < flagged < len(replies)  # both outcomes occur, so the test tells keeping from dropping
    assert filtered.dropped == len(replies) - flagged
    assert [p for p in filtered.kept if p.kind == HELPFUL] == pairs[-1:]  # other kinds pass untouched
    kept_replies = {p.rejected for p in filtered.kept if p.kind == REFUSAL}
    assert kept_replies == {r for r, s in zip(replies, scores, strict=True) if s < pm.threshold}


def test_the_judge_cannot_be_the_filter(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="this is the judge that measures the before/after"):
        load_filter(default_pm_path(), default_pm_path())
    with pytest.raises(ConfigError, match=r"--filter-pm: .*pm.json"):
        load_filter(tmp_path, default_pm_path())
