"""Reports over evaluated policies: results.csv, results.md, PNG figures and a self-contained report.html.

Input: evaluation folders (`eval-<method>-s<seed>/` of a pipeline run) holding `metrics.json`
(one row of metrics per mode) and `episodes_<mode>.npz` (`recsim.evaluation.rollout.EpisodeLog`),
plus the run's dataset (`data/dataset`) for the category shares of the training log.

- `results.csv`: one row per method, seed and mode, every metric a column (`method`, `seed`,
  `mode`, `R_tra`, `length`, `R_each`, `MCD`, `gini`, `coverage`, `ndcg@10`, `ope_<estimator>`, ...).
- `results.md`: per mode, a table like the published one (REFERENCE.md §4) with mean +- std
  across seeds (sample std; "+- 0" means one seed) and the 95 % Student-t interval of R_tra.
- Figures (matplotlib, Agg backend): R_tra per method with 95 % intervals (Student-t across
  seeds; with one seed the bootstrap interval over episodes); the Lorenz curve of item exposure;
  each category's share of recommended items against its share of the training log's
  positives; training curves (the user model's validation loss per epoch and each method's own
  curve where it wrote one).
- `report.html`: the tables and the figures, PNGs embedded as base64 (one file, no links).
"""
from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsim.errors import DataError
from recsim.evaluation import exposure
from recsim.evaluation.rollout import EpisodeLog, across_seeds
from recsim.io import atomic_path, read_json

FIRST_COLUMNS = ("method", "family", "seed", "mode", "R_tra", "length", "R_each", "MCD", "gini", "coverage")
TABLE_METRICS = ("R_tra", "R_each", "length", "MCD", "gini", "coverage")


def collect_rows(run_dir: Path, eval_names: list[str]) -> pd.DataFrame:
    """One row per (method, seed, mode) from the evaluation folders' metrics.json."""
    records = []
    for name in eval_names:
        path = run_dir / name / "metrics.json"
        if not path.is_file():
            raise DataError(str(path), None, "evaluation results not found; run the pipeline first")
        info = read_json(path)
        for row in info["rows"]:
            records.append({"method": info["method"], "family": info.get("family", ""),
                            "seed": int(info["seed"]), **row})
    frame = pd.DataFrame.from_records(records)
    if frame.empty:
        return frame
    first = [c for c in FIRST_COLUMNS if c in frame.columns]
    ranking = sorted(c for c in frame.columns if c.startswith(("ndcg@", "recall@")))
    ope = sorted((c for c in frame.columns if c.startswith("ope_")), key=_ope_order)
    rest = [c for c in frame.columns if c not in first + ranking + ope]
    frame = frame[first + ranking + ope + rest]
    # Methods in the order of the evaluation folders (the spec's order), modes as first seen.
    method_rank = {m: i for i, m in enumerate(dict.fromkeys(frame["method"]))}
    mode_rank = {m: i for i, m in enumerate(dict.fromkeys(frame["mode"]))}
    order = np.lexsort((frame["seed"].to_numpy(), frame["method"].map(method_rank).to_numpy(),
                        frame["mode"].map(mode_rank).to_numpy()))
    return frame.iloc[order].reset_index(drop=True)


def _ope_order(column: str) -> tuple[str, int]:
    """OPE columns grouped per estimator: value, low, high, ess (then the rest)."""
    for rank, suffix in enumerate(("_low", "_high", "_ess"), 1):
        if column.endswith(suffix):
            return column[: -len(suffix)], rank
    return column, 0


def _fmt(value: float) -> str:
    if not np.isfinite(value):
        return "n/a"
    return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"


def summary_table(results: pd.DataFrame) -> pd.DataFrame:
    """Per (mode, method): "mean +- std" across seeds of the table metrics, NDCG and OPE values."""
    metrics = [c for c in TABLE_METRICS if c in results.columns]
    metrics += [c for c in results.columns if c.startswith("ndcg@")]
    metrics += [c for c in results.columns if c.startswith("ope_") and not c.endswith(("_low", "_high", "_ess"))
                and c != "ope_pscore_source"]
    rows = []
    for (mode, method), group in results.groupby(["mode", "method"], sort=False):
        row = {"mode": mode, "method": method, "seeds": int(group["seed"].nunique())}
        for metric in metrics:
            stats = across_seeds(pd.to_numeric(group[metric], errors="coerce").to_numpy())
            row[metric] = f"{_fmt(stats['mean'])} +- {_fmt(stats['std'])}" if stats["n"] else "n/a"
            if metric == "R_tra":
                row["R_tra 95% CI"] = f"[{_fmt(stats['low'])}, {_fmt(stats['high'])}]" if stats["n"] > 1 else "n/a"
        rows.append(row)
    return pd.DataFrame(rows)


def markdown_table(frame: pd.DataFrame) -> str:
    columns = list(frame.columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(str(row[c]) for c in columns) + " |")
    return "\n".join(lines)


