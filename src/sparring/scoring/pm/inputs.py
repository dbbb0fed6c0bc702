"""What the judge reads: the response, in word-piece windows, as a sentence encoder reads a text.

``[CLS] response [SEP]``, one window of ``MAX_TOKENS`` word pieces after another
(at most ``CHUNKS``): the judge scores each window and keeps the most harmful,
so harm that starts after a long preamble is still read. The request is not
read by default (``REQUEST_TOKENS = 0``): in leave-one-source-out
cross-validation a judge that read it with the response learned which
requests a source's authors labelled harmful, and lost up to 0.12 AUROC on
unseen jailbreak sources (the model card has the table). With
``request_tokens > 0`` a window is ``[CLS] request [SEP] response [SEP]``, the
request cut from the left (a long jailbreak prompt ends with the actual ask).
The same code builds the inputs at training and at scoring time, with the
``tokenizers`` library only, so scoring needs no torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sparring.conversation import Conversation, Role

REQUEST_TOKENS = 0
MAX_TOKENS = 128  # per window; 2 CPU cores: the cost of training and scoring grows with it
CHUNKS = 3  # windows read per response at scoring time (training reads the first)
CLS, SEP, PAD = "[CLS]", "[SEP]", "[PAD]"


def last_request(context: str) -> str:
    """The last human turn of an HH context; '' when there is none; plain text is taken as the request."""
    if not context.strip():
        return ""
    try:
        turns = Conversation.from_hh(context).turns
    except ValueError:
        return context
    for turn in reversed(turns):
        if turn.role is Role.HUMAN:
            return turn.text
    return ""


@dataclass(frozen=True)
class Batch:
    """Padded model inputs (int64), as ONNX Runtime and torch both take them."""

    ids: np.ndarray
    mask: np.ndarray
    types: np.ndarray


class PairEncoder:
    """Word pieces for (request, response) pairs and for single texts, from a ``tokenizer.json``."""

    def __init__(self, tokenizer_file: Path, request_tokens: int = REQUEST_TOKENS, max_tokens: int = MAX_TOKENS,
                 chunks: int = CHUNKS) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.request_tokens, self.max_tokens, self.chunks = request_tokens, max_tokens, chunks
        cls_id, sep_id, pad_id = (self.tokenizer.token_to_id(t) for t in (CLS, SEP, PAD))
        if cls_id is None or sep_id is None or pad_id is None:
            raise ValueError(f"{tokenizer_file}: not a BERT word-piece tokenizer (no {CLS}/{SEP}/{PAD})")
        self.cls_id, self.sep_id, self.pad_id = cls_id, sep_id, pad_id

    def _pieces(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def pair_ids(self, requests: Sequence[str], responses: Sequence[str]) -> list[tuple[list[int], int]]:
        """The first window of each (request, response): (ids, length of the first segment) per pair."""
        return self._windows(requests, responses, 1)[0]

    def chunked_ids(self, requests: Sequence[str], responses: Sequence[str]) -> tuple[list[tuple[list[int], int]], list[int]]:
        """Up to ``chunks`` windows per pair, and for each window the index of its pair."""
        return self._windows(requests, responses, self.chunks)

    def _windows(self, requests: Sequence[str], responses: Sequence[str],
                 chunks: int) -> tuple[list[tuple[list[int], int]], list[int]]:
        if len(requests) != len(responses):
            raise ValueError(f"{len(requests)} requests but {len(responses)} responses")
        # the tokenizer's cost grows with the text; nothing past the token budget is ever read
        heads = [response[: self.max_tokens * 8 * chunks] for response in responses]
        if self.request_tokens:
            tails = self._pieces([request[-self.request_tokens * 8:] for request in requests])
            firsts = [[self.cls_id, *request[-self.request_tokens:], self.sep_id] for request in tails]
        else:
            firsts = [[self.cls_id]] * len(responses)
        out: list[tuple[list[int], int]] = []
        owners: list[int] = []
        for owner, (first, response) in enumerate(zip(firsts, self._pieces(heads), strict=True)):
            room = self.max_tokens - len(first) - 1
            for start in range(0, max(1, len(response)), room)[:chunks]:
                ids = [*first, *response[start: start + room], self.sep_id]
                # one segment (type 0 throughout) when there is no request
                out.append((ids, len(first) if self.request_tokens else len(ids)))
                owners.append(owner)
        return out, owners

    def text_ids(self, texts: Sequence[str]) -> list[tuple[list[int], int]]:
        """Single texts as a sentence encoder reads them: ``[CLS] text [SEP]``, one segment."""
        return [([self.cls_id, *ids[: self.max_tokens - 2], self.sep_id], self.max_tokens)
                for ids in self._pieces([text[: self.max_tokens * 8] for text in texts])]

    def pad(self, encoded: Sequence[tuple[list[int], int]]) -> Batch:
        """Pad a batch to its longest sequence; segment 1 starts after the first segment's length."""
        width = max((len(ids) for ids, _ in encoded), default=1)
        ids = np.full((len(encoded), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(encoded), width), dtype=np.int64)
        types = np.zeros((len(encoded), width), dtype=np.int64)
        for row, (pieces, first) in enumerate(encoded):
            ids[row, : len(pieces)] = pieces
            mask[row, : len(pieces)] = 1
            types[row, first: len(pieces)] = 1
        return Batch(ids, mask, types)


def length_batches(lengths: Sequence[int], size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first), so little padding is computed."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[start: start + size] for start in range(0, len(order), size)]
