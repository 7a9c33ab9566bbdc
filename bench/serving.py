"""Latency and throughput of /search through the Gradio HTTP API with 1, 4 and 16 concurrent gradio_client
clients, a fixed number of requests each; also the app's start-up time and an in-process query's latency.

python bench/serving.py [--model models/fmnist-small] [--requests 50]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Recorder, percentiles, serve_process  # noqa: E402
from training import config  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def query_files(n: int, folder: Path) -> list[str]:
    from training.data import load_image_dataset

    files = []
    for i, image in enumerate(load_image_dataset("fashion_mnist")["test"].select(range(n))["image"]):
        path = folder / f"q{i}.png"
        image.save(path)
        files.append(str(path))
    return files


def _caller(mode: str, url: str):
    """One client's way to run /search on an image file; returns the number of results."""
    import ssl

    from gradio_client import Client, handle_file

    if mode != "raw HTTP":
        kwargs = {}
        if "no downloads" in mode:
            kwargs["download_files"] = False
        if "TLS context" in mode:  # README "Calling it from Python": one TLS context, not one per HTTP request
            kwargs["ssl_verify"] = ssl.create_default_context()
        client = Client(url, verbose=False, **kwargs)
        return lambda f: len(client.predict(handle_file(f), "cosine", 10, api_name="/search")[1])
    import httpx

    http, api = httpx.Client(timeout=60), url.rstrip("/") + "/gradio_api"

    def call(f: str) -> int:
        with open(f, "rb") as fh:
            path = http.post(f"{api}/upload", files={"files": fh}).json()[0]
        image = {"path": path, "meta": {"_type": "gradio.FileData"}}
        data = [image, "cosine", 10, [], 0, ""]  # /search's inputs: image, metric, k, labels, threshold, like_id
        event = http.post(f"{api}/call/search", json={"data": data}).json()["event_id"]
        with http.stream("GET", f"{api}/call/search/{event}") as stream:
            lines = [x for x in stream.iter_lines() if x.startswith("data:")]
        return len(json.loads(lines[-1][5:])[1])

    return call


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def in_process(rec: Recorder, model: str, collection: str, qdrant: str, files: list[str]) -> None:
    from app.service import SearchService, Settings

    t0 = time.perf_counter()
    service = SearchService(Settings(model_dir=model, collection=collection, qdrant=qdrant,
                                     data_dir=tempfile.mkdtemp()))
    rec.figure("service_start_seconds", time.perf_counter() - t0, "s", target=5)
    times = []
    for f in files * 3:
        data = Path(f).read_bytes() + b"\0" * (len(times) % 7)  # defeat the embedding cache: every query decodes
        t0 = time.perf_counter()
        service.search(data, "cosine", 10)
        times.append(time.perf_counter() - t0)
    rec.figure("in_process_query_p50_ms", percentiles(times)["p50"], "ms", target=15,
               p95=round(percentiles(times)["p95"], 2))
    service.close()


def main() -> None:
    p = argparse.ArgumentParser()
    config.add_flags(p, "model", "collection", "qdrant")  # the app's defaults
    p.add_argument("--requests", type=int, default=50)
    args = p.parse_args()
    from training.config import resolve_location

    args.qdrant = resolve_location(args.qdrant)  # the app below runs with a temporary data dir: name it here
    rec = Recorder("serving")
    files = query_files(20, Path(tempfile.mkdtemp()))
    in_process(rec, args.model, args.collection, args.qdrant, files)

    env = dict(os.environ, PYTHONPATH=str(ROOT), GRADIO_ANALYTICS_ENABLED="False")
    t0 = time.perf_counter()
    server, url = serve_process([sys.executable, "-m", "app", "--model", args.model, "--collection", args.collection,
                                 "--qdrant", args.qdrant, "--port", "0", "--data-dir", tempfile.mkdtemp(),
                                 "--requests-per-min", "0", "--upload-mb-per-min", "0"],  # one client, many requests
                                env=env, cwd=ROOT, timeout_s=120)
    try:
        rec.figure("app_listening_seconds", time.perf_counter() - t0, "s", note="process start incl. imports")
        # The same endpoint through: gradio_client as it comes (it downloads the 10 result images, and builds a
        # new TLS context, loading the CA bundle, for each of its HTTP requests); gradio_client as the README
        # recommends (one reused TLS context, result images as URLs); and each of the two changes alone; plain
        # HTTP with one keep-alive httpx connection (upload, /call/search, its SSE stream): the server's own cost.
        recommended = "gradio_client, TLS context, no downloads"
        for mode, levels in (("gradio_client", (1, 4, 16)), (recommended, (1, 4, 16)),
                             ("gradio_client, no downloads", (1,)), ("gradio_client, TLS context", (1,)),
                             ("raw HTTP", (1, 16))):
            single_rps = None
            for clients in levels:
                latencies, errors = [], []

                def worker(n: int, lat=latencies, err=errors, mode=mode) -> None:
                    call = _caller(mode, url)
                    for i in range(args.requests):
                        t = time.perf_counter()
                        try:
                            assert call(files[(n + i) % len(files)]) == 10
                            lat.append(time.perf_counter() - t)
                        except Exception as e:  # counted, not raised: the figure is the error count
                            err.append(repr(e))

                threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
                cpu0 = cpu_seconds(server.pid)
                t0 = time.perf_counter()
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                wall = time.perf_counter() - t0
                server_cpu_ms = (cpu_seconds(server.pid) - cpu0) * 1000 / max(1, len(latencies))
                rps = len(latencies) / wall
                single_rps = single_rps or rps
                if not latencies:
                    raise RuntimeError(f"every {mode} call failed: {errors[:3]}")
                pct = percentiles(latencies)
                tag = f"{clients} clients" if mode == "gradio_client" else f"{clients} clients, {mode}"
                rec.figure(f"search_http_p50_ms[{tag}]", pct["p50"], "ms", p95=round(pct["p95"], 2),
                           errors=len(errors), requests=clients * args.requests, first_errors=errors[:3],
                           server_cpu_ms_per_request=round(server_cpu_ms, 1))
                rec.figure(f"throughput_rps[{tag}]", rps, "req/s", single_rps, "1 client")
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(rec.save())


if __name__ == "__main__":
    main()
