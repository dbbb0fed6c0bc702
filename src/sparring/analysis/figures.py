"""The report's figures (matplotlib, Agg): each saved as PNG and SVG, and as a data URI for the HTML.

A PNG data URI keeps the report one self-contained file whatever the figure
holds (an inline SVG of a 5,000-point map runs to megabytes); the SVG files
beside it are for papers and slides.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sparring.analysis.cells import MODEL_TYPE_ORDER

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from sparring.analysis.embedding_map import AttackMap

MODEL_TYPE_LABELS = {"plain lm": "plain LM", "context distillation": "prompted LM (context distillation)",
                     "rejection sampling": "rejection sampling", "rlhf": "RLHF"}
COLOURS = {"plain lm": "#4c72b0", "context distillation": "#dd8452", "rejection sampling": "#55a868", "rlhf": "#c44e52"}


@dataclass(frozen=True)
class SavedFigure:
    name: str
    png: Path
    svg: Path
    data_uri: str


def sorted_model_types(types: Iterable[object]) -> list[str]:
    rank = {t: i for i, t in enumerate(MODEL_TYPE_ORDER)}
    return sorted({str(t) for t in types}, key=lambda t: (rank.get(t, len(rank)), t))


def model_type_label(model_type: str) -> str:
    return MODEL_TYPE_LABELS.get(model_type, model_type)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
                         "svg.hashsalt": "sparring", "svg.fonttype": "path"})
    return plt


def save(figure: Figure, directory: Path, name: str) -> SavedFigure:
    """Write NAME.png and NAME.svg (reproducible bytes: no dates) and close the figure."""
    plt = _pyplot()
    directory.mkdir(parents=True, exist_ok=True)
    png, svg = directory / f"{name}.png", directory / f"{name}.svg"
    figure.savefig(png, dpi=110, bbox_inches="tight", metadata={"Software": None})
    figure.savefig(svg, bbox_inches="tight", metadata={"Date": None, "Creator": None})
    plt.close(figure)
    return SavedFigure(name, png, svg, "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii"))


def _errors(frame: pd.DataFrame, column: str) -> np.ndarray:
    mean = frame[column].to_numpy(dtype=float)
    low = frame.get(f"{column}_lo", frame[column]).to_numpy(dtype=float)
    high = frame.get(f"{column}_hi", frame[column]).to_numpy(dtype=float)
    return np.nan_to_num(np.vstack([mean - low, high - mean]).clip(min=0))


def cells_figure(cells: pd.DataFrame) -> Figure | None:
    """The paper's Fig. 1: per model size and intervention, attack success and min harmlessness, 95% CIs."""
    panels = [(c, label) for c, label in (("mean_rating", "attack success\n(mean self-rating, 0-4)"),
                                          ("success_rate", "attack success rate\n(share rated >= 3)"),
                                          ("mean_min_harmlessness", "mean minimum harmlessness\n(PM score)"))
              if c in cells and cells[c].notna().any()]
    if cells.empty or not panels:
        return None
    plt = _pyplot()
    sizes = [str(s) for s in dict.fromkeys(cells["size"])]  # cell_table lists sizes by parameter count
    figure, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.2), squeeze=False)
    for axis, (column, label) in zip(axes[0], panels, strict=False):
        types = sorted_model_types(cells["model_type"])
        for offset, model_type in enumerate(types):
            rows = cells[cells["model_type"].astype(str) == model_type].copy()
            rows["x"] = [sizes.index(str(s)) + (offset - (len(types) - 1) / 2) * 0.06 for s in rows["size"]]
            rows = rows.sort_values("x")
            axis.errorbar(rows["x"], rows[column], yerr=_errors(rows, column), marker="o", capsize=3,
                          label=model_type_label(model_type), color=COLOURS.get(model_type))
        axis.set_xticks(range(len(sizes)), sizes)
        axis.set_xlabel("model size (parameters)")
        axis.set_ylabel(label)
    axes[0][0].legend(fontsize=7, frameon=False)
    figure.tight_layout()
    return figure


def rating_distribution_figure(distribution: pd.DataFrame) -> Figure | None:
    if distribution.empty or distribution["n"].sum() == 0:
        return None
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(4.2, 2.8))
    axis.bar(distribution["rating"].astype(str), distribution["share"], color="#4c72b0")
    axis.set_xlabel("self-rated attack success (0 = not successful, 4 = very successful)")
    axis.set_ylabel("share of attempts")
    figure.tight_layout()
    return figure


