"""Faults of the command line: outputs over users' files, two writers, planted pickles, inputs
that would exhaust memory, a full disk, modes and the top-level error handler."""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from recsim.cli import main
from recsim.data.synthetic import generate_world
from recsim.errors import OutputError
from recsim.io import MARKER, mark
from recsim.outdir import exclusive, lock_path

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "pipelines" / "tiny.yaml"
ENV = dict(os.environ, PYTHONPATH=str(REPO))


def one_error_line(captured) -> str:
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return lines[0]


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("world") / "world"
    generate_world("tiny", seed=0).save(path)
    return path


# ----------------------------------------------------------------------------- users' files


def test_out_over_a_users_folder_leaves_it_as_it_was(tmp_path, capsys):
    mine = tmp_path / "mydir"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    assert main(["data", "synth", "--preset", "tiny", "--out", str(mine)]) == 2
    assert "mydir" in one_error_line(capsys.readouterr())
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"]
    assert (mine / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mydir"]  # no lock, temp or .old left beside it


def test_out_over_a_file_never_turns_it_into_a_folder(tmp_path, capsys):
    precious = tmp_path / "precious.txt"
    precious.write_text("keep")
    for command in (["data", "synth", "--preset", "tiny", "--out", str(precious)],
                    ["run", str(TINY), "--out", str(precious), "--quiet"]):
        assert main(command) == 2
        assert "precious.txt" in one_error_line(capsys.readouterr())
        assert precious.is_file() and precious.read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious.txt"]


def test_prepare_with_out_equal_to_raw_keeps_the_raw_files(tmp_path, capsys, world_dir):
    from recsim.data.synthetic import write_kuairec

    raw = tmp_path / "raw"
    write_kuairec(generate_world("tiny", seed=0), raw)
    before = {p.name: p.read_bytes() for p in raw.iterdir()}
    assert main(["data", "prepare", "kuairec", "--raw", str(raw), "--out", str(raw)]) == 2
    assert "is also an input" in one_error_line(capsys.readouterr())
    assert {p.name: p.read_bytes() for p in raw.iterdir()} == before


def test_rerunning_into_its_own_output_works_and_the_marker_says_the_kind(tmp_path, capsys):
    out = tmp_path / "w"
    for _ in range(2):
        assert main(["data", "synth", "--preset", "tiny", "--out", str(out)]) == 0
    assert json.loads((out / MARKER).read_text()) == {"recsim": "dataset"}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert main(["data", "synth", "--preset", "tiny", "--format", "kuairec", "--out", str(out)]) == 2
    assert "'dataset'" in one_error_line(capsys.readouterr())


def test_an_empty_existing_folder_is_used(tmp_path, capsys):
    out = tmp_path / "empty"
    out.mkdir()
    assert main(["data", "synth", "--preset", "tiny", "--out", str(out)]) == 0
    assert (out / "meta.json").is_file()


# ----------------------------------------------------------------------------- one writer per folder


def test_a_second_run_on_the_same_out_fails_at_once(tmp_path, capsys):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "recsim", "run", str(TINY), "--out", str(out), "--quiet"]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO, env=ENV)
    try:
        deadline = time.monotonic() + 120
        while not (lock_path(out).is_file() and lock_path(out).read_text().strip()):
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        start = time.monotonic()
        assert main(["run", str(TINY), "--out", str(out), "--quiet"]) == 2
        assert time.monotonic() - start < 30
        line = one_error_line(capsys.readouterr())
        assert f"is being written by process {first.pid}" in line
        assert first.poll() is None  # the first run lives on
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # the killed holder's lock is stale: the kernel released it, the next writer takes it over
    assert lock_path(out).is_file()
    with exclusive(out) as lock:
        assert lock.read_text().strip() == str(os.getpid())
    assert not lock_path(out).exists()


def test_a_lock_file_left_with_a_dead_pid_is_taken_over(tmp_path):
    out = tmp_path / "out"
    lock_path(out).write_text("999999999\n")
    with exclusive(out), pytest.raises(OutputError, match=f"process {os.getpid()}"), exclusive(out):
        pass


# ----------------------------------------------------------------------------- planted pickles


class Planted:
    """Unpickling this object writes a file: proof that code from a file ran."""

    def __init__(self, proof: Path) -> None:
        self.proof = proof

    def __reduce__(self):
        return (Path.write_text, (self.proof, "code ran"))


@pytest.fixture(scope="module")
def user_model_dir(tmp_path_factory, world_dir) -> Path:
    from recsim.data.schema import Dataset
    from recsim.user_model.train import TrainConfig, train_ensemble

    out = tmp_path_factory.mktemp("um") / "um"
    train_ensemble(Dataset.load(world_dir), TrainConfig(members=1, epochs=1, batch_size=1024, negative_rounds=1),
                   out, progress=False)
    return out


