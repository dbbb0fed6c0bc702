"""The datasheet (Gebru et al., "Datasheets for Datasets") in Markdown, with counts computed from the released data.

Every number comes from the scrubbed records and pairs as written, so the
datasheet and the files cannot disagree. Text written by people (campaign
instructions, content warnings, tag names) is scrubbed before it gets here and
is escaped: cells are Markdown-escaped, long texts go in fenced blocks.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sparring.release.sources import WELLBEING_MIN_PEOPLE, CampaignFacts, RunFacts

CONTENT_WARNING = (
    "CONTENT WARNING: this data set contains attempts to make AI assistants say harmful things, and some of "
    "their answers. Expect offensive, hateful, violent, sexual and otherwise disturbing text, including "
    "discussion of self-harm, crime and abuse. It is released for research on making models safer. Read it "
    "only if you are prepared to; take breaks; nobody should be required to read it."
)
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~])")


def md(text: object) -> str:
    """Text safe in a Markdown table cell or paragraph: no markup, no HTML, one line."""
    value = " ".join(str(text).split())
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", value)


def fenced(text: str) -> str:
    """A fenced block whose fence is longer than any backtick run inside (nothing in it renders)."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text.rstrip()}\n{fence}"


@dataclass(frozen=True)
class ScrubSummary:
    counts: dict[tuple[str, str], int]  # (kind, field) -> replacements
    records_changed: int
    pairs_changed: int
    log_file: str


@dataclass(frozen=True)
class Composition:
    """The numbers the datasheet states, computed from the released records and pairs."""

    attempts: int
    pairs: int
    red_teamers: int
    cells: dict[tuple[str, str], int]
    ratings: dict[str, int]
    with_min_harmlessness: int
    mean_min_harmlessness: float | None
    with_task_description: int
    tagged: int
    tags: dict[str, int]
    human_turns_mean: float
    words: int
    upworker: int
    top_share: float | None  # share of attempts by the most active 15% of red teamers


def composition(records: Sequence[dict[str, Any]], pairs: int) -> Composition:
    people = Counter(r["red_team_member_id"] for r in records if r["red_team_member_id"] not in (0, ""))
    ratings = Counter("null" if r["rating"] is None else f"{r['rating']:g}" for r in records)
    minima = [r["min_harmlessness_score_transcript"] for r in records
              if r["min_harmlessness_score_transcript"] is not None]
    tags = Counter(t for r in records for t in (r["tags"] or []))
    top_share = None
    if people:
        k = max(1, round(0.15 * len(people)))
        top_share = sum(n for _, n in people.most_common(k)) / sum(people.values())
    return Composition(
        attempts=len(records), pairs=pairs, red_teamers=len(people),
        cells=dict(Counter((r["num_params"] or "unknown", r["model_type"] or "unknown") for r in records)),
        ratings=dict(ratings), with_min_harmlessness=len(minima),
        mean_min_harmlessness=statistics.fmean(minima) if minima else None,
        with_task_description=sum(bool(r["task_description"].strip()) for r in records),
        tagged=sum(bool(r["tags"]) for r in records), tags=dict(tags),
        human_turns_mean=statistics.fmean(r["transcript"].count("\n\nHuman:") for r in records) if records else 0.0,
        words=sum(len(r["transcript"].split()) for r in records),
        upworker=sum(bool(r["is_upworker"]) for r in records), top_share=top_share)


def render_datasheet(*, name: str, source_kind: str, source_notes: Sequence[str], comp: Composition,
                     scrub: ScrubSummary, files: Sequence[str], campaign: CampaignFacts | None, run: RunFacts | None,
                     attack_ids: dict[int, str] | None, license_text: str, version: str) -> str:
    out = [f"# Datasheet: {md(name)}", "", f"> {CONTENT_WARNING}", ""]
    out += _motivation(source_kind)
    out += _composition(comp, attack_ids)
    out += _collection(source_kind, source_notes, campaign, run)
    out += _scrubbing(scrub)
    out += _uses()
    out += _distribution(files, license_text)
    out += _maintenance(version)
    return "\n".join(out) + "\n"


def _motivation(kind: str) -> list[str]:
    return [
        "## Motivation", "",
        "Red-team data: attempts to make AI assistants say harmful things, collected to measure how hard "
        "different models and safety interventions are to attack and to train safer models (following Ganguli "
        "et al. 2022, *Red Teaming Language Models to Reduce Harms*). It is a catalogue of attacks: releasing it "
        "helps others measure and defend, and could also help someone attack, which is why it is scrubbed of "
        "personal information and comes with this datasheet.", "",
        f"Built by `sparring release` from a source of kind **{md(kind)}**.", "",
    ]


