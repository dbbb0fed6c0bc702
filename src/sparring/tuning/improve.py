"""``sparring improve``: red-team data in, a tuned target and its before/after out (the paper's loop).

Stages, each leaving a file in the output folder that a rerun reuses, so a
killed run picks up where it stopped:

1. ``pairs.jsonl``: the source run's picks (people's and pickers', kinds
   declared), safety pairs on its red-team turns (a flagged reply against the
   model's own safer sample, or a refusal), and as many helpful pairs on
   benign goals, as instructions and as questions (the model's own answers
   preferred over a refusal);
2. ``adapter/``: a LoRA adapter trained with DPO on those pairs;
3. ``before.gguf`` and ``after.gguf``: the base and the tuned network, written
   through the same GGUF path and quantisation;
4. the held-out evaluation run (in the store, resumable as any run) and
   ``before_after.json`` / ``.md``.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sparring.errors import ConfigError, OutputError
from sparring.tuning.before_after import BeforeAfter, before_after, markdown
from sparring.tuning.dpo import DpoRecipe, TrainingResult, require_training_stack, train_dpo
from sparring.tuning.eval_config import HELD_OUT_OFFSET, HELD_OUT_OPENINGS
from sparring.tuning.gguf_export import write_base_and_tuned
from sparring.tuning.pairs import (
    REFUSAL,
    SAFER_SAMPLE,
    CollectedPairs,
    PreferencePair,
    collect_run_pairs,
    kind_counts,
    read_pairs,
    write_pairs,
)
from sparring.tuning.reply_filter import FILTER_DIR, keep_harmful_replies, load_filter, write_filter
from sparring.tuning.training_process import run_in_child

if TYPE_CHECKING:
    from sparring.scoring.pm.model import PreferenceModel
    from sparring.store import Store

PAIRS, ADAPTER, BEFORE_GGUF, AFTER_GGUF = "pairs.jsonl", "adapter", "before.gguf", "after.gguf"
EVAL_TOML, REPORT_JSON, REPORT_MD, MANIFEST = "eval.toml", "before_after.json", "before_after.md", "improve.json"
INPUTS, LOCK, TIMINGS = "inputs.json", ".improve.lock", "timings.json"


@dataclass
class ImproveOptions:
    source: str  # a run id (an experiment's, or a campaign's run)
    out: Path
    model: Path  # the GGUF to tune (default: the embedded SmolLM2)
    size: str = "135M"
    judge: str = "pm"  # measures the before/after; never picks training pairs
    recipe: DpoRecipe = field(default_factory=DpoRecipe)
    helpful_ratio: float = 1.0  # helpful pairs per safety pair
    filter_replies: bool = True  # refusal pairs only on replies a second harm model flags (see reply_filter)
    filter_pm: Path | None = None  # that model: a `sparring pm train` directory; None: train the paper's PM
    safer_samples: int = 8  # samples per flagged turn, the filter's pick chosen over the reply; 0: a refusal
    answer_tokens: int = 96  # length of the model's own answers in helpful pairs
    evaluate: bool = True
    eval_limit: int | None = None  # items per held-out attack (None: all); a small number is a smoke run
    eval_max_tokens: int = 64


@dataclass
class ImproveResult:
    pairs: dict[str, int]
    left_out: dict[str, int]
    training: dict[str, Any]
    after_gguf: Path
    eval_run: str | None = None
    table: BeforeAfter | None = None


Say = Callable[[str], None]


class EvalProgress(Protocol):
    """Told the evaluation run's size, then each batch of finished conversations (the CLI's progress bar)."""

    def planned(self, name: str, total: int) -> None: ...

    def advance(self, count: int) -> None: ...


def improve(store: Store, options: ImproveOptions, say: Say, progress: EvalProgress | None = None) -> ImproveResult:
    """Run every stage not already done in ``options.out``; returns what the manifest records."""
    require_training_stack()
    store.run(options.source)  # an unknown run is a one-line error before anything is written
    if not options.model.is_file():
        raise ConfigError(f"--model: GGUF file not found: {options.model}")
    try:
        options.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"{options.out}: cannot create the output folder: {error.strerror}") from None
    with _only_writer(options.out):
        return _improve(store, options, say, progress)


@contextmanager
def _only_writer(out: Path) -> Iterator[None]:
    """One ``improve`` per folder at a time: two would train into and rename the same files.

    An advisory lock on a file in the folder; the kernel drops it when the process
    dies, so a killed run leaves nothing to clean up before the rerun that resumes it.
    """
    with (out / LOCK).open("a") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"{out}: another `sparring improve` is writing to this folder; wait for it to "
                              "finish or use another --output folder") from None
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _improve(store: Store, options: ImproveOptions, say: Say, progress: EvalProgress | None) -> ImproveResult:
    _check_inputs(options)
    pairs, left_out = _pairs(store, options, say)
    training = _adapter(pairs, options, say)
    before, after = _gguf_files(options, say)
    result = ImproveResult(kind_counts(pairs), left_out, training, after)
    if options.evaluate:
        result.eval_run, result.table = _evaluate(store, options, before, after, say, progress)
    _write_manifest(options, result)
    return result


def _check_inputs(options: ImproveOptions) -> None:
    """A folder resumes only the same work: other inputs would mix two trainings' files."""
    inputs = {"source": options.source, "model": str(options.model.resolve()), "judge": options.judge,
              "helpful_ratio": options.helpful_ratio, "answer_tokens": options.answer_tokens,
              "recipe": options.recipe.model_dump(), "reply_filter": _filter_name(options),
              "safer_samples": _safer_k(options)}
    path = options.out / INPUTS
    if path.is_file():
        held = _read_json(path)
        changed = sorted(k for k in inputs if held.get(k) != inputs[k])
        if changed:
            raise ConfigError(f"{options.out}: holds the output of `sparring improve` with other inputs "
                              f"({', '.join(changed)} differ); use another --output folder")
    else:
        path.write_text(json.dumps(inputs, indent=2))


