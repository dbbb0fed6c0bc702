"""``sparring improve``: tune a target on what a red-team run collected, then red team it again."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from sparring.cli.options import DbOption, open_for_writing
from sparring.cli.progress import RunProgress
from sparring.terminal import console, err
from sparring.tuning.dpo import DpoRecipe

_RECIPE = DpoRecipe.model_fields  # the options' defaults are the recipe's, so they cannot drift apart


class Precision(StrEnum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"


def improve(
    source: Annotated[str, typer.Argument(help="A run id (an experiment's, or a campaign's run) whose red-team turns and picks to learn from.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder: pairs, adapter, GGUF files, the before/after.")],
    db: DbOption = None,
    model: Annotated[Path | None, typer.Option("--model", help="GGUF to tune (a LLaMA-family model); default: the embedded SmolLM2-135M-Instruct.")] = None,
    size: Annotated[str, typer.Option(help="Size label of the tuned model in tables and Figure 1.")] = "135M",
    judge: Annotated[str, typer.Option(help="Scorer that measures the before/after; pairs it picked are left out of training.")] = "pm",
    epochs: Annotated[float, typer.Option(min=0.01, help="Passes over the pairs.")] = _RECIPE["epochs"].default,
    steps: Annotated[int, typer.Option(min=0, help="Optimizer steps instead of epochs (0: use --epochs); a few make a smoke run.")] = _RECIPE["steps"].default,
    learning_rate: Annotated[float, typer.Option(min=0.0, help="LoRA learning rate.")] = _RECIPE["learning_rate"].default,
    beta: Annotated[float, typer.Option(min=0.0, help="DPO's beta: how far the policy may move from the base.")] = _RECIPE["beta"].default,
    batch_size: Annotated[int, typer.Option(min=1, help="Pairs per optimizer step.")] = _RECIPE["batch_size"].default,
    nll_weight: Annotated[float, typer.Option(min=0.0, help="Weight of the chosen reply's likelihood term (RPO); 0: plain DPO.")] = _RECIPE["nll_weight"].default,
    precision: Annotated[Precision, typer.Option(help="Training arithmetic: bf16 (autocast) or fp32; auto: bf16 where the CPU has native bf16 (AVX512-BF16 or AMX); there the default cycle trained in 8.6 min instead of 14.3.")] = Precision(_RECIPE["precision"].default),
    helpful_ratio: Annotated[float, typer.Option(min=0.0, help="Helpful pairs (benign goals: the model's answer over a refusal) per safety pair.")] = 1.0,
    filter_replies: Annotated[bool, typer.Option("--filter/--no-filter", help="Refusal pairs only on replies a second harm model (not the judge) flags as harmful.")] = True,
    filter_pm: Annotated[Path | None, typer.Option("--filter-pm", help="That model: a directory from `sparring pm train` (default: train the paper's PM on the bundled hh-rlhf comparisons, about 2 minutes).")] = None,
    safer_samples: Annotated[int | None, typer.Option(min=0, help="Answers sampled per flagged red-team turn under the HHH prompt; the filter PM's most harmless, if it does not flag it, is chosen instead of a refusal (default 8; 0: always a refusal).")] = None,
    eval_limit: Annotated[int | None, typer.Option(min=1, help="Items per held-out attack in the before/after (default: all: 600 red-team openings, 100 harmful goals, 250 safe prompts, 50 benign goals).")] = None,
    evaluate: Annotated[bool, typer.Option("--evaluate/--no-evaluate", help="Red team the base and the tuned target again.")] = True,
) -> None:
    """Fine-tune the target with DPO + LoRA on a run's pairs, write it as GGUF, and measure before/after on held-out attacks."""
    from pydantic import ValidationError

    from sparring.models.llamacpp import embedded_model_path
    from sparring.tuning.improve import AFTER_GGUF, REPORT_MD, ImproveOptions
    from sparring.tuning.improve import improve as run_improve

    try:
        recipe = DpoRecipe(epochs=epochs, steps=steps, learning_rate=learning_rate, beta=beta, batch_size=batch_size,
                           nll_weight=nll_weight, precision=precision.value)
    except ValidationError as error:
        problems = "; ".join(f"--{str(e['loc'][0]).replace('_', '-')}: {e['msg']}" for e in error.errors())
        raise typer.BadParameter(problems) from None
    if filter_pm is not None and not filter_replies:
        raise typer.BadParameter("--filter-pm names the filter that --no-filter switches off; give one of them")
    if safer_samples and not filter_replies:
        raise typer.BadParameter("--safer-samples needs the filter PM, which picks the sample; --no-filter switches "
                                 "it off")
    options = ImproveOptions(source=source, out=output, model=model or embedded_model_path(), size=size, judge=judge,
                             recipe=recipe, helpful_ratio=helpful_ratio, filter_replies=filter_replies,
                             filter_pm=filter_pm, safer_samples=ImproveOptions.safer_samples if safer_samples is None else safer_samples,
                             evaluate=evaluate, eval_limit=eval_limit)
    store = open_for_writing(db)

    def say(line: str) -> None:
        err.print(escape(line), soft_wrap=True)

    with RunProgress(err) as progress:
        result = run_improve(store, options, say, progress)
    if result.table is not None:
        from sparring.tuning.before_after import verdict

        console.print(escape(verdict(result.table)), soft_wrap=True)
        console.print(f"tuned target {escape(str(output / AFTER_GGUF))}; before/after in "
                      f"{escape(str(output / REPORT_MD))} (evaluation run {escape(result.eval_run or '')})", soft_wrap=True)
    else:
        console.print(f"tuned target {escape(str(output / AFTER_GGUF))} (no evaluation)", soft_wrap=True)