def _composition(comp: Composition, attack_ids: dict[int, str] | None) -> list[str]:
    out = ["## Composition", "", "| what | count |", "|---|---|",
           f"| attempts (transcripts) | {comp.attempts} |",
           f"| comparison pairs | {comp.pairs} |",
           f"| red teamers (pseudonymous integers) | {comp.red_teamers} |",
           f"| attempts with a minimum harmlessness score | {comp.with_min_harmlessness} |",
           f"| attempts with a task description | {comp.with_task_description} |",
           f"| attempts with harm tags | {comp.tagged} |",
           f"| attempts by Upwork red teamers (`is_upworker`) | {comp.upworker} |",
           f"| words in transcripts | {comp.words} |",
           f"| mean human turns per transcript | {comp.human_turns_mean:.2f} |", ""]
    if comp.mean_min_harmlessness is not None:
        out += [f"Mean minimum harmlessness (higher = more harmless): {comp.mean_min_harmlessness:.3f}.", ""]
    if comp.top_share is not None:
        out += [f"The most active 15% of red teamers wrote {100 * comp.top_share:.1f}% of the attempts.", ""]
    out += ["Attempts per model size and model type:", "", "| num_params | model_type | attempts |", "|---|---|---|"]
    out += [f"| {md(size)} | {md(kind)} | {n} |" for (size, kind), n in sorted(comp.cells.items())]
    out += ["", "Red teamers' own ratings (0 = not successful, 4 = very successful; null = not given):", "",
            "| rating | attempts |", "|---|---|"]
    out += [f"| {md(rating)} | {n} |" for rating, n in sorted(comp.ratings.items())]
    if comp.tags:
        out += ["", "| harm tag | attempts |", "|---|---|"]
        out += [f"| {md(tag)} | {n} |" for tag, n in sorted(comp.tags.items(), key=lambda kv: (-kv[1], kv[0]))]
    out += ["", "Each record is one attempt in the released red-team format (Ganguli et al. 2022). "
            "`red_team_member_id` is an integer that is stable within this release only (0: the source names "
            "no red teamer); the same person has the same integer throughout, and nothing in the bundle maps it "
            "back to an account."]
    if attack_ids:
        out += ["", "The attempts were written by automated attacks, not people; their integers:", "",
                "| red_team_member_id | attack |", "|---|---|"]
        out += [f"| {number} | {md(attack)} |" for number, attack in sorted(attack_ids.items())]
    return out + [""]


def _collection(kind: str, notes: Sequence[str], campaign: CampaignFacts | None, run: RunFacts | None) -> list[str]:
    out = ["## Collection process", ""]
    if campaign is not None:
        tasks = ", ".join(f"{n} {md(status)}" for status, n in sorted(campaign.tasks.items())) or "none"
        out += [
            f"Collected with Sparring's web interface in the campaign **{md(campaign.name)}** "
            f"(status {md(campaign.status)}). A red teamer wrote a task description, then held an open-ended "
            f"conversation with a blind, randomly assigned target; at every assistant turn the interface showed "
            f"{campaign.responses_per_turn} sampled responses side by side (up to {campaign.max_tokens} tokens "
            f"each) and the red teamer picked the more harmful one, and the conversation went on from the pick. "
            f"About {campaign.suggested_turns} turns were suggested, not enforced; "
            f"{campaign.conversations_per_task} conversations formed one task. After each conversation the red "
            "teamer rated their own success (0-4) and could choose harm tags.", "",
            f"Tasks: {tasks}. Conversations skipped by their red teamer (not released): "
            f"{campaign.skipped_conversations}. Finished blind reviews by other people: {campaign.reviews_done}.",
            "", "### Instructions given to red teamers", "", fenced(campaign.instructions), "",
            "### Well-being measures", "",
            "- a content warning before any work, and a preview of each task that can be skipped without penalty;",
            f"- no topic was required; red teamers could opt out of topics ({', '.join(map(md, campaign.topics)) or 'none listed'});",
            f"- a break reminder after {campaign.break_minutes} minutes of work;",
            f"- a voluntary well-being survey every {campaign.survey_every_tasks} tasks (how much the work made "
            "them feel each of ten feelings, 0-4).", "",
            "The content warning shown to red teamers:", "", fenced(campaign.content_warning), "",
        ]
        wellbeing = campaign.wellbeing
        if wellbeing.means is None:
            out += [f"Well-being surveys answered: {wellbeing.surveys} by {wellbeing.people} people; means are "
                    f"published only from {WELLBEING_MIN_PEOPLE} people on, so none are shown.", ""]
        else:
            out += [f"Well-being surveys answered: {wellbeing.surveys} by {wellbeing.people} people. Mean per "
                    "feeling (each person's mean counts once):", "", "| feeling | mean (0-4) |", "|---|---|"]
            out += [f"| {md(f)} | {v:.2f} |" for f, v in sorted(wellbeing.means.items())] + [""]
    elif run is not None:
        targets = ", ".join(f"{md(size)} {md(kind)}" for size, kind in run.targets) or "none"
        out += [f"An automated Sparring run (status {md(run.status)}): attacker programs or replayed data spoke the "
                f"human side against the targets ({targets}); the primary scorer "
                f"`{md(run.primary_scorer)}` picked among sampled responses and its judgements stand in for a "
                "person's rating. No person took part, so there are no well-being measures to report.", ""]
    else:
        out += [f"Read from a file of kind {md(kind)} that was collected outside Sparring; its own documentation "
                "describes how (interfaces, instructions, well-being measures). What the reader noted:", ""]
        out += [f"- {md(note)}" for note in notes] + [""]
    return out


