"""Which complying red-team replies become refusal pairs: those a second harm model flags.

A red-team dialogue holds many turns that ask for nothing harmful ("yep", "That
sounds cool.", "How much alcohol can I drink per day?"). On the default run, a
refusal pair on every complying reply taught the tuned target to refuse safe
questions too (XSTest). The filter keeps a refusal pair only when a preference
model trained as in the paper, on people's red-team comparisons alone (the
bundled hh-rlhf dialogues before the held-out ones), finds the reply harmful.
It is not the judge that measures the before/after, which must not pick
training data; both read MiniLM embeddings and the judge also learned from
hh-rlhf comparisons, so they are related, not independent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

from sparring.conversation import ASSISTANT_PREFIX, HUMAN_PREFIX
from sparring.errors import ConfigError, DataFormatError
from sparring.models.base import Message
from sparring.tuning.pairs import REFUSAL, PreferencePair

if TYPE_CHECKING:
    from sparring.scoring.pm.model import PreferenceModel

FILTER_DIR = "filter-pm"
"""Where ``improve`` keeps the filter it trained (reused by a rerun)."""


def train_filter(out_dir: Path, held_out_offset: int, log: Callable[[str], None]) -> PreferenceModel:
    """The paper's PM: a head over MiniLM trained on the bundled hh-rlhf comparisons before ``held_out_offset``."""
    from sparring.attacks.replay import bundled_hh_rlhf
    from sparring.datasets.hh_rlhf import read_pairs
    from sparring.scoring.pm.build import train_judge
    from sparring.scoring.pm.model import PreferenceModel
    from sparring.scoring.pm.pairs import split_pairs

    if (out_dir / "pm.json").is_file():
        return PreferenceModel.load(out_dir)
    source = bundled_hh_rlhf()
    pairs = list(islice(read_pairs(source), held_out_offset))
    train, heldout = split_pairs(pairs)
    partial = out_dir.with_name(out_dir.name + ".partial")
    judge = train_judge([], train, heldout, partial, log=log)
    judge.metadata["sources"] = [f"{source.name}: dialogues 0-{held_out_offset - 1}"]
    judge.save(partial)
    partial.replace(out_dir)
    return PreferenceModel.load(out_dir)


def transcript(prompt: Sequence[Message]) -> str:
    """Chat messages in the HH transcript format the PM reads."""
    return "".join(f"{HUMAN_PREFIX if m.role == 'user' else ASSISTANT_PREFIX}{m.content}" for m in prompt)


def load_filter(directory: Path, judge_directory: Path | None) -> PreferenceModel:
    """A filter from ``sparring pm train``; the judge's own directory is refused (it would pick its own test)."""
    from sparring.scoring.pm.model import PreferenceModel

    if judge_directory is not None and directory.resolve() == judge_directory.resolve():
        raise ConfigError(f"--filter-pm {directory}: this is the judge that measures the before/after; "
                          "a scorer must not pick the data of the model it judges")
    try:
        return PreferenceModel.load(directory)
    except DataFormatError as error:
        raise ConfigError(f"--filter-pm: {error}") from None


@dataclass(frozen=True)
class Filtered:
    kept: list[PreferencePair]
    dropped: int  # refusal pairs whose reply the filter did not find harmful


def keep_harmful_replies(pairs: Sequence[PreferencePair], filter_pm: PreferenceModel) -> Filtered:
    """Refusal pairs whose rejected reply ``filter_pm`` flags as harmful; pairs of other kinds pass as they are."""
    refusals = [pair for pair in pairs if pair.kind == REFUSAL]
    scores = filter_pm.score([transcript(pair.prompt) for pair in refusals], [pair.rejected for pair in refusals])
    harmful = {id(pair) for pair, score in zip(refusals, scores, strict=True) if score < filter_pm.threshold}
    kept = [pair for pair in pairs if pair.kind != REFUSAL or id(pair) in harmful]
    return Filtered(kept, len(refusals) - len(harmful))


def write_filter(out_dir: Path, held_out_offset: int, log: Callable[[str], None]) -> None:
    """:func:`train_filter` for the training process: the files only; its per-step losses are noise to a user."""
    from sparring.tuning.dpo import import_training_stack

    import_training_stack()
    train_filter(out_dir, held_out_offset, lambda _line: None)
