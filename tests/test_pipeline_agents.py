"""One training path: policies' own action distributions, `recsim run` and `recsim policy train`
giving the same weights, and saved policies / checkpoints that never unpickle."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from recsim.cli import main
from recsim.env import CategoryOverlapQuit
from recsim.io import read_json
from recsim.policy.static import EpsilonGreedyRecommender, QuitAwareGreedyRecommender, RandomRecommender, UCBRecommender
from recsim.reward.table import RewardTable

TINY = Path(__file__).resolve().parents[1] / "pipelines" / "tiny.yaml"
TINY_A2C = {"epochs": 1, "epoch_num_steps": 300, "num_envs": 10, "episodes_per_collect": 10, "eval_episodes": 10}
TINY_OFFLINE = {"epochs": 1, "epoch_num_steps": 20, "eval_episodes": 10}


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    table = RewardTable(rng.random((4, 6)).astype(np.float32), rng.random((4, 6)).astype(np.float32),
                        np.arange(4), np.arange(6))
    mask = np.ones((4, 6), dtype=bool)
    mask[0, :3] = False
    mask[2, 5] = False
    obs = {"user": np.arange(4), "history": np.full((4, 4), -1), "feedback": np.zeros((4, 4), np.float32),
           "mask": mask, "turn": np.zeros(4, np.int64)}
    obs["history"][1, -1] = 2
    return table, obs, mask


def empirical(policy, obs, mask, draws: int = 2000) -> np.ndarray:
    counts = np.zeros(mask.shape)
    for _ in range(draws):
        counts[np.arange(len(mask)), policy.act(obs, mask)] += 1
    return counts / draws


def test_static_action_probs_are_the_distributions_they_act_with(batch):
    table, obs, mask = batch
    uniform = RandomRecommender(0).action_probs(obs, mask)
    np.testing.assert_allclose(uniform, mask / mask.sum(axis=1, keepdims=True))
    np.testing.assert_allclose(empirical(RandomRecommender(0), obs, mask), uniform, atol=0.04)
    ucb = UCBRecommender(table, 1.0)
    probs = ucb.action_probs(obs, mask)
    assert (probs.sum(axis=1) == 1).all() and (probs.max(axis=1) == 1).all()
    assert (probs.argmax(axis=1) == ucb.act(obs, mask)).all()
    eps = EpsilonGreedyRecommender(table, 0.3, seed=0)
    probs = eps.action_probs(obs, mask)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert (probs[~mask] == 0).all()
    greedy = np.where(mask, table.mean, -np.inf).argmax(axis=1)
    np.testing.assert_allclose(probs[np.arange(4), greedy], 0.7 + 0.3 / mask.sum(axis=1))
    np.testing.assert_allclose(empirical(eps, obs, mask), probs, atol=0.04)


def test_quit_aware_action_probs_follow_its_own_choice_not_greedy(batch):
    table, obs, mask = batch
    categories = np.eye(6, dtype=bool)[:, :3] | np.eye(6, dtype=bool)[:, 3:]
    rule = CategoryOverlapQuit(categories, leave_threshold=0, window=1)
    policy = QuitAwareGreedyRecommender(table, rule)
    probs = policy.action_probs(obs, mask)
    np.testing.assert_array_equal(probs.argmax(axis=1), policy.act(obs, mask))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)


def tiny_spec(tmp_path: Path, methods: list[dict], **sections) -> Path:
    data = yaml.safe_load(TINY.read_text())
    data["methods"] = methods
    data["evaluation"].update(modes=["NX_0"], episodes=20, ope=["ips", "snips"], n_bootstrap=20)
    data.update(sections)
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(data))
    return spec


def cli_params(params: dict) -> list[str]:
    return [arg for key, value in params.items() for arg in ("--param", f"{key}={value}")]


def same_weights(a: Path, b: Path) -> bool:
    first = torch.load(a / "policy.pt", weights_only=True)
    second = torch.load(b / "policy.pt", weights_only=True)
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_run_and_policy_train_give_the_same_policy_on_the_synthetic_world(tmp_path):
    spec = tiny_spec(tmp_path, [{"name": "dorl", "params": TINY_A2C}, {"name": "bcq", "params": TINY_OFFLINE},
                                {"name": "egreedy"}])
    out = tmp_path / "run"
    assert main(["run", str(spec), "--out", str(out), "--quiet"]) == 0
    metrics = read_json(out / "eval-dorl-s0" / "metrics.json")
    assert metrics["training_curve"]["x"] == [1]
    row = metrics["rows"][0]
    assert row["mode"] == "NX_0" and np.isfinite(row["R_tra"]) and np.isfinite(row["ope_step_snips"])
    assert read_json(out / "policy-dorl-s0" / "config.json")["method"]["penalty"]["lambda_E"] > 0
    for name, params in (("dorl", TINY_A2C), ("bcq", TINY_OFFLINE)):
        cli = tmp_path / f"cli-{name}"
        code = main(["policy", "train", "--preset", name, "--world", str(out / "data" / "dataset"),
                     "--reward", str(out / "user_model-s0"), "--user-model", str(out / "user_model-s0"),
                     "--out", str(cli), "--quiet", *cli_params(params)])
        assert code == 0
        assert same_weights(out / f"policy-{name}-s0", cli), name
    # the pipeline's saved policy loads back with its own distribution: sums to 1, zero on masked items
    from recsim.data.schema import Dataset
    from recsim.policy.storage import load_policy

    dataset = Dataset.load(out / "data" / "dataset")
    policy = load_policy(out / "policy-dorl-s0")
    mask = np.ones((3, dataset.n_items), dtype=bool)
    mask[:, :50] = False
    obs = {"user": np.arange(3), "history": np.full((3, 10), -1), "feedback": np.zeros((3, 10), np.float32),
           "mask": mask, "turn": np.zeros(3, np.int64)}
    probs = policy.action_probs(obs, mask)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    assert (probs[:, :50] == 0).all()
    torch.manual_seed(0)
    np.testing.assert_allclose(empirical(policy, obs, mask, 3000), probs, atol=0.03)


def test_run_and_policy_train_give_the_same_policy_on_coat(tmp_path, shared_data):
    quit = {"kind": "distance", "window": 3, "distance_quantile": 0.1}
    spec = tiny_spec(tmp_path, [{"name": "mopo", "params": TINY_A2C}],
                     data={"name": "coat", "raw_dir": str(shared_data / "coat")}, quit=quit,
                     evaluation={"modes": ["NX_0"], "ope": []})
    out = tmp_path / "run"
    assert main(["run", str(spec), "--out", str(out), "--quiet"]) == 0
    cli = tmp_path / "cli"
    code = main(["policy", "train", "--preset", "mopo", "--world", str(out / "data" / "dataset"),
                 "--reward", str(out / "user_model-s0"), "--user-model", str(out / "user_model-s0"),
                 "--out", str(cli), "--quiet", *cli_params(TINY_A2C),
                 *[arg for key, value in quit.items() for arg in ("--quit", f"{key}={value}")]])
    assert code == 0
    assert same_weights(out / "policy-mopo-s0", cli)


class Planted:
    """Unpickling this object writes a file: the proof that a loader ran code."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (Path.write_text, (self.target, "pwned"))


