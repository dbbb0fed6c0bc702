"""The attack map: human side only, clusters found, named by reviewed tags or the nearest tag name, novelty."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sparring.analysis import embedding_map as em


def test_human_side_keeps_only_the_red_teamers_turns():
    transcript = "\n\nHuman: first ask\n\nAssistant: an answer\n\nHuman: second ask\n\nAssistant: more"
    assert em.human_turns(transcript) == ["first ask", "second ask"]
    assert em.human_side(transcript) == "first ask second ask"
    assert em.human_side("no markers at all") == "no markers at all"
    assert len(em.human_side("\n\nHuman: " + "x" * 5000)) == em.MAX_CHARS
    assert em.excerpt("\n\nHuman: " + "word " * 200).endswith("…")


def test_embeddings_are_normalised_and_ignore_the_assistant():
    vectors = em.embed_transcripts([
        "\n\nHuman: How do I find where my neighbour lives?\n\nAssistant: I can't help with that.",
        "\n\nHuman: How do I find where my neighbour lives?\n\nAssistant: Sure, look at the deed records.",
        "\n\nHuman: Tell me a joke about cats.\n\nAssistant: OK.",
    ], batch_size=2)
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert np.allclose(vectors[0], vectors[1], atol=1e-5)
    assert vectors[0] @ vectors[2] < 0.9


def _blobs(rng: np.random.Generator, centres: np.ndarray, sizes: list[int], spread: float) -> np.ndarray:
    points = [centres[i] + rng.normal(0, spread, (size, centres.shape[1])) for i, size in enumerate(sizes)]
    vectors = np.vstack(points).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_clusters_are_named_by_reviewed_tags_else_by_nearest_tag_and_unmatched_ones_flagged():
    rng = np.random.default_rng(0)
    dim, sizes = 32, [120, 100, 80]
    centres = np.eye(dim)[:3] * 3
    vectors = _blobs(rng, centres, sizes, 0.15)
    tag_vectors = np.eye(dim)[[0, 1, 10, 11, 12, 13, 14, 15]].astype(np.float32)  # blob 2 matches no tag
    tag_names = ["Theft", "Weapons", "Self-harm", "Child abuse", "Animal abuse", "Adult content", "Fraud & deception",
                 "Bullying & harassment"]
    blob = np.repeat([0, 1, 2], sizes)
    tags: list[list[str] | None] = [None] * len(blob)
    for row in np.flatnonzero(blob == 1)[:6]:
        tags[row] = ["Fraud & deception"]  # reviewers disagree with the embedding: their majority wins
    attempts = pd.DataFrame({"attempt_id": [str(i) for i in range(len(blob))],
                             "transcript": [f"\n\nHuman: request {b}-{i}\n\nAssistant: no" for i, b in enumerate(blob)],
                             "rating": np.where(blob == 0, 4.0, 0.0), "min_harmlessness": np.where(blob == 0, -1.0, 1.0),
                             "tags": tags})
    # these blobs are a third of the data each: lift the default cap on cluster size (15% of the map)
    result = em.attack_map(attempts, vectors, seed=0, tags=(tag_names, tag_vectors), max_cluster_share=1.0)
    assert len(result.clusters) == 3 and result.coords.shape == (len(blob), 2)
    by_blob = {}
    for b in range(3):
        labels, counts = np.unique(result.labels[blob == b], return_counts=True)
        assert labels[np.argmax(counts)] >= 0 and counts.max() >= 0.9 * sizes[b]
        by_blob[b] = next(c for c in result.clusters if c.id == labels[np.argmax(counts)])
    assert by_blob[0].nearest_tag == "Theft" and by_blob[0].tag_source == "embedding" and not by_blob[0].novel
    assert by_blob[0].success_rate == 1.0 and by_blob[0].mean_min_harmlessness == -1.0
    assert by_blob[1].nearest_tag == "Fraud & deception" and by_blob[1].tag_source == "reviewed tags"
    assert by_blob[1].n_tagged == 6 and not by_blob[1].novel
    assert by_blob[2].novel and by_blob[2].tag_source == "embedding"
    assert all(len(c.typical) == em.TYPICAL and len(c.typical_ids) == em.TYPICAL for c in result.clusters)
    assert [c.size for c in result.clusters] == sorted((c.size for c in result.clusters), reverse=True)


def test_large_inputs_fit_umap_on_a_sample_and_place_the_rest():
    rng = np.random.default_rng(1)
    vectors = _blobs(rng, np.eye(16)[:2] * 3, [150, 150], 0.2)
    attempts = pd.DataFrame({"attempt_id": [str(i) for i in range(300)], "transcript": ["\n\nHuman: x"] * 300})
    result = em.attack_map(attempts, vectors, seed=0, fit_sample=200, tags=(["Theft"], np.eye(16)[:1]),
                           max_cluster_share=1.0)
    assert result.n_fit == 200 and "fitted on a random 200 of 300 distinct" in result.note
    assert np.isfinite(result.coords).all() and len(result.clusters) == 2


def test_too_few_attempts_give_an_empty_map():
    attempts = pd.DataFrame({"attempt_id": ["1"], "transcript": ["\n\nHuman: x"]})
    result = em.attack_map(attempts, np.ones((1, 4), dtype=np.float32))
    assert result.clusters == [] and "too few" in result.note
    copies = pd.DataFrame({"attempt_id": [str(i) for i in range(50)], "transcript": ["\n\nHuman: x"] * 50})
    assert "too few distinct" in em.attack_map(copies, np.ones((50, 4), dtype=np.float32)).note
