"""A table of bad inputs across every command: exit code 2, one line naming the file or key, no
traceback, and no file of the temporary folder changed, added or removed.

Each case builds its inputs in its own folder (copies of small valid fixtures, then broken) and
names the text the one-line message must contain. The CLI runs in-process (`recsim.cli.main`).
"""
from __future__ import annotations

import hashlib
import json
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsim.cli import main
from recsim.data.synthetic import generate_world, write_kuairec
from recsim.io import mark
from recsim.reward.table import RewardTable

REPO = Path(__file__).resolve().parents[1]
TINY_SPEC = REPO / "pipelines" / "tiny.yaml"
COAT_SHAPE = (290, 300)


# ----------------------------------------------------------------------------- valid fixtures


def write_coat(directory: Path, seed: int = 0) -> Path:
    """Coat's seven raw files with random valid content (ratings 1-5 on 10% of the pairs)."""
    rng = np.random.default_rng(seed)
    features = directory / "user_item_features"
    features.mkdir(parents=True)
    for name in ("train", "test"):
        ratings = np.where(rng.random(COAT_SHAPE) < 0.1, rng.integers(1, 6, COAT_SHAPE), 0)
        np.savetxt(directory / f"{name}.ascii", ratings, fmt="%d")
    np.savetxt(directory / "propensities.ascii", rng.uniform(0.01, 1, COAT_SHAPE), fmt="%.6f")
    for who, n, labels in (("user", COAT_SHAPE[0], ["gender:men", "gender:women"]),
                           ("item", COAT_SHAPE[1], ["jackettype:bomber", "jackettype:parka", "colour:red"])):
        one_hot = np.zeros((n, len(labels)), dtype=int)
        one_hot[np.arange(n), rng.integers(0, 2, n)] = 1
        np.savetxt(features / f"{who}_features.ascii", one_hot, fmt="%d")
        (features / f"{who}_features_map.txt").write_text("\n".join(labels) + "\n")
    return directory


def write_movielens(directory: Path) -> Path:
    directory.mkdir(parents=True)
    (directory / "u.data").write_text("1\t1\t5\t100\n1\t2\t3\t200\n2\t1\t4\t300\n")
    genres = "|".join(["0"] * 18)
    (directory / "u.item").write_text(f"1|A|x|y|z|1|{genres}\n2|B|x|y|z|0|{genres}\n")
    (directory / "u.user").write_text("1|24|M|writer|1\n2|31|F|artist|2\n")
    return directory


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """Valid inputs shared by the cases (never modified: every case checks its hash)."""
    root = tmp_path_factory.mktemp("inputs")
    world = generate_world("tiny", seed=0)
    world.save(root / "world")
    write_kuairec(world, root / "kuairec")
    write_coat(root / "coat")
    write_movielens(root / "ml")
    RewardTable.from_truth(world.truth, world.truth_users, world.truth_items).save(root / "table")
    shutil.copy(TINY_SPEC, root / "tiny.yaml")
    (root / "precious.txt").write_text("the user's own file\n")
    assert main(["policy", "train", "--preset", "random", "--world", str(root / "world"), "--out", str(root / "policy"),
                 "--eval-episodes", "5", "--quiet"]) == 0
    return root


def copy(ws: Path, name: str, case: Path) -> Path:
    """A writable copy of the fixture `name` inside the case folder."""
    target = case / name
    if (ws / name).is_dir():
        shutil.copytree(ws / name, target)
    else:
        shutil.copy(ws / name, target)
    return target


def replace_line(path: Path, number: int, text: str) -> None:
    """Replace the 1-based line `number` of `path` with `text`."""
    lines = path.read_text().splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n")


def user_folder(case: Path, name: str = "mine") -> Path:
    folder = case / name
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me\n")
    return folder


def empty_world(case: Path) -> Path:
    """A prepared dataset whose training log has no rows."""
    world = generate_world("tiny", seed=0)
    world.train = world.train.iloc[:0]
    world.save(case / "empty")
    return case / "empty"


def table_file(case: Path, **arrays) -> Path:
    folder = case / "badtable"
    folder.mkdir()
    np.savez(folder / "reward_table.npz", **arrays)
    return folder


def nan_table(case: Path, ws: Path) -> Path:
    mean = np.ones((100, 200), np.float32)
    mean[3, 4] = np.nan
    return table_file(case, mean=mean, uncertainty=np.zeros_like(mean), user_ids=np.arange(100),
                      item_ids=np.arange(200))


