"""The report's figures: one colour and marker per method, methods grouped by family.

Every figure draws a method with the same `MethodStyle`: a colour of its own (fixed for the
methods of `recsim policy list`, so a method keeps its colour from one report to the next; other
names take the unused colours of `SPARE_COLOURS` in order) and the marker of its family. Families
are those of `recsim.policy.methods` (`display_family`): model-based (A2C / PPO in the learned
simulator), offline (RL from the log), static (scores, no sequential learning), and reference
for the rows that read what an offline method cannot (the quit rule, the true reward).

Figures are PNG bytes (matplotlib, Agg backend), sized for the report's width (1200 px at
110 dpi): R_tra per method and mode (horizontal bars with their interval), the concentration
of item exposure (the Lorenz curve read from the most exposed item, on a log axis) and the
category exposure against the training log (one panel per family), and the training curves.
"""
from __future__ import annotations

import dataclasses
import io
from typing import Any

import numpy as np

from recsim.evaluation import exposure

FAMILIES = ("model-based", "offline", "static", "reference", "other")

FAMILY_NAMES = {"model_based": "model-based", "offline": "offline", "static": "static"}
"""Display names of the method families of `recsim.policy.methods` (`Method.family`)."""

FAMILY_MARKERS = {"model-based": "o", "offline": "s", "static": "^", "reference": "*", "other": "D"}

METHOD_COLOURS = {
    "mbpo": "#1f77b4", "ips": "#17becf", "mopo": "#9467bd", "dorl": "#d62728", "roler": "#2ca02c",
    "ours": "#ff7f0e",
    "bcq": "#8c564b", "cql": "#e377c2", "crr": "#bcbd22", "sqn": "#393b79",
    "egreedy": "#637939", "ucb": "#e7ba52", "greedy": "#6b6ecf", "popular": "#a55194", "random": "#969696",
    "quit_aware": "#000000", "gt_oracle": "#b15928",
}
"""Fixed colours of the methods of `recsim policy list` (tab10 and tab20b hues, no two alike)."""

SPARE_COLOURS = ("#5254a3", "#8ca252", "#bd9e39", "#ad494a", "#7b4173", "#3182bd", "#e6550d", "#31a354",
                 "#756bb1", "#636363", "#9c9ede", "#cedb9c", "#e7cb94", "#e7969c", "#de9ed6", "#6baed6")
"""Colours for other method names, in order of appearance (then reused, with a changed line style)."""

DPI = 110
WIDTH_IN = 10.5
"""Figure width in inches: 1,155 px at `DPI`, inside the report's 1,200 px column."""


@dataclasses.dataclass(frozen=True)
class MethodStyle:
    """How every figure draws one method."""

    family: str
    colour: str
    marker: str
    linestyle: str = "-"


def display_family(family: str, reference: bool = False) -> str:
    """The report's family of a method: "reference" for a reference row (it reads what an
    offline method cannot, `Method.reference`), else its family's display name ("other" if unknown)."""
    return "reference" if reference else FAMILY_NAMES.get(str(family), "other")


