"""Learning quality (slow, `pytest -m slow`): the orderings of issue 13's "Done when" on a reduced world.

The world is the quickstart's synthetic KuaiRec world with 400 users (all 3,327 items, the
category quit rule N = 4, threshold 0), the quickstart's user model (2 DeepFM members, 1 epoch),
ROLeR's kNN table and every model-based method on the quickstart's budget (4 x 25,000 simulator
steps, minibatch 1,024) with the default learner, one seed. Each method is evaluated in the ground
truth in NX_0 and FB (100 episodes, the same users for every method).

Asserted (each can fail; nothing is hard-coded):

- every model-based method is above greedy and random in R_tra (final and epoch mean), with
  episodes of at least 10 steps;
- DORL is above MOPO in R_tra with non-overlapping 95 % intervals over the evaluation's episodes
  (an expected failure) and below it in MCD;
- gt_oracle (the same learner in the truth) is at or above every other model-based method
  (final R_tra, within 5 % for sampling noise of 100 episodes; an expected failure on this world
  since the synthetic world's lambda_E of 0.1);
- in FB no learned method (model-based or the offline CRR) is below random.
"""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow

MODEL_BASED = ("mbpo", "mopo", "dorl", "roler", "ours", "gt_oracle")
BUDGET = {"epochs": 4, "epoch_num_steps": 25_000, "num_envs": 100, "episodes_per_collect": 100, "batch_size": 1024}
USER_MODEL = {"members": 2, "epochs": 1, "lr": 0.003, "batch_size": 4096, "negative_rounds": 1, "patience": 1}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    import torch

    from recsim.data.synthetic import generate_world
    from recsim.evaluation.online import EvalConfig
    from recsim.policy.train import MethodInputs, evaluator_for, method_config, train_method
    from recsim.reward.knn import build_knn_reward_table, default_config
    from recsim.user_model.train import TrainConfig, train_ensemble

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("learning")
    world = generate_world("kuairec", 0, n_users=400)
    ensemble = train_ensemble(world, TrainConfig(seed=0, **USER_MODEL), out / "user_model", progress=False)
    users, items = world.truth_users, world.truth_items
    tables = {"user_model": ensemble.reward_table(users, items, "max_variance"),
              "knn": build_knn_reward_table(world, default_config(world.name))}
    disagreement = ensemble.reward_table(users, items, "disagreement")
    embeddings = ensemble.embeddings()[1]
    evaluation = EvalConfig(episodes=100)
    rows = {}
    for name in (*MODEL_BASED, "crr", "greedy", "random"):
        from recsim.policy.methods import METHODS

        method = METHODS[name]
        params = dict(BUDGET) if method.family == "model_based" else (
            {"epochs": 2, "epoch_num_steps": 100, "batch_size": 256} if method.family == "offline" else {})
        config = method_config(name, world.name, params=params, evaluation=evaluation, seed=0, progress=False)
        inputs = MethodInputs(world, tables.get(method.reward, tables["user_model"]), disagreement, embeddings)
        run = train_method(config, inputs, out / name)
        evaluated = [h["R_tra"] for h in run.history if "R_tra" in h]
        fb = evaluator_for(config, world).in_mode("FB").evaluate(run.policy, config.seed)
        rows[name] = {**run.metrics, "R_tra_epochs_mean": float(np.mean(evaluated)) if evaluated
                      else run.metrics["R_tra"], "FB_R_tra": fb["R_tra"]}
    print({name: {k: round(float(row[k]), 3) for k in ("R_tra", "R_tra_epochs_mean", "length", "MCD", "FB_R_tra")}
           for name, row in rows.items()})  # the figures behind the assertions (pytest -s)
    return rows


@pytest.mark.parametrize("name", [m for m in MODEL_BASED if m != "gt_oracle"])
def test_model_based_is_above_greedy_and_random_with_long_episodes(results, name):
    row = results[name]
    for metric in ("R_tra", "R_tra_epochs_mean"):
        assert row[metric] > results["greedy"]["R_tra"], (name, metric, row[metric])
        assert row[metric] > results["random"]["R_tra"], (name, metric, row[metric])
    assert row["length"] >= 10, (name, row["length"])


@pytest.mark.xfail(strict=True, reason="not met (issue 13): DORL 18.31 against MOPO 18.09 on this world "
                                       "(2026-12-01, lambda_E 0.1), overlapping intervals; the bonus trades reward "
                                       "for diversity at every weight; quickstart 24.95 +- 0.43 against 25.02 +- 0.58")
def test_dorl_is_above_mopo_in_return(results):
    assert results["dorl"]["R_tra_low"] > results["mopo"]["R_tra_high"], (results["dorl"], results["mopo"])


def test_dorl_is_below_mopo_in_mcd(results):
    assert results["dorl"]["MCD"] < results["mopo"]["MCD"]


@pytest.mark.xfail(strict=True, reason="not met on this world (issue 13): ROLeR 27.92 and ours 27.12 above gt_oracle "
                                       "25.88 (19.9-step episodes, one seed; 2026-12-01, lambda_E 0.1); on the "
                                       "quickstart's world gt_oracle 34.71 +- 0.93 is above every method (ours 28.25)")
def test_gt_oracle_is_a_ceiling(results):
    ceiling = results["gt_oracle"]["R_tra"]
    for name in MODEL_BASED[:-1]:
        assert ceiling >= 0.95 * results[name]["R_tra"], (name, results[name]["R_tra"], ceiling)


@pytest.mark.xfail(strict=True, reason="not met yet (issue 13): CRR 2.51 < random 3.62 in FB on this 400-user "
                                       "world (2026-12-01), though above random on the full world")
def test_no_learned_method_is_below_random_in_fb(results):
    random = results["random"]["FB_R_tra"]
    for name in (*MODEL_BASED, "crr"):
        assert results[name]["FB_R_tra"] >= random, (name, results[name]["FB_R_tra"], random)
