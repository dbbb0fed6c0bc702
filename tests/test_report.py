"""The HTML report on a planted released-format file: recovered effects, self-contained, escaped, sized."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from planted import read_planted
from report_support import SCRIPT, write_small_planted

from sparring.analysis.dataset import RedTeamData
from sparring.analysis.report import NOT_AVAILABLE, build_report

PII_TAG = "Soliciting personally identifiable information"
MAP_SAMPLE = 600


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    directory = tmp_path_factory.mktemp("report")
    path = directory / "red_team_attempts.jsonl.gz"
    truth, injected = write_small_planted(path)
    data = read_planted(path)  # with the planted reviews, so the agreement section has data
    result = build_report(data, directory / "report.html", map_sample=MAP_SAMPLE, seed=0)
    return truth, injected, data, result, result.html.read_text(encoding="utf-8")


def test_no_section_fails(planted):
    _, _, _, result, _ = planted
    assert result.errors == {}
    # the released format holds people's attempts only: no model attacker to compare them with
    assert {s.key for s in result.sections if s.unavailable} == {"people_vs_attackers"}


def test_planted_pii_cluster_is_recovered_and_named(planted):
    """The planted cluster is every attempt asking for someone's address, phone or e-mail (the paper's PII cluster)."""
    truth, _, _, result, _ = planted
    attack_map = result.attack_map
    ids = np.array(result.map_ids)
    in_planted = np.isin(ids, truth.cluster_ids)
    assert in_planted.sum() >= 30  # ~8% of a 600 sample
    labels, counts = np.unique(attack_map.labels[in_planted], return_counts=True)
    best = labels[np.argmax(counts)]
    assert best >= 0 and counts.max() >= 0.8 * in_planted.sum()  # most planted ids land in one cluster
    cluster = next(c for c in attack_map.clusters if c.id == best)
    members = attack_map.labels == best
    assert in_planted[members].mean() >= 0.7  # and that cluster is mostly planted attempts
    assert cluster.nearest_tag == PII_TAG and not cluster.novel
    others = [c for c in attack_map.clusters if c.id != best and c.nearest_tag == PII_TAG]
    assert all(np.isin(ids[attack_map.labels == c.id], truth.cluster_ids).sum() < counts.max() for c in others)


def test_html_is_self_contained(planted):
    html = planted[4]
    assert not re.search(r"<script\b", html, re.IGNORECASE)  # no JavaScript at all, inline or external
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.IGNORECASE)
    assert not re.search(r"@import|url\(\s*['\"]?(?:https?:)?//", html, re.IGNORECASE)
    assert not re.search(r"<link\b", html, re.IGNORECASE)
    assert html.count('src="data:image/png;base64,') >= 6  # figures are inline


def test_content_warning_comes_first_and_attack_text_is_escaped_and_hidden(planted):
    _, injected, _, result, html = planted
    warning = html.index("Content warning")
    assert warning < html.index("<section")
    assert SCRIPT not in html
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert escaped in html
    # every occurrence sits inside a <details> (shown on demand)
    body = html[html.index("<main>"):]
    for match in re.finditer(re.escape(escaped), body):
        before = body[:match.start()]
        assert before.count("<details") > before.count("</details>")
    assert any(set(c.typical_ids) & set(injected) for c in result.attack_map.clusters)


def test_sample_sizes_and_method_notes_per_section(planted):
    _, _, data, result, html = planted
    n = len(data.attempts)
    assert f"{n:,} attempts" in html
    assert f"{MAP_SAMPLE:,} attempts mapped (a seeded random sample of {n:,})" in html
    available = [section for section in result.sections if not section.unavailable]
    for section in available:
        assert section.sample and section.method, section.key
    assert all(f'id="{section.key}"' in html for section in result.sections)
    assert html.count("Sample: ") == len(available)


def test_figures_saved_as_png_and_svg(planted):
    result = planted[3]
    names = {p.name for p in result.figures}
    for figure in ("fig1_cells", "rating_distribution", "rating_vs_harmlessness", "concentration", "per_person",
                   "tags", "attack_map"):
        assert {f"{figure}.png", f"{figure}.svg"} <= names
    assert all(p.is_file() and p.stat().st_size > 1000 and p.parent == result.figures_dir for p in result.figures)
    assert result.figures_dir.name == "report_figures"


def test_source_without_ratings_says_not_available(tmp_path: Path):
    """hh-rlhf-like data: transcripts only; every analysis that needs more says so instead of failing."""
    attempts = pd.DataFrame({
        "attempt_id": [str(i) for i in range(30)], "transcript": [f"\n\nHuman: q{i}\n\nAssistant: a" for i in range(30)],
        "min_harmlessness": np.nan, "size": "", "params": np.nan, "model_type": "", "rating": np.nan,
        "task_description": "", "task_harmlessness": np.nan, "red_team_member_id": None, "platform": None,
        "tags": None, "source": "test"})
    data = RedTeamData("pairs", "hh-rlhf", attempts, pd.DataFrame(columns=["attempt_id", "reviewer", "rating", "tags",
                                                                           "needs_expertise"]), [])
    result = build_report(data, tmp_path / "r.html", embeddings=False)
    html = result.html.read_text(encoding="utf-8")
    assert result.errors == {}
    unavailable = {s.key for s in result.sections if s.unavailable}
    assert unavailable == {"cells", "mixed_effects", "ratings", "red_teamers", "tags", "agreement", "attack_map",
                           "people_vs_attackers"}
    assert html.count(NOT_AVAILABLE) >= 6 and "Content warning" in html


def test_counts_stay_integers_when_a_table_mixes_counts_and_means():
    from sparring.analysis.report import frame_table

    frame = pd.DataFrame({"name": ["a", "b"], "n": [1331, 7], "mean": [0.5, float("nan")]})
    table = frame_table(frame, {"name": "name", "n": "n", "mean": "mean"}, digits=3)
    assert table.rows == [["a", "1,331", "0.500"], ["b", "7", "–"]]