def method_styles(families: dict[str, str]) -> dict[str, MethodStyle]:
    """A style per method from {method: display family}, ordered by family, then by the input's order."""
    order = sorted(families, key=lambda m: FAMILIES.index(families[m] if families[m] in FAMILIES else "other"))
    spare = [c for c in SPARE_COLOURS if c not in METHOD_COLOURS.values()]
    styles, used_spares = {}, 0
    for method in order:
        family = families[method] if families[method] in FAMILIES else "other"
        colour = METHOD_COLOURS.get(method)
        linestyle = "--" if family == "reference" else "-"
        if colour is None:
            colour = spare[used_spares % len(spare)]
            linestyle = linestyle if used_spares < len(spare) else ":"
            used_spares += 1
        styles[method] = MethodStyle(family, colour, FAMILY_MARKERS[family], linestyle)
    return styles


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def png_bytes(fig) -> bytes:
    """The figure as PNG bytes (closed afterwards)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    _pyplot().close(fig)
    return buffer.getvalue()


def _family_panels(styles: dict[str, MethodStyle], present: list[str]) -> list[tuple[str, list[str]]]:
    """(family, its methods among `present`) for each family with at least one method there."""
    panels = []
    for family in FAMILIES:
        members = [m for m in styles if styles[m].family == family and m in present]
        if members:
            panels.append((family, members))
    return panels


def figure_returns(intervals: dict[str, dict[str, tuple[float, float, float]]], styles: dict[str, MethodStyle],
                   interval_label: str) -> bytes:
    """R_tra per method (horizontal bars, families top to bottom) with intervals, one panel per mode.

    Args:
        intervals: {mode: {method: (mean, low, high)}}.
        styles: `method_styles` of the methods.
        interval_label: what the error bars are (for the axis label).
    """
    plt = _pyplot()
    modes = list(intervals)
    methods = [m for m in styles if any(m in intervals[mode] for mode in modes)]
    height = max(2.5, 0.28 * len(methods) + 1.2)
    fig, axes = plt.subplots(1, len(modes), figsize=(WIDTH_IN, height), sharey=True, squeeze=False)
    y = np.arange(len(methods))[::-1]
    for ax, mode in zip(axes[0], modes, strict=True):
        for row, method in zip(y, methods, strict=True):
            if method not in intervals[mode]:
                continue
            mean, low, high = intervals[mode][method]
            style = styles[method]
            error = [[max(mean - low, 0.0)], [max(high - mean, 0.0)]] if np.isfinite([low, high]).all() else None
            ax.barh(row, mean, xerr=error, color=style.colour, capsize=3, height=0.7,
                    hatch="//" if style.family == "reference" else None, edgecolor="white", linewidth=0.5)
        ax.set_title(mode)
        ax.set_xlabel(f"R_tra ({interval_label})")
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(y, [f"{m} ({styles[m].family})" for m in methods], fontsize=8)
    fig.tight_layout()
    return png_bytes(fig)


def concentration_curve(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x, y): the share y of all exposure held by the top share x of items, most exposed first.

    The Lorenz curve L read from the other end, y(x) = 1 - L(1 - x) (Gini = 2 * area between y
    and the diagonal); on a log x axis it stays legible when a few items take all the exposure.
    """
    ordered = np.sort(np.asarray(counts, dtype=np.float64))[::-1]
    total = ordered.sum()
    x = np.arange(1, len(ordered) + 1) / max(len(ordered), 1)
    return x, (np.cumsum(ordered) / total if total > 0 else np.zeros_like(x))


def figure_concentration(items: dict[str, np.ndarray], n_items: int, styles: dict[str, MethodStyle],
                         mode: str) -> bytes:
    """How concentrated each method's item exposure is (`concentration_curve`, log x axis), one
    panel per family, with the Gini coefficient of exposure in the legend.

    Args:
        items: {method: int array of every recommended item column of its rollouts (all seeds)}.
        n_items: the number of item columns.
        styles: `method_styles` of the methods.
        mode: the evaluation mode (for the title).
    """
    plt = _pyplot()
    panels = _family_panels(styles, list(items))
    columns = min(len(panels), 2)
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(WIDTH_IN, 3.4 * rows), squeeze=False, sharey=True)
    uniform = np.arange(1, n_items + 1) / n_items
    for ax, (family, members) in zip(axes.ravel(), panels, strict=False):
        ax.plot(uniform, uniform, color="grey", linestyle="--", linewidth=1, label="equal exposure")
        for method in members:
            counts = exposure.exposure_counts(items[method], n_items)
            x, y = concentration_curve(counts)
            style = styles[method]
            marks = np.unique(np.geomspace(1, len(x), 8).astype(int) - 1)
            ax.plot(x, y, color=style.colour, linestyle=style.linestyle, marker=style.marker, markevery=list(marks),
                    markersize=5, label=f"{method} (Gini {exposure.gini(counts):.2f})")
        ax.set_xscale("log")
        ax.set_title(family)
        ax.set_xlabel("top share of items (most exposed first, log scale)")
        ax.set_ylabel("share of exposure")
        ax.legend(fontsize=7, loc="lower right")
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(f"Concentration of item exposure ({mode}): the Lorenz curve from the most exposed item")
    fig.tight_layout()
    return png_bytes(fig)


def has_categories(categories: np.ndarray) -> bool:
    """Whether a bool (n_items, n_categories) matrix assigns any item a category."""
    return categories.ndim == 2 and categories.shape[1] > 0 and bool(categories.any())


