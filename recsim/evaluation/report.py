"""Reports over evaluated policies: results.csv, results.md, PNG figures and a self-contained report.html.

Input: evaluation folders (`eval-<method>-s<seed>/` of a pipeline run) holding `metrics.json`
(one row of metrics per mode) and `episodes_<mode>.npz` (`recsim.evaluation.rollout.EpisodeLog`),
plus the run's dataset (`data/dataset`), its resolved spec (`spec.json`) and, when `recsim run`
started it, the command line's overrides of the spec (`overrides.json`, `write_overrides`).

- A header: the dataset, the budget, the seeds, every override of the spec, the aggregation
  rule, which rows are references rather than offline methods, and where the protocol is
  described (docs/protocol.md).
- `results.csv`: one row per method, seed and mode, every metric a column (`method`, `seed`,
  `mode`, `R_tra`, `length`, `R_each`, `MCD`, `gini`, `coverage`, `ndcg@10_<reference>`,
  `ope_step_<estimator>`, `ope_rtra_<estimator>`, ...). Each off-policy estimate comes with
  `_low`, `_high` (its interval), `_ess` (effective sample size share), `_unreliable` and
  `_reason`; an undefined estimate is an empty value with its flag and reason.
- `results.md`: per mode, a table like the published one (docs/protocol.md, "Published
  numbers") with one row per method, grouped by family (`recsim.evaluation.figures`): mean +-
  sample std across seeds ("+- 0" means one seed) and the 95 % Student-t interval of R_tra
  across seeds, clipped to R_tra's range [0, inf) (and said so in the header). A metric that
  is missing for every seed (MCD without categories) shows "n/a". An off-policy estimate
  flagged unreliable in any seed is marked "[unreliable: <reason>]" (an undefined one shows only
  the mark), never printed as if it were sound; the header says what each OPE column estimates.
- Figures (`recsim.evaluation.figures`): R_tra per method with its interval (across seeds; with
  one seed the bootstrap interval over episodes); the concentration of item exposure (the
  Lorenz curve read from the most exposed item); each
  category's share of recommended items against its share of the training log's positives
  (left out when the dataset has no categories); training curves. A figure with nothing to
  show is left out.
- `report.html`: the header, the tables and the figures, PNGs embedded as base64 (one file).
"""
from __future__ import annotations

import base64
import html
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsim.errors import DataError
from recsim.evaluation import figures as fig
from recsim.evaluation.report_header import (  # noqa: F401  (write_overrides: part of this module's API)
    OPE_PREFIXES,
    header_items,
    report_title,
    styles_of,
    write_overrides,
)
from recsim.evaluation.rollout import EpisodeLog, across_seeds
from recsim.io import atomic_path, read_json

FIRST_COLUMNS = ("method", "family", "seed", "mode", "R_tra", "length", "R_each", "MCD", "gini", "coverage")
TABLE_METRICS = ("R_tra", "R_each", "length", "MCD", "gini", "coverage")
R_TRA_RANGE = (0.0, float("inf"))
"""R_tra's range: the ground-truth rewards of every dataset recsim reads are >= 0."""

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
                            "seed": int(info["seed"]), **row, "reference": bool(info.get("reference", False))})
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


ESTIMATE_SUFFIXES = ("_low", "_high", "_ess", "_unreliable", "_reason")
def _ope_order(column: str) -> tuple[str, int]:
    """OPE columns grouped per estimator: value, low, high, ess, unreliable, reason (then the rest)."""
    for rank, suffix in enumerate(ESTIMATE_SUFFIXES, 1):
        if column.endswith(suffix):
            return column[: -len(suffix)], rank
    return column, 0


def estimate_value_columns(columns: Any) -> list[str]:
    """The value columns of the off-policy estimates (`OPE_PREFIXES`, no `ESTIMATE_SUFFIXES`)."""
    return [c for c in columns if c.startswith(tuple(OPE_PREFIXES)) and not c.endswith(ESTIMATE_SUFFIXES)]


def _flag(value: Any) -> bool:
    """An `_unreliable` cell as a bool (missing: False)."""
    return bool(value) if isinstance(value, (bool, np.bool_)) else False


def estimate_cell(group: pd.DataFrame, column: str) -> str:
    """"mean +- std" of one estimate across seeds, marked "[unreliable: reason]" when any seed
    flags it (only the mark when no seed has a value)."""
    values = pd.to_numeric(group[column], errors="coerce").to_numpy()
    stats = across_seeds(values)
    text = f"{_fmt(stats['mean'])} +- {_fmt(stats['std'])}" if stats["n"] else ""
    flags = [_flag(v) for v in group[f"{column}_unreliable"]] if f"{column}_unreliable" in group else []
    if not any(flags):
        return text or "n/a"
    reasons = [str(r) for r, f in zip(group.get(f"{column}_reason", [""] * len(flags)), flags)
               if f and isinstance(r, str) and r]
    reason = reasons[0] if reasons else "flagged"
    seeds = f" in {sum(flags)} of {len(flags)} seeds" if len(flags) > 1 else ""
    mark = f"[unreliable{seeds}: {reason}]"
    return f"{text} {mark}" if text else mark


