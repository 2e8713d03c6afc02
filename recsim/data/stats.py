"""Summary statistics of a dataset (what `recsim data info` prints)."""
from __future__ import annotations

from typing import Any

import numpy as np

from recsim.data.schema import Dataset
from recsim.evaluation.exposure import gini


def summarise(dataset: Dataset) -> dict[str, Any]:
    """Sizes, density, label distribution, popularity Gini of the log and categories."""
    train = dataset.train
    labels = train["label"].to_numpy()
    n_pairs = dataset.n_users * dataset.n_items
    item_counts = np.bincount(train["item"].to_numpy(), minlength=dataset.n_items)
    summary: dict[str, Any] = {
        "name": dataset.name,
        "label": dataset.label_name,
        "n_users": dataset.n_users,
        "n_items": dataset.n_items,
        "n_train": int(len(train)),
        "n_test": int(len(dataset.test)) if dataset.test is not None else 0,
        "density": float(len(train) / n_pairs) if n_pairs else 0.0,
        "label_mean": float(labels.mean()) if len(labels) else float("nan"),
        "label_quantiles": ({q: float(np.quantile(labels, float(q))) for q in ("0.0", "0.25", "0.5", "0.75", "1.0")}
                            if len(labels) else {}),
        "popularity_gini_train": float(gini(item_counts)),
        "n_categories": dataset.n_categories,
        "categories_per_item": float(dataset.item_categories.sum(axis=1).mean()) if dataset.n_categories else 0.0,
        "has_timestamps": "timestamp" in train.columns,
        "has_propensities": "propensity" in train.columns,
        "user_features": list(dataset.user_features.columns),
        "item_features": list(dataset.item_features.columns),
    }
    if dataset.truth is not None:
        truth = dataset.truth
        known = np.isfinite(truth)
        counts = known.sum(axis=0)
        item_means = np.where(known, truth, 0).sum(axis=0)[counts > 0] / counts[counts > 0]
        summary["truth"] = {
            "n_users": int(truth.shape[0]),
            "n_items": int(truth.shape[1]),
            "density": float(known.mean()) if truth.size else 0.0,
            "mean": float(truth[known].mean()) if known.any() else None,
            "gini_of_item_means": float(gini(item_means)) if len(item_means) else None,
        }
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """A short human-readable rendering of `summarise`'s output."""
    lines = [
        f"dataset     {summary['name']} (label: {summary['label']})",
        f"users       {summary['n_users']:,}",
        f"items       {summary['n_items']:,}",
        f"train rows  {summary['n_train']:,}  (density {summary['density']:.4%})",
        f"test rows   {summary['n_test']:,}",
        f"label       mean {summary['label_mean']:.4g}, quantiles "
        + ", ".join(f"{q}: {v:.4g}" for q, v in summary["label_quantiles"].items()),
        f"popularity  Gini of the training log's item counts {summary['popularity_gini_train']:.3f}",
        f"categories  {summary['n_categories']} ({summary['categories_per_item']:.2f} per item)",
    ]
    if "truth" in summary:
        t = summary["truth"]
        mean = "unknown" if t["mean"] is None else f"{t['mean']:.4g}"
        lines.append(f"truth       {t['n_users']:,} x {t['n_items']:,}, density {t['density']:.2%}, mean {mean}")
    return "\n".join(lines)
