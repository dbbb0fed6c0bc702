"""How (context, response) becomes encoder input: named views, each embedded separately.

MiniLM reads at most 256 word pieces and cuts from the right, so a long
dialogue would lose exactly what matters: the last request and the response.
Each view therefore keeps only the tail of the context. A recipe is a tuple of
view names; its feature vector is the concatenation of the views' embeddings
(plus, for ``request*response``, their elementwise product, which lets a
linear head ask "does this response go along with this request?").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from sparring.conversation import Conversation, Role

REQUEST_TAIL_CHARS = 160  # ~40 word pieces: 99% of hh-rlhf requests fit; long jailbreak prompts are cut
RESPONSE_HEAD_CHARS = 1000  # the encoder sees ~256 word pieces anyway; spare the tokenizer the rest


def last_request(context: str) -> str:
    """The last human turn of an HH context, '' when there is none (or the context is not HH text)."""
    if not context:
        return ""
    try:
        turns = Conversation.from_hh(context).turns
    except ValueError:
        return context[-REQUEST_TAIL_CHARS:]
    for turn in reversed(turns):
        if turn.role is Role.HUMAN:
            return turn.text
    return ""


def _tail(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[-chars:]


def _response(request: str, response: str) -> str:
    return response[:RESPONSE_HEAD_CHARS]


def _request(request: str, response: str) -> str:
    return _tail(request, REQUEST_TAIL_CHARS)


def _exchange(request: str, response: str) -> str:
    return f"Human: {_tail(request, REQUEST_TAIL_CHARS)}\nAssistant: {response[:RESPONSE_HEAD_CHARS]}"


VIEWS: dict[str, Callable[[str, str], str]] = {
    "response": _response,
    "request": _request,
    "exchange": _exchange,
}
PRODUCT = "request*response"


def view_parameters() -> dict[str, int]:
    """Recorded with a trained PM: its weights are only valid for the texts these produce."""
    return {"request_tail_chars": REQUEST_TAIL_CHARS, "response_head_chars": RESPONSE_HEAD_CHARS}


def view_names(recipe: Sequence[str]) -> list[str]:
    """The embedded views a recipe needs (products reuse their factors)."""
    names: list[str] = []
    for part in recipe:
        for name in part.split("*"):
            if name not in VIEWS:
                raise ValueError(f"unknown feature view {name!r}; known: {sorted(VIEWS)}")
            if name not in names:
                names.append(name)
    return names


def view_texts(recipe: Sequence[str], contexts: Sequence[str], responses: Sequence[str]) -> list[str]:
    """All encoder inputs for a batch, view-major, so the whole batch is encoded in one call."""
    requests = [last_request(c) for c in contexts]
    return [VIEWS[name](q, r) for name in view_names(recipe) for q, r in zip(requests, responses)]


def assemble(recipe: Sequence[str], embeddings: np.ndarray, count: int) -> np.ndarray:
    """Feature matrix ``(count, d)`` from the view-major embeddings of ``view_texts``."""
    names = view_names(recipe)
    by_view = {name: embeddings[i * count : (i + 1) * count] for i, name in enumerate(names)}
    parts = []
    for part in recipe:
        factors = [by_view[name] for name in part.split("*")]
        product = factors[0]
        for factor in factors[1:]:
            product = product * factor
        parts.append(product)
    return np.concatenate(parts, axis=1).astype(np.float32)
