"""Reports: results.csv rows and columns, mean +- std tables, figures, a self-contained report.html."""
from __future__ import annotations

import base64
import re

import numpy as np
import pandas as pd
import pytest

from recsim.data.synthetic import generate_world
from recsim.evaluation.report import (
    build_report,
    collect_rows,
    evaluation_folders,
    summary_table,
)
from recsim.evaluation.rollout import EpisodeLog
from recsim.io import write_json

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def fake_run(tmp_path, r_tra, families=None, references=(), mcd=0.5, categories=True, ope=None):
    """A run folder with a tiny world and eval folders for methods a, b over seeds 0, 1."""
    world = generate_world("tiny", 0)
    if not categories:
        world.item_categories = np.zeros((world.n_items, 0), dtype=bool)
        world.category_names = []
    world.save(tmp_path / "data" / "dataset")
    families = families or {}
    rng = np.random.default_rng(0)
    names = []
    for method in ("a", "b"):
        for seed in (0, 1):
            name = f"eval-{method}-s{seed}"
            folder = tmp_path / name
            folder.mkdir()
            rows = []
            for mode in ("FB", "NX_0"):
                items = rng.integers(0, world.n_items, (5, 4))
                items[:, 3] = -1
                log = EpisodeLog(mode, np.arange(5), items, np.where(items >= 0, 1.0, 0.0).astype(np.float32),
                                 np.full(5, 3), np.ones(5, bool))
                log.save(folder / f"episodes_{mode}.npz")
                rows.append({"mode": mode, "R_tra": r_tra[(method, seed)], "R_tra_low": 0.0, "R_tra_high": 9.0,
                             "length": 3.0, "R_each": r_tra[(method, seed)] / 3, "MCD": mcd, "gini": 0.4,
                             "coverage": 0.1, "ndcg@10_truth": 0.3, "ope_step_ips": 1.0 + seed,
                             "ope_step_ips_low": 0.5, "ope_step_ips_high": 1.5, "ope_step_ips_ess": 0.5,
                             "ope_step_ips_unreliable": False, "ope_step_ips_reason": "",
                             "ope_pscore_source": "logged", **(ope or {})})
            curve = {"x": [1, 2, 3], "y": [0.1, 0.2, 0.4]}
            write_json(folder / "metrics.json", {"method": method, "family": families.get(method, "x"),
                                                 "reference": method in references, "seed": seed, "rows": rows,
                                                 "training_curve": curve})
            names.append(name)
    return names


R_TRA = {("a", 0): 1.0, ("a", 1): 3.0, ("b", 0): 2.0, ("b", 1): 2.0}


def test_results_csv_has_one_row_per_method_seed_mode(tmp_path):
    names = fake_run(tmp_path, R_TRA)
    assert evaluation_folders(tmp_path) == sorted(names)
    build_report(tmp_path, tmp_path / "report", names, title="t")
    results = pd.read_csv(tmp_path / "report" / "results.csv")
    assert len(results) == 2 * 2 * 2
    assert list(results.columns[:10]) == ["method", "family", "seed", "mode", "R_tra", "length", "R_each",
                                          "MCD", "gini", "coverage"]
    assert {"ndcg@10_truth", "ope_step_ips", "ope_step_ips_unreliable"} <= set(results.columns)
    assert not results.duplicated(["method", "seed", "mode"]).any()
    row = results[(results.method == "a") & (results.seed == 1) & (results["mode"] == "NX_0")]
    assert row["R_tra"].item() == 3.0


def test_markdown_table_is_mean_and_sample_std_across_seeds(tmp_path):
    names = fake_run(tmp_path, R_TRA)
    build_report(tmp_path, tmp_path / "report", names, title="my title", figures=False)
    text = (tmp_path / "report" / "results.md").read_text()
    assert text.startswith("# my title")
    assert "## FB" in text and "## NX_0" in text
    a_row = next(line for line in text.splitlines() if line.startswith("| a |"))
    assert "2.000 +- 1.414" in a_row  # mean(1, 3), std(1, 3) with ddof=1
    half = 12.706204736174698 * 1.4142135623730951 / 1.4142135623730951  # t_{0.975, 1} * std / sqrt(2)
    assert f"[0.000, {2 + half:.3f}]" in a_row  # 2 - half < 0 is clipped: R_tra cannot be negative
    b_row = next(line for line in text.splitlines() if line.startswith("| b |"))
    assert "2.000 +- 0.000" in b_row
    table = summary_table(collect_rows(tmp_path, names))
    assert set(table["seeds"]) == {2}
    assert "ope_step_ips_low" not in table.columns


def test_rows_are_grouped_by_family_and_references_are_named(tmp_path):
    names = fake_run(tmp_path, R_TRA, families={"a": "static", "b": "model_based"}, references={"a"})
    build_report(tmp_path, tmp_path / "report", names, title="t", figures=False)
    table = summary_table(collect_rows(tmp_path, names))
    assert list(table[table["mode"] == "FB"]["method"]) == ["b", "a"]  # model-based before reference
    assert list(table[table["mode"] == "FB"]["family"]) == ["model-based", "reference"]
    text = (tmp_path / "report" / "results.md").read_text()
    assert "- **references**: a: reference rows" in text
    assert "clipped at 0" in text and "docs/protocol.md" in text