def foreign_table(case: Path, ws: Path) -> Path:
    mean = np.ones((100, 400), np.float32)
    return table_file(case, mean=mean, uncertainty=np.zeros_like(mean), user_ids=np.arange(100),
                      item_ids=np.arange(400))


def pickled_table(case: Path, ws: Path) -> Path:
    folder = case / "badtable"
    folder.mkdir()
    (folder / "reward_table.npz").write_bytes(pickle.dumps({"mean": [1.0]}))
    return folder


def object_table(case: Path, ws: Path) -> Path:
    return table_file(case, mean=np.array([{"a": 1}], dtype=object), uncertainty=np.zeros((1, 1)),
                      user_ids=np.arange(1), item_ids=np.arange(1))


def fake_run(case: Path, with_eval: bool = True) -> Path:
    run = case / "run"
    run.mkdir()
    mark(run, "run")
    if with_eval:
        (run / "eval-x-s0").mkdir()
        (run / "eval-x-s0" / "metrics.json").write_text(json.dumps({"method": "x", "rows": []}))
    return run


def spec_with(case: Path, ws: Path, old: str, new: str) -> Path:
    text = (ws / "tiny.yaml").read_text()
    assert old in text
    path = case / "spec.yaml"
    path.write_text(text.replace(old, new))
    return path


ALIAS_BOMB = "\n".join(["a: &a [x, x, x, x, x, x, x, x, x]"]
                       + [f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
                          f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
                          f"*{chr(97 + i)}]" for i in range(8)]) + "\nname: bomb\n"


# ----------------------------------------------------------------------------- the cases

Case = tuple[str, Callable[[Path, Path], list[str]], str]
"""(id, build(case_dir, ws) -> argv, text the one-line message must contain)."""


def _world_out(argv_tail: list[str]) -> Callable[[Path, Path], list[str]]:
    return lambda c, ws: ["data", "synth", "--preset", "tiny", *argv_tail]


def _prepare(fixture: str, dataset: str, mutate: Callable[[Path], None]) -> Callable[[Path, Path], list[str]]:
    """`data prepare` of a broken copy of the raw-file fixture `fixture`."""
    def build(c: Path, ws: Path) -> list[str]:
        raw = copy(ws, fixture, c)
        mutate(raw)
        return ["data", "prepare", dataset, "--raw", str(raw), "--out", str(c / "out")]
    return build


def _coat(mutate: Callable[[Path], None]) -> Callable[[Path, Path], list[str]]:
    return _prepare("coat", "coat", mutate)


def _kuairec(mutate: Callable[[Path], None]) -> Callable[[Path, Path], list[str]]:
    return _prepare("kuairec", "kuairec", mutate)


def _movielens(mutate: Callable[[Path], None]) -> Callable[[Path, Path], list[str]]:
    def build(c: Path, ws: Path) -> list[str]:
        raw = copy(ws, "ml", c)
        mutate(raw)
        return ["data", "info", "movielens-100k", "--root", str(raw)]
    return build


def _prepared(mutate: Callable[[Path], None], command: str = "info") -> Callable[[Path, Path], list[str]]:
    def build(c: Path, ws: Path) -> list[str]:
        world = copy(ws, "world", c)
        mutate(world)
        if command == "info":
            return ["data", "info", "synthetic", "--root", str(world)]
        if command == "user-model":
            return ["user-model", "train", "--data", str(world), "--out", str(c / "um"), "--quiet"]
        if command == "knn":
            return ["reward", "knn", "--data", str(world), "--out", str(c / "knn"), "--quiet"]
        return ["policy", "train", "--preset", "random", "--world", str(world), "--out", str(c / "p"), "--quiet"]
    return build


def _header_only(name: str) -> Callable[[Path], None]:
    return lambda raw: (raw / name).write_text((raw / name).read_text().splitlines()[0] + "\n")


def _write(name: str, text: str) -> Callable[[Path], None]:
    return lambda raw: (raw / name).write_text(text)


def _line(name: str, number: int, text: str) -> Callable[[Path], None]:
    return lambda raw: replace_line(raw / name, number, text)


