"""``sparring release``: a source becomes a scrubbed, documented, checksummed bundle, or nothing.

The bundle is written into a temporary folder beside ``OUT`` and renamed into place
at the end, so a failed or killed build never leaves a half-written release under
the final name. Without ``--report`` the same source gives byte-identical files
(gzip and Parquet carry no timestamps; the datasheet no build date).
"""

from __future__ import annotations

import gzip
import io
import json
import multiprocessing
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparring.errors import ConfigError
from sparring.release.datasheet import CONTENT_WARNING, ScrubSummary, composition, render_datasheet
from sparring.release.ner import shared_engine
from sparring.release.parquet import write_pairs_parquet, write_records_parquet
from sparring.release.pseudonyms import Pseudonyms
from sparring.release.scrub import ScrubbedRecord, Scrubber, ScrubTimings, TextField, role_structure
from sparring.release.sha256sums import NAME as SUMS
from sparring.release.sha256sums import write_sha256sums
from sparring.release.sources import CampaignFacts, ReleaseSource, load_source

ATTEMPTS = "red_team_attempts.jsonl.gz"
ATTEMPTS_PARQUET = "red_team_attempts.parquet"
PAIRS = "comparison_pairs.jsonl"
PAIRS_PARQUET = "comparison_pairs.parquet"
DATASHEET = "DATASHEET.md"
WARNING = "CONTENT_WARNING.txt"
SCRUB_LOG = "scrub_log.jsonl"
SCRUB_REPORT = "scrub_report.json"
REPORT = "report.html"
CHUNK = 128  # records per scrub batch (one spaCy pipe call)


