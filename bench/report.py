"""Write bench/RESULTS.md from bench/results/*.json: each figure next to its baseline and the ratio."""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    out = ["# Benchmark results", "", "Written by `make bench` (`python bench/report.py`) from `bench/results/*.json`.",
           ""]
    for path in sorted((HERE / "results").glob("*.json")):
        data = json.loads(path.read_text())
        if "figures" not in data:
            continue
        m = data["machine"]
        out += [f"## {path.stem}", "", f"{data['when']} · {m['cpus']} CPUs ({m['processor']}), "
                f"torch threads {m['torch_threads']}, Python {m['python']}", "",
                "| figure | value | baseline | ratio | details |", "|---|---|---|---|---|"]
        for f in data["figures"]:
            base = f"{f['baseline']} ({f['baseline_name']})" if "baseline" in f else ""
            ratio = f"{f['ratio']}×" if f.get("ratio") is not None else ""
            extra = {k: v for k, v in f.items() if k not in
                     ("benchmark", "figure", "value", "unit", "baseline", "baseline_name", "ratio", "better")}
            out.append(f"| {f['figure']} | {f['value']} {f['unit']} | {base} | {ratio} | "
                       f"{json.dumps(extra) if extra else ''} |")
        out.append("")
    (HERE / "RESULTS.md").write_text("\n".join(out))
    print(HERE / "RESULTS.md")


if __name__ == "__main__":
    main()