def _matrix_entry(name: str, row: int, col: int, value: str) -> Callable[[Path], None]:
    def mutate(raw: Path) -> None:
        lines = (raw / name).read_text().splitlines()
        tokens = lines[row - 1].split()
        tokens[col - 1] = value
        lines[row - 1] = " ".join(tokens)
        (raw / name).write_text("\n".join(lines) + "\n")
    return mutate


def _kuairec_row(name: str, number: int, **changes: str) -> Callable[[Path], None]:
    def mutate(raw: Path) -> None:
        lines = (raw / name).read_text().splitlines()
        header = lines[0].split(",")
        fields = lines[number - 1].split(",")
        for column, value in changes.items():
            fields[header.index(column)] = value
        lines[number - 1] = ",".join(fields)
        (raw / name).write_text("\n".join(lines) + "\n")
    return mutate


def _drop_column(name: str, column: str) -> Callable[[Path], None]:
    def mutate(raw: Path) -> None:
        frame = pd.read_csv(raw / name, dtype=str)
        frame.drop(columns=[column]).to_csv(raw / name, index=False)
    return mutate


def _duplicate_first_row(name: str) -> Callable[[Path], None]:
    def mutate(raw: Path) -> None:
        lines = (raw / name).read_text().splitlines()
        (raw / name).write_text("\n".join(lines + [lines[1]]) + "\n")
    return mutate


def _parquet(name: str, change: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], None]:
    def mutate(world: Path) -> None:
        change(pd.read_parquet(world / name)).to_parquet(world / name, index=False)
    return mutate


