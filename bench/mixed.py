"""Searches under write load: 16 gradio_client clients for a bounded time, calling /search, /add (new pictures
and already-stored ones), /delete and /check_duplicates, against `python -m app` on the demo collection; the
same clients searching only, for the read-only figure beside it. Reports /search p50/p95 for both, the counts of
each call and the errors, and checks what a growing collection must keep (the point count adds up, every added
picture is found first by itself, no deleted id comes back).

python bench/mixed.py [--model models/fmnist-small] [--collection fashion_mnist] [--seconds 60]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Recorder, percentiles  # noqa: E402
from indexer.ranking import METRICS  # noqa: E402
from training import config  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = 16


def mixed_load(url: str, own: list[list[Path]], search_files: list[str], seconds: float, writes: bool = True,
               seed: int = 0) -> dict:
    """`own[n]`: the pictures client n alone adds and deletes (so each one's fate is that client's last answer).
    A deleted picture is never added again, so any search sent after a delete was answered must not return it."""
    from gradio_client import Client, handle_file

    lock = threading.Lock()
    gone: set[str] = set()  # ids whose delete was answered
    present: dict[str, str] = {}  # picture path -> id, after an answered add
    calls = {"search": 0, "add_new": 0, "add_again": 0, "delete": 0, "check_duplicates": 0}
    search_s: list[float] = []
    errors: list[str] = []
    violations: list[str] = []
    deadline = time.monotonic() + seconds

    def client(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        # README "Fast calls": one TLS context, result images as URLs (as it comes, the client's own CPU is the limit)
        c = Client(url, verbose=False, ssl_verify=ssl.create_default_context(), download_files=False)
        fresh, mine = list(own[n]), {}  # mine: path -> id, added and not deleted
        while time.monotonic() < deadline:
            r = rng.random()
            op = "search" if not writes or r < 0.5 else "add" if r < 0.75 else "delete" if r < 0.85 else "check"
            try:
                if op == "search":
                    with lock:
                        before = set(gone)
                    file = rng.choice(search_files + [str(p) for p in mine])
                    t0 = time.perf_counter()
                    _, results, *_ = c.predict(handle_file(file), rng.choice(METRICS),
                                               10, api_name="/search")
                    took = time.perf_counter() - t0
                    with lock:
                        search_s.append(took)
                        calls["search"] += 1
                        violations.extend(r["id"] for r in results if r["id"] in before)
                elif op == "add":
                    again = bool(mine) and (not fresh or rng.random() < 0.3)
                    path = rng.choice(list(mine)) if again else fresh.pop()
                    added, _ = c.predict([handle_file(str(path))], "mine", api_name="/add")
                    mine[path] = added["added"][0]["id"]
                    with lock:
                        present[str(path)] = mine[path]
                        calls["add_again" if again else "add_new"] += 1
                elif op == "delete" and mine:
                    path = rng.choice(list(mine))
                    deleted, _ = c.predict(mine[path], api_name="/delete")
                    assert deleted == {"deleted": 1}, deleted
                    with lock:
                        gone.add(mine.pop(path))
                        present.pop(str(path))
                        calls["delete"] += 1
                elif op == "check":
                    c.predict(handle_file(rng.choice(search_files)), 0.99, api_name="/check_duplicates")
                    with lock:
                        calls["check_duplicates"] += 1
            except Exception as e:  # noqa: BLE001 - every error is reported
                with lock:
                    errors.append(f"{op}: {e!r}"[:300])

    threads = [threading.Thread(target=client, args=(n,)) for n in range(len(own))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"calls": calls, "errors": errors, "violations": violations, "present": dict(present), "gone": gone,
            "search_ms": percentiles(search_s) if search_s else {}}


def start_app(model, collection: str, qdrant, data_dir, *flags: str) -> tuple[subprocess.Popen, str]:
    """`python -m app` on a free loopback port, once it answers: (process, url). Its clients share one address
    here, so no per-client limit unless `flags` set one."""
    from bench.common import serve_process

    return serve_process([sys.executable, "-m", "app", "--model", str(model), "--collection", collection,
                          "--qdrant", str(qdrant), "--data-dir", str(data_dir), "--port", "0",
                          "--requests-per-min", "0", "--upload-mb-per-min", "0", *flags],
                         cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))


def pictures(folder: Path, clients: int, each: int, seed: int = 0) -> list[list[Path]]:
    """Per client, `each` new pictures no collection holds: Fashion-MNIST-like garments drawn as noise blobs."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for n in range(clients):
        mine = []
        for i in range(each):
            a = np.zeros((28, 28), np.uint8)
            h, w = rng.integers(10, 26, 2)
            y, x = rng.integers(0, 28 - h), rng.integers(0, 28 - w)
            a[y:y + h, x:x + w] = rng.integers(60, 255, (h, w))
            path = folder / f"c{n:02d}_{i:03d}.png"
            Image.fromarray(a).save(path)
            mine.append(path)
        out.append(mine)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    config.add_flags(p, "model", "collection", "qdrant")  # the app's defaults
    p.add_argument("--seconds", type=float, default=60)
    args = p.parse_args()
    from gradio_client import Client, handle_file

    from bench.serving import query_files
    from training.config import resolve_location

    rec = Recorder("mixed")
    work = Path(tempfile.mkdtemp())
    # a copy of the demo collection: the writes must not change the one `make demo` serves
    shutil.copytree(Path(resolve_location(args.qdrant)) / args.collection, work / "q" / args.collection,
                    ignore=shutil.ignore_patterns(".lock"))
    files = query_files(20, work)
    own = pictures(work, CLIENTS, 60)
    proc, url = start_app(args.model, args.collection, str(work / "q"), str(work / "data"))
    try:
        client = Client(url, verbose=False)
        initial = client.predict(api_name="/overview")["images"]
        read_only = mixed_load(url, own, files, args.seconds, writes=False)
        mixed = mixed_load(url, own, files, args.seconds, writes=True, seed=1)
        final = client.predict(api_name="/overview")["images"]
        found_first = sum(client.predict(handle_file(path), "cosine", 1, api_name="/search")[1][0]["id"] == pid
                          for path, pid in mixed["present"].items())
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    rec.figure("search_p95_ms_under_writes", mixed["search_ms"]["p95"], "ms", baseline=read_only["search_ms"]["p95"],
               baseline_name=f"read-only: {CLIENTS} clients searching only", better="lower",
               p50=round(mixed["search_ms"]["p50"], 1), read_only_p50=round(read_only["search_ms"]["p50"], 1),
               calls=mixed["calls"], errors=len(mixed["errors"]) + len(read_only["errors"]),
               deleted_ids_returned=len(mixed["violations"]), seconds=args.seconds, clients=CLIENTS)
    rec.figure("point_count", final, "points", initial=initial, added_and_kept=len(mixed["present"]),
               adds_up=final == initial + len(mixed["present"]),
               added_found_first=f"{found_first}/{len(mixed['present'])}")
    rec.save()


if __name__ == "__main__":
    main()