def results_markdown(results: pd.DataFrame, title: str) -> str:
    table = summary_table(results)
    parts = [f"# {title}", "", "Mean +- std across seeds (sample std; 0 with one seed).", ""]
    for mode, group in table.groupby("mode", sort=False):
        parts += [f"## {mode}", "", markdown_table(group.drop(columns="mode")), ""]
    return "\n".join(parts)


# ----------------------------------------------------------------------------- figures


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return buffer.getvalue()


def figure_returns(results: pd.DataFrame) -> bytes:
    """R_tra per method with 95 % intervals, one panel per mode."""
    plt = _pyplot()
    modes = list(dict.fromkeys(results["mode"]))
    fig, axes = plt.subplots(1, len(modes), figsize=(4.5 * len(modes), 3.8), squeeze=False)
    for ax, mode in zip(axes[0], modes, strict=True):
        part = results[results["mode"] == mode]
        methods = list(dict.fromkeys(part["method"]))
        means, lows, highs = [], [], []
        for method in methods:
            rows = part[part["method"] == method]
            stats = across_seeds(rows["R_tra"].to_numpy())
            if stats["n"] == 1 and "R_tra_low" in rows:
                stats["low"], stats["high"] = float(rows["R_tra_low"].iloc[0]), float(rows["R_tra_high"].iloc[0])
            means.append(stats["mean"])
            lows.append(stats["mean"] - stats["low"])
            highs.append(stats["high"] - stats["mean"])
        x = np.arange(len(methods))
        ax.bar(x, means, yerr=[lows, highs], capsize=4, color="#4c72b0")
        ax.set_xticks(x, methods, rotation=45, ha="right")
        ax.set_title(mode)
        ax.set_ylabel("R_tra (95 % interval)")
    fig.tight_layout()
    return _png(fig)


def _pooled_items(run_dir: Path, eval_names: list[str], method_of: dict[str, str], mode: str) -> dict[str, np.ndarray]:
    pooled: dict[str, list[np.ndarray]] = {}
    for name in eval_names:
        path = run_dir / name / f"episodes_{mode}.npz"
        if path.is_file():
            log = EpisodeLog.load(path)
            pooled.setdefault(method_of[name], []).append(log.items[log.items >= 0])
    return {m: np.concatenate(v) for m, v in pooled.items()}


def figure_lorenz(items: dict[str, np.ndarray], n_items: int, mode: str) -> bytes:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4.2))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="equal exposure")
    for method, recommended in items.items():
        x, y = exposure.lorenz_curve(exposure.exposure_counts(recommended, n_items))
        ax.plot(x, y, label=f"{method} (gini {exposure.gini(exposure.exposure_counts(recommended, n_items)):.2f})")
    ax.set_xlabel("share of items (least exposed first)")
    ax.set_ylabel("share of exposure")
    ax.set_title(f"Lorenz curve of item exposure ({mode})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


def figure_categories(items: dict[str, np.ndarray], categories: np.ndarray, log_share: np.ndarray, mode: str) -> bytes:
    """Each category's share of recommended items against its share of the log's positives."""
    plt = _pyplot()
    order = np.argsort(-log_share, kind="stable")
    fig, ax = plt.subplots(figsize=(max(6, 0.28 * len(order)), 4))
    x = np.arange(len(order))
    ax.bar(x, log_share[order], color="#cccccc", label="training log (positives)")
    for method, recommended in items.items():
        counts = categories[recommended].sum(axis=0).astype(np.float64)
        share = counts / max(counts.sum(), 1.0)
        ax.plot(x, share[order], marker="o", markersize=3, label=method)
    ax.set_xticks(x, [str(c) for c in order], fontsize=7)
    ax.set_xlabel("category (by share in the log)")
    ax.set_ylabel("share")
    ax.set_title(f"Category exposure vs the log's share ({mode})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


def figure_training(run_dir: Path, curves: dict[str, list[dict[str, Any]]]) -> bytes | None:
    """User-model validation loss per epoch (each member) and each method's own curve (mean
    over its seeds, where its seeds share the x values)."""
    model_dirs = sorted(p for p in run_dir.glob("user_model*") if (p / "training.json").is_file())
    if not model_dirs and not curves:
        return None
    plt = _pyplot()
    panels = (1 if model_dirs else 0) + (1 if curves else 0)
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 4), squeeze=False)
    ax_index = 0
    if model_dirs:
        ax = axes[0][ax_index]
        ax_index += 1
        for directory in model_dirs:
            for k, member in enumerate(read_json(directory / "training.json")["members"]):
                history = member["history"]
                ax.plot([h["epoch"] for h in history], [h["val_loss"] for h in history], marker="o",
                        markersize=3, label=f"{directory.name} m{k}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation loss")
        ax.set_title("user model")
        ax.legend(fontsize=6)
    if curves:
        ax = axes[0][ax_index]
        first = next(iter(curves.values()))[0]
        for method, runs in curves.items():
            xs = [tuple(run["x"]) for run in runs]
            if len(set(xs)) == 1:
                ax.plot(runs[0]["x"], np.mean([run["y"] for run in runs], axis=0), marker="o", markersize=3,
                        label=f"{method} ({len(runs)} seed{'s' if len(runs) > 1 else ''})")
            else:
                for run in runs:
                    ax.plot(run["x"], run["y"], label=method)
        ax.set_xlabel(first.get("x_label", "step"))
        ax.set_ylabel(first.get("y_label", "reward"))
        ax.set_title("policy training (mean over seeds)")
        ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return _png(fig)