def test_planted_pickles_never_run_and_give_one_line(tmp_path, capsys):
    from recsim.data.synthetic import generate_world

    world = generate_world("tiny", 0)
    world.save(tmp_path / "world")
    truth = RewardTable.from_truth(world.truth, world.truth_users, world.truth_items)
    truth.save(tmp_path / "table")
    run = tmp_path / "sqn"
    args = ["policy", "train", "--preset", "sqn", "--world", str(tmp_path / "world"),
            "--reward", str(tmp_path / "table"), "--out", str(run), "--quiet", "--eval-episodes", "5",
            *cli_params(TINY_OFFLINE)]
    assert main(args) == 0
    target = tmp_path / "written-by-unpickling"
    for planted in (run / "policy.pt", run / "checkpoints" / "last.pt"):
        planted.write_bytes(pickle.dumps(Planted(target)))
    capsys.readouterr()
    assert main(["policy", "evaluate", "--run", str(run), "--world", str(tmp_path / "world")]) == 2
    err = capsys.readouterr().err
    assert "policy.pt" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert main([*args, "--resume"]) == 2
    err = capsys.readouterr().err
    assert "last.pt" in err and len(err.strip().splitlines()) == 1
    assert not target.exists()
    (run / "policy.json").unlink()  # the earlier format: a pickled object and no description
    assert main(["policy", "evaluate", "--run", str(run), "--world", str(tmp_path / "world")]) == 2
    assert "earlier recsim" in capsys.readouterr().err
    assert not target.exists()
