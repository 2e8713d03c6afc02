"""`recsim run SPEC`, `recsim sweep SPEC`, `recsim report RUN_DIR`: pipelines over YAML specs."""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from recsim.cli.arguments import positive_int
from recsim.errors import ConfigError, DataError
from recsim.io import read_json
from recsim.outdir import claim_dir, exclusive, output_dir
from recsim.seeds import parse_seeds

RUN_KIND = "run"
SWEEP_KIND = "sweep"
REPORT_KIND = "report"


def run(args: argparse.Namespace) -> int:
    from recsim.evaluation.report import collect_rows, summary_lines, write_overrides
    from recsim.pipeline.spec import load_spec
    from recsim.pipeline.stages import plan, run_spec

    seeds = parse_seeds(args.seeds) if args.seeds else None
    spec = load_spec(args.spec, args.set or [], seeds)
    if args.quiet:
        spec.progress = False
    if args.raw is not None:
        spec.data.raw_dir = str(args.raw)
    try:
        plan(spec)  # every stage resolves its config: a bad value fails before --out is touched
    except ConfigError as error:
        raise ConfigError(f"{args.spec}: {error}") from None
    inputs = [args.spec] + ([] if spec.data.name == "synthetic" else [spec.data.resolved_raw_dir()])
    with output_dir(args.out, RUN_KIND, inputs=inputs) as out:
        write_overrides(out, args.spec, args.set, args.seeds, args.raw)
        results = run_spec(spec, out, stream=sys.stderr, jobs=args.jobs)
    reused = sum(r.reused for r in results)
    frame = collect_rows(Path(args.out), [r.name for r in results if r.name.startswith("eval-")])
    print(summary_lines(frame))
    print(f"stages: {len(results)} ({reused} reused)")
    print(f"results: {Path(args.out) / 'report' / 'results.csv'}")
    print(f"report: {Path(args.out) / 'report' / 'report.html'}")
    return 0


def report(args: argparse.Namespace) -> int:
    from recsim.evaluation.report import build_report, evaluation_folders
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: run folder not found")
    names = evaluation_folders(run_dir)
    if not names:
        raise ConfigError(f"{run_dir}: no evaluation results (eval-*/metrics.json); run `recsim run` first")
    for name in names:
        _check_metrics(run_dir / name / "metrics.json")
    title = args.title
    if title is None and (run_dir / "spec.json").is_file():
        saved = read_json(run_dir / "spec.json")
        title = saved.get("name") if isinstance(saved, dict) else None
    with exclusive(run_dir), _report_folder(run_dir, args.out) as out:
        page = build_report(run_dir, out, names, title=title or run_dir.name, figures=not args.no_figures)
    print(f"report: {page}")
    return 0


def _check_metrics(path: Path) -> None:
    """`DataError` naming `path` unless it holds an evaluation's results (method and rows)."""
    info = read_json(path)
    if not isinstance(info, dict) or not isinstance(info.get("method"), str):
        raise DataError(str(path), "method", "missing; not the metrics of a recsim evaluation stage")
    if not isinstance(info.get("rows"), list) or not all(isinstance(row, dict) for row in info["rows"]):
        raise DataError(str(path), "rows", "expected a list of result rows")


@contextlib.contextmanager
def _report_folder(run_dir: Path, out: Path | None) -> Iterator[Path]:
    """`out` claimed as a report folder, or by default `RUN/report`, the run's own report stage
    folder (checked to be recsim's: a stage folder or absent)."""
    if out is None:
        yield claim_dir(run_dir / "report", "stage")
        return
    with output_dir(out, REPORT_KIND, inputs=[run_dir]) as claimed:
        yield claimed


def sweep(args: argparse.Namespace) -> int:
    from recsim.pipeline.sweep import SweepConfig, run_sweep

    config = SweepConfig(spec=str(args.spec), out=str(args.out), grid=list(args.grid or []),
                         seeds=parse_seeds(args.seeds), sets=list(args.set or []), backend=args.backend,
                         workers=args.workers, address=args.address or os.environ.get("RAY_ADDRESS"))
    with output_dir(args.out, SWEEP_KIND, inputs=[args.spec]):
        summary = run_sweep(config)
    print(summary.table)
    print(f"sweep results: {summary.csv}")
    print(f"sweep figure: {summary.figure}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("run", help="run a pipeline spec (cached, resumable stages)")
    p.add_argument("spec", type=Path, help="a YAML spec (see pipelines/)")
    p.add_argument("--out", required=True, type=Path, help="run directory (stages go to OUT/<stage>/)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a spec key, e.g. user_model.epochs=2 or methods.dorl.penalty.lambda_E=1")
    p.add_argument("--seeds", help="run seeds, e.g. 0,1,2 or 0-4 (replaces the spec's)")
    p.add_argument("--raw", type=Path, default=None, help="folder of the dataset's raw files (data.raw_dir)")
    p.add_argument("--quiet", action="store_true", help="no per-stage progress bars")
    p.add_argument("--jobs", type=positive_int, default=1, metavar="N",
                   help="run independent stages in N worker processes (default 1); the results equal "
                        "--jobs 1's, memory grows with N (each worker loads its inputs); no progress bars")
    p.set_defaults(handler=run)

    p = subparsers.add_parser("sweep", help="run a spec over a grid of overrides and seeds, in parallel")
    p.add_argument("spec", type=Path)
    p.add_argument("--out", required=True, type=Path, help="sweep directory (one run folder per point and seed)")
    p.add_argument("--grid", action="append", metavar="KEY=V1,V2,...",
                   help="a swept key and its values; several --grid flags make a product")
    p.add_argument("--seeds", default="0", help="seeds, e.g. 0-4")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="fixed overrides for every point")
    p.add_argument("--backend", choices=["local", "ray"], default="local")
    p.add_argument("--workers", type=int, default=None, help="local backend: processes (default: CPU count)")
    p.add_argument("--address", default=None, help="ray backend: cluster address (default: $RAY_ADDRESS, else local)")
    p.set_defaults(handler=sweep)

    p = subparsers.add_parser("report", help="rebuild results.csv, results.md, figures and report.html of a run")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--out", type=Path, default=None, help="default RUN_DIR/report")
    p.add_argument("--title", default=None)
    p.add_argument("--no-figures", action="store_true")
    p.set_defaults(handler=report)