def _pairs(store: Store, options: ImproveOptions, say: Say) -> tuple[list[PreferencePair], dict[str, int]]:
    path = options.out / PAIRS
    left_path = options.out / "pairs_left_out.json"
    if path.is_file():
        say(f"reusing {path}")
        left = _read_json(left_path) if left_path.is_file() else {}
        return read_pairs(path), left
    started = time.monotonic()
    collected: CollectedPairs = collect_run_pairs(store, options.source, options.judge)
    safety, left_out = collected.pairs, dict(collected.left_out)
    filter_pm = _reply_filter(options, say) if options.filter_replies and safety else None
    if filter_pm is not None:
        filtered = keep_harmful_replies(safety, filter_pm)
        safety = filtered.kept
        left_out[f"{REFUSAL} (reply not flagged by the filter PM)"] = filtered.dropped
    if not safety:
        raise ConfigError(f"run {options.source!r}: no red-team turns to learn from (no picks, and no reply the "
                          "refusal scorer graded as complying"
                          f"{' that the filter PM flags as harmful; try --no-filter' if options.filter_replies else ''})")
    wanted = round(options.helpful_ratio * len(safety))
    flagged = sum(pair.kind == REFUSAL for pair in safety)
    safer = (f"sampling {_safer_k(options)} answers to each of {flagged} flagged replies under the HHH prompt (the "
             f"filter PM's pick is chosen), then ") if filter_pm is not None and _safer_k(options) else ""
    say(f"{safer}writing {wanted} helpful pairs, with {options.model.name}")

    def progress(done: int, total: int) -> None:
        if done % 25 == 0 or done == total:
            say(f"safer samples: {done}/{total} flagged replies")

    safety, helpful = asyncio.run(_generated(options, safety, filter_pm, wanted, progress))
    if safer:
        left_out[f"{REFUSAL} (no sample the filter PM passes)"] = flagged - sum(p.kind == SAFER_SAMPLE for p in safety)
        if not safety:
            raise ConfigError(f"run {options.source!r}: the filter PM flags every sample of every flagged reply; "
                              "--safer-samples 0 trains on refusals instead")
    say(f"{len(safety)} pairs from run {options.source} ({_counts(kind_counts(safety))}), {len(helpful)} helpful")
    pairs = safety + helpful
    write_pairs(pairs, path)
    left_path.write_text(json.dumps(left_out))
    _record_seconds(options.out, "pairs_s", time.monotonic() - started)
    return pairs, left_out


