"""``sparring release SOURCE OUT/``: the command; the work is in ``sparring.release.bundle``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from sparring.cli.options import DbOption
from sparring.terminal import console, err


def release(
    source: Annotated[str, typer.Argument(
        help="A run or campaign id in the store, a released-format file, hh-rlhf pairs, or JailbreakBench artifacts.")],
    out: Annotated[Path, typer.Argument(help="The bundle folder to create (must be empty or absent; see --force).")],
    db: DbOption = None,
    force: Annotated[bool, typer.Option("--force", help="Replace OUT if it exists and is not empty (only once the new bundle is complete).")] = False,
    report: Annotated[bool, typer.Option("--report", help="Also write the HTML report of the scrubbed data (report.html, report_figures/).")] = False,
    no_map: Annotated[bool, typer.Option("--no-map", help="With --report: skip the embedding map.")] = False,
    workers: Annotated[int, typer.Option("--workers", min=0, help="Processes scrubbing in parallel; 0 = the usable cores, at most 4.")] = 0,
    name: Annotated[str | None, typer.Option("--name", help="The release's name in the datasheet (default: OUT's folder name).")] = None,
    license_text: Annotated[str, typer.Option("--license", help="The licence the datasheet states.")] = "not stated by the publisher",
    seed: Annotated[int, typer.Option(help="Seed for the report's bootstrap and map.")] = 0,
) -> None:
    """Scrub personal information and write a release bundle: data, Parquet, datasheet, content warning, SHA256SUMS."""
    from sparring.release.bundle import build_bundle, cores

    start = time.perf_counter()
    result = build_bundle(
        source, out, database_url=db, force=force, report=report, report_map=not no_map,
        workers=workers or min(cores(), 4), name=name, license_text=license_text, seed=seed,
        progress=lambda line: err.print(f"  {escape(line)}") if err.is_terminal else None)
    for key, message in result.report_errors.items():
        err.print(f"[yellow]warning:[/yellow] report section {escape(key)} left out: {escape(message)}")
    by_kind: dict[str, int] = {}
    for (kind, _), n in result.counts.items():
        by_kind[kind] = by_kind.get(kind, 0) + n
    console.print(f"release: {escape(str(result.directory))} ({result.attempts:,} attempts, {result.pairs:,} pairs)")
    console.print(f"replaced {result.replacements:,} spans: "
                  + (", ".join(f"{k} {n:,}" for k, n in sorted(by_kind.items())) or "none"))
    scrub = result.scrub
    console.print(f"NER engine loaded once in {result.ner_load_seconds:.1f} s; time per part: "
                  + ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items())
                  + f" (scrub work: NER {scrub.ner:.1f} s, patterns {scrub.patterns:.1f} s, "
                  f"replacing {scrub.replace:.1f} s); total {time.perf_counter() - start:.1f} s")
    console.print("verify with: (cd " + escape(str(result.directory)) + " && sha256sum -c SHA256SUMS)")
