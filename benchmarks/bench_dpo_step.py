"""`sparring improve`'s DPO step vs TRL's ``DPOTrainer``, and its bf16 arithmetic vs fp32, side by side.

Both tune the embedded SmolLM2-135M (loaded from its GGUF) with a rank-16 LoRA on
every linear layer, batches of ``--batch`` pairs, for ``--steps`` steps, on the
same pairs of real text: bundled hh-rlhf red-team openings, with the dialogue's
next human utterance as the rejected text (real text of a reply's length, no
model needed to build it) and a refusal wording as the chosen one. Timed:
training only, model loading apart (Sparring's side includes its reference pass). Sparring's
step runs twice: in fp32 and in bf16 autocast (the default where the CPU has native bf16;
elsewhere bf16 is emulated and the ratio says how much slower that is). TRL is not a dependency
of Sparring: ``pip install trl`` to include it; without it only Sparring's side runs.

    python benchmarks/bench_dpo_step.py [--steps 2] [--batch 4]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from sparring.attacks import attacks
from sparring.models.base import Message
from sparring.models.llamacpp import embedded_model_path
from sparring.tuning.dpo import DpoRecipe, load_gguf, native_bf16, train_dpo
from sparring.tuning.pairs import REFUSALS, PreferencePair


def real_pairs(count: int) -> list[PreferencePair]:
    """Red-team openings with the dataset's first assistant reply (rejected) against a refusal (chosen)."""
    items = attacks.create("hh-rlhf", {"limit": count, "min_turns": 2}).items()
    out = []
    for i, item in enumerate(items):
        reply = item.human_turns[1]  # a real utterance of similar length to a reply
        out.append(PreferencePair((Message("user", item.human_turns[0]),), REFUSALS[i % 3], reply, "refusal", f"hh#{i}"))
    return out


def sparring_seconds(pairs: list[PreferencePair], steps: int, batch: int, out: Path, precision: str) -> float:
    recipe = DpoRecipe(steps=steps, batch_size=batch, precision=precision)
    result = train_dpo(pairs, embedded_model_path(), out, recipe)
    return result.seconds


def trl_seconds(pairs: list[PreferencePair], steps: int, batch: int, out: Path) -> float | None:
    try:
        from datasets import Dataset
        from peft import LoraConfig
        from trl import DPOConfig, DPOTrainer
    except ImportError:
        return None
    model, tokenizer = load_gguf(embedded_model_path())
    model.is_quantized = False  # load_gguf dequantised it; TRL's trainer refuses a model marked quantised
    rows: list[dict[str, Any]] = [{"prompt": [{"role": m.role, "content": m.content} for m in p.prompt],
                                   "chosen": [{"role": "assistant", "content": p.chosen}],
                                   "rejected": [{"role": "assistant", "content": p.rejected}]} for p in pairs]
    config = DPOConfig(output_dir=str(out), per_device_train_batch_size=batch, max_steps=steps, learning_rate=2e-4,
                       beta=0.1, max_length=256, logging_steps=1, save_strategy="no", report_to=[], use_cpu=True,
                       gradient_checkpointing=False, disable_tqdm=True)
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = DPOTrainer(model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                         peft_config=lora)
    started = time.monotonic()
    trainer.train()
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args()
    import tempfile

    pairs = real_pairs(args.steps * args.batch)
    with tempfile.TemporaryDirectory() as folder:
        sparring_seconds(pairs[:args.batch], 1, args.batch, Path(folder) / "warm-up", "fp32")  # first calls are slow
        ours = sparring_seconds(pairs, args.steps, args.batch, Path(folder) / "ours", "fp32")
        bf16 = sparring_seconds(pairs, args.steps, args.batch, Path(folder) / "bf16", "bf16")
        theirs = trl_seconds(pairs, args.steps, args.batch, Path(folder) / "trl")
    print(f"sparring: {ours / args.steps:.1f} s per step of {args.batch} pairs in fp32, {bf16 / args.steps:.1f} in "
          f"bf16 (reference pass included; this CPU {'has' if native_bf16() else 'lacks'} native bf16)")
    print(f"RESULT sparring fp32/bf16 seconds per step: {ours / bf16:.2f}x")
    if theirs is None:
        print("RESULT trl/sparring seconds per step: not measured (pip install trl)")
        return
    print(f"trl DPOTrainer: {theirs / args.steps:.1f} s per step of {args.batch} pairs")
    print(f"RESULT trl/sparring seconds per step (both fp32): {theirs / ours:.1f}x")


if __name__ == "__main__":
    main()
