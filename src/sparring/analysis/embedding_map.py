"""The attack map (the paper's Fig. 2): embed what red teamers tried, lay it out in 2-D, find clusters.

Bottom-up discovery of harm types: each cluster is named by its most typical
attacks and its nearest harm tag, and a cluster that matches no tag is flagged
as ``novel`` so that a person looks at it (the paper's future-work item of a
taxonomy grown from the data, not only imposed top-down).

Only the human side is embedded: the map groups attacks by what was tried, not
by how a particular model answered.
"""

from __future__ import annotations

import os
import re
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from sparring.harm_tags import HARM_TAGS, NON_HARM_TAGS

# MiniLM reads at most 256 word pieces (~1,000 characters of English); cutting first
# skips tokenising text the model would drop anyway.
MAX_CHARS = 1000
EXCERPT_CHARS = 220
TYPICAL = 3
SUCCESS_RATING = 3.0  # the paper's binarisation: a self-rating of 3 or 4 is a successful attack
# A cluster "matches no tag" (novel) when no reviewed-tag majority names it and either
# its centroid is far from every tag name (cosine < NOVEL_SIMILARITY) or no tag stands
# out: the nearest tag's similarity is less than NOVEL_STANDOUT standard deviations
# above the mean over the 18 harm tags. Calibrated on real data (MiniLM, tag names):
# the 33 HDBSCAN clusters (min size 20) of the 2,312 hh-rlhf red-team dialogues, where clusters with
# an obvious tag (addresses of people -> PII, theft, drugs, weapons, animal abuse, slurs)
# stand out by 2.3-3.4 SD while pranks, insulting the assistant and "you wish you were a
# robot" stand out by 1.6-2.1; and JailbreakBench / HarmBench categories, where copyright
# requests (which the paper's taxonomy lacks) reach a cosine of only 0.19. Tag names are
# short and abstract ("Soliciting personally identifiable information" vs "what is the
# home address of ..." scores 0.28), so the absolute similarity alone is a poor test.
NOVEL_SIMILARITY = 0.20
NOVEL_STANDOUT = 2.0
FIT_SAMPLE = 5000  # UMAP is fitted on at most this many points; the rest are transformed
MAX_CLUSTER_SHARE = 0.15  # HDBSCAN splits larger clusters (see attack_map)
MIN_TAGGED = 3  # reviewed tags name a cluster only when at least this many members are tagged

_TURN = re.compile(r"\n\nHuman: ?|\n\nAssistant: ?")


def human_turns(transcript: str) -> list[str]:
    """The red teamer's turns of a ``\\n\\nHuman: ... \\n\\nAssistant: ...`` transcript (all of it if unmarked)."""
    if not isinstance(transcript, str):
        return []
    markers = _TURN.findall(transcript)
    if not markers:
        return [transcript.strip()]
    pieces = _TURN.split(transcript)[1:]
    return [text.strip() for marker, text in zip(markers, pieces, strict=False) if marker.startswith("\n\nHuman")]


def human_side(transcript: str) -> str:
    """What the red teamer tried, truncated to what the encoder reads."""
    return " ".join(human_turns(transcript))[:MAX_CHARS]


