"""`recsim data synth | prepare | info`."""
from __future__ import annotations

import argparse
from pathlib import Path

from recsim.data.loaders.kuairec import read_category_lists
from recsim.data.schema import DATASET_KIND
from recsim.data.stats import format_summary, summarise
from recsim.data.store import DATASET_NAMES, load_dataset
from recsim.data.synthetic import PRESETS, generate_world, write_kuairec
from recsim.io import atomic_dir, to_json, write_json
from recsim.outdir import output_dir
from recsim.seeds import seed_argument

KUAIREC_FILES_KIND = "kuairec-files"
"""The marker kind of a synthetic world written in KuaiRec 2.0's file format."""


def synth(args: argparse.Namespace) -> int:
    kind = DATASET_KIND if args.format == "native" else KUAIREC_FILES_KIND
    with output_dir(args.out, kind, inputs=[args.categories_from], create=False) as out:
        real = read_category_lists(args.categories_from) if args.categories_from else None
        world = generate_world(args.preset, args.seed, item_categories=real)
        if args.format == "native":
            world.save(out)
        else:
            with atomic_dir(out, kind) as tmp:
                write_kuairec(world, tmp)
        write_json(out / "config.json", {"command": "data synth", "preset": args.preset, "seed": args.seed,
                                         "format": args.format, "categories_from": args.categories_from,
                                         "world": world.meta["config"]})
    print(format_summary(summarise(world)))
    print(f"wrote {args.format} world to {args.out}")
    return 0


def prepare(args: argparse.Namespace) -> int:
    with output_dir(args.out, DATASET_KIND, inputs=[args.raw, args.cache], create=False) as out:
        dataset = load_dataset(args.name, args.raw, cache_dir=args.cache)
        dataset.save(out)
        write_json(out / "config.json", {"command": "data prepare", "name": args.name, "raw": str(args.raw)})
    print(format_summary(summarise(dataset)))
    print(f"prepared {args.name} in {args.out}")
    return 0


def info(args: argparse.Namespace) -> int:
    summary = summarise(load_dataset(args.name, args.root, cache_dir=args.cache))
    print(to_json(summary) if args.json else format_summary(summary))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="generate, prepare and describe datasets")
    commands = parser.add_subparsers(dest="data_command", required=True)

    p = commands.add_parser("synth", help="generate the synthetic world")
    p.add_argument("--preset", choices=sorted(PRESETS), default="kuairec")
    seed_argument(p)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--format", choices=["native", "kuairec"], default="native",
                   help="native: recsim's Parquet form; kuairec: KuaiRec 2.0's CSV files")
    p.add_argument("--categories-from", type=Path, default=None,
                   help="a KuaiRec item_categories.csv whose real category lists the items take")
    p.set_defaults(handler=synth)

    p = commands.add_parser("prepare", help="convert a dataset's raw files into recsim's form")
    p.add_argument("name", choices=DATASET_NAMES)
    p.add_argument("--raw", required=True, type=Path, help="folder of the raw files (or a synthetic world)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--cache", type=Path, default=None,
                   help="cache folder (default $RECSIM_CACHE_DIR or ~/.cache/recsim)")
    p.set_defaults(handler=prepare)

    p = commands.add_parser("info", help="describe a dataset")
    p.add_argument("name", choices=DATASET_NAMES)
    p.add_argument("--root", required=True, type=Path, help="raw files or a prepared dataset")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--cache", type=Path, default=None)
    p.set_defaults(handler=info)