def _fmt(value: float) -> str:
    if not np.isfinite(value):
        return "n/a"
    return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"


def seed_interval(values: np.ndarray, bounds: tuple[float, float] = R_TRA_RANGE) -> dict[str, float]:
    """`across_seeds` of per-seed values with the interval clipped to `bounds` (a metric's range)."""
    stats = across_seeds(values)
    if stats["n"]:
        stats["low"] = float(np.clip(stats["low"], *bounds))
        stats["high"] = float(np.clip(stats["high"], *bounds))
    return stats


def summary_table(results: pd.DataFrame) -> pd.DataFrame:
    """Per (mode, method), methods grouped by family: "mean +- std" across seeds of the table
    metrics, NDCG and OPE values, and R_tra's clipped 95 % interval across seeds."""
    metrics = [c for c in TABLE_METRICS if c in results.columns]
    metrics += [c for c in results.columns if c.startswith("ndcg@")]
    estimates = estimate_value_columns(results.columns)
    metrics += estimates
    styles = styles_of(results)
    rank = {m: i for i, m in enumerate(styles)}
    rows = []
    for (mode, method), group in results.groupby(["mode", "method"], sort=False):
        row = {"mode": mode, "method": method, "family": styles[method].family, "seeds": int(group["seed"].nunique())}
        for metric in metrics:
            if metric in estimates:
                row[metric] = estimate_cell(group, metric)
                continue
            stats = across_seeds(pd.to_numeric(group[metric], errors="coerce").to_numpy())
            row[metric] = f"{_fmt(stats['mean'])} +- {_fmt(stats['std'])}" if stats["n"] else "n/a"
            if metric == "R_tra":
                interval = seed_interval(pd.to_numeric(group[metric], errors="coerce").to_numpy())
                row["R_tra 95% CI"] = f"[{_fmt(interval['low'])}, {_fmt(interval['high'])}]" \
                    if interval["n"] > 1 else "n/a"
        rows.append(row)
    table = pd.DataFrame(rows)
    mode_rank = {m: i for i, m in enumerate(dict.fromkeys(table["mode"]))}
    order = np.lexsort((table["method"].map(rank).to_numpy(), table["mode"].map(mode_rank).to_numpy()))
    return table.iloc[order].reset_index(drop=True)


def markdown_table(frame: pd.DataFrame) -> str:
    columns = list(frame.columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(str(row[c]) for c in columns) + " |")
    return "\n".join(lines)


def results_markdown(results: pd.DataFrame, title: str, header: list[tuple[str, str]] | None = None) -> str:
    table = summary_table(results)
    parts = [f"# {title}", ""]
    parts += [f"- **{label}**: {text}" for label, text in header or []]
    parts += ["", "Mean +- std across seeds (sample std; 0 with one seed).", ""]
    for mode, group in table.groupby("mode", sort=False):
        parts += [f"## {mode}", "", markdown_table(group.drop(columns="mode")), ""]
    return "\n".join(parts)


# ----------------------------------------------------------------------------- figures


def _pooled_items(run_dir: Path, eval_names: list[str], method_of: dict[str, str], mode: str) -> dict[str, np.ndarray]:
    pooled: dict[str, list[np.ndarray]] = {}
    for name in eval_names:
        path = run_dir / name / f"episodes_{mode}.npz"
        if path.is_file():
            log = EpisodeLog.load(path)
            pooled.setdefault(method_of[name], []).append(log.items[log.items >= 0])
    return {m: np.concatenate(v) for m, v in pooled.items() if sum(len(x) for x in v)}


def return_intervals(results: pd.DataFrame) -> dict[str, dict[str, tuple[float, float, float]]]:
    """{mode: {method: (mean, low, high)}} of R_tra: the clipped Student-t interval across seeds,
    or with one seed the rollout's own bootstrap interval over episodes."""
    out: dict[str, dict[str, tuple[float, float, float]]] = {}
    for (mode, method), rows in results.dropna(subset=["R_tra"]).groupby(["mode", "method"], sort=False):
        stats = seed_interval(rows["R_tra"].to_numpy())
        if stats["n"] == 1 and "R_tra_low" in rows:
            stats["low"], stats["high"] = float(rows["R_tra_low"].iloc[0]), float(rows["R_tra_high"].iloc[0])
        out.setdefault(str(mode), {})[str(method)] = (stats["mean"], stats["low"], stats["high"])
    return out


