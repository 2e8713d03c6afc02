"""Recommendation policies on tianshou 2.

- `trackers`: state trackers (average, GRU, attention) used as the actor's and critic's
  preprocessing network.
- `actors`: the masked discrete actor (already-recommended items get no probability in NX modes).
- `presets`: methods as data (MBPO, MOPO, DORL, ROLeR, IPS, ours; offline and static baselines)
  and the CPU and paper training budgets.
- `model_based`: A2C / PPO in the penalised simulator (`onpolicy`: the batched collection that
  feeds tianshou's update); `offline`: discrete BCQ, CQL, CRR and SQN
  (`sqn`) on a buffer replayed from the log; `static`: random, most popular, greedy, epsilon-greedy, UCB.
- `base`: the common `Recommender.act(observations, mask) -> items` interface; `train`: the
  single entry point `run_policy`; `evaluator`: the ground-truth evaluation during and after
  training (over `recsim.evaluation.rollout`); `runtime`: device and torch threads; `epochs`: the epoch loop shared by model-based and offline training; `checkpoint`:
  atomic per-epoch checkpoints and resume; `storage`: the saved policy (`policy.pt`) of every run.
"""
