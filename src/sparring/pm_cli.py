"""``sparring pm ...`` and ``sparring score``: train, evaluate and apply harmlessness scorers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from sparring.terminal import console

pm_app = typer.Typer(no_args_is_help=True, help="The harmlessness preference model: train, evaluate.")

ScorerOption = Annotated[str, typer.Option("--scorer", help="Any registered scorer (pm, refusal, composite, ...).")]
PMOption = Annotated[Optional[Path], typer.Option("--pm", help="A PM directory; default: the shipped PM.")]


def make_scorer(name: str, pm: Path | None):  # type: ignore[no-untyped-def]
    from sparring.scoring import scorers

    args = {"path": str(pm)} if pm is not None and name == "pm" else {}
    return scorers.create(name, args, where="--scorer")


def score(
    path: Annotated[Path, typer.Argument(help="Released red-team file, hh-rlhf pairs JSONL, or a `sparring export` directory.")],
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Default: NAME.scored.EXT beside the input.")] = None,
    scorer: ScorerOption = "pm",
    pm: PMOption = None,
) -> None:
    """Add harmlessness scores: every assistant utterance given its context, the transcript minimum, the task description."""
    from sparring.datasets.score_files import score_file

    async def run():  # type: ignore[no-untyped-def]
        built = make_scorer(scorer, pm)
        try:
            return await score_file(path, built, output)
        finally:
            await built.aclose()

    result = asyncio.run(run())
    console.print(f"{result.records} records ({escape(result.kind)}), {result.utterances} texts scored -> "
                  f"{escape(str(result.output))}")


@pm_app.command("eval")
def evaluate(
    files: Annotated[list[Path], typer.Argument(
        help="hh-rlhf pairs (pairwise accuracy) and/or (prompt, response, human label) files: JailbreakBench "
             "artifacts, XSTest completions, or CSV/JSONL with prompt,response,label columns.")],
    scorer: ScorerOption = "pm",
    pm: PMOption = None,
    pool: Annotated[bool, typer.Option("--pool", help="Pool all labelled files into one report.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Pairwise accuracy on comparisons; agreement, precision, recall and AUROC on human-labelled files."""
    from sparring.datasets.hh_rlhf import is_pairs_file, read_pairs
    from sparring.scoring.evaluation import evaluate_labelled, pairwise_agreement, read_labelled

    pairs = [f for f in files if is_pairs_file(f)]
    labelled = [f for f in files if f not in pairs]

    async def run() -> list[dict]:
        built = make_scorer(scorer, pm)
        rows: list[dict] = []
        try:
            for path in pairs:
                items = list(read_pairs(path))
                rows.append({"file": str(path), "n": len(items),
                             "pairwise_accuracy": await pairwise_agreement(built, items)})
            groups = [(f"{len(labelled)} files pooled", labelled)] if pool and labelled else [
                (str(path), [path]) for path in labelled]
            for name, paths in groups:
                examples = [example for path in paths for example in read_labelled(path)]
                report = await evaluate_labelled(built, examples)
                rows.append({"file": name, **report.as_dict()})
        finally:
            await built.aclose()
        return rows

    rows = asyncio.run(run())
    if as_json:
        console.print_json(json.dumps({"scorer": scorer, "results": rows}))
        return
    table = Table(title=f"scorer {escape(scorer)} vs human judgements")
    columns = ["file", "n", "pairwise_accuracy", "positives", "agreement", "balanced_accuracy", "precision", "recall",
               "auroc"]
    for column in columns:
        table.add_column(column.replace("_", " "), justify="left" if column == "file" else "right")
    for row in rows:
        cells = [escape(Path(row["file"]).name)]
        for column in columns[1:]:
            value = row.get(column)
            cells.append("-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value))
        table.add_row(*cells)
    console.print(table)


@pm_app.command("train")
def train(
    pairs: Annotated[Optional[list[Path]], typer.Argument(help="hh-rlhf pair files (.jsonl or .jsonl.gz), e.g. from `sparring export`.")] = None,
    run: Annotated[Optional[list[str]], typer.Option("--run", help="Also train on the comparison pairs collected by this run.")] = None,
    db: Annotated[Optional[str], typer.Option("--db", help="Database URL for --run.")] = None,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="PM directory to write (default: ./pm; with --default: the packaged PM).")] = None,
    seed: Annotated[int, typer.Option(help="Same seed, same weights.")] = 0,
    default: Annotated[bool, typer.Option("--default", help="Rebuild the shipped PM from harmless-base-test (../shared/data or the given file).")] = False,
) -> None:
    """Fit a harmlessness PM (Bradley-Terry) on comparison pairs; reports held-out pairwise accuracy on a dialogue-disjoint split."""
    from sparring.scoring.pm.model import default_pm_path
    from sparring.scoring.pm.train import (
        default_data_path, pairwise_accuracy, split_pairs, train_default, train_preference_model,
    )

    if default:
        data = (pairs or [None])[0] or default_data_path()
        if data is None:
            raise typer.BadParameter("harmless-base-test.jsonl.gz not found in ../shared/data; pass its path")
        report = train_default(data, output or default_pm_path(), seed=seed)
        console.print_json(json.dumps(report))
        return
    collected = _collect_pairs(pairs or [], run or [], db)
    train_pairs, heldout = split_pairs(collected)
    if not train_pairs:
        raise typer.BadParameter("no training pairs (give pair files or --run)")
    pm = train_preference_model(train_pairs, seed=seed)
    accuracy = pairwise_accuracy(pm, heldout) if heldout else float("nan")
    pm.metadata.update({"heldout_pairwise_accuracy": accuracy, "train_pairs": len(train_pairs),
                        "heldout_pairs": len(heldout), "sources": [str(p) for p in pairs or []] + list(run or [])})
    destination = output or Path("pm")
    pm.save(destination)
    console.print(f"trained on {len(train_pairs)} pairs; held-out pairwise accuracy {accuracy:.3f} on {len(heldout)} "
                  f"dialogue-disjoint pairs; threshold {pm.threshold:+.3f}; saved to {escape(str(destination))}")


def _collect_pairs(paths: list[Path], runs: list[str], db: str | None) -> list:  # type: ignore[type-arg]
    from sparring.datasets.hh_rlhf import ComparisonPair, read_pairs

    collected: list[ComparisonPair] = []
    for path in paths:
        collected += list(read_pairs(path))
    if runs:
        from sparring.store import Store, resolve_database_url

        store = Store(resolve_database_url(db))
        for run_id in runs:
            store.run(run_id)  # a clear error for an unknown run
            for stored in store.conversations(run_id, ["finished"]):
                collected += [ComparisonPair(c, r) for c, r in stored.conversation.comparison_pairs() if c != r]
    return collected
