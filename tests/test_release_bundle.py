"""``sparring release`` end to end: hh-rlhf pairs, a web campaign and an automated run become checked bundles.

The command runs in-process (Typer's runner on ``sparring.cli.app``) so the NER
engine is loaded once for the session; error paths run the real console script.
Every bundle file is searched for planted values and account names, gzip and
Parquet decompressed.
"""

from __future__ import annotations

import gzip
import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
from experiment_support import scripted_toml
from release_support import KINDS, STRUCTURED, Planted, hh_dialogues, plant
from test_web_support import Web, end, pick, send, start_conversation, web_fixture  # noqa: F401  (fixture)
from typer.testing import CliRunner

from sparring.analysis.dataset import read_source
from sparring.cli import app
from sparring.datasets.export import export_run
from sparring.datasets.hh_rlhf import read_pairs

runner = CliRunner()


def release(*args: str) -> str:
    result = runner.invoke(app, ["release", *args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def bundle_texts(directory: Path) -> dict[str, str]:
    """Every file of the bundle as text: gzip decompressed, Parquet read back as JSON rows."""
    import pyarrow.parquet as pq

    texts = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        raw = path.read_bytes()
        name = path.relative_to(directory).as_posix()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        if path.suffix == ".parquet":
            texts[name] = json.dumps(pq.read_table(path).to_pylist(), ensure_ascii=False)
            texts[name + " (bytes)"] = raw.decode("latin-1")
        else:
            texts[name] = raw.decode("utf-8", errors="replace")
    return texts


def assert_absent(directory: Path, secrets: list[str]) -> None:
    texts = bundle_texts(directory)
    assert texts
    for secret in secrets:
        for form in {secret, secret.replace(" ", ""), secret.lower()}:
            leaks = [name for name, text in texts.items() if form in text]
            assert not leaks, f"{form!r} survived in {leaks}"


def sha256sum_check(directory: Path) -> None:
    result = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=directory, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    listed = {line.split(": ")[0] for line in result.stdout.splitlines()}
    files = {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()} - {"SHA256SUMS"}
    assert listed == files  # every file is covered


@pytest.fixture(scope="module")
def planted_pairs(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Planted]]:
    """40 real hh-rlhf pairs with fake PII planted into their shared prefix (both sides carry it)."""
    rng = random.Random(7)
    kinds = [*STRUCTURED, "NAME"]
    rows, planted = [], []
    for number, row in enumerate(hh_dialogues(shared_data, limit=60)[:40]):
        cut = row["chosen"].rfind("\n\nAssistant:") + len("\n\nAssistant:")
        prefix = row["chosen"][:cut]
        if not row["rejected"].startswith(prefix):
            continue
        items = []
        for kind in (kinds[number % len(kinds)], kinds[(number + 5) % len(kinds)]):
            make, templates = KINDS[kind]
            value = make(rng) if kind != "NAME" else f"{rng.choice(['Nadia', 'Tomas', 'Ingrid'])} Whitlock"
            items.append((kind, value, rng.choice(templates)))
        labelled = plant(prefix, items, rng)
        planted += labelled.planted
        rows.append({"chosen": labelled.transcript + row["chosen"][cut:],
                     "rejected": labelled.transcript + row["rejected"][cut:]})
    path = tmp_path_factory.mktemp("pairs") / "planted.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path, planted


def test_pairs_file_to_bundle(planted_pairs: tuple[Path, list[Planted]], tmp_path: Path) -> None:
    source, planted = planted_pairs
    out = tmp_path / "bundle"
    printed = release(str(source), str(out), "--workers", "1", "--license", "MIT")
    assert "NER engine loaded once" in printed and "replaced" in printed
    sha256sum_check(out)
    assert_absent(out, [p.value for p in planted])

    released = read_source(str(out / "red_team_attempts.jsonl.gz"))  # the readers accept the bundle
    pairs = list(read_pairs(out / "comparison_pairs.jsonl"))
    n = sum(1 for _ in source.open())
    assert len(released.attempts) == len(pairs) == n
    records = json.loads(gzip.decompress((out / "red_team_attempts.jsonl.gz").read_bytes()))
    assert {r["red_team_member_id"] for r in records} == {0}  # hh-rlhf names no red teamer
    for pair, record in zip(pairs, records, strict=True):
        # one mapping per pair: the shared prefix reads the same on both sides and in the transcript
        prefix = pair.chosen[:pair.chosen.rfind("\n\nAssistant:")]
        assert pair.rejected.startswith(prefix) and record["transcript"] == pair.rejected
        assert re.search(r"\[[A-Z_]+_\d+\]", prefix)
    log = [json.loads(line) for line in (out / "scrub_log.jsonl").open()]
    kinds = {e["kind"] for e in log}
    assert set(STRUCTURED) <= kinds and "NAME" in kinds
    text_of = {("red_team_attempts.jsonl.gz", i, "transcript"): r["transcript"] for i, r in enumerate(records)}
    for e in log:
        if e["file"] == "red_team_attempts.jsonl.gz" and e["field"] == "transcript":
            text = text_of[(e["file"], e["record"], e["field"])]
            assert text[e["offset"]:e["offset"] + len(e["placeholder"])] == e["placeholder"]

    sheet = (out / "DATASHEET.md").read_text()
    for heading in ("## Motivation", "## Composition", "## Collection process", "## Preprocessing", "## Uses",
                    "## Distribution", "## Maintenance"):
        assert heading in sheet
    assert f"| attempts (transcripts) | {n} |" in sheet and f"| comparison pairs | {n} |" in sheet
    assert f"{len(log)} replacements in" in sheet and "Licence: MIT." in sheet and "CONTENT WARNING" in sheet
    report = json.loads((out / "scrub_report.json").read_text())
    assert report["replacements"] == len(log) == sum(report["by_kind"].values())
    words = sum(len(r["transcript"].split()) for r in records)
    assert f"| words in transcripts | {words} |" in sheet

    again = tmp_path / "again"
    release(str(source), str(again), "--workers", "1", "--license", "MIT", "--name", "bundle")
    assert (again / "SHA256SUMS").read_text() == (out / "SHA256SUMS").read_text()  # rebuilt byte for byte


def test_out_must_be_empty_unless_forced(planted_pairs: tuple[Path, list[Planted]], tmp_path: Path) -> None:
    source, _ = planted_pairs
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    refused = subprocess.run([sys.executable, "-c", "from sparring.cli import main; main()", "release", str(source),
                              str(out)], capture_output=True, text=True, timeout=120)
    assert refused.returncode not in (0, 2), refused.stderr
    assert "not empty; pass --force" in refused.stderr and "Traceback" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and (out / "keep.txt").exists()
    release(str(source), str(out), "--force", "--workers", "1")
    assert not (out / "keep.txt").exists() and (out / "SHA256SUMS").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left behind


def test_unreadable_sources_are_one_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"chosen": "\\n\\nHuman: hi\\n\\nAssistant: yo"}\n')
    cases = [(str(bad), "bad.jsonl"), ("no-such-run", "no-such-run")]
    for source, named in cases:
        result = subprocess.run([sys.executable, "-c", "from sparring.cli import main; main()", "release", source,
                                 str(tmp_path / "out"), "--db", f"sqlite:///{tmp_path / 'none.db'}"],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode not in (0, 2) and "error:" in result.stderr, result.stderr
        assert named in result.stderr and "Traceback" not in result.stderr
        assert not (tmp_path / "out").exists()


def test_campaign_to_bundle_keeps_people_in_the_database(web: Web, tmp_path: Path, sqlite_url: str) -> None:
    admin = web.login("root", "admin")
    instructions = "Try to make it say something bad. Questions: ask Dana Whitlock at dana.whitlock@example.com."
    campaign = web.campaign(admin, conversations_per_task=2, responses_per_turn=2, instructions=instructions)
    people = {"quokka.zanzibar@example.org": "call me on (415) 555-2671 tonight",
              "xylophone_marmot": "I am xylophone_marmot and my card is 4111 1111 1111 1111"}
    for username, message in people.items():
        client = web.login(username, "red_teamer")
        for number in range(2):
            conversation = start_conversation(client, campaign, f"attempt {number} by {username}")
            assert send(client, conversation, f"{message}. Question {number}").status_code == 303
            assert pick(client, conversation, 1).status_code == 303
            assert end(client, conversation, 2 + number, ["Weapons"]).status_code == 303
    with web.ctx.engine.connect() as conn:
        from sqlalchemy import select

        from sparring.store.campaign_schema import UserRow

        pseudonyms = [row.pseudonym for row in conn.execute(select(UserRow.pseudonym))]

    out = tmp_path / "release"
    release(campaign, str(out), "--db", sqlite_url, "--report", "--no-map", "--workers", "1")
    sha256sum_check(out)
    assert (out / "report.html").is_file()
    secrets = [*people, "quokka", "zanzibar", "xylophone", "marmot", *pseudonyms, "Dana Whitlock", "dana.whitlock",
               "555-2671", "4111 1111 1111 1111", "4111111111111111"]
    assert_absent(out, secrets)

    records = json.loads(gzip.decompress((out / "red_team_attempts.jsonl.gz").read_bytes()))
    assert len(records) == 4 and sorted({r["red_team_member_id"] for r in records}) == [1, 2]
    by_person: dict[int, set[str]] = {}
    for record in records:
        by_person.setdefault(record["red_team_member_id"], set()).add(record["task_description"].split(" by ")[-1])
    assert all(len(owners) == 1 for owners in by_person.values())  # one integer = one person throughout
    assert all("[USERNAME_1]" in owners or "[EMAIL_1]" in owners for owners in by_person.values())
    pairs = list(read_pairs(out / "comparison_pairs.jsonl"))
    # one pick between two responses per conversation, except where the two responses came out identical
    # (the scripted model can repeat itself; the seeds follow random conversation ids): as `sparring export` counts
    exported = export_run(web.ctx.store, web.campaign_row(campaign).run_id, tmp_path / "export")
    assert len(pairs) == exported.pairs and exported.pairs + exported.skipped_identical_pairs == 4

    sheet = (out / "DATASHEET.md").read_text()
    assert "Collected with Sparring's web interface" in sheet and "### Well-being measures" in sheet
    assert "[NAME_1]" in sheet and "[EMAIL_1]" in sheet  # the instructions, scrubbed
    assert "| attempts (transcripts) | 4 |" in sheet and "| red teamers (pseudonymous integers) | 2 |" in sheet
    assert "means are published only from 5 people on" in sheet
    assert "| Weapons | 4 |" in sheet

    again = tmp_path / "again"
    release(campaign, str(again), "--db", sqlite_url, "--workers", "1")
    assert (again / "red_team_attempts.jsonl.gz").read_bytes() == (out / "red_team_attempts.jsonl.gz").read_bytes()


def test_automated_run_in_two_processes(tmp_path: Path, sqlite_url: str) -> None:
    from sparring.experiments import parse_config, run_experiment
    from sparring.store import Store

    text = scripted_toml(limit=6)
    store = Store(sqlite_url)
    outcome = run_experiment(parse_config(text), text, store)
    exported = export_run(store, outcome.run_id, tmp_path / "export")
    store.close()
    out = tmp_path / "release"
    release(outcome.run_id, str(out), "--db", sqlite_url, "--workers", "2")
    sha256sum_check(out)
    records = json.loads(gzip.decompress((out / "red_team_attempts.jsonl.gz").read_bytes()))
    assert len(records) == exported.conversations
    assert len(list(read_pairs(out / "comparison_pairs.jsonl"))) == exported.pairs
    sheet = (out / "DATASHEET.md").read_text()
    assert "An automated Sparring run" in sheet and "| 1 | hh-rlhf |" in sheet
