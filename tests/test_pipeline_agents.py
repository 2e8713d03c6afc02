"""Pipeline adapters over `recsim.policy`: action distributions for OPE, trained agents end to end."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("recsim.policy.train", reason="recsim.policy is not available")

from recsim.cli import main  # noqa: E402
from recsim.io import read_json  # noqa: E402
from recsim.pipeline.agents import PipelinePolicy  # noqa: E402
from recsim.policy.static import EpsilonGreedyRecommender, RandomRecommender, UCBRecommender  # noqa: E402
from recsim.reward.table import RewardTable  # noqa: E402

TINY = Path(__file__).resolve().parents[1] / "pipelines" / "tiny.yaml"


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    table = RewardTable(rng.random((4, 6)).astype(np.float32), rng.random((4, 6)).astype(np.float32),
                        np.arange(4), np.arange(6))
    mask = np.ones((4, 6), dtype=bool)
    mask[0, :3] = False
    mask[2, 5] = False
    obs = {"user": np.arange(4), "history": np.full((4, 3), -1), "feedback": np.zeros((4, 3), np.float32),
           "mask": mask, "turn": np.zeros(4, np.int64)}
    return table, obs, mask


def test_static_action_probs(batch):
    table, obs, mask = batch
    uniform = PipelinePolicy(RandomRecommender(0)).action_probs(obs, mask)
    np.testing.assert_allclose(uniform, mask / mask.sum(axis=1, keepdims=True))
    ucb = PipelinePolicy(UCBRecommender(table, 1.0))
    probs = ucb.action_probs(obs, mask)
    assert (probs.sum(axis=1) == 1).all() and (probs.max(axis=1) == 1).all()
    assert (probs.argmax(axis=1) == ucb.act(obs, mask)).all()
    eps = PipelinePolicy(EpsilonGreedyRecommender(table, 0.3, seed=0))
    probs = eps.action_probs(obs, mask)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert (probs[~mask] == 0).all()
    greedy = np.where(mask, table.mean, -np.inf).argmax(axis=1)
    np.testing.assert_allclose(probs[np.arange(4), greedy], 0.7 + 0.3 / mask.sum(axis=1))
    # the empirical action frequencies of egreedy match its action_probs
    counts = np.zeros((4, 6))
    for _ in range(2000):
        counts[np.arange(4), eps.act(obs, mask)] += 1
    np.testing.assert_allclose(counts / 2000, probs, atol=0.04)


def test_trained_agents_end_to_end(tmp_path):
    data = yaml.safe_load(TINY.read_text())
    tiny_a2c = {"epochs": 1, "epoch_num_steps": 300, "num_envs": 10, "episodes_per_collect": 10, "eval_episodes": 10}
    data["methods"] = [
        {"name": "dorl", "algorithm": "a2c", "params": tiny_a2c},
        {"name": "bcq", "algorithm": "bcq", "params": {"epochs": 1, "epoch_num_steps": 20, "eval_episodes": 10}},
        {"name": "egreedy", "algorithm": "egreedy"},
    ]
    data["evaluation"].update(modes=["NX_0"], n_episodes=20, ope=["ips", "snips"], n_bootstrap=20)
    spec = tmp_path / "agents.yaml"
    spec.write_text(yaml.safe_dump(data))
    out = tmp_path / "run"
    assert main(["run", str(spec), "--out", str(out), "--quiet"]) == 0
    metrics = read_json(out / "eval-dorl-s0" / "metrics.json")
    assert metrics["training_curve"]["x"] == [1]
    row = metrics["rows"][0]
    assert row["mode"] == "NX_0" and np.isfinite(row["R_tra"]) and np.isfinite(row["ope_snips"])
    config = read_json(out / "policy-dorl-s0" / "policy_config.json")["model_based"]
    assert config["model_based"]["penalty"]["lambda_E"] > 0
    # the trained policy's distribution: sums to 1, zero on masked items
    from recsim.data.schema import Dataset
    from recsim.pipeline.methods import MethodContext, get_algorithm
    from recsim.pipeline.spec import load_spec

    dataset = Dataset.load(out / "data" / "dataset")
    method = load_spec(spec).methods[0]
    context = MethodContext(dataset, method, 0, RewardTable.load(out / "user_model-s0"))
    policy = get_algorithm("a2c").load(context, out / "policy-dorl-s0")
    mask = np.ones((3, dataset.n_items), dtype=bool)
    mask[:, :50] = False
    obs = {"user": np.arange(3), "history": np.full((3, 10), -1), "feedback": np.zeros((3, 10), np.float32),
           "mask": mask, "turn": np.zeros(3, np.int64)}
    probs = policy.action_probs(obs, mask)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    assert (probs[:, :50] == 0).all()
    assert mask[np.arange(3), policy.act(obs, mask)].all()
