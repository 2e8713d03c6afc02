"""The epoch loop shared by model-based (on-policy) and offline training.

Every epoch runs from its own seed, `SeedSequence([seed, epoch])`, so a run resumed from its
last checkpoint repeats exactly what an uninterrupted run would have done. After each epoch the
policy is evaluated in the ground-truth environment (every `eval_every` epochs), the record is
appended to the history, and a checkpoint is written atomically.
"""
from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from recsim.io import write_json
from recsim.policy.base import TianshouRecommender
from recsim.policy.checkpoint import algorithm_state, load_checkpoint, restore_algorithm, save_checkpoint
from recsim.policy.methods import Budget
from recsim.progress import progress_bar


@dataclasses.dataclass
class TrainResult:
    """What a training run returns.

    Attributes:
        recommender: the trained policy behind the `Recommender` interface (ground-truth scale).
        history: one record per evaluated epoch (epoch, env_step, train_return, metrics).
        final: the last evaluation's metrics (empty if none ran).
        wall_seconds: training time of this call (a resumed run counts only its own part).
        out_dir: where config, checkpoints and logs were written.
    """

    recommender: TianshouRecommender
    history: list[dict[str, Any]]
    final: dict[str, float]
    wall_seconds: float
    out_dir: Path


def resume_state(algorithm: Any, out: Path, resume: bool
                 ) -> tuple[list[dict[str, Any]], tuple[int, int, int], bool]:
    """(history, logger counters (epoch, env step, gradient step), whether a checkpoint was
    restored) for a run in `out`."""
    checkpoint = load_checkpoint(out) if resume else None
    if checkpoint is None:
        return [], (0, 0, 0), False
    restore_algorithm(algorithm, checkpoint["algorithm"])
    epoch, env_step, gradient_step = checkpoint["counters"]
    return checkpoint["history"], (epoch, env_step, gradient_step), True


LOSS_LIMIT = 1e6
"""A training loss (or return) above this in magnitude is reported as diverged."""

COLLAPSE_ITEMS = 5
"""A policy whose evaluation recommends at most this many distinct items is reported as collapsed."""


def health(record: dict[str, Any], n_items: int | None) -> list[str]:
    """One-line warnings for an epoch's record: a loss or training return that is not finite or
    exceeds `LOSS_LIMIT` (diverged), an evaluation whose recommendations hold at most
    `COLLAPSE_ITEMS` distinct items (collapsed)."""
    problems = []
    for key in ("loss", "train_return"):
        value = record.get(key)
        if value is None:
            continue
        if key == "loss" and not np.isfinite(value):
            problems.append(f"diverged: {key} is {value}")
        elif np.isfinite(value) and abs(value) > LOSS_LIMIT:
            problems.append(f"diverged: {key} {value:.3g} exceeds {LOSS_LIMIT:.0e}")
    if n_items is not None and "coverage" in record and np.isfinite(record["coverage"]):
        distinct = int(round(record["coverage"] * n_items))
        if distinct <= COLLAPSE_ITEMS:
            problems.append(f"collapsed: the evaluation recommended {distinct} distinct items")
    return problems


def say_warnings(method: str, epoch: int, problems: list[str]) -> None:
    """One line on stderr for an epoch's warnings (between a live bar's updates on a terminal)."""
    from tqdm.auto import tqdm

    tqdm.write(f"{method} epoch {epoch}: warning: {'; '.join(problems)}", file=sys.stderr)


def warnings_of(history: list[dict[str, Any]]) -> list[str]:
    """The warnings of the last epoch that has any, prefixed by its epoch."""
    flagged = [h for h in history if h.get("warnings")]
    return [f"epoch {flagged[-1]['epoch']}: {w}" for w in flagged[-1]["warnings"]] if flagged else []


def run_epochs(*, method: str, seed: int, device: str, progress: bool, budget: Budget, algorithm: Any,
               logger: Any, recommender: TianshouRecommender, evaluator: Any, out: Path,
               history: list[dict[str, Any]], first_epoch: int,
               run_epoch: Callable[[int, int], dict[str, Any]], bookkeeping: tuple[str, ...], postfix: str,
               started: float) -> TrainResult:
    """Run epochs `first_epoch`..`budget.epochs`.

    `run_epoch(epoch, epoch_seed)` trains one epoch and returns its record; the record's
    `bookkeeping` keys (epoch, step counters, training return or loss) stay out of `final`, and
    `postfix` names the one shown beside the progress bar.
    """
    bar = progress_bar(range(first_epoch, budget.epochs + 1), f"{method} epochs", enabled=progress,
                       initial=first_epoch - 1, total=budget.epochs)
    for epoch in bar:
        epoch_seed = int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])
        record = run_epoch(epoch, epoch_seed)
        if evaluator is not None and (epoch % budget.eval_every == 0 or epoch == budget.epochs):
            metrics = evaluator.evaluate(recommender, seed, device)
            record.update(metrics)
            logger.write("eval/epoch", epoch, {f"eval/{k}": v for k, v in metrics.items()})
        problems = health(record, evaluator.n_items if evaluator is not None else None)
        if problems:
            record["warnings"] = problems
            if progress:
                say_warnings(method, epoch, problems)
        history.append(record)
        bar.set_postfix(**{postfix: f"{record[postfix]:.3f}"},
                        **({"R_tra": f"{record['R_tra']:.3f}"} if "R_tra" in record else {}))
        logger.flush()
        save_checkpoint(out, {"algorithm": algorithm_state(algorithm), "history": history,
                              "counters": (epoch, *logger.counters[1:]), "method": method})
    logger.finalize()
    evaluated = [h for h in history if "R_tra" in h]
    final = ({k: v for k, v in evaluated[-1].items() if k not in (*bookkeeping, "warnings")}
             if evaluated else {})
    write_json(out / "history.json", history)
    return TrainResult(recommender, history, final, time.perf_counter() - started, out)
