"""Shared by the benchmarks: one JSON line per figure, each with its baseline and the ratio between them."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    import torch

    return {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "processor": platform.processor()
            or platform.machine(), "python": platform.python_version()}


class Recorder:
    def __init__(self, name: str):
        self.name = name
        self.lines: list[dict] = []

    def figure(self, figure: str, value: float, unit: str, baseline: float | None = None,
               baseline_name: str | None = None, better: str = "higher", **extra) -> dict:
        line = {"benchmark": self.name, "figure": figure, "value": round(value, 4), "unit": unit}
        if baseline is not None:
            num, den = (value, baseline) if better == "higher" else (baseline, value)
            line.update(baseline=round(baseline, 4), baseline_name=baseline_name,
                        ratio=round(num / den, 2) if den else None, better=better)
        line.update(extra)
        print(json.dumps(line), flush=True)
        self.lines.append(line)
        self.save()  # a benchmark cut short still leaves what it measured
        return line

    def save(self) -> Path:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"{self.name}.json"
        path.write_text(json.dumps({"machine": machine(), "when": time.strftime("%Y-%m-%d %H:%M"),
                                    "figures": self.lines}, indent=2) + "\n")
        return path


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = np.asarray(samples_s) * 1000
    return {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)),
            "p99": float(np.percentile(ms, 99))}


def fill_shape(draw, kind: str, cx: int, cy: int, r: int, colour) -> None:
    """A circle, square or triangle of radius `r` centred at (cx, cy): the generated shapes of the tests and of
    bench/folders.py."""
    if kind == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif kind == "square":
        draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=colour)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)


def serve_process(argv: list[str], env: dict | None = None, cwd: Path | None = None,
                  timeout_s: float = 180) -> tuple:
    """Start a command that serves the app with `--port 0` (the first free port from 7860 up, Gradio's own search,
    which moves on when the bind fails: no port found free and bound later by someone else) and wait for the URL it
    prints. Returns (Popen, url); the process's output lines keep arriving in `proc.lines`."""
    import re
    import subprocess
    import threading

    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace")
    proc.lines = []
    found, url = threading.Event(), []

    def read():
        for line in proc.stdout:
            proc.lines.append(line)
            match = re.search(r"Running on local URL:\s+(\S+)", line)
            if match and not found.is_set():
                url.append(match.group(1).rstrip("/") + "/")
                found.set()
        found.set()  # the process ended

    threading.Thread(target=read, daemon=True).start()
    if not found.wait(timeout_s) or not url:
        proc.kill()
        raise RuntimeError("the app did not start: " + "".join(proc.lines)[-2000:])
    return proc, url[0]


def apt_install(packages: list[str]) -> None:
    """apt-get install Debian packages a benchmark reads (icon themes, textures), non-interactively."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages], check=True, env=env)
