"""kNN reward table at KuaiRand scale: recsim (faiss) vs the published dense approach, same run.

Data: a seeded synthetic log of KuaiRand-Pure's shape (27,285 users x 7,583 items, ~1.7 % of
pairs observed, popularity-skewed exposure, low-rank preferences, watch-ratio-like feedback capped
at 5). The indicator is each user's logged row (unobserved = 0), k = 150 (KuaiRand's default),
self excluded, reward = mean of the neighbours' feedback, uncertainty = its variance.

Approaches, each in its own subprocess so its peak resident memory (VmHWM, `recsim.profiling.peak_rss_mb`) is its own:

- `published`: dense float64 user x item matrix, scikit-learn cosine similarity into a dense
  user x user matrix, `argsort` of every row, then the mean / variance of the neighbours' dense
  rows (the structure of ROLeR's public code, docs/protocol.md; see `run_published`).
- `faiss_exact`: `recsim.reward.knn.build_knn_reward_table` with the default exact index.
- `faiss_svd256`: the same with `svd_dim=256` (truncated SVD before an exact search); its
  neighbours are approximate, so the run reports their recall against the published ones.

Times cover everything after the raw log arrays are loaded (building matrices, search,
aggregation). Prints one JSON object.

Usage: .venv/bin/python benchmarks/knn.py [--quick]
(the full size spends most of its time in the published baseline: about 15 minutes and 9 GB of
memory on 2 busy cores; --quick uses 5,000 users and takes a few minutes).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from recsim.profiling import peak_rss_mb

N_USERS, N_ITEMS, QUICK_USERS = 27_285, 7_583, 5_000
K = 150
DENSITY = 0.02  # draws per user / n_items before de-duplication (~1.7 % observed)
SAMPLE_ROWS = 300  # table rows compared across approaches
APPROACHES = ("published", "faiss_exact", "faiss_svd256")


def make_log(n_users: int, n_items: int, seed: int) -> dict[str, np.ndarray]:
    """Seeded KuaiRand-shaped log: popularity-skewed exposure, low-rank feedback in [0, 5]."""
    rng = np.random.default_rng(seed)
    rank = 16
    user_vec = rng.normal(size=(n_users, rank)).astype(np.float32)
    item_vec = rng.normal(size=(n_items, rank)).astype(np.float32)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    popularity = popularity[rng.permutation(n_items)]
    draws = int(DENSITY * n_items)
    users = np.repeat(np.arange(n_users, dtype=np.int64), draws)
    items = rng.choice(n_items, size=len(users), p=popularity / popularity.sum())
    key = np.unique(users * n_items + items)
    users, items = (key // n_items).astype(np.int32), (key % n_items).astype(np.int32)
    score = np.einsum("ij,ij->i", user_vec[users], item_vec[items]) / 4 + rng.normal(0, 0.3, len(users))
    label = np.minimum(np.exp(score), 5.0).astype(np.float32)
    return dict(user=users, item=items, label=label, n_users=np.array(n_users), n_items=np.array(n_items))


def run_published(log: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Dense float64 similarity, full argsort per row, dense aggregation (the public code's shape).

    The user x user matrix is scikit-learn's cosine similarity (rows L2-normalised with its
    `normalize`, then X X^T), filled in row blocks: numpy's float64 `X @ X.T` (OpenBLAS syrk)
    segfaults at 27,285 rows in this environment, and sklearn's `cosine_similarity(X)` takes
    that path. Normalising once and multiplying blocks is, if anything, faster than the one call.
    """
    from sklearn.preprocessing import normalize

    n_users, n_items = int(log["n_users"]), int(log["n_items"])
    dense = np.zeros((n_users, n_items))
    dense[log["user"], log["item"]] = log["label"]
    normed = normalize(dense)
    similarity = np.empty((n_users, n_users))
    for start in range(0, n_users, 4096):
        np.matmul(normed[start:start + 4096], normed.T, out=similarity[start:start + 4096])
    del normed
    neighbours = np.empty((n_users, K), dtype=np.int64)
    for start in range(0, n_users, 1024):
        block = np.argsort(-similarity[start:start + 1024], axis=1)[:, :K + 1]
        own = np.arange(start, start + len(block))[:, None]
        keep = block != own
        keep[keep.all(axis=1), -1] = False
        neighbours[start:start + len(block)] = block[keep].reshape(len(block), K)
    del similarity
    mean = np.empty((n_users, n_items), dtype=np.float32)
    variance = np.empty((n_users, n_items), dtype=np.float32)
    for start in range(0, n_users, 16):
        rows = dense[neighbours[start:start + 16]]
        mean[start:start + 16] = rows.mean(axis=1)
        variance[start:start + 16] = rows.var(axis=1)
    return neighbours, mean


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_recsim(log: dict[str, np.ndarray], svd_dim: int | None) -> tuple[float, float, float, np.ndarray, np.ndarray]:
    """Build the table with recsim; return (seconds, cpu seconds, peak MiB, sampled neighbours, table rows)."""
    import pandas as pd

    from recsim.data.schema import Dataset
    from recsim.reward import indicators as ind
    from recsim.reward.knn import build_knn_reward_table, default_config, knn_neighbors

    start, cpu_start = time.perf_counter(), cpu_seconds()
    n_users, n_items = int(log["n_users"]), int(log["n_items"])
    dataset = Dataset(
        name="kuairand", train=pd.DataFrame({"user": log["user"], "item": log["item"], "label": log["label"]}),
        user_ids=np.arange(n_users), item_ids=np.arange(n_items),
        user_features=pd.DataFrame(index=range(n_users)), item_features=pd.DataFrame(index=range(n_items)),
        item_categories=np.zeros((n_items, 0), dtype=bool), category_names=[],
    )
    config = default_config("kuairand", k=K, indicator="logged", svd_dim=svd_dim)
    table = build_knn_reward_table(dataset, config)
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu_start
    peak_mib = peak_rss_mb()
    # Untimed: the sampled rows' neighbours again, for the recall figure.
    pool = ind.logged_indicators(ind.feedback_matrix(dataset))
    if svd_dim is not None:
        pool = ind.reduce_svd(pool, svd_dim, config.seed)
    sample = sample_rows(n_users)
    neighbours, _ = knn_neighbors(pool.matrix, K, query_rows=sample)
    return seconds, cpu, peak_mib, neighbours, table.mean[sample]


