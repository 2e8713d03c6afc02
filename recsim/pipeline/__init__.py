"""Pipelines: `recsim run SPEC --out DIR`, `recsim sweep`, `recsim report`.

- `spec`: YAML spec -> validated config dataclasses, `--set key=value` overrides.
- `stages`: the stages of a run (data, user model, reward tables, each policy, evaluation,
  report), each in `DIR/<stage>/`, reused by content hash, resumable after a kill.
- `methods`: the explicit dict of trainable algorithms (reference scorers here, agents from
  `recsim.policy` adapted in `agents`).
- `evaluate`: one method's evaluation stage (rollouts in the ground truth, NDCG, OPE).
- `sweep`: grids of overrides x seeds on a process pool or on Ray.
"""