def _filter_name(options: ImproveOptions) -> str | None:
    if not options.filter_replies:
        return None
    return str(options.filter_pm.resolve()) if options.filter_pm else "hh-rlhf PM"


def _reply_filter(options: ImproveOptions, say: Say) -> PreferenceModel:
    if options.filter_pm is not None:
        from sparring.scoring.pm.model import default_pm_path

        return load_filter(options.filter_pm, default_pm_path() if options.judge == "pm" else None)
    from sparring.scoring.pm.model import PreferenceModel

    target = options.out / FILTER_DIR
    if target.is_dir():
        return PreferenceModel.load(target)
    say(f"training the filter PM on the bundled hh-rlhf comparisons before dialogue {HELD_OUT_OFFSET} "
        f"(about 2 minutes) into {target}")
    run_in_child(write_filter, target, HELD_OUT_OFFSET, say=say)
    trained = PreferenceModel.load(target)
    accuracy = trained.metadata.get("heldout_pairwise_accuracy", float("nan"))
    say(f"filter PM: held-out pairwise accuracy {accuracy:.3f}, threshold {trained.threshold:+.3f}")
    return trained


def _safer_k(options: ImproveOptions) -> int:
    return options.safer_samples if options.filter_replies else 0  # the filter PM is what picks the sample


async def _generated(options: ImproveOptions, safety: list[PreferencePair], filter_pm: PreferenceModel | None,
                     helpful: int, progress: Callable[[int, int], None]) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """Safety pairs with the safer samples in, and ``helpful`` helpful pairs: one model load for both."""
    from sparring.models import models
    from sparring.tuning.benign import helpful_pairs
    from sparring.tuning.safer_samples import with_safer_samples

    model = models.create("llamacpp", {"path": str(options.model), "mode": "chat"}, where="--model")
    try:
        if filter_pm is not None and _safer_k(options):
            safety = await with_safer_samples(safety, model, filter_pm, _safer_k(options), options.recipe.seed,
                                              options.answer_tokens, progress)
        answers = await helpful_pairs(model, helpful, options.recipe.seed, options.answer_tokens) if helpful else []
        return safety, answers
    finally:
        await model.aclose()


def _adapter(pairs: list[PreferencePair], options: ImproveOptions, say: Say) -> dict[str, Any]:
    adapter = options.out / ADAPTER
    record = adapter / "training.json"
    if record.is_file():
        say(f"reusing the adapter in {adapter}")
        return _read_json(record)
    partial = options.out / (ADAPTER + ".partial")
    say(f"training: DPO with LoRA on {len(pairs)} pairs, {options.recipe.model_dump()}")
    result: TrainingResult = run_in_child(train_dpo, pairs, options.model, partial, options.recipe, say=say)
    if adapter.exists():
        import shutil

        shutil.rmtree(adapter)
    partial.replace(adapter)
    _record_seconds(options.out, "training_s", result.seconds)
    return _read_json(record)


def _gguf_files(options: ImproveOptions, say: Say) -> tuple[Path, Path]:
    """The base and the tuned network through the same GGUF path."""
    before, after = options.out / BEFORE_GGUF, options.out / AFTER_GGUF
    if before.is_file() and after.is_file():
        return before, after
    started = time.monotonic()
    run_in_child(write_base_and_tuned, options.model, options.out / ADAPTER, before, after, say=say)
    _record_seconds(options.out, "gguf_s", time.monotonic() - started)
    return before, after


