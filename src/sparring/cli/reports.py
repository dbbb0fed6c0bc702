"""``sparring report SOURCE``: the paper's analyses of a file, run or campaign as one HTML file."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from sparring.cli.options import DbOption, database_url
from sparring.errors import writing
from sparring.terminal import console, err

if TYPE_CHECKING:
    from sparring.analysis.dataset import RedTeamData


def _load(source: str, db: str | None) -> RedTeamData:
    from sparring.analysis.dataset import read_source

    if Path(source).exists():
        return read_source(source, db)
    return read_source(source, database_url(db))


def report(
    source: Annotated[str, typer.Argument(
        help="A released-format file, hh-rlhf pairs, JailbreakBench artifacts, or a run or campaign id in the store.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The HTML file; figures go to <stem>_figures/.")] = Path("report.html"),
    compare: Annotated[str | None, typer.Option("--compare", help="A second source to compare with (same kinds as SOURCE).")] = None,
    db: DbOption = None,
    no_map: Annotated[bool, typer.Option("--no-map", help="Skip the embedding map (no transcript embeddings).")] = False,
    map_sample: Annotated[int, typer.Option("--map-sample", min=0, help="Attempts to embed and map (a seeded random sample); 0 = all.")] = 5000,
    seed: Annotated[int, typer.Option(help="Seed for bootstrap resamples, the map sample and UMAP.")] = 0,
) -> None:
    """Write a self-contained HTML report: figures, tables, sample sizes and method notes for every analysis."""
    from sparring.analysis.compare import scorer_mismatch
    from sparring.analysis.report import build_report

    start = time.perf_counter()
    data = _load(source, db)
    other = _load(compare, db) if compare else None
    mismatch = scorer_mismatch(data, other) if other is not None else None
    if mismatch:
        err.print(f"[yellow]warning:[/yellow] {escape(mismatch)}", soft_wrap=True)
    loaded = time.perf_counter() - start
    err.print(f"read {escape(data.name)} ({escape(data.kind)}): {len(data.attempts):,} attempts in {loaded:.1f} s")
    with writing(output):
        result = build_report(data, output, compare_with=other, embeddings=not no_map,
                              map_sample=map_sample or None, seed=seed,
                              progress=lambda part: err.print(f"  {escape(part)} …") if err.is_terminal else None)
    for key, message in result.errors.items():
        err.print(f"[yellow]warning:[/yellow] section {escape(key)} left out: {escape(message)}")
    console.print(f"report: {escape(str(result.html))}")
    console.print(f"figures ({len(result.figures)} files, PNG and SVG): {escape(str(result.figures_dir))}")
    console.print("time per part: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items())
                  + f"; total {time.perf_counter() - start:.1f} s")