@dataclass
class BundleResult:
    directory: Path
    attempts: int
    pairs: int
    replacements: int
    counts: dict[tuple[str, str], int]
    files: list[str]
    timings: dict[str, float] = field(default_factory=dict)
    scrub: ScrubTimings = field(default_factory=ScrubTimings)
    ner_load_seconds: float = 0.0
    report_errors: dict[str, str] = field(default_factory=dict)


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def check_output(out: Path, force: bool) -> None:
    """Refuse before any work: a file, or a folder with something in it (unless ``force``)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder; choose another OUT")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ConfigError(f"{out}: folder exists and is not empty; pass --force to replace it, or choose another OUT")


def build_bundle(source: str, out: Path, *, database_url: str | None = None, force: bool = False,
                 report: bool = False, report_map: bool = True, workers: int = 1, name: str | None = None,
                 license_text: str = "not stated by the publisher", seed: int = 0,
                 progress: Callable[[str], None] | None = None) -> BundleResult:
    """Read, scrub, write and checksum; the timings say where the time went."""
    out = Path(out).expanduser()
    check_output(out, force)
    say = progress or (lambda _: None)
    timings: dict[str, float] = {}

    start = time.perf_counter()
    loaded = load_source(source, database_url)
    timings["read"] = time.perf_counter() - start
    say(f"read {len(loaded.records):,} attempts and {len(loaded.pairs):,} pairs")

    start = time.perf_counter()
    engine = shared_engine()
    timings["ner_load"] = time.perf_counter() - start
    scrubber = Scrubber(engine, loaded.identifiers)
    inputs, campaign_input = _scrub_inputs(loaded)
    start = time.perf_counter()
    scrubbed, scrub_timings = scrub_all(scrubber, inputs + ([campaign_input] if campaign_input else []), workers,
                                        say)
    timings["scrub"] = time.perf_counter() - start
    campaign = _scrubbed_campaign(loaded.campaign, scrubbed.pop()) if campaign_input else None

    start = time.perf_counter()
    people = Pseudonyms()
    records, pairs, log = _assemble(loaded, scrubbed, people)
    timings["assemble"] = time.perf_counter() - start

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        start = time.perf_counter()
        files = _write_data(staging, records, pairs, log)
        counts = Counter((entry["kind"], entry["field"]) for entry in log)
        summary = ScrubSummary(dict(counts), len({e["record"] for e in log if e["file"] == ATTEMPTS}),
                               len({e["record"] for e in log if e["file"] == PAIRS}), SCRUB_LOG)
        _write_json(staging / SCRUB_REPORT, {
            "replacements": len(log),
            "by_kind": dict(Counter(e["kind"] for e in log)),
            "by_kind_and_field": {f"{k}/{f}": n for (k, f), n in sorted(counts.items())},
            "attempts_changed": summary.records_changed, "pairs_changed": summary.pairs_changed,
        })
        warning = CONTENT_WARNING + ("\n\nThe content warning red teamers saw:\n\n" + campaign.content_warning
                                     if campaign is not None else "")
        (staging / WARNING).write_text(warning + "\n", encoding="utf-8")
        files += [SCRUB_REPORT, WARNING]
        timings["write"] = time.perf_counter() - start
        report_errors: dict[str, str] = {}
        if report:
            start = time.perf_counter()
            say("building the HTML report")
            report_errors = _write_report(staging, loaded, records, people, report_map, seed, name or out.name)
            files.append(REPORT)
            timings["report"] = time.perf_counter() - start
        attack_ids = people.raw_of() if loaded.automated else None
        from sparring import __version__

        datasheet = render_datasheet(
            name=name or out.name, source_kind=loaded.data.kind, source_notes=loaded.data.notes,
            comp=composition(records, len(pairs)), scrub=summary, files=sorted([*files, DATASHEET, SUMS]),
            campaign=campaign, run=loaded.run if campaign is None else None, attack_ids=attack_ids,
            license_text=license_text, version=__version__)
        (staging / DATASHEET).write_text(datasheet, encoding="utf-8")
        start = time.perf_counter()
        write_sha256sums(staging)
        timings["checksums"] = time.perf_counter() - start
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)  # mkdtemp makes it private; the bundle is meant to be shared
        _replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return BundleResult(out, len(records), len(pairs), len(log), dict(counts),
                        sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()),
                        timings, scrub_timings, engine.load_seconds, report_errors)


def _replace(staging: Path, out: Path) -> None:
    """Rename the finished bundle into place; an old OUT (allowed by --force) goes only once the new one is whole."""
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
        staging.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(out)


# -- scrubbing --------------------------------------------------------------------------------------------

def _scrub_inputs(loaded: ReleaseSource) -> tuple[list[list[TextField]], list[TextField] | None]:
    """One scrub record per attempt: its task description, transcript and pairs share one mapping."""
    inputs = [[TextField("task_description", r["task_description"]), TextField("transcript", r["transcript"], True)]
              for r in loaded.records]
    orphans = []
    for number, (index, chosen, rejected) in enumerate(loaded.pairs):
        fields = [TextField(f"pair {number} chosen", chosen, True), TextField(f"pair {number} rejected", rejected, True)]
        if index is None:
            orphans.append(fields)
        else:
            inputs[index].extend(fields)
    campaign = None
    if loaded.campaign is not None:
        facts = loaded.campaign
        campaign = [TextField("campaign name", facts.name), TextField("instructions", facts.instructions),
                    TextField("content warning", facts.content_warning)]
        campaign += [TextField(f"topic {i}", topic) for i, topic in enumerate(facts.topics)]
    return inputs + orphans, campaign


_worker: Scrubber | None = None


def _work(chunk: Sequence[Sequence[TextField]]) -> tuple[list[ScrubbedRecord], ScrubTimings]:
    assert _worker is not None
    _worker.timings = ScrubTimings()
    return _worker.scrub(chunk), _worker.timings


def scrub_all(scrubber: Scrubber, inputs: Sequence[Sequence[TextField]], workers: int,
              progress: Callable[[str], None] | None = None) -> tuple[list[ScrubbedRecord], ScrubTimings]:
    """Scrub in batches; with ``workers`` > 1, forked processes share the one engine already loaded here."""
    global _worker
    chunks = [inputs[i:i + CHUNK] for i in range(0, len(inputs), CHUNK)]
    results: list[ScrubbedRecord] = []
    total = ScrubTimings()
    say = progress or (lambda _: None)
    step = max(1, len(chunks) // 10)
    if workers <= 1 or len(chunks) <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        for number, chunk in enumerate(chunks, 1):
            scrubber.timings = ScrubTimings()
            results.extend(scrubber.scrub(chunk))
            total.add(scrubber.timings)
            if number % step == 0:
                say(f"scrubbed {len(results):,} of {len(inputs):,} records")
        return results, total
    _worker = scrubber
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for number, (done, timings) in enumerate(pool.imap(_work, chunks), 1):
                results.extend(done)
                total.add(timings)
                if number % step == 0:
                    say(f"scrubbed {len(results):,} of {len(inputs):,} records")
    finally:
        _worker = None
    return results, total


def _scrubbed_campaign(facts: CampaignFacts | None, scrubbed: ScrubbedRecord) -> CampaignFacts | None:
    if facts is None:
        return None
    values = scrubbed.fields
    from dataclasses import replace

    return replace(facts, name=values["campaign name"], instructions=values["instructions"],
                   content_warning=values["content warning"],
                   topics=[values[f"topic {i}"] for i in range(len(facts.topics))])


def _assemble(loaded: ReleaseSource, scrubbed: Sequence[ScrubbedRecord], people: Pseudonyms
              ) -> tuple[list[dict[str, Any]], list[tuple[str, str]], list[dict[str, Any]]]:
    """Released records (people as integers), pairs in their original order, and the replacement log."""
    records: list[dict[str, Any]] = []
    log: list[dict[str, Any]] = []
    sides: dict[tuple[int, str], str] = {}
    for number, done in enumerate(scrubbed):
        if number < len(loaded.records):
            record = loaded.records[number]
            if role_structure(done.fields["transcript"]) != role_structure(record["transcript"]):
                raise RuntimeError(f"scrubbing changed the turn structure of record {number}")  # a bug, never data
            records.append({**record, "transcript": done.fields["transcript"],
                            "task_description": done.fields["task_description"],
                            "red_team_member_id": people(record["red_team_member_id"])})
        for name, text in done.fields.items():
            if name.startswith("pair "):
                _, pair, side = name.split()
                sides[(int(pair), side)] = text
        for r in done.replacements:
            if r.field.startswith("pair "):
                _, pair, side = r.field.split()
                log.append({"file": PAIRS, "record": int(pair), "field": side, "kind": r.kind,
                            "placeholder": r.placeholder, "offset": r.offset})
            else:
                log.append({"file": ATTEMPTS, "record": number, "field": r.field, "kind": r.kind,
                            "placeholder": r.placeholder, "offset": r.offset})
    pairs = [(sides[(i, "chosen")], sides[(i, "rejected")]) for i in range(len(loaded.pairs))]
    for (_, chosen, rejected), (new_chosen, new_rejected) in zip(loaded.pairs, pairs, strict=True):
        if (role_structure(chosen), role_structure(rejected)) != (role_structure(new_chosen),
                                                                  role_structure(new_rejected)):
            raise RuntimeError("scrubbing changed the turn structure of a pair")  # a bug, never data
    return records, pairs, log


# -- writing ----------------------------------------------------------------------------------------------

def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _write_data(staging: Path, records: list[dict[str, Any]], pairs: list[tuple[str, str]],
                log: list[dict[str, Any]]) -> list[str]:
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as handle:  # no timestamp: reproducible
        handle.write(json.dumps(records, ensure_ascii=False).encode("utf-8"))
    (staging / ATTEMPTS).write_bytes(buffer.getvalue())
    write_records_parquet(records, staging / ATTEMPTS_PARQUET)
    files = [ATTEMPTS, ATTEMPTS_PARQUET, SCRUB_LOG]
    if pairs:
        with (staging / PAIRS).open("w", encoding="utf-8") as handle:
            for chosen, rejected in pairs:
                handle.write(json.dumps({"chosen": chosen, "rejected": rejected}, ensure_ascii=False) + "\n")
        write_pairs_parquet(pairs, staging / PAIRS_PARQUET)
        files += [PAIRS, PAIRS_PARQUET]
    with (staging / SCRUB_LOG).open("w", encoding="utf-8") as handle:
        for entry in log:
            handle.write(json.dumps(entry) + "\n")
    return files


def _write_report(staging: Path, loaded: ReleaseSource, records: list[dict[str, Any]], people: Pseudonyms,
                  embeddings: bool, seed: int, name: str) -> dict[str, str]:
    """The report reads the scrubbed records; attempt and reviewer ids are release numbers, never store ids."""
    from sparring.analysis.dataset import RedTeamData, reviews_frame
    from sparring.analysis.report import build_report

    attempts = loaded.data.attempts.copy()
    old_ids = {old: str(i) for i, old in enumerate(attempts["attempt_id"])}
    attempts["attempt_id"] = [str(i) for i in range(len(records))]
    attempts["transcript"] = [r["transcript"] for r in records]
    attempts["task_description"] = [r["task_description"] for r in records]
    attempts["red_team_member_id"] = [str(r["red_team_member_id"]) for r in records]
    attempts["source"] = name
    reviews = reviews_frame([
        {"attempt_id": old_ids[row.attempt_id], "reviewer": str(people(row.reviewer)), "rating": row.rating,
         "tags": row.tags, "needs_expertise": row.needs_expertise}
        for row in loaded.data.reviews.itertuples(index=False) if row.attempt_id in old_ids
    ])
    data = RedTeamData(name, loaded.data.kind, attempts, reviews, list(loaded.data.notes), loaded.data.unscored)
    result = build_report(data, staging / REPORT, embeddings=embeddings, seed=seed)
    return result.errors