def figure_categories(items: dict[str, np.ndarray], categories: np.ndarray, log_share: np.ndarray,
                      styles: dict[str, MethodStyle], mode: str) -> bytes:
    """Each category's share of recommended items against its share of the log's positives,
    one panel per family (categories ordered by their share in the log).

    Args:
        items: {method: int array of recommended item columns}.
        categories: bool (n_item_columns, n_categories).
        log_share: float (n_categories,), each category's share of the training log's positives.
        styles: `method_styles` of the methods.
        mode: the evaluation mode (for the title).
    """
    plt = _pyplot()
    order = np.argsort(-log_share, kind="stable")
    x = np.arange(len(order))
    panels = _family_panels(styles, list(items))
    fig, axes = plt.subplots(len(panels), 1, figsize=(WIDTH_IN, 2.6 * len(panels) + 0.6), sharex=True,
                             sharey=True, squeeze=False)
    for ax, (family, members) in zip(axes[:, 0], panels, strict=True):
        ax.bar(x, log_share[order], color="#dddddd", label="training log (positives)")
        for method in members:
            counts = categories[items[method]].sum(axis=0).astype(np.float64)
            share = counts / max(counts.sum(), 1.0)
            style = styles[method]
            ax.plot(x, share[order], color=style.colour, linestyle=style.linestyle, marker=style.marker,
                    markersize=4, linewidth=1.2, label=method)
        ax.set_ylabel("share")
        ax.set_title(family, fontsize=10)
        ax.legend(fontsize=7, loc="upper right", ncol=2)
    axes[-1, 0].set_xticks(x, [str(c) for c in order], fontsize=7)
    axes[-1, 0].set_xlabel("category (by share in the training log)")
    fig.suptitle(f"Category exposure against the training log ({mode})")
    fig.tight_layout()
    return png_bytes(fig)


def figure_training(user_model: dict[str, list[list[dict[str, Any]]]], curves: dict[str, list[dict[str, Any]]],
                    styles: dict[str, MethodStyle]) -> bytes | None:
    """User-model validation loss per epoch and each method's training curve; None if neither.

    Args:
        user_model: {model folder name: its members' histories (lists of {"epoch", "val_loss"})}.
        curves: {method: one curve per seed ({"x", "y", "x_label", "y_label"})}; seeds sharing
            their x values are averaged.
        styles: `method_styles` of the methods.
    """
    if not user_model and not curves:
        return None
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    panels = (1 if user_model else 0) + (1 if curves else 0)
    widths = [1, 2] if panels == 2 else [1]
    fig, axes = plt.subplots(1, panels, figsize=(WIDTH_IN, 3.8), squeeze=False, width_ratios=widths)
    ax_index = 0
    if user_model:
        ax = axes[0][ax_index]
        ax_index += 1
        greys = ("#252525", "#737373", "#a6a6a6")  # not a method's colour
        epochs: set[int] = set()
        for j, (name, members) in enumerate(user_model.items()):
            for k, history in enumerate(members):
                epochs.update(int(h["epoch"]) for h in history)
                ax.plot([h["epoch"] for h in history], [h["val_loss"] for h in history], color=greys[k % 3],
                        linestyle=("-", "--", ":")[j % 3], marker="os^Dv"[j % 5], markersize=5, label=f"{name} m{k}")
        ax.set_xticks(sorted(epochs))
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation loss")
        ax.set_title("user model")
        ax.legend(fontsize=6)
    if curves:
        ax = axes[0][ax_index]
        first = next(iter(curves.values()))[0]
        for method in (m for m in styles if m in curves):
            runs, style = curves[method], styles[method]
            same_x = len({tuple(run["x"]) for run in runs}) == 1
            shown = [(runs[0]["x"], np.mean([run["y"] for run in runs], axis=0))] if same_x else \
                [(run["x"], run["y"]) for run in runs]
            for k, (xs, ys) in enumerate(shown):
                ax.plot(xs, ys, color=style.colour, linestyle=style.linestyle, marker=style.marker, markersize=4,
                        label=f"{method} ({len(runs)} seed{'s' if len(runs) > 1 else ''})" if k == 0 else None)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(first.get("x_label", "step"))
        ax.set_ylabel(first.get("y_label", "reward"))
        ax.set_title("policy training (mean over seeds)")
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return png_bytes(fig)
