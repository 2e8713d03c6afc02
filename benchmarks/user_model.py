"""The DeepFM ensemble user model on the KuaiRec-like synthetic world: speed, memory and quality.

Each part runs in a fresh subprocess so its peak RSS is its own:

- `recsim`: `train_ensemble` (members x epochs, negative sampling and example building included)
  on `generate_world("kuairec", 0)` (~320 k log rows; 3 negative rounds as published for KuaiRec),
  then the reward table over all users x items and the quality figures below.
- `deepctr_fit`: the baseline, deepctr-torch's own `DeepFM.compile("adam", "mse")` + `fit` for
  one member on the same examples (logged rows + the same kind of negatives), same batch size,
  its prints captured.

Throughput = examples processed per second of training (examples = logged rows + negatives,
times epochs, times members for the ensemble). Quality against the world's ground truth:
NDCG@10 (gain 2^rel - 1, all items ranked) of the ensemble mean, of its first member alone, of a
most-popular ranking (item log counts) and of a random ranking; the Spearman correlation between
an item's mean uncertainty and its log count (negative = rarely logged items are more
uncertain), and mean uncertainty on logged vs never-logged (user, item) pairs, for
`max_variance`, `disagreement` and the disagreement relative to the mean (std / |mean|).
Prints one JSON object. `--quick`: 300 users, 2 members, 1 epoch. `--threads N` sets torch's
intra-op threads in both parts (default: torch's default); on a machine whose cores are shared
with other jobs, 1 thread is both faster and steadier.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from recsim.profiling import peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]


def _world(quick: bool):
    from recsim.data.synthetic import generate_world

    return generate_world("kuairec", 0, **({"n_users": 300} if quick else {}))


def _peak_rss_mb() -> float:
    return peak_rss_mb()


def _settings(quick: bool) -> dict:
    return dict(members=2 if quick else 5, epochs=1 if quick else 2, batch_size=4096, negative_rounds=3)


def part_recsim(quick: bool, device: str) -> dict:
    import torch
    from scipy.stats import spearmanr

    from recsim.evaluation.ranking import ndcg_at_k
    from recsim.user_model.predict import Ensemble
    from recsim.user_model.train import TrainConfig, train_ensemble

    world = _world(quick)
    rss_data = _peak_rss_mb()
    settings = _settings(quick)
    config = TrainConfig(device=device, **settings)
    examples = []

    def count(member, epoch, record):
        examples.append(member)

    import tempfile
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        ensemble = train_ensemble(world, config, out, progress=False, on_epoch_end=count)
        train_s = time.perf_counter() - start
        summary = json.loads((Path(out) / "training.json").read_text())
    n_train = summary["n_train_rows"]
    rss_train = _peak_rss_mb()

    start = time.perf_counter()
    table = ensemble.reward_table(world.truth_users, world.truth_items, "max_variance")
    table_s = time.perf_counter() - start
    disagreement = ensemble.reward_table(world.truth_users, world.truth_items, "disagreement").uncertainty
    single = Ensemble(ensemble.spec, ensemble.model_config, ensemble.members[:1], device).reward_table(
        world.truth_users, world.truth_items).mean

    truth = world.truth
    counts = np.bincount(world.train["item"], minlength=world.n_items).astype(np.float64)
    rng = np.random.default_rng(0)
    logged = np.zeros(truth.shape, dtype=bool)
    logged[world.train["user"], world.train["item"]] = True
    n_examples = _example_count(world, settings["negative_rounds"], n_train)
    ensemble_rows = n_examples * len(examples)
    return {
        "n_log_rows": int(len(world.train)), "n_users": world.n_users, "n_items": world.n_items,
        "settings": settings, "torch_threads": torch.get_num_threads(), "device": device,
        "epochs_run": len(examples) / settings["members"],
        "train_seconds": train_s, "examples_per_epoch_per_member": n_examples,
        "ensemble_rows_per_s": ensemble_rows / train_s,
        "peak_rss_mb": rss_train, "rss_after_data_mb": rss_data,
        "table_seconds": table_s, "table_pairs_per_s": truth.size / table_s,
        "table_member_pairs_per_s": truth.size * settings["members"] / table_s,
        "ndcg10": {
            "ensemble": ndcg_at_k(table.mean, truth, 10),
            "single_member": ndcg_at_k(single, truth, 10),
            "most_popular": ndcg_at_k(np.broadcast_to(counts, truth.shape), truth, 10),
            "random": ndcg_at_k(rng.random(truth.shape), truth, 10),
        },
        "uncertainty": {
            kind: {
                "spearman_item_mean_vs_log_count": float(spearmanr(u.mean(axis=0), counts).statistic),
                "mean_on_logged_pairs": float(u[logged].mean()),
                "mean_on_unlogged_pairs": float(u[~logged].mean()),
            }
            for kind, u in (("max_variance", table.uncertainty), ("disagreement", disagreement),
                            ("relative_disagreement", disagreement / np.maximum(np.abs(table.mean), 1e-3)))
        },
    }


def _example_count(world, rounds: int, n_train: int) -> int:
    """Logged training rows plus the negatives the recsim run drew for them (approximately rounds per row)."""
    return int(n_train * (1 + rounds * float((world.train["label"] > 0).mean())))


def part_deepctr(quick: bool, device: str) -> dict:
    import torch

    from recsim.seeding import child_seeds
    from recsim.user_model.model import FeatureSpec
    from recsim.user_model.deepctr_quiet import DeepFM
    from recsim.user_model.sampling import LoggedLabels, sample_negatives

    world = _world(quick)
    settings = _settings(quick)
    spec = FeatureSpec.from_dataset(world)
    users = world.train["user"].to_numpy()
    items = world.train["item"].to_numpy()
    labels = world.train["label"].to_numpy(np.float32)
    rng = np.random.default_rng(child_seeds(0, 2)[1])
    nu, ni, _ = sample_negatives(users, labels, LoggedLabels(users, items, labels, world.n_items),
                                 settings["negative_rounds"], rng)
    all_u = torch.as_tensor(np.concatenate([users, nu]).astype(np.int64))
    all_i = torch.as_tensor(np.concatenate([items, ni]).astype(np.int64))
    x = spec.inputs(all_u, all_i, torch.as_tensor(spec.user_table), torch.as_tensor(spec.item_table)).numpy()
    y = np.concatenate([labels, np.zeros(len(nu), np.float32)])
    columns = spec.feature_columns(8)
    with torch.random.fork_rng():
        model = DeepFM(columns, columns, dnn_hidden_units=(128, 128), l2_reg_dnn=0.1, task="regression",
                       device=device, seed=0)
    model.compile("adam", "mse")
    captured = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(io.StringIO()):
        model.fit([x[:, j] for j in range(x.shape[1])], y, batch_size=settings["batch_size"],
                  epochs=settings["epochs"], verbose=0)
    fit_s = time.perf_counter() - start
    return {"examples": int(len(y)), "fit_seconds": fit_s,
            "one_member_rows_per_s": len(y) * settings["epochs"] / fit_s, "peak_rss_mb": _peak_rss_mb(),
            "torch_threads": torch.get_num_threads()}


def _run_part(part: str, quick: bool, device: str, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--part", part, "--device", device, "--threads", str(threads)]
    cmd += ["--quick"] if quick else []
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{part} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--part", choices=["recsim", "deepctr_fit"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    if args.part == "recsim":
        print(json.dumps(part_recsim(args.quick, args.device)))
        return
    if args.part == "deepctr_fit":
        print(json.dumps(part_deepctr(args.quick, args.device)))
        return
    ours = _run_part("recsim", args.quick, args.device, args.threads)
    base = _run_part("deepctr_fit", args.quick, args.device, args.threads)
    per_member = ours["ensemble_rows_per_s"]  # examples per second, whichever member is training
    print(json.dumps({
        "benchmark": "user_model", "quick": args.quick, "recsim": ours, "baseline_deepctr_fit": base,
        "ratios": {
            "training_throughput_vs_deepctr_fit": per_member / base["one_member_rows_per_s"],
            "ensemble_ndcg10_vs_most_popular": ours["ndcg10"]["ensemble"] / ours["ndcg10"]["most_popular"],
            "ensemble_ndcg10_vs_single_member": ours["ndcg10"]["ensemble"] / ours["ndcg10"]["single_member"],
        },
    }))


if __name__ == "__main__":
    main()