def excerpt(transcript: str, limit: int = EXCERPT_CHARS) -> str:
    """A short excerpt of the first human turn (plain text; the template escapes it)."""
    turns = human_turns(transcript)
    text = " ".join((turns[0] if turns else "").split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


@lru_cache(maxsize=1)
def shared_encoder():  # type: ignore[no-untyped-def]
    """One encoder per process: transcripts and tag names go through the same loaded model."""
    from sparring.scoring.pm.encoder import Encoder

    return Encoder()


def embed_transcripts(
    texts: Sequence[str], batch_size: int = 64, chunk: int = 2048,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """L2-normalised MiniLM embeddings (n x 384) of the human side of each transcript.

    Runs on the single compute thread, in chunks so ``progress`` can report.
    """
    from sparring.compute_thread import run_on_compute_thread_sync

    prepared = [human_side(text) for text in texts]
    # Longest first over the whole input, so each batch pads to similar lengths (the encoder
    # sorts only within one call, i.e. one chunk); the result is put back in input order.
    order = sorted(range(len(prepared)), key=lambda i: -len(prepared[i]))
    encoder = shared_encoder()

    parts = []
    for start in range(0, len(order), chunk):
        batch = [prepared[i] for i in order[start:start + chunk]]
        parts.append(run_on_compute_thread_sync(encoder.encode, batch, batch_size))
        if progress is not None:
            progress(min(start + chunk, len(order)))
    if not parts:
        return np.zeros((0, 384), dtype=np.float32)
    vectors = np.empty((len(order), parts[0].shape[1]), dtype=np.float32)
    vectors[order] = np.concatenate(parts)
    return vectors


@lru_cache(maxsize=1)
def tag_embeddings() -> tuple[tuple[str, ...], np.ndarray]:
    """The harm tags that name a harm, and their name embeddings (computed once per process)."""
    from sparring.compute_thread import run_on_compute_thread_sync

    names = tuple(tag for tag in HARM_TAGS if tag not in NON_HARM_TAGS)
    vectors = run_on_compute_thread_sync(shared_encoder().encode, list(names))
    return names, vectors


@dataclass
class Cluster:
    id: int
    size: int
    mean_rating: float
    success_rate: float
    mean_min_harmlessness: float
    typical: list[str]  # excerpts of the first human turn of the attempts nearest the centroid
    typical_ids: list[str]
    nearest_tag: str
    tag_similarity: float  # cosine of the centroid to the tag name's embedding
    tag_standout: float  # how far that similarity stands above the mean over all harm tags, in SDs
    tag_source: str  # "reviewed tags" or "embedding"
    novel: bool  # matches no harm tag: a candidate new harm type
    n_tagged: int = 0
    centre: tuple[float, float] = (0.0, 0.0)  # in map coordinates, for labels


@dataclass
class AttackMap:
    coords: np.ndarray  # n x 2
    labels: np.ndarray  # n, -1 = noise
    clusters: list[Cluster]
    n_fit: int  # points UMAP was fitted on (the rest were transformed into the fitted map)
    min_cluster_size: int
    timings: dict[str, float] = field(default_factory=dict)
    note: str = ""

    @property
    def noise_share(self) -> float:
        return float((self.labels < 0).mean()) if len(self.labels) else float("nan")


def default_min_cluster_size(n: int) -> int:
    """1% of the mapped (distinct) attempts, at least 10: the paper's PII cluster was 2.4% of all attacks."""
    return max(10, round(n * 0.01))


def attack_map(
    attempts: pd.DataFrame, embeddings: np.ndarray, seed: int = 0, min_cluster_size: int | None = None,
    fit_sample: int = FIT_SAMPLE, tags: tuple[Sequence[str], np.ndarray] | None = None,
    max_cluster_share: float = MAX_CLUSTER_SHARE,
) -> AttackMap:
    """UMAP to 2-D, HDBSCAN on the map, and a name for every cluster.

    ``attempts`` rows align with ``embeddings`` rows. ``tags`` (names, vectors)
    defaults to the harm-tag name embeddings; tests may pass their own.
    """
    n = len(attempts)
    if embeddings.shape[0] != n:
        raise ValueError(f"{embeddings.shape[0]} embeddings for {n} attempts")
    # Identical requests (a replayed dataset, a copied template) are laid out once: exact
    # duplicates break UMAP's spectral initialisation, and fitting them again adds nothing.
    unique, inverse = np.unique(embeddings, axis=0, return_inverse=True)
    if n < 20 or len(unique) < 20:
        return AttackMap(np.zeros((n, 2)), np.full(n, -1), [], 0, 0, note="too few distinct attempts to map (< 20)")
    size = min_cluster_size or default_min_cluster_size(len(unique))
    timings: dict[str, float] = {}
    start = time.perf_counter()
    placed, n_fit = _umap_2d(unique, seed, fit_sample)
    coords = placed[inverse.reshape(-1)]
    timings["umap_s"] = time.perf_counter() - start

    from sklearn.cluster import HDBSCAN

    start = time.perf_counter()
    # Excess-of-mass selection alone tends to return one lump plus the sharpest cluster; capping a
    # cluster at 15% of the map makes it descend into the lump's sub-clusters (measured on planted data).
    cap = max(2 * size, int(len(unique) * max_cluster_share))
    # Clustered like the layout: each distinct attempt once, its copies then take its label. Copies sit on
    # the same map point, so they shrink its core distance (min_samples counts them) and a few repeated
    # requests become a dense knot that excess of mass picks over the group it belongs to: on the planted
    # report data, the PII cluster split this way in 21 of 32 layouts (4 library versions x 8 seeds), and
    # which layouts split moved with the last bits of UMAP's arithmetic (umap-learn 0.5.12's
    # smooth_knn_dist without fastmath, scipy 1.17's ARPACK in the spectral start). Distinct points: 4 of 32.
    raw = HDBSCAN(min_cluster_size=size, min_samples=max(5, size // 4), max_cluster_size=cap,
                  copy=True).fit_predict(placed)[inverse.reshape(-1)]
    timings["hdbscan_s"] = time.perf_counter() - start
    labels = _renumber_by_size(raw)
    names, vectors = tags if tags is not None else tag_embeddings()
    clusters = [_describe(attempts, embeddings, coords, labels == label, label, list(names), np.asarray(vectors))
                for label in range(labels.max() + 1)]
    note = (f"UMAP fitted on a random {n_fit:,} of {len(unique):,} distinct attempts, the rest placed by transform"
            if n_fit < len(unique) else f"UMAP fitted on all {len(unique):,} distinct attempts")
    return AttackMap(coords, labels, clusters, n_fit, size, timings=timings, note=note)


def _umap_2d(unique: np.ndarray, seed: int, fit_sample: int) -> tuple[np.ndarray, int]:
    """2-D coordinates of distinct embeddings: fitted on at most ``fit_sample``, the rest transformed."""
    _numba_cache()
    import umap

    n = len(unique)
    # Euclidean on unit vectors ranks neighbours as cosine does, and is the faster metric.
    reducer = umap.UMAP(n_components=2, n_neighbors=min(15, n - 1), min_dist=0.0, metric="euclidean",
                        random_state=seed, init="spectral" if n > 50 else "random")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)  # a seed means one thread
        warnings.filterwarnings("ignore", message="Cannot cache compiled function")  # pynndescent's dynamic globals
        if n <= fit_sample:
            return reducer.fit_transform(unique).astype(np.float32), n
        fit = np.sort(np.random.default_rng(seed).choice(n, fit_sample, replace=False))
        coords = np.empty((n, 2), dtype=np.float32)
        coords[fit] = reducer.fit_transform(unique[fit])
        rest = np.setdiff1d(np.arange(n), fit)
        coords[rest] = reducer.transform(unique[rest])
    return coords, fit_sample


def _numba_cache() -> None:
    """Keep numba's compiled UMAP kernels between runs: the first ``import umap`` compiles for ~18 s.

    umap-learn and pynndescent also leave many kernels uncached, which cost another
    ~20 s at the first fit in every process; switching numba's on-disk cache on for
    them (a public ``Dispatcher`` method) brings a later process's first fit of 600
    points from ~22 s to ~3 s.
    """
    if "NUMBA_CACHE_DIR" not in os.environ:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        cache = base / "sparring" / "numba"
        cache.mkdir(parents=True, exist_ok=True)
        os.environ["NUMBA_CACHE_DIR"] = str(cache)
    _cache_kernels()


@lru_cache(maxsize=1)
def _cache_kernels() -> None:
    import importlib

    from numba.core.caching import NullCache
    from numba.core.registry import CPUDispatcher

    for name in ("umap.umap_", "umap.layouts", "umap.utils", "umap.spectral", "pynndescent.pynndescent_",
                 "pynndescent.utils", "pynndescent.distances", "pynndescent.rp_trees", "pynndescent.sparse"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        for kernel in vars(module).values():
            if isinstance(kernel, CPUDispatcher) and isinstance(getattr(kernel, "_cache", None), NullCache):
                kernel.enable_caching()


def _renumber_by_size(raw: np.ndarray) -> np.ndarray:
    """Cluster 0 is the largest; noise stays -1."""
    counts = Counter(int(label) for label in raw if label >= 0)
    order = {label: rank for rank, (label, _) in enumerate(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))}
    return np.array([order.get(int(label), -1) for label in raw], dtype=int)


def _describe(attempts: pd.DataFrame, embeddings: np.ndarray, coords: np.ndarray, mask: np.ndarray,
              label: int, names: list[str], vectors: np.ndarray) -> Cluster:
    members = attempts[mask]
    member_vectors = embeddings[mask]
    centroid = member_vectors.mean(axis=0)
    centroid = centroid / (np.linalg.norm(centroid) or 1.0)
    nearest = np.argsort(-(member_vectors @ centroid))[:TYPICAL]
    similarities = vectors @ centroid
    best = int(np.argmax(similarities))
    reviewed, n_tagged = _reviewed_majority(members.get("tags"), names)
    chosen = names.index(reviewed) if reviewed is not None else best
    spread = float(similarities.std()) or 1.0
    tag_similarity = float(similarities[chosen])
    standout = (tag_similarity - float(similarities.mean())) / spread
    ratings = pd.to_numeric(members.get("rating"), errors="coerce") if "rating" in members else pd.Series(dtype=float)
    harmlessness = (pd.to_numeric(members["min_harmlessness"], errors="coerce")
                    if "min_harmlessness" in members else pd.Series(dtype=float))
    transcripts = members["transcript"].iloc[nearest] if "transcript" in members else pd.Series(dtype=str)
    ids = members["attempt_id"].iloc[nearest] if "attempt_id" in members else members.index[nearest]
    rated = ratings.dropna()
    return Cluster(
        id=label,
        size=int(mask.sum()),
        mean_rating=float(rated.mean()) if len(rated) else float("nan"),
        success_rate=float((rated >= SUCCESS_RATING).mean()) if len(rated) else float("nan"),
        mean_min_harmlessness=float(harmlessness.mean()) if harmlessness.notna().any() else float("nan"),
        typical=[excerpt(text) for text in transcripts],
        typical_ids=[str(i) for i in ids],
        nearest_tag=names[chosen],
        tag_similarity=tag_similarity,
        tag_standout=standout,
        tag_source="reviewed tags" if reviewed is not None else "embedding",
        novel=reviewed is None and (tag_similarity < NOVEL_SIMILARITY or standout < NOVEL_STANDOUT),
        n_tagged=n_tagged,
        centre=(float(np.median(coords[mask, 0])), float(np.median(coords[mask, 1]))),
    )


def _reviewed_majority(tags: pd.Series | None, names: list[str]) -> tuple[str | None, int]:
    """The harm tag most tagged members share (more than half of them), if any; and how many were tagged."""
    if tags is None:
        return None, 0
    tagged = [t for t in tags if isinstance(t, (list, tuple, np.ndarray)) and len(t) > 0]
    counts = Counter(tag for t in tagged for tag in set(t) if tag in names)
    if len(tagged) < MIN_TAGGED or not counts:
        return None, len(tagged)
    tag, count = counts.most_common(1)[0]
    return (tag if count > len(tagged) / 2 else None), len(tagged)