def _meta(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def mutate(world: Path) -> None:
        info = json.loads((world / "meta.json").read_text())
        change(info)
        (world / "meta.json").write_text(json.dumps(info))
    return mutate


def _arrays(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def mutate(world: Path) -> None:
        with np.load(world / "arrays.npz") as z:
            arrays = {k: z[k] for k in z.files}
        change(arrays)
        np.savez(world / "arrays.npz", **arrays)
    return mutate


def _set(d: dict, key: str, value) -> None:
    d[key] = value


def _user_ids_out_of_range(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(user=frame["user"] + 1000)


def _fake_user_model(config: str | None, extra: Callable[[Path], None] | None = None):
    def build(c: Path, ws: Path) -> list[str]:
        model = c / "um"
        model.mkdir()
        if config is not None:
            (model / "config.json").write_text(config)
        if extra is not None:
            extra(model)
        return ["user-model", "eval", "--model", str(model), "--data", str(ws / "world")]
    return build


def _policy_with(table: Callable[[Path, Path], Path]):
    def build(c: Path, ws: Path) -> list[str]:
        return ["policy", "train", "--preset", "greedy", "--world", str(ws / "world"), "--reward", str(table(c, ws)),
                "--out", str(c / "p"), "--quiet"]
    return build


def _embeddings(array: np.ndarray):
    def build(c: Path, ws: Path) -> list[str]:
        folder = c / "um"
        folder.mkdir()
        np.savez(folder / "embeddings.npz", item=array)
        return ["policy", "train", "--preset", "random", "--world", str(ws / "world"), "--user-model", str(folder),
                "--out", str(c / "p"), "--quiet"]
    return build


def _run(spec: Callable[[Path, Path], Path], *extra: str):
    def build(c: Path, ws: Path) -> list[str]:
        return ["run", str(spec(c, ws)), "--out", str(c / "out"), "--quiet", *extra]
    return build


def _spec_text(text: str) -> Callable[[Path, Path], Path]:
    def build(c: Path, ws: Path) -> Path:
        (c / "spec.yaml").write_text(text)
        return c / "spec.yaml"
    return build


def _spec_edit(old: str, new: str) -> Callable[[Path, Path], Path]:
    return lambda c, ws: spec_with(c, ws, old, new)


def _tiny(c: Path, ws: Path) -> Path:
    return ws / "tiny.yaml"


def _sweep(*extra: str, out: Callable[[Path, Path], Path] | None = None):
    def build(c: Path, ws: Path) -> list[str]:
        target = out(c, ws) if out is not None else c / "sweep"
        return ["sweep", str(ws / "tiny.yaml"), "--out", str(target), *extra]
    return build


CASES: list[Case] = [
    # ---- data synth
    ("synth-out-user-folder", lambda c, ws: _world_out(["--out", str(user_folder(c))])(c, ws), "mine"),
    ("synth-out-file", lambda c, ws: _world_out(["--out", str(copy(ws, "precious.txt", c))])(c, ws), "precious.txt"),
    ("synth-out-other-kind", lambda c, ws: _world_out(["--out", str(copy(ws, "kuairec", c))])(c, ws), "kuairec"),
    ("synth-out-under-file", lambda c, ws: _world_out(["--out", str(copy(ws, "precious.txt", c) / "w")])(c, ws),
     "precious.txt is a file, not a folder"),
    ("synth-out-name-too-long", lambda c, ws: _world_out(["--out", str(c / ("x" * 300))])(c, ws), "File name too long"),
    ("synth-seed-negative", _world_out(["--seed", "-1", "--out", "x"]), "--seed"),
    ("synth-seed-2^63", _world_out(["--seed", str(2**63), "--out", "x"]), "--seed"),
    ("synth-seed-word", _world_out(["--seed", "one", "--out", "x"]), "--seed"),
    ("synth-unknown-preset", lambda c, ws: ["data", "synth", "--preset", "huge", "--out", str(c / "w")], "--preset"),
    ("synth-categories-missing", lambda c, ws: _world_out(["--categories-from", str(c / "none.csv"),
                                                           "--out", str(c / "w")])(c, ws), "none.csv"),
    ("synth-categories-bad-feat",
     lambda c, ws: (_line("item_categories.csv", 3, '2,"[1, x]"')(copy(ws, "kuairec", c)),
                    _world_out(["--categories-from", str(c / "kuairec" / "item_categories.csv"),
                                "--out", str(c / "w")])(c, ws))[1], "feat (line 3)"),
    # ---- data prepare: --out
    ("prepare-out-is-raw", lambda c, ws: ["data", "prepare", "coat", "--raw", str(copy(ws, "coat", c)),
                                          "--out", str(c / "coat")], "is also an input"),
    ("prepare-out-inside-raw", lambda c, ws: ["data", "prepare", "coat", "--raw", str(copy(ws, "coat", c)),
                                              "--out", str(c / "coat" / "prepared")], "inside the input"),
    ("prepare-out-holds-raw", lambda c, ws: ["data", "prepare", "coat", "--raw", str(copy(ws, "coat", c / "sub")),
                                             "--out", str(c / "sub")], "holds the input"),
    ("prepare-out-file", lambda c, ws: ["data", "prepare", "synthetic", "--raw", str(ws / "world"),
                                        "--out", str(copy(ws, "precious.txt", c))], "precious.txt"),
    ("prepare-raw-missing", lambda c, ws: ["data", "prepare", "coat", "--raw", str(c / "nothing"),
                                           "--out", str(c / "o")], "nothing"),
    ("prepare-wrong-dataset", lambda c, ws: ["data", "prepare", "coat", "--raw", str(ws / "world"),
                                             "--out", str(c / "o")], "holds dataset 'synthetic'"),
    ("prepare-synthetic-from-raw", lambda c, ws: ["data", "prepare", "synthetic", "--raw", str(ws / "coat"),
                                                  "--out", str(c / "o")], "not a synthetic world"),
    # ---- Coat raw files
    ("coat-all-zero-train", _coat(lambda raw: np.savetxt(raw / "train.ascii", np.zeros(COAT_SHAPE), fmt="%d")),
     "train: the log has no rows"),
    ("coat-word-in-train", _coat(_matrix_entry("train.ascii", 3, 2, "x")), "line 3, column 2"),
    ("coat-short-line", _coat(_line("test.ascii", 5, "1 2 3")), "test.ascii: line 5"),
    ("coat-rating-7", _coat(_matrix_entry("train.ascii", 4, 9, "7")), "line 4, column 9"),
    ("coat-negative-rating", _coat(_matrix_entry("test.ascii", 2, 1, "-1")), "line 2, column 1"),
    ("coat-propensity-nan", _coat(_matrix_entry("propensities.ascii", 6, 3, "nan")), "line 6, column 3"),
    ("coat-empty-test", _coat(_write("test.ascii", "")), "test.ascii"),
    ("coat-missing-features", _coat(lambda raw: (raw / "user_item_features" / "item_features.ascii").unlink()),
     "item_features.ascii"),
    ("coat-bad-feature-map", _coat(_write("user_item_features/user_features_map.txt", "gender\nmen\n")),
     "user_features_map.txt"),
    ("coat-no-jackettype", _coat(_write("user_item_features/item_features_map.txt", "colour:a\ncolour:b\ncolour:c\n")),
     "jackettype"),
    # ---- KuaiRec raw files
    ("kuairec-big-header-only", _kuairec(_header_only("big_matrix.csv")), "big_matrix.csv"),
    ("kuairec-small-header-only", _kuairec(_header_only("small_matrix.csv")), "small_matrix.csv"),
    ("kuairec-users-header-only", _kuairec(_header_only("user_features.csv")), "user_features.csv"),
    ("kuairec-missing-column", _kuairec(_drop_column("big_matrix.csv", "watch_ratio")), "watch_ratio"),
    ("kuairec-int32-overflow-line-10", _kuairec(_kuairec_row("big_matrix.csv", 10, user_id="99999999999")),
     "user_id (line 10)"),
    ("kuairec-word-line-7", _kuairec(_kuairec_row("big_matrix.csv", 7, watch_ratio="lots")), "watch_ratio (line 7)"),
    ("kuairec-negative-ratio", _kuairec(_kuairec_row("small_matrix.csv", 12, watch_ratio="-0.5")),
     "watch_ratio (line 12)"),
    ("kuairec-duplicate-pair", _kuairec(_duplicate_first_row("small_matrix.csv")), "duplicate pair"),
    ("kuairec-bad-feat", _kuairec(_line("item_categories.csv", 4, "2,[1;2]")), "feat (line 4)"),
    ("kuairec-missing-file", _kuairec(lambda raw: (raw / "user_features.csv").unlink()), "user_features.csv"),
    ("kuairec-empty-file", _kuairec(_write("item_categories.csv", "")), "item_categories.csv"),
    # ---- MovieLens raw files
    ("ml-user-age-word", _movielens(_line("u.user", 2, "2|abc|F|artist|2")), "age (line 2)"),
    ("ml-user-id-word", _movielens(_line("u.user", 1, "one|24|M|writer|1")), "user_id (line 1)"),
    ("ml-rating-9", _movielens(_line("u.data", 3, "2\t1\t9\t300")), "rating (line 3)"),
    ("ml-item-fields", _movielens(_line("u.item", 2, "2|B|x")), "u.item: line 2"),
    ("ml-data-empty", _movielens(_write("u.data", "")), "u.data"),
    # ---- prepared datasets (data info, user-model train, reward knn, policy train)
    ("prepared-train-corrupt", _prepared(_write("train.parquet", "not parquet")), "train.parquet"),
    ("prepared-meta-not-json", _prepared(_write("meta.json", "{oops")), "meta.json"),
    ("prepared-meta-list", _prepared(_write("meta.json", "[1, 2]")), "meta.json"),
    ("prepared-meta-no-name", _prepared(_meta(lambda m: m.pop("name"))), "meta.json: name"),
    ("prepared-schema-version", _prepared(_meta(lambda m: _set(m, "schema_version", 7))), "schema_version"),
    ("prepared-arrays-missing", _prepared(lambda w: (w / "arrays.npz").unlink()), "arrays.npz"),
    ("prepared-arrays-pickle", _prepared(_write("arrays.npz", "\x80\x04junk")), "arrays.npz"),
    ("prepared-arrays-truncated",
     _prepared(lambda w: (w / "arrays.npz").write_bytes((w / "arrays.npz").read_bytes()[:300])), "arrays.npz"),
    ("prepared-no-item-ids", _prepared(_arrays(lambda a: a.pop("item_ids"))), "item_ids"),
    ("prepared-user-out-of-range", _prepared(_parquet("train.parquet", _user_ids_out_of_range)), "train.user"),
    ("prepared-label-words", _prepared(_parquet("train.parquet", lambda f: f.assign(label="x"))), "train.label"),
    ("prepared-no-item-features", _prepared(lambda w: (w / "item_features.parquet").unlink()), "item_features.parquet"),
    ("prepared-categories-1d", _prepared(_arrays(lambda a: _set(a, "item_categories", np.ones(200, bool)))),
     "item_categories"),
    ("prepared-train-corrupt-um", _prepared(_write("train.parquet", "x"), "user-model"), "train.parquet"),
    ("prepared-train-corrupt-knn", _prepared(_write("train.parquet", "x"), "knn"), "train.parquet"),
    ("prepared-train-corrupt-policy", _prepared(_write("train.parquet", "x"), "policy"), "train.parquet"),
    ("data-info-root-missing", lambda c, ws: ["data", "info", "coat", "--root", str(c / "none")], "none"),
    # ---- user-model train
    ("um-data-missing", lambda c, ws: ["user-model", "train", "--data", str(c / "none"), "--out", str(c / "um")],
     "none"),
    ("um-empty-log", lambda c, ws: ["user-model", "train", "--data", str(empty_world(c)), "--out", str(c / "um")],
     "train: the log has no rows"),
    ("um-lr-inf", lambda c, ws: ["user-model", "train", "--data", str(ws / "world"), "--out", str(c / "um"),
                                 "--lr", "inf"], "--lr"),
    ("um-lr-negative", lambda c, ws: ["user-model", "train", "--data", str(ws / "world"), "--out", str(c / "um"),
                                      "--lr", "-1"], "--lr"),
    ("um-members-0", lambda c, ws: ["user-model", "train", "--data", str(ws / "world"), "--out", str(c / "um"),
                                    "--members", "0"], "--members"),
    ("um-val-fraction", lambda c, ws: ["user-model", "train", "--data", str(ws / "world"), "--out", str(c / "um"),
                                       "--val-fraction", "1.5"], "--val-fraction"),
    ("um-seed-huge", lambda c, ws: ["user-model", "train", "--data", str(ws / "world"), "--out", str(c / "um"),
                                    "--seed", str(2**64)], "--seed"),
    ("um-out-user-folder", lambda c, ws: ["user-model", "train", "--data", str(ws / "world"),
                                          "--out", str(user_folder(c))], "mine"),
    ("um-out-is-data", lambda c, ws: ["user-model", "train", "--data", str(copy(ws, "world", c)),
                                      "--out", str(c / "world")], "is also an input"),
    ("um-out-file", lambda c, ws: ["user-model", "train", "--data", str(ws / "world"),
                                   "--out", str(copy(ws, "precious.txt", c))], "precious.txt"),
    # ---- user-model eval
    ("um-eval-no-model", _fake_user_model(None), "not a user-model directory"),
    ("um-eval-config-not-json", _fake_user_model("{broken"), "config.json"),
    ("um-eval-no-features", _fake_user_model("{}"), "features.npz"),
    ("um-eval-config-empty-object", _fake_user_model("{}", lambda m: np.savez(m / "features.npz", user_table=np.ones(2),
                                                                             item_table=np.ones(2))),
     "not a readable user model"),
    ("um-eval-out-user-file", lambda c, ws: ["user-model", "eval", "--model", str(c / "um"),
                                             "--data", str(ws / "world"),
                                             "--out", str(copy(ws, "precious.txt", c))], "precious.txt"),
    ("um-eval-k-0", lambda c, ws: ["user-model", "eval", "--model", str(c / "um"), "--data", str(ws / "world"),
                                   "--k", "0"], "--k"),
    # ---- reward knn
    ("knn-data-missing", lambda c, ws: ["reward", "knn", "--data", str(c / "none"), "--out", str(c / "k")], "none"),
    ("knn-k-0", lambda c, ws: ["reward", "knn", "--data", str(ws / "world"), "--out", str(c / "k"), "--k", "0"],
     "knn.k"),
    ("knn-temperature-nan", lambda c, ws: ["reward", "knn", "--data", str(ws / "world"), "--out", str(c / "k"),
                                           "--temperature", "nan"], "knn.temperature"),
    ("knn-out-file", lambda c, ws: ["reward", "knn", "--data", str(ws / "world"),
                                    "--out", str(copy(ws, "precious.txt", c))], "precious.txt"),
    ("knn-out-inside-data", lambda c, ws: ["reward", "knn", "--data", str(copy(ws, "world", c)),
                                           "--out", str(c / "world" / "knn")], "inside the input"),
    ("knn-seed-negative", lambda c, ws: ["reward", "knn", "--data", str(ws / "world"), "--out", str(c / "k"),
                                         "--seed", "-3"], "--seed"),
    ("knn-user-model-pickled-table", lambda c, ws: ["reward", "knn", "--data", str(ws / "world"),
                                                    "--user-model", str(pickled_table(c, ws)), "--indicator",
                                                    "predicted", "--out", str(c / "k"), "--quiet"],
     "reward_table.npz"),
    # ---- policy train
    ("policy-table-nan", _policy_with(nan_table), "mean: NaN or infinite value at index [3, 4]"),
    ("policy-table-other-world", _policy_with(foreign_table), "item_ids"),
    ("policy-table-pickle", _policy_with(pickled_table), "reward_table.npz"),
    ("policy-table-object-array", _policy_with(object_table), "reward_table.npz"),
    ("policy-table-missing-arrays", _policy_with(lambda c, ws: table_file(c, mean=np.ones((2, 2)))), "uncertainty"),
    ("policy-table-missing", _policy_with(lambda c, ws: c / "nothing"), "reward table not found"),
    ("policy-embeddings-shape", _embeddings(np.ones((7, 4), np.float32)), "embeddings.npz"),
    ("policy-embeddings-inf", _embeddings(np.full((200, 4), np.inf, np.float32)), "embeddings.npz"),
    ("policy-out-file", lambda c, ws: ["policy", "train", "--preset", "random", "--world", str(ws / "world"),
                                       "--out", str(copy(ws, "precious.txt", c))], "precious.txt"),
    ("policy-out-is-world", lambda c, ws: ["policy", "train", "--preset", "random",
                                           "--world", str(copy(ws, "world", c)),
                                           "--out", str(c / "world")], "is also an input"),
    ("policy-world-missing", lambda c, ws: ["policy", "train", "--preset", "random", "--world", str(c / "none"),
                                            "--out", str(c / "p")], "none"),
    ("policy-unknown-preset", lambda c, ws: ["policy", "train", "--preset", "best", "--world", str(ws / "world"),
                                             "--out", str(c / "p")], "--preset"),
    ("policy-seed-negative", lambda c, ws: ["policy", "train", "--preset", "random", "--world", str(ws / "world"),
                                            "--out", str(c / "p"), "--seed", "-1"], "--seed"),
    ("policy-eval-out-user-file", lambda c, ws: ["policy", "evaluate", "--run", str(c / "run"),
                                                 "--world", str(ws / "world"),
                                                 "--out", str(copy(ws, "precious.txt", c))], "precious.txt"),
    ("policy-eval-nx-longer-than-items", lambda c, ws: ["policy", "evaluate", "--run", str(ws / "policy"),
                                                        "--world", str(ws / "world"), "--mode", "NX_999"],
     "the data has 200"),
    ("policy-eval-episodes-0", lambda c, ws: ["policy", "evaluate", "--run", str(ws / "policy"),
                                              "--world", str(ws / "world"), "--episodes", "0"], "episodes"),
    ("policy-eval-other-world", lambda c, ws: ["policy", "evaluate", "--run", str(ws / "policy"),
                                               "--world", str(empty_world(c))], "train: the log has no rows"),
    ("policy-eval-out-inside-run", lambda c, ws: ["policy", "evaluate", "--run", str(copy(ws, "policy", c)),
                                                  "--world", str(ws / "world"), "--out", str(c / "policy" / "x.json")],
     "inside the input"),
    ("policy-eval-no-policy", lambda c, ws: ["policy", "evaluate", "--run", str(c / "run"),
                                             "--world", str(ws / "world")],
     "policy.json"),
    # ---- run
    ("run-spec-missing", lambda c, ws: ["run", str(c / "none.yaml"), "--out", str(c / "out")], "none.yaml"),
    ("run-alias-bomb", _run(_spec_text(ALIAS_BOMB)), "aliases"),
    ("run-self-alias", _run(_spec_text("a: &a [1, *a]\n")), "contains it"),
    ("run-not-yaml", _run(_spec_text("name: [unclosed\n")), "not valid YAML"),
    ("run-not-utf8", _run(lambda c, ws: (c / "s.yaml").write_bytes(b"name: \xff\xfe\n") and c / "s.yaml"), "UTF-8"),
    ("run-unknown-key", _run(_spec_edit("knn:\n  k: 10", "knn:\n  kk: 10")), "knn.kk"),
    ("run-seeds-huge-range", _run(_tiny, "--seeds", "0-100000000"), "--seeds"),
    ("run-seeds-negative", _run(_tiny, "--seeds", "-1"), "--seeds"),
    ("run-seeds-2^63", _run(_tiny, "--seeds", str(2**63)), "--seeds"),
    ("run-world-nan", _run(_spec_edit("  world_seed: 0", "  world_seed: 0\n  world:\n    label_noise: .nan")),
     "spec.yaml: WorldConfig.label_noise"),
    ("run-world-huge", _run(_spec_edit("  world_seed: 0", "  world_seed: 0\n  world:\n    n_users: 1000000\n"
                                                          "    n_items: 1000000")), "n_users x n_items"),
    ("run-quit-kind-unknown", _run(_tiny, "--set", "quit.kind=bogus"), "QuitRuleConfig.kind"),
    ("run-quit-threshold-nan", _run(_tiny, "--set", "quit.leave_threshold=.nan"), "QuitRuleConfig.leave_threshold"),
    ("run-env-max-turn-0", _run(_tiny, "--set", "env.max_turn=0"), "EnvConfig.max_turn"),
    ("run-env-window-nan", _run(_tiny, "--set", "env.history_window=.nan"), "env.history_window"),
    ("run-spec-seed-2^63", _run(_spec_edit("seeds: [0]", f"seeds: [{2**63}]")), "[0, 2^63)"),
    ("run-spec-seeds-negative", _run(_spec_edit("seeds: [0]", "seeds: [-4]")), "seeds"),
    ("run-out-user-folder", lambda c, ws: ["run", str(ws / "tiny.yaml"), "--out", str(user_folder(c))], "mine"),
    ("run-out-file", lambda c, ws: ["run", str(ws / "tiny.yaml"), "--out", str(copy(ws, "precious.txt", c))],
     "precious.txt"),
    ("run-out-is-spec", lambda c, ws: ["run", str(copy(ws, "tiny.yaml", c)), "--out", str(c / "tiny.yaml")],
     "tiny.yaml"),
    ("run-out-other-kind", lambda c, ws: ["run", str(ws / "tiny.yaml"), "--out", str(copy(ws, "world", c))],
     "'dataset'"),
    # ---- sweep
    ("sweep-seeds-huge-range", _sweep("--seeds", "0-100000000"), "--seeds"),
    ("sweep-grid-no-values", _sweep("--grid", "knn.k="), "--grid"),
    ("sweep-out-file", _sweep(out=lambda c, ws: copy(ws, "precious.txt", c)), "precious.txt"),
    ("sweep-out-user-folder", _sweep(out=lambda c, ws: user_folder(c)), "mine"),
    # ---- report
    ("report-missing", lambda c, ws: ["report", str(c / "none")], "none"),
    ("report-not-a-run", lambda c, ws: ["report", str(user_folder(c))], "no evaluation results"),
    ("report-metrics-not-json", lambda c, ws: (fake_run(c), (c / "run" / "eval-x-s0" / "metrics.json").write_text("{"),
                                               ["report", str(c / "run")])[2], "metrics.json"),
    ("report-metrics-no-method",
     lambda c, ws: (fake_run(c), (c / "run" / "eval-x-s0" / "metrics.json").write_text("{}"),
                    ["report", str(c / "run")])[2], "metrics.json: method"),
    ("report-folder-is-users", lambda c, ws: (fake_run(c), user_folder(c / "run", "report"),
                                              ["report", str(c / "run")])[2], "report"),
    ("report-no-evaluations", lambda c, ws: ["report", str(fake_run(c, with_eval=False))], "no evaluation results"),
    ("report-out-file", lambda c, ws: ["report", str(fake_run(c)), "--out", str(copy(ws, "precious.txt", c))],
     "precious.txt"),
    ("report-out-is-run", lambda c, ws: ["report", str(fake_run(c)), "--out", str(c / "run")], "is also an input"),
    ("report-out-user-folder", lambda c, ws: ["report", str(fake_run(c)), "--out", str(user_folder(c))], "mine"),
]


def snapshot(*roots: Path) -> dict[str, str]:
    """SHA-256 of every file under `roots`, by path."""
    digests = {}
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            digests[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def test_the_table_is_large_enough():
    assert len(CASES) >= 60
    assert len({name for name, _, _ in CASES}) == len(CASES)


@pytest.mark.parametrize("build,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(build, expected, ws, tmp_path, capsys, monkeypatch):
    case = tmp_path / "case"
    case.mkdir()
    monkeypatch.chdir(case)
    argv = build(case, ws)
    before = snapshot(case, ws)
    code = main(argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured.err
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    assert expected in lines[0], lines[0]
    assert snapshot(case, ws) == before  # nothing changed, added or removed