def _training_curves(run_dir: Path, eval_names: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each method's training curves (one per seed) from the evaluation folders."""
    curves: dict[str, list[dict[str, Any]]] = {}
    for name in eval_names:
        info = read_json(run_dir / name / "metrics.json")
        curve = info.get("training_curve")
        if isinstance(curve, dict) and curve.get("x") and len(curve["x"]) == len(curve.get("y", [])):
            curves.setdefault(info["method"], []).append(curve)
    return curves


# ----------------------------------------------------------------------------- html


def report_html(title: str, markdown_tables: pd.DataFrame, figures: dict[str, bytes]) -> str:
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}"
        "table{border-collapse:collapse;font-size:13px;margin-bottom:1.5em}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}"
        "th{background:#f0f0f0}img{max-width:100%;margin:1em 0}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<p>Mean &plusmn; std across seeds (sample std; 0 with one seed).</p>",
    ]
    for mode, group in markdown_tables.groupby("mode", sort=False):
        parts.append(f"<h2>{html.escape(str(mode))}</h2>")
        parts.append(group.drop(columns="mode").to_html(index=False, escape=True, border=0))
    for caption, png in figures.items():
        data = base64.b64encode(png).decode("ascii")
        parts.append(f"<h2>{html.escape(caption)}</h2><img alt='{html.escape(caption)}' "
                     f"src='data:image/png;base64,{data}'>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def build_report(run_dir: str | os.PathLike, out_dir: str | os.PathLike, eval_names: list[str],
                 title: str = "recsim results", figures: bool = True) -> Path:
    """Write results.csv, results.md, figures/*.png and report.html into `out_dir`; return report.html."""
    run_dir, out = Path(run_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = collect_rows(run_dir, eval_names)
    if results.empty:
        raise DataError(str(run_dir), None, "no evaluation rows to report")
    with atomic_path(out / "results.csv") as tmp:
        results.to_csv(tmp, index=False, float_format="%.6g")
    _write_text(out / "results.md", results_markdown(results, title))
    pngs: dict[str, bytes] = {}
    if figures:
        from recsim.data.schema import Dataset

        dataset = Dataset.load(run_dir / "data" / "dataset")
        columns = dataset.truth_items if dataset.truth is not None else np.arange(dataset.n_items)
        categories = dataset.item_categories[columns]
        method_of = {name: read_json(run_dir / name / "metrics.json")["method"] for name in eval_names}
        train = dataset.train
        positives = train["item"].to_numpy()[train["label"].to_numpy() > 0]
        log_counts = np.bincount(positives, minlength=dataset.n_items).astype(np.float64) @ dataset.item_categories
        log_share = log_counts / max(log_counts.sum(), 1.0)
        if "R_tra" in results.columns:
            pngs["R_tra per method"] = figure_returns(results.dropna(subset=["R_tra"]))
        mode = "NX_0" if "NX_0" in set(results["mode"]) else str(results["mode"].iloc[0])
        items = _pooled_items(run_dir, eval_names, method_of, mode)
        if items:
            pngs[f"Lorenz curve of item exposure ({mode})"] = figure_lorenz(items, len(columns), mode)
            pngs[f"Category exposure vs the log ({mode})"] = figure_categories(items, categories, log_share, mode)
        training = figure_training(run_dir, _training_curves(run_dir, eval_names))
        if training is not None:
            pngs["Training curves"] = training
        (out / "figures").mkdir(exist_ok=True)
        for caption, png in pngs.items():
            slug = "".join(ch if ch.isalnum() else "_" for ch in caption.lower()).strip("_")
            _write_bytes(out / "figures" / f"{slug}.png", png)
    page = out / "report.html"
    _write_text(page, report_html(title, summary_table(results), pngs))
    return page


def evaluation_folders(run_dir: str | os.PathLike) -> list[str]:
    """Names of the evaluation folders of a run (`eval-*` with a metrics.json): those the run's
    report stage lists, in its order (the current spec's methods: folders left by an earlier,
    larger spec are not shown); where no report stage exists, every one, sorted by name."""
    run_dir = Path(run_dir)
    found = {p.name for p in run_dir.glob("eval-*") if (p / "metrics.json").is_file()}
    config = run_dir / "report" / "config.json"
    if config.is_file():
        return [name for name in read_json(config).get("evaluations", []) if name in found]
    return sorted(found)


def summary_lines(results: pd.DataFrame, mode: str | None = None) -> str:
    """A plain-text summary table (for the terminal): mean +- std per method of each mode."""
    table = summary_table(results)
    keep = ["mode", "method", "seeds"] + [c for c in ("R_tra", "length", "R_each", "MCD", "ndcg@10")
                                          if c in table.columns]
    if mode is not None:
        table = table[table["mode"] == mode]
    return table[keep].to_string(index=False)

