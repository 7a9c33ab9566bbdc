"""python -m indexer build|info|search|evaluate ...

  build     embed a dataset's splits into a collection (float + code vectors, payload); resumable
  info      what a collection holds and which model built it
  search    the k nearest images to one image file, from the command line
  evaluate  retrieval quality on the standard protocol (test queries against the train database)
  snapshot  back a collection up with its stored images, into one file
  restore   put a snapshot back (a new collection, or --force to replace one)
  upgrade   convert an older collection (the ±1 code layout; --model: its model's code length) from its stored
            vectors (no model run)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from indexer.factory import open_store
from indexer.ranking import METRICS
from indexer.store import StoreError
from training import config


def _store_args(p: argparse.ArgumentParser) -> None:
    config.add_flags(p, "collection", "qdrant", "data_dir")
    p.add_argument("--shards", type=int, default=1, help="shard number for a new server collection")
    p.add_argument("--replicas", type=int, default=1, help="replication factor for a new server collection")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m indexer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="index a dataset into a collection")
    config.add_flags(b, "model")
    config.add_flags(b, "dataset")
    b.add_argument("--splits", default="train,test", help="comma-separated splits to index")
    b.add_argument("--batch-size", type=int, default=256, help="images embedded per forward pass")
    b.add_argument("--limit", type=int, default=None, help="index at most this many rows per split")
    b.add_argument("--recreate", action="store_true", help="drop the collection first")
    b.add_argument("--quantized", action="store_true",
                   help="embedded engine, new collection: binary quantization and no HNSW graph, for millions of "
                        "images on a small machine (bench/search.py measures it)")
    _store_args(b)

    i = sub.add_parser("info", help="describe a collection")
    _store_args(i)

    s = sub.add_parser("search", help="search with one image file")
    s.add_argument("image", type=Path)
    config.add_flags(s, "model")
    s.add_argument("--metric", choices=METRICS, default="cosine")
    s.add_argument("-k", type=int, default=10)
    _store_args(s)

    e = sub.add_parser("evaluate", help="retrieval quality: test split queries against the train split")
    config.add_flags(e, "model")
    config.add_flags(e, "dataset")
    e.add_argument("--output", default=None, help="report folder (default: the model dir)")
    e.add_argument("--max-queries", type=int, default=None, help="evaluate on the first N test images only")
    e.add_argument("--bench-json", default=None, help="also write the summary here (bench/results/retrieval.json)")
    _store_args(e)

    sn = sub.add_parser("snapshot", help="back a collection up with its stored images")
    sn.add_argument("--out", required=True, type=Path, help="the file to write (a .tar)")
    _store_args(sn)

    r = sub.add_parser("restore", help="restore a snapshot")
    r.add_argument("--from", dest="archive", required=True, type=Path, help="a file written by `snapshot`")
    r.add_argument("--force", action="store_true", help="replace the collection if it exists")
    _store_args(r)

    u = sub.add_parser("upgrade", help="convert an older collection's codes to the current layout")
    _store_args(u)
    u.add_argument("--model", default=None, help="the model dir that built it: derive its codes again for this "
                   "version's code length (training.codes) from the stored vectors")

    args = parser.parse_args(argv)
    args.qdrant = config.resolve_location(args.qdrant, args.data_dir)  # the one rule, with this command's data dir
    try:
        return _run(args)
    except (StoreError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _run(args) -> int:
    if args.command == "upgrade":
        from indexer.upgrade import upgrade

        print(json.dumps(upgrade(args.collection, args.qdrant, args.model)))
        return 0
    if args.command in ("snapshot", "restore"):
        from indexer.backup import restore, snapshot
        from indexer.uploads import image_dir_of

        if args.command == "restore":
            print(json.dumps(restore(args.archive, args.collection, args.qdrant, image_dir_of(args.data_dir),
                                     args.force), indent=2))
            return 0
        report = snapshot(args.collection, args.qdrant, image_dir_of(args.data_dir), args.out)
        print(json.dumps({k: v for k, v in report.items() if k != "meta"}, indent=2))
        return 0
    if args.command == "evaluate":
        from indexer.evaluate import evaluate

        report = evaluate(args.model, args.dataset, qdrant=args.qdrant, collection=args.collection, output=args.output,
                          max_queries=args.max_queries, bench_json=args.bench_json)
        print(json.dumps(report["summary"], indent=2))
        return 0

    store = open_store(args.collection, args.qdrant, shards=args.shards, replicas=args.replicas,
                       quantized=getattr(args, "quantized", False))
    try:
        if args.command == "info":
            print(json.dumps({"collection": args.collection, "points": store.count(),
                              "labels": store.label_counts(), "meta": store.meta}, indent=2))
            return 0
        from indexer.embedder import Embedder

        embedder = Embedder(args.model)
        if args.command == "build":
            from indexer.pipeline import build_index

            report = build_index(embedder, store, args.dataset, tuple(args.splits.split(",")),
                                 args.batch_size, args.limit, args.recreate)
            print(json.dumps({"collection": args.collection, "points": store.count(), **report.as_dict()}))
            return 0
        if args.command == "search":
            from indexer.query import Query, QueryPath

            meta = store.require(embedder.meta)
            queries = QueryPath(embedder, store, meta, *embedder.profile_for(meta))
            answer = queries.picture(args.image.read_bytes(), Query(args.metric, args.k))
            for hit in answer.hits:
                print(f"{hit.score:8.4f}  {hit.payload['label']:<14} {hit.id}  {json.dumps(hit.payload['source'])}")
            return 0
    finally:
        store.close()
    return 1


if __name__ == "__main__":
    sys.exit(main())
