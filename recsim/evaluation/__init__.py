"""Evaluation: ranking metrics, exposure / Matthew-effect / diversity metrics, off-policy estimators.

- `recsim.evaluation.ranking`: NDCG@k, Recall@k, IPS-weighted NDCG@k over (n_users, n_items) arrays.
- `recsim.evaluation.exposure`: MCD, Gini, coverage, category entropy, intra-list diversity,
  novelty, popularity lift, long-tail share, Lorenz curve.
- `recsim.evaluation.ope`: IPS, CIS, SNIPS, NCIS, PointNCIS, DM, DR, SNDR with group-bootstrap
  intervals and weight diagnostics.
- `recsim.evaluation.bootstrap`: the group (user) bootstrap they share.
"""