def sample_rows(n_users: int) -> np.ndarray:
    return np.sort(np.random.default_rng(1).choice(n_users, size=min(SAMPLE_ROWS, n_users), replace=False))


def worker(approach: str, data: Path, out: Path) -> None:
    with np.load(data) as z:
        log = {name: z[name] for name in z.files}
    if approach == "published":
        start, cpu_start = time.perf_counter(), cpu_seconds()
        neighbours, mean = run_published(log)
        seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu_start
        peak_mib = peak_rss_mb()
        sample = sample_rows(int(log["n_users"]))
        neighbours, mean = neighbours[sample], mean[sample]
    else:
        seconds, cpu, peak_mib, neighbours, mean = run_recsim(log, 256 if approach == "faiss_svd256" else None)
    np.savez(out, neighbours=neighbours, mean=mean, seconds=seconds, cpu=cpu, peak_mib=peak_mib)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_USERS} users instead of {N_USERS}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", choices=APPROACHES, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.data, args.result)
        return
    n_users = QUICK_USERS if args.quick else N_USERS
    with tempfile.TemporaryDirectory(prefix="recsim-bench-knn-") as tmp:
        data = Path(tmp) / "log.npz"
        log = make_log(n_users, N_ITEMS, args.seed)
        np.savez(data, **log)
        results = {}
        for approach in APPROACHES:
            result = Path(tmp) / f"{approach}.npz"
            env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
            subprocess.run([sys.executable, __file__, "--worker", approach, "--data", str(data),
                            "--result", str(result)], check=True, env=env)
            with np.load(result) as z:
                results[approach] = {name: z[name] for name in z.files}
    base = results["published"]
    report = {
        "benchmark": "knn_reward_table",
        "n_users": n_users, "n_items": N_ITEMS, "k": K,
        "observed_density": round(len(log["user"]) / (n_users * N_ITEMS), 5),
        "cpu_count": os.cpu_count(),
        "baseline": "published: dense float64 user x user cosine similarity (sklearn normalize + X X^T)"
                    " + argsort per row + dense mean/variance",
    }
    for approach in APPROACHES:
        r = results[approach]
        entry = {"seconds": round(float(r["seconds"]), 2), "cpu_seconds": round(float(r["cpu"]), 2),
                 "peak_rss_mib": round(float(r["peak_mib"]))}
        if approach != "published":
            entry["speedup_vs_published"] = round(float(base["seconds"]) / float(r["seconds"]), 2)
            entry["cpu_speedup_vs_published"] = round(float(base["cpu"]) / float(r["cpu"]), 2)
            entry["peak_memory_ratio_vs_published"] = round(float(r["peak_mib"]) / float(base["peak_mib"]), 3)
            entry["neighbour_recall_vs_published"] = round(float(np.mean(
                [len(set(a) & set(b)) / K for a, b in zip(r["neighbours"], base["neighbours"])])), 4)
            entry["table_max_abs_diff_vs_published"] = float(np.abs(r["mean"] - base["mean"]).max())
            entry["table_mean_abs_diff_vs_published"] = float(np.abs(r["mean"] - base["mean"]).mean())
        report[approach] = entry
    exact = report["faiss_exact"]
    report["targets"] = {
        "speedup_at_least_3x": exact["speedup_vs_published"] >= 3.0,
        "under_60_s": exact["seconds"] < 60.0,
        "peak_memory_below_published": exact["peak_memory_ratio_vs_published"] < 1.0,
    }
    report["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
