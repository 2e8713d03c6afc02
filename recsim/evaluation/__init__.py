"""Evaluation: ranking metrics, exposure / Matthew-effect / diversity metrics, off-policy estimators.

- `recsim.evaluation.ranking`: NDCG@k, Recall@k, IPS-weighted NDCG@k over (n_users, n_items) arrays.
- `recsim.evaluation.exposure`: MCD, Gini, coverage, category entropy, intra-list diversity,
  novelty, popularity lift, long-tail share, Lorenz curve.
- `recsim.evaluation.ope`: IPS, CIS, SNIPS, NCIS, PointNCIS, DM, DR, SNDR with group-bootstrap
  intervals and weight diagnostics.
- `recsim.evaluation.episode_ope`: estimates of the episode value R_tra from the log (per-decision
  IS, NCIS per step, the model rollout, sequential DR / WDR); `episode_log` replays the log as
  episodes.
- `recsim.evaluation.bootstrap`: the group (user) bootstrap they share.
"""