def test_header_lists_every_override_and_marks_the_title(tmp_path):
    from recsim.evaluation.report import write_overrides

    names = fake_run(tmp_path, R_TRA)
    write_json(tmp_path / "spec.json", {"name": "x", "data": {"name": "synthetic", "preset": "tiny", "world_seed": 0},
                                        "user_model": {"members": 2, "epochs": 1}, "evaluation": {"n_episodes": 5},
                                        "methods": [{"name": "a", "algorithm": "a2c", "params": {"epochs": 2}}]})
    write_overrides(tmp_path, "pipelines/x.yaml", ["user_model.epochs=1", "knn.k=5"], "0-1")
    page = build_report(tmp_path, tmp_path / "report", names, title="x (published settings)", figures=False)
    text = page.read_text()
    assert "x (published settings) (modified by 3 overrides, see the header)" in text
    assert "--set user_model.epochs=1; --set knn.k=5; --seeds 0-1" in text
    assert "user model: 2 members, 1 epoch(s); a: epochs=2" in text
    assert "100 users x 200 items" in text and "0, 1 (2 run seeds)" in text
    write_overrides(tmp_path, "pipelines/x.yaml", [], None)
    text = build_report(tmp_path, tmp_path / "report", names, title="x", figures=False).read_text()
    assert "<h1>x</h1>" in text and "none (the spec file as written)" in text


def test_missing_metric_shows_na(tmp_path):
    names = fake_run(tmp_path, R_TRA, mcd=float("nan"))
    table = summary_table(collect_rows(tmp_path, names))
    assert set(table["MCD"]) == {"n/a"}


def test_a_figure_with_nothing_to_show_is_left_out(tmp_path):
    names = fake_run(tmp_path, R_TRA, categories=False)
    html = build_report(tmp_path, tmp_path / "report", names).read_text()
    assert "Category exposure" not in html and "Concentration of item exposure" in html
    assert len(list((tmp_path / "report" / "figures").glob("*.png"))) == 3


def test_every_method_of_the_comparison_has_its_own_colour():
    from recsim.evaluation.figures import METHOD_COLOURS, method_styles
    from recsim.policy.methods import METHODS

    assert set(METHODS) <= set(METHOD_COLOURS)
    styles = method_styles({**{m: "model-based" for m in METHODS}, "new1": "offline", "new2": "static"})
    colours = [(s.colour, s.linestyle) for s in styles.values()]
    assert len(set(colours)) == len(colours)


def test_report_html_is_self_contained_with_png_figures(tmp_path):
    names = fake_run(tmp_path, R_TRA)
    page = build_report(tmp_path, tmp_path / "report", names)
    html = page.read_text()
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)
    assert len(images) == 4  # R_tra, Lorenz, categories, training curves
    assert all(base64.b64decode(data).startswith(PNG_MAGIC) for data in images)
    assert "src='http" not in html and "<script" not in html
    pngs = list((tmp_path / "report" / "figures").glob("*.png"))
    assert len(pngs) == 4 and all(p.read_bytes().startswith(PNG_MAGIC) for p in pngs)


def test_missing_results_is_a_data_error(tmp_path):
    from recsim.errors import DataError

    with pytest.raises(DataError, match="metrics.json"):
        build_report(tmp_path, tmp_path / "report", ["eval-x-s0"])


def test_unreliable_and_undefined_estimates_are_marked_not_printed_as_sound(tmp_path):
    undefined = {"ope_step_snips": None, "ope_step_snips_low": None, "ope_step_snips_high": None,
                 "ope_step_snips_ess": 0.0, "ope_step_snips_unreliable": True,
                 "ope_step_snips_reason": "undefined: every importance weight is 0",
                 "ope_rtra_pdis": 4.0, "ope_rtra_pdis_low": 3.0, "ope_rtra_pdis_high": 5.0,
                 "ope_rtra_pdis_ess": 0.001, "ope_rtra_pdis_unreliable": True,
                 "ope_rtra_pdis_reason": "effective sample size 0.10% of the rows < 1%"}
    names = fake_run(tmp_path, R_TRA, ope=undefined)
    build_report(tmp_path, tmp_path / "report", names, title="t", figures=False)
    text = (tmp_path / "report" / "results.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| a |"))
    assert "[unreliable in 2 of 2 seeds: undefined: every importance weight is 0]" in row
    assert "4.000 +- 0.000 [unreliable in 2 of 2 seeds: effective sample size" in row
    assert not re.search(r"\bnan\b", text.lower())
    assert "1.500 +- 0.707 |" in row  # ope_step_ips: sound, printed plainly
    header = next(line for line in text.splitlines() if line.startswith("- **off-policy columns**"))
    assert "ope_step_*: one-step value" in header and "ope_rtra_*: episode value" in header
    page = (tmp_path / "report" / "report.html").read_text()
    assert page.count("<td class='unreliable'>") == 2 * 2 * 2  # two cells, two methods, two modes
    csv = pd.read_csv(tmp_path / "report" / "results.csv")
    assert csv["ope_step_snips"].isna().all() and csv["ope_step_snips_unreliable"].all()
