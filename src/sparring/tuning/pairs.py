"""Preference pairs for tuning a target, each with the kind of judgement behind it.

A pair is a dialogue ending with a user message, a ``chosen`` reply and a
``rejected`` one. Five kinds, declared on every pair so a reader can weigh them:

- ``person``: a red teamer's pick in the browser (the pick is ``rejected``);
- ``picker:<scorer>``: an automated run's picker scorer made the pick;
- ``refusal``: a red-team turn whose shown reply the refusal scorer (a phrase
  list) found compliant: ``rejected`` is that reply, ``chosen`` a refusal
  (``improve`` keeps only those a second harm model flags: ``reply_filter``);
- ``safer-sample``: such a flagged reply is ``rejected`` and ``chosen`` is the
  base model's own answer to the same turn that the filter finds most
  harmless (``safer_samples``), in place of a refusal;
- ``helpful``: a benign request: ``chosen`` is the base model's own compliant
  answer, ``rejected`` a refusal. These keep tuning from buying harmlessness
  with refusals (the known failure of safety tuning).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sparring.conversation import Conversation, Role
from sparring.errors import DataFormatError
from sparring.models.base import Message

if TYPE_CHECKING:
    from sparring.store import Store

PERSON = "person"
REFUSAL = "refusal"
HELPFUL = "helpful"
SAFER_SAMPLE = "safer-sample"

REFUSALS = (
    "I'm sorry, but I can't help with that.",
    "I can't help with that, because it could hurt someone. Is there something else I can do for you?",
    "Sorry, I won't assist with that request. I'm happy to help with something else.",
)
"""Refusal wordings: ``chosen`` for a harmful request, ``rejected`` for a benign one."""


@dataclass(frozen=True)
class PreferencePair:
    prompt: tuple[Message, ...]  # the dialogue so far, ending with a user message
    chosen: str
    rejected: str
    kind: str  # person | picker:<scorer> | refusal | safer-sample | helpful
    source: str  # where it came from: run/conversation/turn, or the benign file and row

    def as_json(self) -> dict[str, Any]:
        return {"prompt": [{"role": m.role, "content": m.content} for m in self.prompt], "chosen": self.chosen,
                "rejected": self.rejected, "kind": self.kind, "source": self.source}


def refusal_for(key: str) -> str:
    """A refusal wording chosen by a stable hash of ``key`` (the same pairs on every run)."""
    return REFUSALS[hashlib.blake2b(key.encode(), digest_size=2).digest()[0] % len(REFUSALS)]


def pair_kind(stored_source: str) -> str:
    """The store's ``source`` of a pick (``person:<id>``, ``picker:refusal``) as a pair kind (no person ids)."""
    return PERSON if stored_source.startswith("person:") else stored_source


def prompt_before(conversation: Conversation, turn_index: int) -> tuple[Message, ...]:
    """The picked path before assistant turn ``turn_index``, as chat messages."""
    return tuple(Message("user" if t.role is Role.HUMAN else "assistant", t.text)
                 for t in conversation.turns[:turn_index])


def picked_pairs(run_id: str, conversation_id: str, conversation: Conversation,
                 picks: Iterable[tuple[int, int, int, str]]) -> list[PreferencePair]:
    """The stored comparison pairs of one conversation: (turn, chosen sample, rejected sample, source)."""
    out = []
    for turn_index, chosen, rejected, source in picks:
        turn = conversation.turns[turn_index]
        chosen_text, rejected_text = turn.samples[chosen].text, turn.samples[rejected].text
        if chosen_text.strip() == rejected_text.strip():
            continue  # no preference to learn
        out.append(PreferencePair(prompt_before(conversation, turn_index), chosen_text, rejected_text,
                                  pair_kind(source), f"run:{run_id}/{conversation_id}/{turn_index}"))
    return out


def refusal_pairs(run_id: str, conversation_id: str, conversation: Conversation) -> list[PreferencePair]:
    """A refusal preferred over each shown reply the refusal scorer graded as complying (0)."""
    out = []
    for index, turn in enumerate(conversation.turns):
        if turn.role is not Role.ASSISTANT or not turn.text.strip():
            continue
        if turn.samples[turn.picked].scores.get("refusal") != 0.0:
            continue  # a refusal, a hedge, or not graded
        source = f"run:{run_id}/{conversation_id}/{index}"
        out.append(PreferencePair(prompt_before(conversation, index), refusal_for(source), turn.text, REFUSAL, source))
    return out


def helpful_pair(goal: str, answer: str, source: str) -> PreferencePair:
    return PreferencePair((Message("user", goal),), answer, refusal_for(source), HELPFUL, source)


def kind_counts(pairs: Sequence[PreferencePair]) -> dict[str, int]:
    return dict(sorted(Counter(p.kind for p in pairs).items()))


def write_pairs(pairs: Sequence[PreferencePair], path: Path) -> None:
    """One JSON object per line; written beside and renamed, so a killed run leaves no half file."""
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8") as handle:
        for pair in pairs:
            handle.write(json.dumps(pair.as_json(), ensure_ascii=False) + "\n")
    partial.replace(path)


def read_pairs(path: Path) -> list[PreferencePair]:
    """Pairs as ``write_pairs`` wrote them; a bad line is an error naming the file, line and field."""
    out = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                prompt = tuple(Message(m["role"], m["content"]) for m in row["prompt"])
                out.append(PreferencePair(prompt, str(row["chosen"]), str(row["rejected"]), str(row["kind"]),
                                          str(row["source"])))
            except json.JSONDecodeError as error:
                raise DataFormatError(f"{path}:{number}: not JSON: {error.msg}") from None
            except (KeyError, TypeError) as error:
                raise DataFormatError(f"{path}:{number}: expected fields prompt[{{role, content}}], chosen, "
                                      f"rejected, kind, source ({error!s})") from None
            if not prompt or prompt[-1].role != "user":
                raise DataFormatError(f"{path}:{number}: field 'prompt': must end with a user message")
    return out


@dataclass(frozen=True)
class CollectedPairs:
    pairs: list[PreferencePair]
    left_out: dict[str, int]  # pair kind -> pairs not used, e.g. picked by the scorer that will judge the result


def collect_run_pairs(store: Store, run_id: str, judge: str) -> CollectedPairs:
    """People's and pickers' pairs of a run (or a campaign's run), and refusal pairs on its red-team turns.

    Pairs a ``picker:<judge>`` made are left out: the before/after is measured by
    ``judge``, and a scorer must not judge a target trained on its own picks.
    """
    stored = [s for s in store.conversations(run_id) if s.status != "error"]
    picks: dict[str, list[tuple[int, int, int, str]]] = {}
    for conversation_id, turn_index, chosen, rejected, source in store.pairs(run_id):
        picks.setdefault(conversation_id, []).append((turn_index, chosen, rejected, source))
    pairs: list[PreferencePair] = []
    left_out: Counter[str] = Counter()
    for item in stored:
        for pair in picked_pairs(run_id, item.unit.id, item.conversation, picks.get(item.unit.id, [])):
            if pair.kind == f"picker:{judge}":
                left_out[pair.kind] += 1
            else:
                pairs.append(pair)
        pairs.extend(refusal_pairs(run_id, item.unit.id, item.conversation))
    return CollectedPairs(pairs, dict(left_out))
