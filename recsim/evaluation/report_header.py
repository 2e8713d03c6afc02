"""The header of a report (`recsim.evaluation.report`): what was run and how to read the tables.

Lines: the dataset, the budget, the seeds, every override of the spec (`overrides.json`, written
by `write_overrides` when `recsim run` starts a run), the aggregation rule, the method families
and references, the test log (random exposure or a held-out part of the log), what each family
of off-policy columns estimates (`OPE_PREFIXES`), the propensities and the contexts used, and
where the protocol is described.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from recsim.evaluation import figures as fig
from recsim.io import read_json, write_json

OVERRIDES_FILE = "overrides.json"
PROTOCOL_PAGE = "docs/protocol.md"
AGGREGATION = ("each cell is the mean +- sample std across run seeds of the final policy's evaluation "
               "(the same evaluation users for every method); R_tra 95% CI: Student-t across seeds, "
               "clipped at 0 (R_tra cannot be negative). The published tables instead average all "
               "evaluated epochs of one run with one seed (see the protocol).")

OPE_PREFIXES = {
    "ope_step_": ("one-step value: the expected immediate reward of the policy's next item on the "
                  "logged contexts (ope_step_truth: its exact value under the ground truth; "
                  "ope_step_random_log: measured on the random-exposure test log)"),
    "ope_rtra_": "episode value: an estimate of R_tra, the return of a whole episode",
}
"""Prefix of each family of off-policy columns -> what its columns estimate (shown in the header)."""


def styles_of(results: pd.DataFrame) -> dict[str, fig.MethodStyle]:
    """`figures.method_styles` of the methods of `results` (by their family and reference flag)."""
    families = {}
    for _, row in results.drop_duplicates("method").iterrows():
        families[row["method"]] = fig.display_family(row.get("family", ""), bool(row.get("reference", False)))
    return fig.method_styles(families)



def write_overrides(run_dir: str | os.PathLike, spec_file: str | os.PathLike, sets: list[str] | None,
                    seeds: str | None, raw: str | os.PathLike | None = None) -> None:
    """Record the command line's overrides of the spec (`--set`, `--seeds`, `--raw`) in the run folder."""
    write_json(Path(run_dir) / OVERRIDES_FILE, {"spec_file": str(spec_file), "set": list(sets or []),
                                                "seeds": seeds, "raw": None if raw is None else str(raw)})


def _overrides_text(run_dir: Path) -> tuple[str, int]:
    """(the overrides as text, how many), from `overrides.json`."""
    path = run_dir / OVERRIDES_FILE
    if not path.is_file():
        return "not recorded (the run was not started by `recsim run`)", 0
    info = read_json(path)
    given = [f"--set {text}" for text in info.get("set") or []]
    if info.get("seeds"):
        given.append(f"--seeds {info['seeds']}")
    if info.get("raw"):
        given.append(f"--raw {info['raw']}")
    source = f"spec file {info.get('spec_file')}; "
    return source + ("; ".join(given) if given else "none (the spec file as written)"), len(given)


def _dataset_text(spec: dict[str, Any], dataset: Any) -> str:
    data = spec.get("data", {})
    parts = [str(data.get("name", "?"))]
    if data.get("name") == "synthetic" and data.get("preset"):
        parts.append(f"preset {data['preset']}, world seed {data.get('world_seed')}")
    if dataset is not None:
        n_categories = dataset.item_categories.shape[1] if fig.has_categories(dataset.item_categories) else 0
        truth = "none" if dataset.truth is None else f"{len(dataset.truth_users):,} x {len(dataset.truth_items):,}"
        if data.get("complete") is not None and dataset.truth is not None:
            truth += " (completed from the random-exposure log)"
        parts.append(f"{dataset.n_users:,} users x {dataset.n_items:,} items, {len(dataset.train):,} logged rows, "
                     f"{n_categories} categories; ground truth {truth}")
    return "; ".join(parts)


BUDGET_KEYS = ("budget", "epochs", "epoch_num_steps", "num_envs", "episodes_per_collect", "batch_size",
               "eval_episodes")


def _budget_text(spec: dict[str, Any]) -> str:
    """The user model's size and each group of methods sharing a training budget."""
    um = spec.get("user_model", {})
    parts = [f"user model: {um.get('members', 5)} members, {um.get('epochs', 5)} epoch(s)"]
    groups: dict[str, list[str]] = {}
    for method in spec.get("methods", []):
        params = method.get("params") or {}
        keys = {k: params[k] for k in BUDGET_KEYS if k in params}
        if not keys and _family_of_spec_method(method) == "static":
            continue
        text = ", ".join(f"{k}={v}" for k, v in keys.items()) or "budget=cpu (default)"
        groups.setdefault(text, []).append(method["name"])
    parts += [f"{', '.join(names)}: {text}" for text, names in groups.items()]
    return "; ".join(parts)


