"""The data layer: real files, real formats, the synthetic world and malformed inputs."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsim.data.loaders.coat import load_coat
from recsim.data.loaders.kuairand import TEST_FILE, TRAIN_FILE, load_kuairand
from recsim.data.loaders.kuairec import load_kuairec
from recsim.data.loaders.movielens import GENRES, load_movielens_100k
from recsim.data.loaders.yahoo import load_yahoo
from recsim.data.schema import Dataset
from recsim.data.store import load_dataset
from recsim.data.synthetic import generate_world, write_kuairec
from recsim.errors import DataError
from recsim.evaluation.exposure import gini

KUAIREC_COLUMNS = "user_id,video_id,play_duration,video_duration,time,date,timestamp,watch_ratio"
KUAIRAND_COLUMNS = ("user_id,video_id,date,hourmin,time_ms,is_click,is_like,is_follow,is_comment,is_forward,"
                    "is_hate,long_view,play_time_ms,duration_ms,profile_stay_time,comment_stay_time,"
                    "is_profile_enter,is_rand,tab")


def write_lines(path: Path, header: str | None, rows: list[str]) -> Path:
    path.write_text("\n".join(([header] if header else []) + rows) + "\n")
    return path


def kuairec_row(user: int, video: int, ratio: float, ts: float = 1593898068.378) -> str:
    return f"{user},{video},1000,2000,2020-07-05 05:27:48.378,20200705,{ts},{ratio}"


def kuairand_row(user: int, video: int, click: int) -> str:
    return f"{user},{video},20220408,9.0,1649381321000,{click},0,0,0,0,0,{click},5000,10000,0,0,0,0,1"


@pytest.fixture
def kuairec_raw(tmp_path: Path) -> Path:
    """A KuaiRec folder with small, valid interaction files and generated side files."""
    write_lines(tmp_path / "big_matrix.csv", KUAIREC_COLUMNS,
                [kuairec_row(0, 0, 1.5), kuairec_row(0, 1, 0.5), kuairec_row(1, 1, 2.5, 1593898069.0)])
    write_lines(tmp_path / "small_matrix.csv", KUAIREC_COLUMNS,
                [kuairec_row(0, 0, 0.7), kuairec_row(0, 1, 7.0), kuairec_row(1, 0, 1.2)])
    write_lines(tmp_path / "item_categories.csv", "video_id,feat", ["0,[8]", '1,"[27, 9]"'])
    write_lines(tmp_path / "user_features.csv", "user_id,user_active_degree", ["0,high_active", "1,full_active"])
    return tmp_path


# ---- real files from ../shared/data ---------------------------------------------------------

def test_coat_real_files(shared_data: Path) -> None:
    coat = load_coat(shared_data / "coat")
    assert (coat.n_users, coat.n_items) == (290, 300)
    assert (len(coat.train), len(coat.test)) == (6960, 4640)
    assert coat.train.groupby("user").size().eq(24).all()
    assert coat.test.groupby("user").size().eq(16).all()
    assert set(np.unique(coat.train["label"])) <= {1, 2, 3, 4, 5}
    assert (coat.train["propensity"] > 0).all()
    assert coat.item_categories.sum(axis=1).tolist() == [1] * 300
    assert list(coat.user_features.columns) == ["gender", "age", "location", "fashioninterest"]
    assert coat.train["user"].dtype == np.int32 and coat.train["label"].dtype == np.float32


def test_kuairec_loader_with_real_side_files(shared_data: Path, tmp_path: Path) -> None:
    side = shared_data / "kuairec_side"
    for name in ("item_categories.csv", "user_features.csv"):
        (tmp_path / name).symlink_to(side / name)
    write_lines(tmp_path / "big_matrix.csv", KUAIREC_COLUMNS,
                [kuairec_row(14, 148, 0.72), kuairec_row(7175, 10727, 1.3)])
    write_lines(tmp_path / "small_matrix.csv", KUAIREC_COLUMNS, [kuairec_row(14, 148, 0.9), kuairec_row(19, 148, 0.3)])
    data = load_kuairec(tmp_path)
    assert data.n_items == 10728 and data.n_categories == 31
    assert data.n_users == 7176 and len(data.user_features.columns) == 30
    assert data.item_categories.any(axis=1).all()
    assert data.truth.shape == (2, 1)


def test_kuairand_loader_with_real_side_files(shared_data: Path, tmp_path: Path) -> None:
    side = shared_data / "kuairand_pure_side"
    for name in ("user_features_pure.csv", "video_features_basic_pure.csv"):
        (tmp_path / name).symlink_to(side / name)
    write_lines(tmp_path / TRAIN_FILE, KUAIRAND_COLUMNS, [kuairand_row(0, 0, 1), kuairand_row(27284, 7582, 0)])
    write_lines(tmp_path / TEST_FILE, KUAIRAND_COLUMNS, [kuairand_row(1, 5, 1)])
    data = load_kuairand(tmp_path)
    assert data.n_users == 27285 and data.n_items == 7583
    assert data.n_categories == 46
    assert data.train["label"].tolist() == [1.0, 0.0]
    assert data.train["watch_ratio"].tolist() == [0.5, 0.5]
    assert len(data.test) == 1 and data.test["item"].tolist() == [5]


# ---- real formats, written here ---------------------------------------------------------------

def test_kuairec_labels_truth_and_normalised_ratio(kuairec_raw: Path) -> None:
    data = load_kuairec(kuairec_raw)
    assert data.truth[0, 1] == 5.0, "truth caps watch_ratio at 5"
    assert data.train["label"].tolist() == [1.5, 0.5, 2.5]
    assert data.train["watch_ratio_normed"].tolist() == [0.0, 0.0, 1.0]
    assert data.item_categories[1, [9, 27]].all() and data.n_categories == 28
    normed = load_kuairec(kuairec_raw, label="watch_ratio_normed")
    assert normed.train["label"].tolist() == [0.0, 0.0, 1.0]


def test_yahoo_and_movielens_formats(tmp_path: Path) -> None:
    write_lines(tmp_path / "ydata-ymusic-rating-study-v1_0-train.txt", None, ["1\t1\t5", "1\t3\t1", "2\t2\t3"])
    write_lines(tmp_path / "ydata-ymusic-rating-study-v1_0-test.txt", None, ["2\t1\t4"])
    yahoo = load_yahoo(tmp_path)
    assert (yahoo.n_users, yahoo.n_items, len(yahoo.train), len(yahoo.test)) == (2, 3, 3, 1)
    assert yahoo.train["item"].tolist() == [0, 2, 1]
    flags = "|".join(["0"] * (len(GENRES) - 1))
    (tmp_path / "u.item").write_bytes(
        f"1|Toy Story (1995)|01-Jan-1995||http://x|0|{flags}\n2|Caf\xe9 (1994)|01-Jan-1994||http://y|{flags}|1\n".encode("latin-1"))
    write_lines(tmp_path / "u.data", None, ["1\t2\t4\t881250949", "3\t1\t2\t891717742"])
    ml = load_movielens_100k(tmp_path)
    assert (ml.n_users, ml.n_items, ml.n_categories) == (2, 2, 19)
    assert ml.item_categories[1, GENRES.index("Western")] and ml.train["timestamp"].tolist()[0] == 881250949000


def test_dataset_save_load_round_trip(tiny_world: Dataset, tmp_path: Path) -> None:
    tiny_world.save(tmp_path / "w")
    back = Dataset.load(tmp_path / "w")
    pd.testing.assert_frame_equal(back.train, tiny_world.train)
    pd.testing.assert_frame_equal(back.test, tiny_world.test)
    pd.testing.assert_frame_equal(back.user_features, tiny_world.user_features)
    np.testing.assert_array_equal(back.truth, tiny_world.truth)
    np.testing.assert_array_equal(back.item_categories, tiny_world.item_categories)
    assert back.meta["config"] == tiny_world.meta["config"]


def test_load_dataset_uses_the_parquet_cache(kuairec_raw: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = load_dataset("kuairec", kuairec_raw, cache_dir=cache)
    assert len(list(cache.iterdir())) == 1
    second = load_dataset("kuairec", kuairec_raw, cache_dir=cache)
    pd.testing.assert_frame_equal(first.train, second.train)


# ---- the synthetic world --------------------------------------------------------------------

def test_synthetic_world_round_trips_through_the_kuairec_format(tiny_world: Dataset, tmp_path: Path) -> None:
    write_kuairec(tiny_world, tmp_path)
    back = load_kuairec(tmp_path)
    columns = ["user", "item", "label", "timestamp"]
    pd.testing.assert_frame_equal(back.train[columns], tiny_world.train[columns])
    np.testing.assert_array_equal(back.truth, tiny_world.truth)
    np.testing.assert_array_equal(back.item_categories, tiny_world.item_categories)
    pd.testing.assert_frame_equal(back.user_features, tiny_world.user_features)
    pd.testing.assert_frame_equal(back.item_features, tiny_world.item_features)


def test_synthetic_world_is_deterministic_for_a_seed() -> None:
    a, b, c = generate_world("tiny", 3), generate_world("tiny", 3), generate_world("tiny", 4)
    pd.testing.assert_frame_equal(a.train, b.train)
    np.testing.assert_array_equal(a.truth, b.truth)
    assert not np.array_equal(a.truth, c.truth)


def test_synthetic_log_is_popularity_biased(tiny_world: Dataset) -> None:
    log_counts = np.bincount(tiny_world.train["item"], minlength=tiny_world.n_items)
    assert gini(log_counts) > gini(tiny_world.truth.mean(axis=0)) + 0.2
    test_counts = np.bincount(tiny_world.test["item"], minlength=tiny_world.n_items)
    assert gini(log_counts) > gini(test_counts), "the random-exposure log is less concentrated"
    assert tiny_world.train["label"].mean() > tiny_world.truth.mean(), "the behaviour policy selects good items"


def test_synthetic_propensities_are_the_behaviour_policy(tiny_world: Dataset) -> None:
    p = tiny_world.train["propensity"].to_numpy()
    assert ((p > 0) & (p <= 1)).all()
    np.testing.assert_allclose(tiny_world.test["propensity"], 1 / tiny_world.n_items)


# ---- malformed inputs ---------------------------------------------------------------------

MALFORMED = [
    ("missing file", lambda d: (d / "small_matrix.csv").unlink(), "small_matrix.csv: missing file"),
    ("misnamed column", lambda d: write_lines(d / "big_matrix.csv", KUAIREC_COLUMNS.replace("watch_ratio", "ratio"),
                                              [kuairec_row(0, 0, 1.0)]), "big_matrix.csv: watch_ratio: missing column"),
    ("wrong type", lambda d: write_lines(d / "big_matrix.csv", KUAIREC_COLUMNS,
                                         [kuairec_row(0, 0, 1.0), "0,x,1,2,t,1,1.0,1.0"]),
     "big_matrix.csv: video_id (line 3)"),
    ("NaN label", lambda d: write_lines(d / "big_matrix.csv", KUAIREC_COLUMNS,
                                        [kuairec_row(0, 0, 1.0), kuairec_row(0, 1, float("nan"))]),
     "big_matrix.csv: watch_ratio (line 3): missing value"),
    ("negative label", lambda d: write_lines(d / "big_matrix.csv", KUAIREC_COLUMNS, [kuairec_row(0, 0, -1.0)]),
     "big_matrix.csv: watch_ratio (line 2): value -1.0 outside"),
    ("duplicate pair", lambda d: write_lines(d / "small_matrix.csv", KUAIREC_COLUMNS,
                                             [kuairec_row(0, 0, 1.0), kuairec_row(0, 0, 2.0)]),
     "small_matrix.csv: user_id,video_id (line 3): duplicate pair (0, 0)"),
    ("negative id", lambda d: write_lines(d / "big_matrix.csv", KUAIREC_COLUMNS, [kuairec_row(-3, 0, 1.0)]),
     "big_matrix.csv: user_id (line 2)"),
    ("bad tag list", lambda d: write_lines(d / "item_categories.csv", "video_id,feat", ["0,[8]", "1,eight"]),
     "item_categories.csv: feat (line 3)"),
]


@pytest.mark.parametrize("case,corrupt,expected", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_kuairec_inputs(kuairec_raw: Path, case: str, corrupt, expected: str) -> None:
    corrupt(kuairec_raw)
    with pytest.raises(DataError) as error:
        load_kuairec(kuairec_raw)
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


def test_malformed_coat_matrix_shape(shared_data: Path, tmp_path: Path) -> None:
    shutil.copytree(shared_data / "coat", tmp_path / "coat")
    lines = (tmp_path / "coat" / "test.ascii").read_text().splitlines()
    (tmp_path / "coat" / "test.ascii").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DataError, match=r"test.ascii: shape: 289 x 300, expected 290 x 300"):
        load_coat(tmp_path / "coat")


def test_truth_of_wrong_shape_is_rejected(tiny_world: Dataset) -> None:
    import dataclasses

    broken = dataclasses.replace(tiny_world, truth=tiny_world.truth[:, :-1])
    with pytest.raises(DataError, match="truth: shape"):
        broken.validate()


# ---- the CLI ---------------------------------------------------------------------------------

def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "recsim", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})


def test_cli_synth_prepare_info(tmp_path: Path) -> None:
    done = run_cli("data", "synth", "--preset", "tiny", "--seed", "1", "--format", "kuairec",
                   "--out", str(tmp_path / "raw"))
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "raw" / "config.json").read_text())["seed"] == 1
    done = run_cli("data", "prepare", "kuairec", "--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "prepared"))
    assert done.returncode == 0, done.stderr
    done = run_cli("data", "info", "kuairec", "--root", str(tmp_path / "prepared"), "--json")
    info = json.loads(done.stdout)
    assert (info["n_users"], info["n_items"], info["n_test"]) == (100, 200, 0)
    assert info["n_train"] == len(generate_world("tiny", 1).train)


def test_cli_user_error_is_one_line_and_exit_code_2(kuairec_raw: Path) -> None:
    (kuairec_raw / "user_features.csv").unlink()
    done = run_cli("data", "info", "kuairec", "--root", str(kuairec_raw))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "user_features.csv" in done.stderr


def test_synthetic_world_takes_real_kuairec_category_lists(shared_data: Path) -> None:
    from recsim.data.loaders.kuairec import read_category_lists

    real = read_category_lists(shared_data / "kuairec_side" / "item_categories.csv")
    assert real.shape == (10728, 31)
    world = generate_world("tiny", 0, item_categories=real)
    assert world.n_categories == 31
    rows = {tuple(r) for r in real}
    assert all(tuple(r) in rows for r in world.item_categories)
