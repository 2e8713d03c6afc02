"""The pipeline's adapter for one method: which stages it reads and the `MethodInputs` they make.

Training and loading are the library's own (`recsim.policy.train.train_method`,
`recsim.policy.storage.load_policy`); a method entry of the spec becomes its `MethodConfig`
through `Spec.method_config`. What a method reads follows from its `recsim.policy.methods`
entry:

- a reward table (`MethodSpec.reward`: the user model's, the IPS user model's or the kNN table)
  for every trained method (offline methods take their action columns from it) and for the
  static baselines that score with it (greedy, egreedy, ucb, quit_aware);
- the user model's folder for trained methods (the tracker's initial item embeddings) and for
  methods that penalise the ensemble's disagreement ("ours": `disagreement/reward_table.npz`).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from recsim.pipeline.spec import MethodSpec
from recsim.policy.methods import get_method


@dataclasses.dataclass(frozen=True)
class MethodNeeds:
    """What one method of the spec reads.

    Attributes:
        table: the reward-table stage it reads ("user_model", "user_model_ips", "knn") or None
            (none, or the dataset's own ground truth).
        embeddings: it is trained and starts from the user model's item embeddings.
        disagreement: it penalises the user model's ensemble disagreement.
    """

    table: str | None
    embeddings: bool
    disagreement: bool

    @property
    def user_model(self) -> bool:
        return self.embeddings or self.disagreement


def method_needs(method: MethodSpec) -> MethodNeeds:
    """The `MethodNeeds` of a spec's method entry."""
    entry = get_method(str(method.method))
    trained = entry.family != "static"
    table = method.reward if (trained or entry.reward != "none") and method.reward != "truth" else None
    disagreement = entry.family == "model_based" and entry.uncertainty == "user_model_disagreement"
    return MethodNeeds(table, trained, disagreement)


def user_model_embeddings(user_model_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(user float32 (n_users, d), item float32 (n_items, d)): the user model's embeddings, indexed
    by dataset user and item id."""
    with np.load(Path(user_model_dir) / "embeddings.npz", allow_pickle=False) as z:
        return z["user"].astype(np.float32), z["item"].astype(np.float32)


def method_inputs(dataset: Any, needs: MethodNeeds, table: Any, user_model_dir: Path | None,
                  disagreement: Any) -> Any:
    """The `MethodInputs` of a method from its loaded stages."""
    from recsim.policy.train import MethodInputs

    users, items = (user_model_embeddings(user_model_dir) if needs.embeddings and user_model_dir is not None
                    else (None, None))
    return MethodInputs(dataset, table, disagreement if needs.disagreement else None, items, users)
