"""How spread out a set of attacks is in meaning: embedding dispersion, next to distinct-n's word counts.

Distinct-2 sees wording only: a paraphrased attack looks new to it, and one template with
swapped nouns looks diverse. Dispersion embeds each attack with the attack map's MiniLM
encoder (ONNX, no torch) and takes the mean pairwise cosine distance: 0 when all attacks say
the same thing, higher the more their meanings differ (about 0.8-1.0 for unrelated texts).
"""

from __future__ import annotations

from collections.abc import Sequence

from sparring.analysis.embedding_map import embed_transcripts

DISPERSION_SAMPLE = 200  # texts embedded per source: enough for a stable mean, quick on 2 cores


def dispersion(texts: Sequence[str]) -> float:
    """Mean pairwise cosine distance of the texts' embeddings; NaN for fewer than two texts."""
    if len(texts) < 2:
        return float("nan")
    vectors = embed_transcripts(list(texts)).astype("float64")  # L2-normalised rows
    n = len(vectors)
    total = vectors.sum(axis=0)
    mean_similarity = (float(total @ total) - float((vectors * vectors).sum())) / (n * (n - 1))
    return 1.0 - mean_similarity
