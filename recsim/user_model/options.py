"""The named choices of the user model, as plain data (importing this module loads no torch).

The CLI reads them to build its options; `recsim.user_model.train` and `.predict` validate against them.
"""
from __future__ import annotations

from typing import Any

NEGATIVE_SCHEMES = ("uniform", "exposure", "none")
"""How negatives are drawn: see `recsim.user_model.sampling` and `TrainConfig.negatives`."""
STOPPING_CRITERIA = ("loss", "ndcg")
"""Early-stopping criteria: see `TrainConfig.early_stopping`."""
UNCERTAINTY_KINDS = ("max_variance", "disagreement", "relative_disagreement", "count")
"""Uncertainties of a reward table: see `recsim.user_model.predict`."""

PUBLISHED: dict[str, Any] = {
    "model": {"embedding_dim": 8, "init_std": 1e-4}, "epochs": 5, "batch_size": 4096, "lr": 1e-3, "nll_beta": 0.0,
    "negatives": "uniform", "negative_rounds": None, "early_stopping": "loss", "patience": 2, "bootstrap": False,
    "uncertainty": "max_variance"}
"""The published user model (docs/methods.md, "The user model") as this project ran it before:
uniform target-0 negatives (3 rounds on KuaiRec, 5 elsewhere), the plain heteroscedastic NLL,
embedding 8, 5 epochs, max-variance uncertainty."""
PRESETS: dict[str, dict[str, Any]] = {"published": PUBLISHED, "default": {}}