def _user_model_histories(run_dir: Path) -> dict[str, list[list[dict[str, Any]]]]:
    histories = {}
    for directory in sorted(p for p in run_dir.glob("user_model*") if (p / "training.json").is_file()):
        histories[directory.name] = [m["history"] for m in read_json(directory / "training.json")["members"]]
    return histories


def _training_curves(run_dir: Path, eval_names: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each method's training curves (one per seed) from the evaluation folders."""
    curves: dict[str, list[dict[str, Any]]] = {}
    for name in eval_names:
        info = read_json(run_dir / name / "metrics.json")
        curve = info.get("training_curve")
        if isinstance(curve, dict) and curve.get("x") and len(curve["x"]) == len(curve.get("y", [])):
            curves.setdefault(info["method"], []).append(curve)
    return curves


def report_figures(run_dir: Path, eval_names: list[str], results: pd.DataFrame, dataset: Any) -> dict[str, bytes]:
    """{caption: PNG} of every figure with something to show (see the module docstring)."""
    styles = styles_of(results)
    pngs: dict[str, bytes] = {}
    several = results.groupby(["mode", "method"])["seed"].nunique().max() > 1
    intervals = return_intervals(results) if "R_tra" in results.columns else {}
    if any(intervals.values()):
        label = "95 % interval across seeds, clipped at 0" if several else "95 % bootstrap interval over episodes"
        pngs["R_tra per method"] = fig.figure_returns(intervals, styles, label)
    columns = dataset.truth_items if dataset.truth is not None else np.arange(dataset.n_items)
    categories = np.asarray(dataset.item_categories, dtype=bool)[columns]
    method_of = {name: read_json(run_dir / name / "metrics.json")["method"] for name in eval_names}
    mode = "NX_0" if "NX_0" in set(results["mode"]) else str(results["mode"].iloc[0])
    items = _pooled_items(run_dir, eval_names, method_of, mode)
    if items:
        pngs[f"Concentration of item exposure ({mode})"] = fig.figure_concentration(items, len(columns), styles,
                                                                                    mode)
    if items and fig.has_categories(categories):
        train = dataset.train
        positives = train["item"].to_numpy()[train["label"].to_numpy() > 0]
        log_counts = np.bincount(positives, minlength=dataset.n_items).astype(np.float64) @ dataset.item_categories
        log_share = log_counts / max(log_counts.sum(), 1.0)
        pngs[f"Category exposure vs the log ({mode})"] = fig.figure_categories(items, categories, log_share,
                                                                               styles, mode)
    training = fig.figure_training(_user_model_histories(run_dir), _training_curves(run_dir, eval_names), styles)
    if training is not None:
        pngs["Training curves"] = training
    return pngs


# ----------------------------------------------------------------------------- html


def _html_table(frame: pd.DataFrame, styles: dict[str, fig.MethodStyle]) -> str:
    """An HTML table whose method cells carry the method's figure colour; one heading row per
    family instead of a family column."""
    columns = [c for c in frame.columns if c != "family"]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    rows, family = [], None
    for _, row in frame.iterrows():
        if row["family"] != family:
            family = row["family"]
            rows.append(f"<tr class='family'><td colspan='{len(columns)}'>{html.escape(str(family))}</td></tr>")
        cells = []
        for column in columns:
            text = html.escape(str(row[column])).replace(" +- ", " &plusmn; ")
            if column == "method":
                colour = styles[row["method"]].colour
                text = f"<span class='swatch' style='background:{colour}'></span>{text}"
            marked = "[unreliable" in str(row[column])
            cells.append(f"<td class='unreliable'>{text}</td>" if marked else f"<td>{text}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<div class='wide'><table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"


STYLE = ("body{font-family:sans-serif;margin:2em;max-width:1200px}"
         "table{border-collapse:collapse;font-size:13px;margin-bottom:1.5em}"
         "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right;white-space:nowrap}"
         "td:first-child{text-align:left}div.wide{overflow-x:auto}"
         "th{background:#f0f0f0}tr.family td{background:#fafafa;font-weight:bold;text-align:left}"
         ".swatch{display:inline-block;width:.8em;height:.8em;margin-right:.4em;vertical-align:middle}"
         "dl.header{display:grid;grid-template-columns:max-content auto;gap:2px 1em;font-size:14px}"
         "td.unreliable{background:#fde8e8;color:#8a1c1c;white-space:normal}"
         "dl.header dt{font-weight:bold}dl.header dd{margin:0}img{max-width:100%;margin:1em 0}")


def report_html(title: str, summary: pd.DataFrame, figures: dict[str, bytes],
                header: list[tuple[str, str]] | None = None, styles: dict[str, fig.MethodStyle] | None = None) -> str:
    styles = styles if styles is not None else fig.method_styles(dict.fromkeys(summary["method"], ""))
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'>", f"<title>{html.escape(title)}</title>",
             f"<style>{STYLE}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    if header:
        parts.append("<dl class='header'>" + "".join(f"<dt>{html.escape(label)}</dt><dd>{html.escape(text)}</dd>"
                                                     for label, text in header) + "</dl>")
    parts.append("<p>Mean &plusmn; std across seeds (sample std; 0 with one seed).</p>")
    for mode, group in summary.groupby("mode", sort=False):
        parts.append(f"<h2>{html.escape(str(mode))}</h2>")
        parts.append(_html_table(group.drop(columns="mode"), styles))
    for caption, png in figures.items():
        data = base64.b64encode(png).decode("ascii")
        parts.append(f"<h2>{html.escape(caption)}</h2><img alt='{html.escape(caption)}' "
                     f"src='data:image/png;base64,{data}'>")
    parts.append("</body></html>")
    return "\n".join(parts)


def user_model_section(run_dir: Path) -> tuple[str, str]:
    """The "User models" section (markdown, HTML) of the run's trained user models; ("", "") if none.

    One row per `user_model*/` folder whose `metrics.json` holds `recsim.user_model.diagnostics`:
    distinct items among all users' top-k and their Gini, RMSE on the held-out truth beside the
    training mean's, and for the reward table's own uncertainty (`config.json`'s `train.uncertainty`)
    its Spearman correlations with |error| and with the item's log count and the share of users
    whose UCB top item / top-k list differs from greedy's.
    """
    rows = []
    for directory in sorted(p for p in run_dir.glob("user_model*") if (p / "metrics.json").is_file()):
        found = read_json(directory / "metrics.json").get("diagnostics")
        if not isinstance(found, dict) or not found.get("uncertainty"):
            continue
        config = read_json(directory / "config.json") if (directory / "config.json").is_file() else {}
        kind = config.get("train", {}).get("uncertainty")
        kind = kind if kind in found["uncertainty"] else next(iter(found["uncertainty"]))
        k = next((key.split("@")[1] for key in found if key.startswith("distinct_items@")), "10")

        def number(value: Any) -> str:
            return _fmt(float("nan") if value is None else float(value))

        calibration = found["uncertainty"][kind]
        rows.append({"user model": directory.name, "uncertainty": kind,
                     f"distinct top-{k}": str(found.get(f"distinct_items@{k}", "n/a")),
                     f"Gini top-{k}": number(found.get(f"gini_top@{k}")),
                     "RMSE (train mean)": f"{number(found.get('rmse'))} ({number(found.get('rmse_train_mean'))})",
                     "Spearman |error|": number(calibration.get("spearman_abs_error")),
                     "Spearman log count": number(calibration.get("spearman_item_log_count")),
                     "UCB top-1 differs": number(calibration.get("ucb_top1_differs")),
                     f"UCB top-{k} differs": number(calibration.get(f"ucb_top{k}_differs"))})
    if not rows:
        return "", ""
    frame = pd.DataFrame(rows)
    note = ("Diagnostics of each trained user model against the held-out truth (recsim.user_model.diagnostics), "
            "for the uncertainty its reward table carries.")
    markdown = "\n".join(["## User models", "", note, "", markdown_table(frame), ""])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))
    return markdown, (f"<h2>User models</h2><p>{html.escape(note)}</p><div class='wide'><table><thead><tr>{head}"
                      f"</tr></thead><tbody>{body}</tbody></table></div>")


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
    dataset = None
    if (run_dir / "data" / "dataset").is_dir():
        from recsim.data.schema import Dataset

        dataset = Dataset.load(run_dir / "data" / "dataset")
    header = header_items(run_dir, results, dataset)
    title = report_title(title, run_dir)
    with atomic_path(out / "results.csv") as tmp:
        results.to_csv(tmp, index=False, float_format="%.6g")
    models_md, models_html = user_model_section(run_dir)
    _write_text(out / "results.md", results_markdown(results, title, header) + models_md)
    pngs = report_figures(run_dir, eval_names, results, dataset) if figures and dataset is not None else {}
    if pngs:
        (out / "figures").mkdir(exist_ok=True)
    for caption, png in pngs.items():
        slug = "".join(ch if ch.isalnum() else "_" for ch in caption.lower()).strip("_")
        _write_bytes(out / "figures" / f"{slug}.png", png)
    page = out / "report.html"
    body, end, tail = report_html(title, summary_table(results), pngs, header, styles_of(results)).rpartition("</body>")
    _write_text(page, body + models_html + end + tail)
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
    keep = ["mode", "method", "seeds"] + [c for c in table.columns
                                          if c in ("R_tra", "length", "R_each", "MCD") or c.startswith("ndcg@")]
    if mode is not None:
        table = table[table["mode"] == mode]
    return table[keep].to_string(index=False)