def test_a_planted_pickle_as_user_model_weights_is_refused(user_model_dir, world_dir, tmp_path, capsys):
    import shutil

    import torch

    model = tmp_path / "um"
    shutil.copytree(user_model_dir, model)
    proof = tmp_path / "proof.txt"
    torch.save(Planted(proof), model / "member0.pt")
    assert main(["user-model", "eval", "--model", str(model), "--data", str(world_dir)]) == 2
    assert "not a readable user model" in one_error_line(capsys.readouterr())
    assert not proof.exists()


def test_a_planted_pickle_as_a_user_model_checkpoint_never_runs(user_model_dir, world_dir, tmp_path, capsys):
    import shutil

    import torch

    model = tmp_path / "um"
    shutil.copytree(user_model_dir, model)
    mark(model, "user_model")
    proof = tmp_path / "proof.txt"
    torch.save(Planted(proof), model / "checkpoints" / "member0.pt")
    code = main(["user-model", "train", "--data", str(world_dir), "--out", str(model), "--members", "1", "--epochs",
                 "1", "--batch-size", "1024", "--negative-rounds", "1", "--resume", "--quiet"])
    assert code == 2
    assert "checkpoints" in one_error_line(capsys.readouterr())
    assert not proof.exists()


def test_nan_user_model_weights_are_refused(user_model_dir, world_dir, tmp_path, capsys):
    import shutil

    import torch

    model = tmp_path / "um"
    shutil.copytree(user_model_dir, model)
    state = torch.load(model / "member0.pt", weights_only=True)
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = torch.full_like(state[name], float("nan"))
    torch.save(state, model / "member0.pt")
    assert main(["user-model", "eval", "--model", str(model), "--data", str(world_dir)]) == 2
    assert "NaN or infinite weights" in one_error_line(capsys.readouterr())


@pytest.fixture(scope="module")
def trained_policy(tmp_path_factory, world_dir) -> tuple[Path, Path]:
    """(a trained MBPO policy folder, the reward-table folder it was trained on): one short epoch."""
    from recsim.data.schema import Dataset
    from recsim.reward.table import RewardTable

    root = tmp_path_factory.mktemp("policy")
    world = Dataset.load(world_dir)
    RewardTable.from_truth(world.truth, world.truth_users, world.truth_items).save(root / "table")
    assert main(["policy", "train", "--preset", "mbpo", "--world", str(world_dir), "--reward", str(root / "table"),
                 "--out", str(root / "mbpo"), "--epochs", "1", "--steps", "200", "--eval-episodes", "5",
                 "--no-embeddings", "--quiet"]) == 0
    return root / "mbpo", root / "table"


@pytest.mark.parametrize("planted", ["policy.pt", "checkpoints/last.pt"])
def test_a_planted_pickle_as_policy_weights_or_checkpoint_never_runs(planted, trained_policy, world_dir, tmp_path,
                                                                    capsys):
    import shutil

    import torch

    policy, table = trained_policy
    run = tmp_path / "run"
    shutil.copytree(policy, run)
    proof = tmp_path / "proof.txt"
    torch.save(Planted(proof), run / planted)
    if planted == "policy.pt":
        code = main(["policy", "evaluate", "--run", str(run), "--world", str(world_dir)])
    else:
        code = main(["policy", "train", "--preset", "mbpo", "--world", str(world_dir), "--reward", str(table),
                     "--out", str(run), "--epochs", "2", "--steps", "200", "--eval-episodes", "5", "--no-embeddings",
                     "--resume", "--quiet"])
    assert code == 2
    assert Path(planted).name in one_error_line(capsys.readouterr())
    assert not proof.exists()


@pytest.mark.parametrize("target", ["reward_table.npz", "embeddings.npz"])
def test_a_planted_pickle_inside_an_npz_is_never_unpickled(target, world_dir, tmp_path, capsys):
    folder = tmp_path / "planted"
    folder.mkdir()
    proof = tmp_path / "proof.txt"
    evil = np.empty(1, dtype=object)
    evil[0] = Planted(proof)
    np.savez(folder / target, mean=evil, uncertainty=evil, user_ids=np.arange(1), item_ids=np.arange(1), item=evil)
    flag = "--reward" if target == "reward_table.npz" else "--user-model"
    code = main(["policy", "train", "--preset", "random", "--world", str(world_dir), flag, str(folder),
                 "--out", str(tmp_path / "p"), "--quiet"])
    assert code == 2
    assert target in one_error_line(capsys.readouterr())
    assert not proof.exists()


# ----------------------------------------------------------------------------- bounded memory


MEASURE = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
from recsim.cli import main
import recsim.pipeline.stages, recsim.pipeline.sweep  # the imports the command makes, before the baseline

def hwm_mb():
    line = next(l for l in open("/proc/self/status") if l.startswith("VmHWM"))
    return int(line.split()[1]) / 1024