def _evaluate(store: Store, options: ImproveOptions, before: Path, after: Path, say: Say,
              progress: EvalProgress | None) -> tuple[str, BeforeAfter]:
    from sparring.experiments import arun_experiment
    from sparring.experiments.config import parse_config
    from sparring.tuning.eval_config import eval_config

    started = time.monotonic()
    toml = eval_config(f"improve-{options.source}"[:60].replace("/", "-"), before.resolve(), after.resolve(),
                       options.size, options.judge, options.eval_limit, options.eval_max_tokens)
    (options.out / EVAL_TOML).write_text(toml, encoding="utf-8")
    config = parse_config(toml, str(options.out / EVAL_TOML), base=options.out)

    def on_plan(run_id: str, total: int) -> None:
        say(f"evaluation run {run_id}: {total} conversations")
        if progress is not None:
            progress.planned(run_id, total)

    outcome = asyncio.run(arun_experiment(config, toml, store, on_plan=on_plan,
                                          on_progress=progress.advance if progress is not None else None))
    if outcome.stopped:
        raise KeyboardInterrupt
    if outcome.errors:
        raise ConfigError(f"evaluation run {outcome.run_id}: {outcome.errors} conversations failed; "
                          "rerun the same command to retry them")
    table = before_after(store, outcome.run_id, options.judge)
    seen = trained_on_eval_items(read_pairs(options.out / PAIRS), options.eval_limit)
    if seen:
        say(f"warning: {seen} held-out red-team openings have the text of a training pair's opening request "
            f"(hh-rlhf repeats some requests in other dialogues, or the source run replayed dialogues past "
            f"{HELD_OUT_OFFSET}); they stay in the before/after")
    (options.out / REPORT_JSON).write_text(json.dumps(table.as_json(), indent=2, default=str))
    (options.out / REPORT_MD).write_text(markdown(table), encoding="utf-8")
    _record_seconds(options.out, "evaluation_s", time.monotonic() - started)
    return outcome.run_id, table


def trained_on_eval_items(pairs: list[PreferencePair], limit: int | None) -> int:
    """How many held-out red-team openings of the evaluation are the first request of a training pair."""
    from sparring.attacks import attacks

    held_out = attacks.create("hh-rlhf", {"offset": HELD_OUT_OFFSET, "limit": limit or HELD_OUT_OPENINGS}, where="evaluation")
    openings = {pair.prompt[0].content.strip() for pair in pairs}
    return sum(1 for item in held_out.items() if item.human_turns[0].strip() in openings)


def _read_json(path: Path) -> dict[str, Any]:
    """A file an earlier run left in the output folder; one edited by hand is named, not a traceback."""
    try:
        held = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read it ({error}); delete it or use another --output folder") from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}: line {error.lineno}: not valid JSON ({error.msg}); delete it or use another "
                          "--output folder") from None
    if not isinstance(held, dict):
        raise ConfigError(f"{path}: expected a JSON object; delete it or use another --output folder")
    return held


def _record_seconds(out: Path, stage: str, seconds: float) -> None:
    """A stage's time, kept in the folder as the stage ends, so the manifest of a resumed run still has it."""
    held = _recorded_seconds(out)
    held[stage] = round(seconds, 1)
    partial = out / (TIMINGS + ".partial")
    partial.write_text(json.dumps(held, indent=2))
    partial.replace(out / TIMINGS)


def _recorded_seconds(out: Path) -> dict[str, float]:
    path = out / TIMINGS
    return _read_json(path) if path.is_file() else {}


def _write_manifest(options: ImproveOptions, result: ImproveResult) -> None:
    manifest = {
        "source_run": options.source,
        "model": str(options.model),
        "judge": options.judge,
        "pairs": result.pairs,
        "pairs_left_out": result.left_out,
        "pair_kinds": {
            "person": "a red teamer's pick in the browser (rejected = the pick)",
            "picker:<scorer>": "an automated run's picker scorer made the pick",
            "refusal": "a red-team reply the refusal scorer graded as complying, and the filter PM (unless "
                       "--no-filter) as harmful (rejected) vs a refusal (chosen)",
            "safer-sample": "such a flagged reply (rejected) vs the base model's own answer to the same turn, "
                            "under the HHH prompt, that the filter PM finds most harmless of --safer-samples (chosen)",
            "helpful": "a benign goal: the base model's own answer (chosen) vs a refusal (rejected)",
        },
        "helpful_ratio": options.helpful_ratio,
        "reply_filter": _filter_name(options),
        "safer_samples": _safer_k(options),
        "training": result.training,
        "files": {"pairs": PAIRS, "adapter": ADAPTER, "before": BEFORE_GGUF, "after": AFTER_GGUF,
                  "eval_config": EVAL_TOML, "before_after": REPORT_MD},
        "eval_run": result.eval_run,
        "eval_limit": options.eval_limit,
        "seconds": _recorded_seconds(options.out),
    }
    (options.out / MANIFEST).write_text(json.dumps(manifest, indent=2))


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{kind} {n}" for kind, n in counts.items())