def _family_of_spec_method(method: dict[str, Any]) -> str:
    """The family of a spec's method entry (`recsim.policy.methods`), "" when unknown."""
    from recsim.errors import ConfigError
    from recsim.policy.methods import get_method

    try:
        return get_method(method.get("method") or method["name"]).family
    except (ConfigError, KeyError):
        return ""


def header_items(run_dir: Path, results: pd.DataFrame, dataset: Any = None) -> list[tuple[str, str]]:
    """(label, text) lines of the report's header (see the module docstring)."""
    spec = read_json(run_dir / "spec.json") if (run_dir / "spec.json").is_file() else {}
    overrides, _ = _overrides_text(run_dir)
    seeds = sorted(int(s) for s in results["seed"].unique())
    evaluation = spec.get("evaluation", {})
    styles = styles_of(results)
    references = [m for m, s in styles.items() if s.family == "reference"]
    items = [
        ("dataset", _dataset_text(spec, dataset) if spec else "not recorded"),
        ("budget", _budget_text(spec) if spec else "not recorded"),
        ("seeds", f"{', '.join(map(str, seeds))} ({len(seeds)} run seed{'s' if len(seeds) != 1 else ''})"),
        ("evaluation", (f"modes {', '.join(dict.fromkeys(results['mode']))}; "
                        f"{evaluation.get('episodes', evaluation.get('n_episodes', '?'))} episodes per mode and seed"
                        if dataset is None or dataset.truth is not None else
                        "offline only (no ground truth to roll out in): ranking metrics and off-policy estimates")),
        ("overrides", overrides),
        ("aggregation", AGGREGATION),
        *_logged_evaluation_items(results, dataset),
        ("families", "; ".join(f"{family}: {', '.join(m for m, s in styles.items() if s.family == family)}"
                               for family in fig.FAMILIES if any(s.family == family for s in styles.values()))),
        ("references", (", ".join(references) + ": reference rows, not offline methods (they know the "
                        "evaluation's quit rule or its true reward)") if references else "none"),
        ("protocol", (f"{PROTOCOL_PAGE} in the recsim repository (users, episodes, quit rules, metrics, "
                      "published numbers, deviations)")),
    ]
    return items


def _logged_evaluation_items(results: pd.DataFrame, dataset: Any) -> list[tuple[str, str]]:
    """Header lines on the evaluation from the logs: the test log, what each OPE column family
    estimates, the propensities and the contexts used."""
    items = []
    if dataset is not None and dataset.test is not None:
        info = dataset.meta.get("test_log")
        text = info.get("description") if isinstance(info, dict) else None
        items.append(("test log", f"{text or 'random-exposure test log shipped with the dataset'}; "
                                  f"{len(dataset.test):,} rows"))
    families = [(prefix, text) for prefix, text in OPE_PREFIXES.items()
                if any(c.startswith(prefix) for c in results.columns)]
    if families:
        items.append(("off-policy columns", "; ".join(f"{prefix}*: {text}" for prefix, text in families)
                      + ". A cell marked [unreliable: reason] is not to be trusted: too few effective samples, "
                        "no value, or a reward model off the reward's scale"))
    if "ope_pscore_source" in results.columns:
        sources = sorted({str(s) for s in results["ope_pscore_source"].dropna()})
        used = ""
        if "ope_n_contexts" in results.columns:
            contexts = pd.to_numeric(results["ope_n_contexts"], errors="coerce")
            users = pd.to_numeric(results.get("ope_n_users"), errors="coerce")
            used = (f"; contexts used: {_span(contexts)} logged rows of {_span(users)} users covered by the "
                    "reward model, the propensities and the ground truth")
        if "ope_n_episodes" in results.columns:
            episodes = pd.to_numeric(results["ope_n_episodes"], errors="coerce")
            users = pd.to_numeric(results.get("ope_n_episode_users"), errors="coerce")
            used += f"; episode estimates: {_span(episodes)} logged windows of {_span(users)} users"
        items.append(("propensities", "; ".join(sources) + used))
    return items


def _span(values: pd.Series) -> str:
    """"n" or "low-high" of whole numbers."""
    low, high = int(values.min()), int(values.max())
    return f"{low:,}" if low == high else f"{low:,}-{high:,}"


def report_title(title: str, run_dir: Path) -> str:
    """The title, marked when the command line overrode the spec (its settings are not the file's)."""
    _, n = _overrides_text(run_dir)
    return f"{title} (modified by {n} override{'s' if n != 1 else ''}, see the header)" if n else title
