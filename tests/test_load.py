"""16 concurrent clients × 50 searches through the Gradio API: no errors, the documented shape, no leak."""

import threading

import pytest
from gradio_client import Client, handle_file

pytestmark = pytest.mark.slow


def _rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def test_sixteen_clients_fifty_searches_each(served, shapes_dir):
    client, _, _ = served
    files = [str(p) for kind in ("circle", "square", "triangle") for p in sorted((shapes_dir / kind).glob("*"))[:4]]
    errors, shapes, done = [], [], []
    lock = threading.Lock()
    warm = threading.Event()
    rss_after_warmup = []

    def worker(n: int) -> None:
        c = Client(client.src, verbose=False)
        for i in range(50):
            metric = ("cosine", "hamming", "hamming+rerank")[(n + i) % 3]
            try:
                gallery, results, prediction, offset = c.predict(handle_file(files[(n + i) % len(files)]), metric, 5,
                                                                 api_name="/search")
                ok = (len(gallery) == len(results) == 5 and offset == 0 and "label" in prediction
                      and all({"rank", "id", "score", "label", "source"} <= set(r) for r in results))
                with lock:
                    shapes.append(ok)
                    done.append(1)
                    if len(done) == 100:
                        rss_after_warmup.append(_rss_mb())
                        warm.set()
            except Exception as e:
                with lock:
                    errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(shapes) == 800 and all(shapes)
    assert _rss_mb() <= rss_after_warmup[0] * 1.10, (rss_after_warmup[0], _rss_mb())
