"""A trained or built policy on disk: `policy.pt`, the whole `Recommender` object (`torch.save`).

Every `run_policy` output folder holds one (`recsim policy train`, the pipeline's policy stages),
so a policy can be evaluated again later (`recsim policy evaluate`) without retraining. The file
is a pickle of recsim's classes: it loads with the recsim version that wrote it, and only files
one trusts should be loaded (pickles run code). A tianshou policy keeps the feedback scale it was
trained with (`TianshouRecommender.feedback_scale`).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from recsim.errors import DataError
from recsim.io import atomic_path
from recsim.policy.base import Recommender

POLICY_FILE = "policy.pt"


def save_recommender(recommender: Recommender, directory: str | os.PathLike) -> Path:
    """Write `recommender` to `directory/policy.pt` atomically; returns the path."""
    path = Path(directory) / POLICY_FILE
    with atomic_path(path) as tmp:
        torch.save(recommender, tmp)
    return path


def load_recommender(directory: str | os.PathLike, device: str = "cpu") -> Recommender:
    """The policy saved in `directory` (a run folder, or the `policy.pt` file itself).

    Raises:
        DataError: the file is missing, unreadable, or holds no policy with `act`.
    """
    path = Path(directory)
    if path.suffix != ".pt":
        path = path / POLICY_FILE
    if not path.is_file():
        raise DataError(str(path), None, "no saved policy (train one with `recsim policy train`)")
    try:
        recommender = torch.load(path, map_location=device, weights_only=False)
    except Exception as error:  # a corrupt or foreign file is a user-facing data problem
        raise DataError(str(path), None, f"unreadable policy ({type(error).__name__}: {error})") from error
    if not callable(getattr(recommender, "act", None)):
        raise DataError(str(path), None, f"holds a {type(recommender).__name__}, not a policy with act()")
    return recommender
