"""Recommendation policies on tianshou 2.

Vocabulary (used everywhere in recsim):

- a **method** is a named entry of the comparison: dorl, cql, greedy, ... (`methods.METHODS`,
  one explicit dict). Its *family* says how it becomes a policy: "model_based" (trained in the
  penalised simulator), "offline" (trained on the logged buffer) or "static" (built from scores).
- an **algorithm** is what trains a method: tianshou's A2C or PPO for the model-based family
  (`AgentConfig.algorithm`), tianshou's discrete BCQ / CQL / CRR or recsim's SQN for the offline
  family; a static method has none.
- a **policy** is the trained (or built) thing that recommends: a `base.Recommender` with
  `act`, `action_probs` and `ranking_scores`.
- a **run** is one method trained with one seed: `train.train_method(config, inputs, out_dir)`,
  the single entry point of the command line, the pipeline and the benchmarks; its settings are a
  `train.MethodConfig` (`train.method_config` builds one from plain overrides).

Modules:

- `methods`: every method as data, and the CPU and paper training budgets.
- `train`: `MethodConfig`, `method_config`, `MethodInputs`, `train_method`.
- `model_based`: A2C / PPO in the penalised simulator; `offline`: discrete BCQ, CQL, CRR and SQN
  (`sqn`) on a buffer replayed from the log; `static`: random, most popular, greedy,
  epsilon-greedy, UCB, quit_aware (`static.STATIC_BASELINES`).
- `trackers`: state trackers (average, GRU, attention); `actors`: the masked per-item heads.
- `base`: the `Recommender` interface; `epochs`: the epoch loop shared by model-based and offline
  training; `checkpoint`: atomic per-epoch checkpoints and resume; `storage`: the saved policy
  (`policy.json` + `policy.pt` weights) of every run; `runtime`: device and torch threads;
  `scaling`: the feedback scale of observations.

The ground-truth evaluation they all use is `recsim.evaluation.online`.
"""
