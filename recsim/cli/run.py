"""`recsim run SPEC`, `recsim sweep SPEC`, `recsim report RUN_DIR`: pipelines over YAML specs."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from recsim.errors import ConfigError


def run(args: argparse.Namespace) -> int:
    from recsim.evaluation.report import (
        collect_rows,
        evaluation_folders,
        summary_lines,
        write_overrides,
    )
    from recsim.pipeline.spec import load_spec, parse_seeds
    from recsim.pipeline.stages import run_spec

    seeds = parse_seeds(args.seeds) if args.seeds else None
    spec = load_spec(args.spec, args.set or [], seeds)
    if args.quiet:
        spec.progress = False
    if args.raw is not None:
        spec.data.raw_dir = str(args.raw)
    write_overrides(args.out, args.spec, args.set, args.seeds, args.raw)
    results = run_spec(spec, args.out, stream=sys.stderr)
    reused = sum(r.reused for r in results)
    frame = collect_rows(Path(args.out), evaluation_folders(args.out))
    print(summary_lines(frame))
    print(f"stages: {len(results)} ({reused} reused)")
    print(f"results: {Path(args.out) / 'report' / 'results.csv'}")
    print(f"report: {Path(args.out) / 'report' / 'report.html'}")
    return 0


def report(args: argparse.Namespace) -> int:
    from recsim.evaluation.report import build_report, evaluation_folders
    from recsim.io import read_json

    run_dir = Path(args.run_dir)
    names = evaluation_folders(run_dir)
    if not names:
        raise ConfigError(f"{run_dir}: no evaluation results (eval-*/metrics.json); run `recsim run` first")
    title = args.title
    if title is None and (run_dir / "spec.json").is_file():
        title = read_json(run_dir / "spec.json").get("name")
    out = Path(args.out) if args.out is not None else run_dir / "report"
    page = build_report(run_dir, out, names, title=title or run_dir.name, figures=not args.no_figures)
    print(f"report: {page}")
    return 0


def sweep(args: argparse.Namespace) -> int:
    from recsim.pipeline.spec import parse_seeds
    from recsim.pipeline.sweep import SweepConfig, run_sweep

    config = SweepConfig(spec=str(args.spec), out=str(args.out), grid=list(args.grid or []),
                         seeds=parse_seeds(args.seeds), sets=list(args.set or []), backend=args.backend,
                         workers=args.workers, address=args.address or os.environ.get("RAY_ADDRESS"))
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
