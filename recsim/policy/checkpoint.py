"""Checkpoints and TensorBoard logging of policy training runs.

- `save_checkpoint` / `load_checkpoint`: one file, `checkpoints/last.pt`, replaced atomically
  after every epoch (`recsim.io.atomic_path` + `torch.save`; read back with
  `torch.load(weights_only=True)`, so a planted file never runs code), holding the algorithm's
  `state_dict` (networks and optimizers, tianshou 2 includes them), target-update counter and
  return statistics (`algorithm_state`), the trainer's counters (epoch, env step, gradient step) and the
  evaluation history.
- `RunLogger`: tianshou's `TensorboardLogger`, extended through its public methods to (a) keep
  the trainer's counters (`save_data` is called once per epoch with them), (b) hand them back on
  resume (`restore_data`, used by the trainer when `resume_from_log=True`) and (c) average the
  training return of an epoch's collections (`log_training_data`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tianshou.utils.logger.tensorboard import TensorboardLogger
from torch.utils.tensorboard import SummaryWriter

from recsim.errors import DataError
from recsim.io import atomic_path

CHECKPOINT = Path("checkpoints") / "last.pt"
TENSORBOARD_DIR = "tensorboard"


def save_checkpoint(out_dir: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write `state` to `out_dir/checkpoints/last.pt` atomically."""
    path = Path(out_dir) / CHECKPOINT
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def load_checkpoint(out_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The last checkpoint in `out_dir`, or None when there is none."""
    path = Path(out_dir) / CHECKPOINT
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a corrupt, foreign or planted file is a user-facing data problem
        first = str(error).splitlines()[0] if str(error) else ""
        raise DataError(str(path), None, f"not loadable as a checkpoint of tensors ({type(error).__name__}: "
                        f"{first})") from None


TARGET_COUNTER = "_iter"
"""tianshou 2 keeps the gradient-step counter that schedules target-network copies (DQN family,
BCQ, CRR) in this attribute, outside `state_dict`; checkpoints carry it so a resumed run copies
the target network at the same steps as an uninterrupted one."""


RETURN_STATS = "ret_rms"
"""tianshou 2's A2C / PPO keep the running statistics of `return_scaling` (a `RunningMeanStd`)
in this attribute, outside `state_dict`; checkpoints carry its mean, variance and count so a
resumed run scales returns as an uninterrupted one."""


def algorithm_state(algorithm: torch.nn.Module) -> dict[str, Any]:
    """The algorithm's `state_dict`, its target-update counter (`TARGET_COUNTER`) and its return
    statistics (`RETURN_STATS`)."""
    stats = getattr(algorithm, RETURN_STATS, None)
    return {"state_dict": algorithm.state_dict(), "target_counter": getattr(algorithm, TARGET_COUNTER, None),
            "return_stats": None if stats is None else
            {"mean": float(stats.mean), "var": float(stats.var), "count": int(stats.count)}}


def restore_algorithm(algorithm: torch.nn.Module, state: dict[str, Any]) -> None:
    """Inverse of `algorithm_state`."""
    algorithm.load_state_dict(state["state_dict"])
    if state.get("target_counter") is not None and hasattr(algorithm, TARGET_COUNTER):
        setattr(algorithm, TARGET_COUNTER, int(state["target_counter"]))
    saved = state.get("return_stats")
    stats = getattr(algorithm, RETURN_STATS, None)
    if saved is not None and stats is not None:
        stats.mean, stats.var, stats.count = saved["mean"], saved["var"], saved["count"]


class RunLogger(TensorboardLogger):
    """TensorBoard logger that keeps counters for checkpoints and the epoch's training return.

    Args:
        writer: the SummaryWriter.
        restored: (epoch, env_step, gradient_step) of the checkpoint a run resumes from.
        update_interval: gradient steps between logged losses.

    The writer flushes at the end of each epoch (`flush`), not after every scalar.
    """

    def __init__(self, writer: SummaryWriter, restored: tuple[int, int, int] = (0, 0, 0),
                 update_interval: int = 50) -> None:
        super().__init__(writer, training_interval=1, test_interval=1, update_interval=update_interval,
                         info_interval=1, save_interval=1, write_flush=False)
        self.restored = tuple(int(c) for c in restored)
        self.counters = self.restored
        self._returns: list[float] = []
        self._episodes: list[int] = []

    def start_epoch(self) -> None:
        self._returns, self._episodes = [], []

    def flush(self) -> None:
        self.writer.flush()

    def epoch_return(self) -> float:
        """Mean episode return of the collections since `start_epoch` (NaN if none finished)."""
        if not self._episodes or sum(self._episodes) == 0:
            return float("nan")
        weights = np.asarray(self._episodes, dtype=np.float64)
        return float(np.dot(self._returns, weights) / weights.sum())

    def log_training_data(self, log_data: dict, step: int) -> None:
        episodes = int(log_data.get("n_collected_episodes") or 0)
        stat = log_data.get("returns_stat")
        if episodes and stat:
            self._returns.append(float(stat["mean"]))
            self._episodes.append(episodes)
        super().log_training_data(log_data, step)

    def save_data(self, epoch: int, env_step: int, update_step: int, save_checkpoint_fn=None) -> None:
        self.counters = (int(epoch), int(env_step), int(update_step))
        super().save_data(epoch, env_step, update_step, save_checkpoint_fn)

    def restore_data(self) -> tuple[int, int, int]:
        epoch, env_step, gradient_step = self.restored
        self.last_save_step = self.last_log_test_step = epoch
        self.last_log_update_step = gradient_step
        self.last_log_training_step = env_step
        return epoch, env_step, gradient_step


def open_logger(out_dir: str | os.PathLike, restored: tuple[int, int, int] = (0, 0, 0)) -> RunLogger:
    """A `RunLogger` writing into `out_dir/tensorboard`."""
    return RunLogger(SummaryWriter(log_dir=str(Path(out_dir) / TENSORBOARD_DIR)), restored)
