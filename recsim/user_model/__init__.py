"""The user model: an ensemble of DeepFM members with a variance head (DORL / MOPO, docs/methods.md).

- `model`: `DeepFMConfig`, `FeatureSpec` (features from the dataset), `HeteroscedasticDeepFM`
  (deepctr-torch's DeepFM plus a soft-clamped log-variance head), `build_member`.
- `sampling`: vectorised negative sampling ("a random pair whose logged label is lower").
- `train`: `TrainConfig`, `preset_config`, `train_ensemble` (per-member seeds, negatives scheme,
  beta-NLL, IPS and bootstrap options, early stopping on loss or validation NDCG,
  atomic per-epoch checkpoints, resume), `write_outputs` (reward table, embeddings, metrics).
- `predict`: `Ensemble` (chunked `reward_table`, `predict_pairs`, `embeddings`), `load_ensemble`.
- `metrics`: RMSE / MAE / AUC on the test log; NDCG@k / Recall@k against the test log or the truth.
- `diagnostics`: does it personalise (distinct top-10 items, Gini) and does its uncertainty follow
  its error and the log's thinness (Spearman), UCB vs greedy.
- `options`: the named choices and the `published` / `default` presets, as plain data.

Importing this package makes no network call and prints nothing (see `deepctr_quiet`); the
submodules import torch and deepctr-torch, so import them where they are needed.
"""
