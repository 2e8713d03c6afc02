"""Reading KuaiRec's big matrix: time and peak memory of recsim's loader against plain pandas.

Writes a KuaiRec-format folder whose `big_matrix.csv` has the real file's size (12.5 M rows of
7,176 users x 10,728 videos, all eight columns) and whose small matrix is 1,411 x 3,327 dense,
then, each in a fresh subprocess (so peak RSS is clean):
- `recsim`: `load_kuairec` (only the needed columns, explicit dtypes, pyarrow's reader);
- `pandas_default`: `pandas.read_csv` of both matrices with default dtypes (the published
  code's approach) as the baseline.
Targets (issue 2): under 60 s and under 2 GB for the big matrix. Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

N_USERS, N_ITEMS = 7176, 10728
TRUTH_USERS, TRUTH_ITEMS = 1411, 3327


def write_matrix(path: Path, users: np.ndarray, items: np.ndarray, rng: np.random.Generator) -> None:
    n = len(users)
    duration = rng.integers(3_000, 60_000, n)
    play = (duration * rng.gamma(2.0, 0.5, n)).astype(np.int64)
    ts = 1593561600.0 + np.sort(rng.random(n)) * 60 * 86400
    table = pa.table({
        "user_id": users, "video_id": items, "play_duration": play, "video_duration": duration,
        "time": pa.array(np.full(n, "2020-07-05 05:27:48.378")), "date": np.full(n, 20200705),
        "timestamp": np.round(ts, 3), "watch_ratio": play / duration,
    })
    pacsv.write_csv(table, path, pacsv.WriteOptions(quoting_style="needed"))


def make_folder(directory: Path, n_rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    write_matrix(directory / "big_matrix.csv", rng.integers(0, N_USERS, n_rows), rng.integers(0, N_ITEMS, n_rows), rng)
    tu, ti = np.meshgrid(np.arange(TRUTH_USERS), np.arange(TRUTH_ITEMS), indexing="ij")
    write_matrix(directory / "small_matrix.csv", tu.ravel(), ti.ravel(), rng)
    tags = [f'"[{i % 31}, {(i * 7) % 31}]"' if i % 3 else f"[{i % 31}]" for i in range(N_ITEMS)]
    rows = "\n".join(f"{i},{t}" for i, t in enumerate(tags))
    (directory / "item_categories.csv").write_text("video_id,feat\n" + rows + "\n")
    (directory / "user_features.csv").write_text(
        "user_id,user_active_degree\n" + "\n".join(f"{u},{'high' if u % 2 else 'low'}" for u in range(N_USERS)) + "\n")


CHILD = {
    "recsim": "from recsim.data.loaders.kuairec import load_kuairec; d = load_kuairec(sys.argv[1]); n = len(d.train)",
    "pandas_default": ("import pandas as pd; b = pd.read_csv(sys.argv[1] + '/big_matrix.csv'); "
                       "s = pd.read_csv(sys.argv[1] + '/small_matrix.csv'); n = len(b)"),
}


def measure(name: str, folder: Path) -> dict:
    code = ("import sys, time, json; from recsim.profiling import peak_rss_mb; t = time.perf_counter(); "
            + CHILD[name] + "; print(json.dumps({'seconds': time.perf_counter() - t, 'rows': n, "
            "'peak_rss_mb': peak_rss_mb()}))")
    out = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=12_530_806, help="rows of big_matrix.csv")
    parser.add_argument("--quick", action="store_true", help="1 M rows")
    args = parser.parse_args()
    rows = 1_000_000 if args.quick else args.rows
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        make_folder(folder, rows)
        written = time.perf_counter() - started
        results = {name: measure(name, folder) for name in CHILD}
    print(json.dumps({
        "benchmark": "kuairec_big_matrix_loading",
        "big_matrix_rows": rows,
        "folder_written_seconds": round(written, 1),
        "recsim": results["recsim"],
        "baseline_pandas_default": results["pandas_default"],
        "speedup_vs_pandas": results["pandas_default"]["seconds"] / results["recsim"]["seconds"],
        "memory_ratio_vs_pandas": results["recsim"]["peak_rss_mb"] / results["pandas_default"]["peak_rss_mb"],
        "targets": {"seconds": 60, "peak_rss_mb": 2048},
    }, indent=2))


if __name__ == "__main__":
    main()