def rating_vs_harmlessness_figure(by_rating: pd.DataFrame) -> Figure | None:
    if by_rating is None or by_rating.empty or by_rating["mean_min_harmlessness"].isna().all():
        return None
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(4.2, 2.8))
    mean = by_rating["mean_min_harmlessness"].to_numpy(dtype=float)
    yerr = np.nan_to_num(np.vstack([mean - by_rating["lo"].to_numpy(dtype=float),
                                    by_rating["hi"].to_numpy(dtype=float) - mean]).clip(min=0))
    axis.errorbar(by_rating["rating"].astype(float), mean, yerr=yerr, marker="o", capsize=3, color="#c44e52")
    axis.set_xlabel("self-rated attack success")
    axis.set_ylabel("mean minimum harmlessness")
    figure.tight_layout()
    return figure


def concentration_figure(curve: pd.DataFrame) -> Figure | None:
    if curve is None or curve.empty:
        return None
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(3.6, 3.2))
    axis.plot(curve["people_share"], curve["attack_share"], color="#4c72b0")
    axis.plot([0, 1], [0, 1], linestyle=":", color="grey", label="equal contribution")
    axis.set_xlabel("share of red teamers (most active first)")
    axis.set_ylabel("share of attacks")
    axis.legend(fontsize=7, frameon=False)
    figure.tight_layout()
    return figure


def per_person_figure(people: pd.DataFrame) -> Figure | None:
    if people is None or people.empty or people["mean_rating"].isna().all():
        return None
    plt = _pyplot()
    rows = people.sort_values("mean_rating").reset_index(drop=True)
    mean = rows["mean_rating"].to_numpy(dtype=float)
    yerr = np.nan_to_num(np.vstack([mean - rows["lo"].to_numpy(dtype=float),
                                    rows["hi"].to_numpy(dtype=float) - mean]).clip(min=0))
    figure, axis = plt.subplots(figsize=(6.0, 2.8))
    axis.errorbar(np.arange(len(rows)), mean, yerr=yerr, fmt="o", markersize=2, elinewidth=0.6, color="#4c72b0")
    axis.set_xlabel("red teamer (sorted by mean rating)")
    axis.set_ylabel("mean self-rated success")
    axis.set_xticks([])
    figure.tight_layout()
    return figure


def tags_figure(tags: pd.DataFrame) -> Figure | None:
    if tags is None or tags.empty:
        return None
    plt = _pyplot()
    rows = tags.sort_values("n")
    figure, (left, right) = plt.subplots(1, 2, figsize=(8.0, 0.28 * len(rows) + 1.2), sharey=True)
    labels = [t if len(t) <= 40 else t[:39] + "…" for t in rows["tag"].astype(str)]
    left.barh(labels, rows["n"], color="#4c72b0")
    left.set_xlabel("tagged attempts")
    success = rows["success_rate"].to_numpy(dtype=float)
    if np.isfinite(success).any():
        xerr = np.nan_to_num(np.vstack([success - rows["success_lo"].to_numpy(dtype=float),
                                        rows["success_hi"].to_numpy(dtype=float) - success]).clip(min=0))
        right.barh(labels, np.nan_to_num(success), xerr=xerr, color="#c44e52", error_kw={"elinewidth": 0.8})
    right.set_xlabel("attack success rate (rated >= 3)")
    figure.tight_layout()
    return figure


def attack_map_figure(attack_map: AttackMap, ratings: np.ndarray) -> Figure | None:
    """The map coloured by self-rated success (grey where unrated), clusters labelled by number."""
    if not len(attack_map.coords) or not attack_map.n_fit:
        return None
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7.0, 5.6))
    coords, ratings = attack_map.coords, np.asarray(ratings, dtype=float)
    rated = np.isfinite(ratings)
    size = max(1.0, min(8.0, 4000 / max(len(coords), 1)))
    axis.scatter(coords[~rated, 0], coords[~rated, 1], s=size, c="#bbbbbb", linewidths=0, alpha=0.6)
    if rated.any():
        points = axis.scatter(coords[rated, 0], coords[rated, 1], s=size, c=ratings[rated], cmap="viridis",
                              vmin=0, vmax=4, linewidths=0, alpha=0.7)
        figure.colorbar(points, ax=axis, label="self-rated success (0-4)", shrink=0.7)
    for cluster in attack_map.clusters:
        axis.annotate(str(cluster.id), cluster.centre, fontsize=8, weight="bold", ha="center", va="center",
                      color="#b00020" if cluster.novel else "black",
                      bbox={"boxstyle": "round,pad=0.2", "fc": "white", "alpha": 0.75, "lw": 0})
    axis.set_xticks([])
    axis.set_yticks([])
    axis.set_xlabel("UMAP 1")
    axis.set_ylabel("UMAP 2")
    figure.tight_layout()
    return figure