before = hwm_mb()
code = main(sys.argv[1:])
print(code, before, hwm_mb())
"""


def _measure(args: list[str], cwd: Path) -> tuple[int, float, float]:
    """(exit code, peak MB after the imports, peak MB after the command) of `recsim ARGS` in a child."""
    done = subprocess.run([sys.executable, "-c", MEASURE, *args], capture_output=True, text=True, cwd=cwd, env=ENV,
                          timeout=300, check=False)
    code, before, after = done.stdout.split()
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    return int(code), float(before), float(after)


ALIAS_BOMB = ("a: &a [x, x, x, x, x, x, x, x, x]\n"
              + "".join(f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi")))


@pytest.mark.parametrize("args", [["run", "bomb.yaml", "--out", "o"],
                                  ["run", str(TINY), "--seeds", "0-100000000", "--out", "o"],
                                  ["sweep", str(TINY), "--seeds", "0-100000000", "--out", "o"],
                                  ["run", str(TINY), "--set", "knn.k=" + ALIAS_BOMB, "--out", "o"]],
                         ids=["alias-bomb-file", "run-seed-range", "sweep-seed-range", "alias-bomb-set"])
def test_tiny_inputs_fail_fast_in_bounded_memory(args, tmp_path):
    (tmp_path / "bomb.yaml").write_text(ALIAS_BOMB)
    assert len(ALIAS_BOMB.encode()) < 500  # 9^9 = 387 M values once expanded
    code, before, after = _measure(args, tmp_path)
    assert code == 2
    assert after - before < 100, (before, after)  # MB over the imports' own peak
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------- disk full, modes


@pytest.fixture
def small_tmpfs(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True,
                              check=False)
    except FileNotFoundError:
        pytest.skip("no mount command")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip() or 'not permitted'})")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_is_one_line_naming_the_path(small_tmpfs, capsys):
    assert main(["data", "synth", "--preset", "tiny", "--out", str(small_tmpfs / "w")]) == 2
    line = one_error_line(capsys.readouterr())
    assert "No space left on device" in line and str(small_tmpfs) in line
    assert not list(small_tmpfs.iterdir())  # temporary files removed


@pytest.mark.parametrize("umask,file_mode,dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700),
                                                     (0o002, 0o664, 0o775)])
def test_outputs_follow_the_umask(umask, file_mode, dir_mode, tmp_path):
    old = os.umask(umask)
    try:
        assert main(["data", "synth", "--preset", "tiny", "--out", str(tmp_path / "w")]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "w").stat().st_mode) == dir_mode
    for path in (tmp_path / "w").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == file_mode, path


# ----------------------------------------------------------------------------- the top-level handler


def test_debug_shows_the_traceback_of_a_user_error(tmp_path, monkeypatch):
    from recsim.errors import DataError

    argv = ["data", "info", "coat", "--root", str(tmp_path / "none")]
    with pytest.raises(DataError):
        main(["--debug", *argv])
    monkeypatch.setenv("RECSIM_DEBUG", "1")
    with pytest.raises(DataError):
        main(argv)


def test_a_real_bug_keeps_its_traceback(monkeypatch):
    import recsim.cli.run as run_commands

    def broken(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(run_commands, "report", broken)
    with pytest.raises(ZeroDivisionError):
        main(["report", "anywhere"])


def test_an_os_error_names_its_path(tmp_path, capsys):
    out = tmp_path / ("x" * 300)  # longer than a file name may be
    assert main(["data", "synth", "--preset", "tiny", "--out", str(out)]) == 2
    line = one_error_line(capsys.readouterr())
    assert "File name too long" in line and str(tmp_path) in line


def test_json_output_never_holds_nan(tmp_path, capsys):
    world = generate_world("tiny", seed=0)
    world.truth[:] = np.nan
    world.save(tmp_path / "w")
    assert main(["data", "info", "synthetic", "--root", str(tmp_path / "w"), "--json"]) == 0
    text = capsys.readouterr().out
    summary = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in JSON output"))
    assert summary["truth"]["mean"] is None


def test_a_utf8_bom_is_read_like_the_csv_reader_reads_it(tmp_path):
    from recsim.data.loaders.kuairec import read_category_lists

    path = tmp_path / "item_categories.csv"
    path.write_bytes(b"\xef\xbb\xbfvideo_id,feat\n0,[1]\n1,\"[0, 2]\"\n")
    assert read_category_lists(path).tolist() == [[False, True, False], [True, False, True]]


def test_a_report_shows_only_the_current_specs_methods(tmp_path, capsys):
    import yaml

    data = yaml.safe_load(TINY.read_text())
    data["evaluation"].update(modes=["FB"], episodes=10, ope=["ips"])
    data["methods"] = [{"name": "random"}, {"name": "greedy-knn", "method": "greedy", "reward": "knn"}]
    big, small = tmp_path / "big.yaml", tmp_path / "small.yaml"
    big.write_text(yaml.safe_dump(data))
    data["methods"] = data["methods"][:1]
    small.write_text(yaml.safe_dump(data))
    out = tmp_path / "run"
    assert main(["run", str(big), "--out", str(out), "--quiet"]) == 0
    assert "greedy-knn" in capsys.readouterr().out
    assert main(["run", str(small), "--out", str(out), "--quiet"]) == 0
    assert "greedy-knn" not in capsys.readouterr().out
    assert "greedy-knn" not in (out / "report" / "results.csv").read_text()
    assert main(["report", str(out), "--no-figures"]) == 0
    assert "greedy-knn" not in (out / "report" / "results.csv").read_text()