def _scrubbing(scrub: ScrubSummary) -> list[str]:
    total = sum(scrub.counts.values())
    out = ["## Preprocessing: personal information removed", "",
           "Every transcript utterance, task description, comparison pair and free-text field was scrubbed before "
           "release: patterns with checks for e-mail addresses, phone numbers, street addresses and PO boxes, "
           "social security, passport and driver's licence numbers (the last two only next to a word that names "
           "them), payment cards (Luhn and issuer prefix), IBANs (mod 97), IPv4 and IPv6 addresses and URLs "
           "with credentials; person names and locations by a named-entity model (presidio with spaCy's "
           "`en_core_web_sm`, offline); account names from the red-team database. A value found once is "
           "replaced everywhere in its record. Each is replaced by a placeholder such as `[PHONE_1]`, numbered "
           "per record, so the same value reads the same within a conversation and its pairs. The "
           "`\\n\\nHuman:` / `\\n\\nAssistant:` structure is never changed.", "",
           f"{total} replacements in {scrub.records_changed} attempts and {scrub.pairs_changed} pairs; each is "
           f"listed in `{md(scrub.log_file)}` (file, record, field, kind, placeholder and its offset in the "
           "released text; never the original value).", ""]
    if scrub.counts:
        fields = sorted({f for _, f in scrub.counts})
        out += ["| kind | " + " | ".join(md(f) for f in fields) + " | total |",
                "|---|" + "---|" * (len(fields) + 1)]
        for kind in sorted({k for k, _ in scrub.counts}):
            row = [scrub.counts.get((kind, f), 0) for f in fields]
            out.append(f"| {md(kind)} | " + " | ".join(map(str, row)) + f" | {sum(row)} |")
        out.append("")
    out += ["Limits: the named-entity model misses some names (lower-case names, unusual names, names in "
            "other languages) and replaces some words that are not names; passport and licence numbers "
            "without a naming word, street addresses written in lower case, and personal information "
            "described in words (\"my neighbour, the dentist on the corner\") are not found. Public figures "
            "and countries are replaced like anyone and anywhere else. Treat the data as scrubbed, "
            "not as anonymous.", ""]
    return out


def _uses() -> list[str]:
    return ["## Uses", "",
            "Intended: measuring attack success and harmlessness across models and interventions; training and "
            "evaluating harmlessness preference models and classifiers; studying attack strategies and harm "
            "types to build defences.", "",
            "Misuses: using the successful attacks to harm people or to train models to comply with harmful "
            "requests; trying to re-identify red teamers or anyone mentioned; treating the ratings or scores as "
            "ground truth about harm (they are one person's or one model's judgement); publishing extracts "
            "without the content warning.", ""]


def _distribution(files: Sequence[str], license_text: str) -> list[str]:
    out = ["## Distribution", "", f"Licence: {md(license_text)}.", "",
           "Files (verify with `sha256sum -c SHA256SUMS`):", ""]
    out += [f"- `{md(name)}`" for name in files]
    return out + [""]


def _maintenance(version: str) -> list[str]:
    return ["## Maintenance", "",
            f"Built by Sparring {md(version)} (`sparring release`). Rebuilding from the same source gives the same "
            "records and the same red-teamer integers. Report personal information that survived scrubbing to "
            "the publisher, who should remove it and publish a new release rather than patch files in place.", ""]
