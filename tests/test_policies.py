"""Policies: masked heads, the log replay, static baselines, every method's tiny training run, seeds."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from recsim.cli import main
from recsim.data.synthetic import generate_world
from recsim.env import CategoryOverlapQuit, EnvConfig
from recsim.errors import ConfigError
from recsim.evaluation.online import EvalConfig, OnlineEvaluator
from recsim.policy.actors import MASKED_VALUE, MaskedItemHead, StateNet, TiedItemHead, categorical_from_logits
from recsim.policy.base import observation_batch
from recsim.policy.methods import METHODS, budget, describe
from recsim.policy.offline import log_transitions
from recsim.policy.static import (
    EpsilonGreedyRecommender,
    GreedyRecommender,
    PopularRecommender,
    QuitAwareGreedyRecommender,
    RandomRecommender,
    UCBRecommender,
)
from recsim.policy.trackers import TrackerConfig, make_tracker
from recsim.policy.train import MethodConfig, MethodInputs, method_config, train_method
from recsim.reward.table import RewardTable


@pytest.fixture(scope="module")
def world():
    return generate_world("tiny", 0)


@pytest.fixture(scope="module")
def noisy_table(world):
    """Stand-in for the user model / kNN tables: the truth plus seeded noise (tests only)."""
    truth = RewardTable.from_truth(world.truth, world.truth_users, world.truth_items)
    rng = np.random.default_rng(1)
    mean = truth.mean + rng.normal(0, 0.3, truth.shape).astype(np.float32)
    return RewardTable(mean, np.abs(rng.normal(0, 0.2, truth.shape)), truth.users, truth.items, "noisy-truth")


def tiny_config(method: str, seed: int = 0, evaluation: EvalConfig | None = None, **params) -> MethodConfig:
    family = METHODS[method].family
    budget_params = dict(epochs=1, epoch_num_steps=300, num_envs=10, batch_size=64) if family != "static" else {}
    if family == "offline":
        budget_params.pop("num_envs")
    return method_config(method, "synthetic", params={**budget_params, **params},
                         evaluation=evaluation or EvalConfig(episodes=20), seed=seed, progress=False)


def _observations(n_rows: int, n_items: int, rng: np.random.Generator) -> tuple[dict, np.ndarray]:
    history = rng.integers(-1, n_items, size=(n_rows, 10))
    obs = {"user": rng.integers(0, 100, n_rows), "history": history,
           "feedback": rng.random((n_rows, 10)).astype(np.float32), "turn": np.full(n_rows, 3)}
    mask = rng.random((n_rows, n_items)) < 0.7
    mask[:, 0] = True
    return obs, mask


def test_masked_head_blocks_masked_items_in_both_mask_layouts():
    rng = np.random.default_rng(0)
    n_items = 12
    torch.manual_seed(0)
    head = MaskedItemHead(StateNet(make_tracker(TrackerConfig(), n_items), (8,)), n_items)
    obs, mask = _observations(5, n_items, rng)
    logits, _ = head(observation_batch(obs, mask).obs)
    assert logits.shape == (5, n_items)
    assert torch.equal(logits[torch.as_tensor(~mask)], torch.full((int((~mask).sum()),), MASKED_VALUE))
    probs = categorical_from_logits(logits).probs.detach().numpy()
    assert (probs[~mask] == 0).all() and np.allclose(probs.sum(axis=1), 1)
    # the compact layout of logged buffers gives the same outputs
    masked_items = np.full((5, n_items), -1)
    for row in range(5):
        blocked = np.flatnonzero(~mask[row])
        masked_items[row, :len(blocked)] = blocked
    compact = {k: v for k, v in obs.items()} | {"masked_items": masked_items}
    from tianshou.data import Batch

    same, _ = head(Batch(compact))
    assert torch.equal(same, logits)
    relative = MaskedItemHead(head.preprocess, n_items, relative_margin=5.0)
    out, _ = relative(observation_batch(obs, mask).obs)
    assert (out.argmax(dim=1).numpy() == np.where(mask, out.detach().numpy(), -np.inf).argmax(axis=1)).all()


def test_state_net_appends_the_step_count_only_when_asked():
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    tracker = make_tracker(TrackerConfig(), 12)
    obs, _ = _observations(4, 12, rng)
    later = {**obs, "turn": np.full(4, 20)}
    plain, with_turn = StateNet(tracker, ()), StateNet(tracker, (), turn=True)
    assert with_turn.get_output_dim() == plain.get_output_dim() + 1
    features, _ = with_turn(obs)
    torch.testing.assert_close(features[:, :-1], plain(obs)[0])
    torch.testing.assert_close(features[:, -1], torch.full((4,), 3 / 30))
    assert torch.equal(plain(later)[0], plain(obs)[0])  # the published state does not see the step count
    mlp = StateNet(tracker, (8,), turn=True)
    assert not torch.equal(mlp(later)[0], mlp(obs)[0])


def test_tied_head_scores_items_by_the_trackers_own_embeddings():
    rng = np.random.default_rng(0)
    n_items = 12
    torch.manual_seed(0)
    state_net = StateNet(make_tracker(TrackerConfig(embedding_dim=5), n_items), (8,))
    head = TiedItemHead(state_net, n_items)
    with torch.no_grad():
        head.bias.copy_(torch.arange(n_items, dtype=torch.float32))
    obs, mask = _observations(4, n_items, rng)
    logits, _ = head(observation_batch(obs, mask).obs)
    features, _ = state_net(obs)
    table = state_net.tracker.item_embedding.weight[:n_items]
    expected = head.project(features) @ table.T + torch.arange(n_items)
    allowed = torch.as_tensor(mask)
    torch.testing.assert_close(logits[allowed], expected[allowed])
    assert (logits[~allowed] == MASKED_VALUE).all()
    # no (H x n_items) layer of its own: a (d x H) projection and a bias per item
    own = {name: p.numel() for name, p in head.named_parameters() if not name.startswith("preprocess.")}
    assert own == {"project.weight": 5 * 8, "project.bias": 5, "bias": n_items}
    # the actor's loss trains the tracker's item table (every allowed item's row, seen or not)
    categorical_from_logits(logits).log_prob(torch.zeros(4, dtype=torch.long)).sum().backward()
    grad = state_net.tracker.item_embedding.weight.grad
    assert grad is not None and bool(grad[:n_items].abs().sum(dim=1).gt(0).all())


def test_item_categorical_samples_the_softmax():
    torch.manual_seed(0)
    logits = torch.tensor([[0.0, 1.0, 2.0, MASKED_VALUE]]).expand(40_000, 4)
    draws = categorical_from_logits(logits).sample()
    freq = torch.bincount(draws, minlength=4).double() / len(draws)
    assert freq[3] == 0
    assert torch.allclose(freq, torch.softmax(logits[0].double(), 0), atol=0.01)


def test_log_replay_cuts_episodes_by_the_quit_rule_hand_case(hand_dataset):
    dataset = hand_dataset
    table = RewardTable(np.zeros((1, 6)), np.zeros((1, 6)), [0], np.arange(6))
    rule = CategoryOverlapQuit(dataset.item_categories, leave_threshold=0, window=2)
    out = log_transitions(dataset, table, rule, EnvConfig(max_turn=30, history_window=3, mode="NX_0"))
    # item 1 repeated within the episode is skipped (NX); 2 shares category 0 with item 0 in the
    # window (0, 1) -> the user leaves at 2; the next episode 3, 4, 5 runs to the end of the log.
    assert out.act.tolist() == [0, 1, 2, 3, 4, 5]
    assert out.rew.tolist() == [1, 2, 4, 5, 6, 7]
    assert out.terminated.tolist() == [False, False, True, False, False, False]
    assert out.truncated.tolist() == [False, False, False, False, False, True]
    assert out.obs["turn"].tolist() == [0, 1, 2, 0, 1, 2]
    assert out.obs["history"][2].tolist() == [-1, 0, 1]
    assert out.obs["history"][3].tolist() == [-1, -1, -1]
    assert out.obs["masked_items"][2][:3].tolist() == [0, 1, -1]
    assert out.obs_next["history"][5].tolist() == [3, 4, 5]
    scale = out.feedback_scale
    assert (scale.low, scale.high) == (1.0, 7.0)
    assert np.allclose(out.obs_next["feedback"][1], [0.0, 0.0, 1 / 6])


def test_log_replay_fixed_length_mode_ignores_quit_and_truncates(hand_dataset):
    dataset = hand_dataset
    table = RewardTable(np.zeros((1, 6)), np.zeros((1, 6)), [0], np.arange(6))
    rule = CategoryOverlapQuit(dataset.item_categories, leave_threshold=0, window=2)
    out = log_transitions(dataset, table, rule, EnvConfig(max_turn=30, history_window=3, mode="NX_2"))
    assert out.act.tolist() == [0, 1, 1, 2, 3, 4, 5]
    assert not out.terminated.any()
    assert out.truncated.tolist() == [False, True, False, True, False, True, True]


def test_static_baselines_act_within_the_mask(noisy_table):
    rng = np.random.default_rng(0)
    n_items = noisy_table.shape[1]
    obs, mask = _observations(50, n_items, rng)
    columns = rng.integers(-1, n_items, 500)
    recommenders = [RandomRecommender(0), GreedyRecommender(noisy_table), UCBRecommender(noisy_table, 1.0),
                    EpsilonGreedyRecommender(noisy_table, 0.3, 0),
                    PopularRecommender(columns, rng.random(500), n_items)]
    for rec in recommenders:
        items = rec.act(obs, mask)
        assert items.shape == (50,) and mask[np.arange(50), items].all(), rec.name
    greedy = GreedyRecommender(noisy_table).act(obs, mask)
    scores = np.where(mask, noisy_table.mean[obs["user"]], -np.inf)
    assert (greedy == scores.argmax(axis=1)).all()
    with pytest.raises(ConfigError):
        EpsilonGreedyRecommender(noisy_table, 1.5)


def test_quit_aware_greedy_takes_the_best_item_the_rule_lets_the_user_stay_after(noisy_table):
    rng = np.random.default_rng(2)
    n_items = noisy_table.shape[1]
    cats = np.zeros((n_items, 3), dtype=bool)
    cats[np.arange(n_items), np.arange(n_items) % 3] = True
    rule = CategoryOverlapQuit(cats, leave_threshold=0, window=2)
    obs, mask = _observations(40, n_items, rng)
    obs["user"] = rng.choice(noisy_table.users, 40)
    obs["history"][:5, -2:] = [[0, 1]] * 5  # categories 0 and 1 taken: only category 2 keeps the user
    items = QuitAwareGreedyRecommender(noisy_table, rule, rows_per_block=7).act(obs, mask)
    scores = np.where(mask, noisy_table.mean[np.searchsorted(noisy_table.users, obs["user"])], -np.inf)
    for row in range(40):
        recent = np.repeat(obs["history"][row:row + 1, -2:], n_items, axis=0)
        stays = ~rule.should_quit(recent, np.arange(n_items)) & mask[row]
        expected = np.where(stays, scores[row], -np.inf).argmax() if stays.any() else scores[row].argmax()
        assert items[row] == expected
    assert all(items[row] % 3 == 2 for row in range(5))


def test_ground_truth_evaluator_metrics_match_a_hand_reduction(world):
    evaluator = OnlineEvaluator(world, EvalConfig(episodes=30))
    result = evaluator.rollout(RandomRecommender(3))
    metrics = evaluator.metrics(result)
    assert metrics["R_tra"] == pytest.approx(result.returns.mean())
    assert metrics["length"] == pytest.approx(result.lengths.mean())
    truth = evaluator.table.mean
    for ep in range(30):
        items = result.items[ep, :result.lengths[ep]]
        assert len(set(items.tolist())) == len(items)  # NX_0: no repeats
        row = int(np.flatnonzero(evaluator.table.users == result.users[ep])[0])
        assert result.returns[ep] == pytest.approx(truth[row, items].sum(), rel=1e-5)
    again = evaluator.evaluate(RandomRecommender(3))
    assert again == metrics


@pytest.mark.parametrize("preset", sorted(METHODS))
def test_every_method_trains_one_tiny_epoch_acts_within_the_mask_and_repeats_with_its_seed(
        preset, world, noisy_table, tmp_path):
    inputs = MethodInputs(world, noisy_table, noisy_table)
    run = train_method(tiny_config(preset), inputs, tmp_path / preset)
    assert np.isfinite(run.metrics["R_tra"]) and run.metrics["length"] >= 1
    assert 0 <= run.metrics["MCD"] <= 1
    results = json.loads((tmp_path / preset / "results.json").read_text())
    assert results["method"] == preset
    assert (tmp_path / preset / "config.json").is_file()
    if METHODS[preset].family != "static":
        assert (tmp_path / preset / "checkpoints" / "last.pt").is_file()
        assert any((tmp_path / preset / "tensorboard").iterdir())
        assert len(run.history) == 1
    again = train_method(tiny_config(preset), inputs, tmp_path / f"{preset}-again")
    assert again.history == run.history and again.metrics == run.metrics


def test_ppo_with_a_gru_tracker_trains_and_acts_within_the_mask(world, noisy_table, tmp_path):
    config = tiny_config("dorl", algorithm="ppo", tracker={"kind": "gru", "hidden_dim": 16})
    run = train_method(config, MethodInputs(world, noisy_table), tmp_path / "ppo")
    assert np.isfinite(run.history[0]["train_return"]) and run.metrics["length"] >= 1


@pytest.mark.parametrize("preset", ["dorl", "cql", "sqn"])
def test_same_seed_same_first_epoch_and_resume_equals_uninterrupted(preset, world, noisy_table, tmp_path):
    inputs = MethodInputs(world, noisy_table, noisy_table)
    first = train_method(tiny_config(preset, epochs=2), inputs, tmp_path / "a")
    second = train_method(tiny_config(preset, epochs=2), inputs, tmp_path / "b")
    assert first.history == second.history
    train_method(tiny_config(preset, epochs=1), inputs, tmp_path / "c")
    resumed = train_method(tiny_config(preset, epochs=2), inputs, tmp_path / "c", resume=True)
    assert resumed.history == first.history
    other = train_method(tiny_config(preset, epochs=1, seed=7), inputs, tmp_path / "d")
    assert other.history[0] != first.history[0]


def test_budgets_and_presets_are_validated():
    assert budget("paper", "model_based").epoch_num_steps == 100_000
    assert budget("cpu", "model_based", epochs=2).epochs == 2
    with pytest.raises(ConfigError):
        budget("huge", "model_based")
    with pytest.raises(ConfigError):
        budget("cpu", "offline", epochz=1)
    with pytest.raises(ConfigError):
        method_config("nope", "synthetic")
    with pytest.raises(ConfigError, match="epochz"):
        method_config("dorl", "synthetic", params={"epochz": 1})
    with pytest.raises(ConfigError, match="epsilon"):
        method_config("dorl", "synthetic", params={"epsilon": 0.1})
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            method_config("dorl", "synthetic", device="cuda")
    default = method_config("mbpo", "synthetic").agent
    published = method_config("mbpo", "synthetic", params={"learner": "published", "lr": 5e-4}).agent
    assert (default.algorithm, default.lr, default.gae_lambda) == ("ppo", 1e-2, 0.95)
    assert (published.algorithm, published.lr, published.gae_lambda, published.repeat) == ("a2c", 5e-4, 1.0, 1)
    tied = method_config("roler", "synthetic", params={"tied_embeddings": True, "ent_coef": 0.01}).agent
    assert (tied.tied_embeddings, tied.ent_coef, default.tied_embeddings, default.ent_coef) == (True, 0.01, False, 0.0)
    assert (method_config("mbpo", "synthetic").torch_threads,
            method_config("mbpo", "synthetic", params={"threads": 2}).torch_threads) == (1, 2)
    for threads in (0, 1.5, True, "2"):
        with pytest.raises(ConfigError, match="params.threads: must be an integer >= 1"):
            method_config("mbpo", "synthetic", params={"threads": threads})
    with pytest.raises(ConfigError, match="params.learner: unknown learner 'fast'"):
        method_config("dorl", "synthetic", params={"learner": "fast"})
    with pytest.raises(ConfigError, match="learner"):
        method_config("crr", "synthetic", params={"learner": "published"})
    rows = {row["name"]: row for row in describe("kuairand")}
    assert (rows["dorl"]["lambda_U"], rows["dorl"]["lambda_E"]) == (0.01, 0.05)
    assert (rows["ours"]["lambda_U"], rows["ours"]["lambda_E"]) == (1.0, 0.05)


def test_cli_lists_methods_and_trains_a_baseline(world, tmp_path, capsys):
    assert main(["policy", "list", "--json"]) == 0
    names = [row["name"] for row in json.loads(capsys.readouterr().out)]
    assert names == list(METHODS)
    world.save(tmp_path / "world")
    code = main(["policy", "train", "--preset", "random", "--world", str(tmp_path / "world"),
                 "--out", str(tmp_path / "out"), "--eval-episodes", "10", "--quiet"])
    assert code == 0
    saved = json.loads((tmp_path / "out" / "results.json").read_text())["metrics"]
    assert saved["length"] >= 1
    capsys.readouterr()
    assert main(["policy", "evaluate", "--run", str(tmp_path / "out"), "--world", str(tmp_path / "world")]) == 0
    assert json.loads(capsys.readouterr().out)["R_tra"] == pytest.approx(saved["R_tra"], abs=1e-6)
    code = main(["policy", "train", "--preset", "dorl", "--world", str(tmp_path / "world"),
                 "--out", str(tmp_path / "out2"), "--quiet"])
    assert code == 2
    assert "--reward" in capsys.readouterr().err


def test_a_saved_policy_evaluates_again_from_the_cli(world, noisy_table, tmp_path, capsys):
    inputs = MethodInputs(world, noisy_table, noisy_table)
    run = train_method(tiny_config("sqn"), inputs, tmp_path / "sqn")
    world.save(tmp_path / "world")
    code = main(["policy", "evaluate", "--run", str(tmp_path / "sqn"), "--world", str(tmp_path / "world"),
                 "--out", str(tmp_path / "again.json")])
    assert code == 0
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["metrics"] == pytest.approx(run.metrics)  # the run's own settings reproduce its result
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["R_tra"] == pytest.approx(run.metrics["R_tra"], abs=1e-6)
    code = main(["policy", "evaluate", "--run", str(tmp_path / "sqn"), "--world", str(tmp_path / "world"),
                 "--mode", "NX_5", "--episodes", "7"])
    assert code == 0
    nx5 = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert nx5["length"] == 5
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "policy.pt").write_bytes(b"not a pickle")
    for bad in (tmp_path / "missing", tmp_path / "broken"):
        assert main(["policy", "evaluate", "--run", str(bad), "--world", str(tmp_path / "world")]) == 2
        err = capsys.readouterr().err
        assert "policy." in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_dorl_beats_random_in_the_synthetic_world(world, noisy_table, tmp_path):
    inputs = MethodInputs(world, noisy_table, noisy_table)
    config = tiny_config("dorl", epochs=3, epoch_num_steps=20_000, num_envs=100, batch_size=64,
                         evaluation=EvalConfig(episodes=200))
    dorl = train_method(config, inputs, tmp_path / "dorl")
    random = train_method(tiny_config("random", evaluation=EvalConfig(episodes=200)), inputs, tmp_path / "random")
    assert dorl.metrics["R_tra"] > random.metrics["R_tra"]


def test_the_last_training_epoch_and_the_final_evaluation_are_one_measurement(world, noisy_table, tmp_path):
    from recsim.pipeline.evaluation import evaluate_method
    from recsim.pipeline.spec import EvaluationSpec

    config = tiny_config("dorl", evaluation=EvalConfig(episodes=25, seed=3), seed=1)
    run = train_method(config, MethodInputs(world, noisy_table, noisy_table), tmp_path / "dorl")
    again = OnlineEvaluator(world, config.evaluation, config.env, config.quit).evaluate(run.policy, config.seed)
    assert again == run.metrics
    rows, _ = evaluate_method(run.policy, world, config, EvaluationSpec(modes=["NX_0"], episodes=25, seed=3, ope=[]),
                              None)
    assert {k: rows[0][k] for k in run.metrics} == run.metrics


def test_mcd_and_category_entropy_are_missing_without_categories(world):
    from recsim.evaluation.rollout import rollout, summarise

    truth = RewardTable.from_truth(world.truth, world.truth_users, world.truth_items)
    log = rollout(RandomRecommender(0), truth, "NX_0", None, 10)
    metrics = summarise(log, np.zeros((truth.shape[1], 0), dtype=bool), np.zeros(0, dtype=np.int64))
    assert np.isnan(metrics["MCD"]) and np.isnan(metrics["category_entropy"])
    assert np.isfinite(metrics["R_tra"])


def test_gt_oracle_trains_on_the_ground_truth_and_is_a_reference(world, noisy_table):
    from recsim.policy.methods import get_method
    from recsim.policy.train import simulator_table

    oracle = get_method("gt_oracle")
    assert oracle.reference and get_method("quit_aware").reference and not get_method("roler").reference
    table = simulator_table(oracle, MethodInputs(world, noisy_table))
    np.testing.assert_array_equal(table.mean, np.nan_to_num(world.truth, nan=0.0))


def test_divergence_and_collapse_are_flagged():
    from recsim.policy.epochs import health, warnings_of

    assert health({"loss": 0.5, "coverage": 0.5}, 100) == []
    assert "diverged" in health({"loss": float("nan")}, None)[0]
    assert "diverged" in health({"loss": 3e10}, None)[0]
    assert health({"train_return": 5.0, "coverage": 0.02}, 200) == [
        "collapsed: the evaluation recommended 4 distinct items"]
    history = [{"epoch": 1, "warnings": ["diverged: loss is nan"]}, {"epoch": 2}]
    assert warnings_of(history) == ["epoch 1: diverged: loss is nan"]


def test_a_collapsed_run_with_progress_says_so_on_stderr(world, noisy_table, tmp_path, capsys, monkeypatch):
    import recsim.policy.epochs as epochs

    monkeypatch.setattr(epochs, "COLLAPSE_ITEMS", 10**6)  # every evaluation counts as collapsed
    config = dataclasses.replace(tiny_config("bcq"), progress=True)
    run = train_method(config, MethodInputs(world, noisy_table), tmp_path / "bcq")
    assert run.warnings and "collapsed" in run.warnings[0]
    assert "bcq epoch 1: warning: collapsed" in capsys.readouterr().err
    assert json.loads((tmp_path / "bcq" / "results.json").read_text())["warnings"] == run.warnings


class _FavouriteItem(torch.nn.Module):
    """A stand-in tianshou policy whose softmax puts almost all mass on item 0 of the allowed items."""

    actor = True
    deterministic_eval = False

    def forward(self, batch):
        from tianshou.data import Batch

        mask = torch.as_tensor(np.asarray(batch.obs.mask))
        logits = torch.zeros(mask.shape)
        logits[:, 0] = 50.0
        logits = logits.masked_fill(~mask, MASKED_VALUE)
        return Batch(act=torch.argmax(logits, dim=1), logits=logits)


def test_a_policy_trained_masked_never_repeats_its_history_in_fb():
    from recsim.policy.base import TianshouRecommender

    history = np.array([[-1, -1, 0], [-1, -1, -1], [0, 1, 2]])
    obs = {"user": np.zeros(3, dtype=np.int64), "history": history, "feedback": np.zeros((3, 3), np.float32),
           "turn": np.array([1, 0, 3])}
    all_allowed = np.ones((3, 3), dtype=bool)
    plain = TianshouRecommender(_FavouriteItem(), "fav")
    assert plain.act(obs, all_allowed).tolist() == [0, 0, 0]
    masked = TianshouRecommender(_FavouriteItem(), "fav", mask_history=True)
    acts = masked.act(obs, all_allowed)
    assert acts[0] != 0 and acts[1] == 0 and acts[2] == 0  # row 2: its history holds every item, mask kept
    probs = masked.action_probs(obs, all_allowed)
    assert probs[0, 0] == 0 and probs[1, 0] > 0.99 and np.allclose(probs.sum(axis=1), 1)


def test_fb_evaluation_of_an_nx_trained_policy_repeats_nothing_of_its_history(world, noisy_table, tmp_path):
    config = tiny_config("mbpo", evaluation=EvalConfig(episodes=30, mode="FB"))
    run = train_method(config, MethodInputs(world, noisy_table), tmp_path / "mbpo")
    assert run.policy.mask_history
    evaluator = OnlineEvaluator(world, config.evaluation, config.env, config.quit)
    log = evaluator.rollout(run.policy, config.seed)
    window = config.env.history_window
    for items in log.episodes():
        for t in range(1, len(items)):
            assert items[t] not in items[max(0, t - window):t]
    fb_trained = train_method(tiny_config("mbpo", train_mode="FB"), MethodInputs(world, noisy_table),
                              tmp_path / "fb")
    assert not fb_trained.policy.mask_history


def test_a_tracker_with_user_embeddings_personalises_the_first_step_and_loads_again(world, noisy_table, tmp_path):
    from recsim.policy.storage import load_policy

    rng = np.random.default_rng(0)
    users = rng.normal(0, 1, (world.n_users, 4)).astype(np.float32)
    inputs = MethodInputs(world, noisy_table, user_embeddings=users)
    config = tiny_config("mbpo", tracker={"users": True})
    run = train_method(config, inputs, tmp_path / "users")
    n_items = noisy_table.shape[1]
    first = {"user": np.array([0, 1]), "history": np.full((2, 10), -1), "feedback": np.zeros((2, 10), np.float32),
             "turn": np.zeros(2, dtype=np.int64)}
    allowed = np.ones((2, n_items), dtype=bool)
    probs = run.policy.action_probs(first, allowed)
    assert not np.allclose(probs[0], probs[1])  # an empty history, two users: two distributions
    assert np.allclose(load_policy(tmp_path / "users", inputs).action_probs(first, allowed), probs)
    plain = train_method(tiny_config("mbpo"), inputs, tmp_path / "plain").policy.action_probs(first, allowed)
    assert np.allclose(plain[0], plain[1])
    with pytest.raises(ConfigError, match="TrackerConfig.users"):
        train_method(config, MethodInputs(world, noisy_table), tmp_path / "missing")
