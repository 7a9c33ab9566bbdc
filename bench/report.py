"""Write bench/RESULTS.md from bench/results/*.json (each figure next to its baseline and the ratio), and the
README's "Latest figures" table from the same files: the README quotes no benchmark figure by hand."""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
README = HERE.parent / "README.md"
START, END = "<!-- bench:figures -->", "<!-- /bench:figures -->"

# (benchmark, figure, what it is): the figures the README shows, in its order
README_FIGURES = [
    ("embedding", "embed_images_per_s[demo model, 28 px]", "embedding, batched, demo model (over its views)"),
    ("embedding", "embed_images_per_s[convnext-tiny size, 224 px]", "embedding, a ConvNeXt-tiny-sized model at 224 px"),
    ("indexing", "index_70k_seconds", "indexing 70,000 images end to end (HNSW included)"),
    ("search", "p50_ms[70k real, embedded+hnsw, cosine]", "search at 70k, cosine (HNSW)"),
    ("search", "p50_ms[70k real, embedded+hnsw, hamming]", "search at 70k, hamming (tie rule in the engine)"),
    ("search", "p50_ms[70k real, embedded+hnsw, hamming+rerank]", "search at 70k, hamming+rerank"),
    ("search", "peer_p50_ms[70k real, faiss IndexBinaryFlat, hamming k-nearest]",
     "peer at 70k: FAISS binary k-nearest, no tie rule"),
    ("search", "p50_ms[1000k synthetic, embedded quantized, cosine]", "search at 1M synthetic, cosine, `--quantized`"),
    ("search", "p50_ms[1000k synthetic, embedded quantized, hamming]",
     "search at 1M synthetic, hamming, `--quantized`"),
    ("search", "p50_ms[1000k synthetic, embedded quantized, hamming+rerank]",
     "search at 1M synthetic, hamming+rerank, `--quantized`"),
    ("search", "peer_p50_ms[1000k synthetic, faiss IndexBinaryFlat, hamming k-nearest]",
     "peer at 1M: FAISS binary k-nearest, no tie rule"),
    ("search", "code_ram_bytes_per_point[70k real, embedded+hnsw]", "RAM for the codes, per image"),
    ("serving", "in_process_query_p50_ms", "one query in-process (decode, embed, search)"),
    ("serving", "search_http_p50_ms[1 clients, gradio_client, TLS context, no downloads]",
     "`/search` over HTTP, 1 client, \"Fast calls\""),
    ("serving", "throughput_rps[16 clients, gradio_client, TLS context, no downloads]",
     "throughput, 16 clients, \"Fast calls\""),
    ("explore", "http_search_examples_p50_ms[2 positive + 1 negative ids]",
     "`/search_examples` over HTTP, 2 positive + 1 negative ids"),
    ("explore", "map_seconds", "the Collection tab's map of 70,000 images (2,000 sampled, t-SNE)"),
    ("mixed", "search_p95_ms_under_writes", "`/search` p95 while 16 clients also add and delete"),
    ("folders", "digits_test_accuracy[fine-tuned]", "`make collection` on scikit-learn's digits: test accuracy"),
    ("folders", "clipart2000_seconds_to_served_page", "`make collection`, 2,000 drawings: until the page answers"),
    ("clipart-stage2", "original_in_top5[greyscale, fine-tuned, cosine]",
     "openclipart: a drawing found from its greyscale copy, in the top 5"),
    ("clipart-stage2", "category_p_at_10[half size, fine-tuned, cosine]",
     "openclipart: category precision@10, a drawing at half size"),
    ("robustness", "label_p_at_10[product photo, cosine]", "a product photo: label precision@10, cosine"),
    ("robustness-surfaces-lamp", "label_p_at_10[on a surface: marble, cosine]",
     "a garment lying on marble: label precision@10, cosine"),
    ("robustness-surfaces-lamp", "label_p_at_10[on a surface, shaded as a photo: photographed, cosine]",
     "a garment on a photographed surface, shaded as a photo: label precision@10, cosine"),
    ("masks", "mask_iou[photographed]", "a garment on a photographed surface: the found object's IoU with it"),
    ("robustness-surfaces-edge", "predicted_class_accuracy[on a surface, shaded as a photo: table edge]",
     "a garment on a table, the floor beyond its edge, shaded as a photo: the predicted class"),
]


def _load() -> dict[str, dict]:
    out = {}
    for path in sorted((HERE / "results").glob("*.json")):
        data = json.loads(path.read_text())
        if "figures" in data:
            out[path.stem] = data
    return out


def _extra(f: dict) -> dict:
    return {k: v for k, v in f.items() if k not in
            ("benchmark", "figure", "value", "unit", "baseline", "baseline_name", "ratio", "better")}


def results_md(results: dict[str, dict]) -> str:
    out = ["# Benchmark results", "", "Written by `make bench` (`python bench/report.py`) from `bench/results/*.json`.",
           ""]
    for name, data in results.items():
        m = data["machine"]
        out += [f"## {name}", "", f"{data['when']} · {m['cpus']} CPUs ({m['processor']}), "
                f"torch threads {m['torch_threads']}, Python {m['python']}", "",
                "| figure | value | baseline | ratio | details |", "|---|---|---|---|---|"]
        for f in data["figures"]:
            base = f"{f['baseline']} ({f['baseline_name']})" if "baseline" in f else ""
            ratio = f"{f['ratio']}×" if f.get("ratio") is not None else ""
            extra = _extra(f)
            out.append(f"| {f['figure']} | {f['value']} {f['unit']} | {base} | {ratio} | "
                       f"{json.dumps(extra) if extra else ''} |")
        out.append("")
    return "\n".join(out)


def _fmt(value: float) -> str:
    """Three significant digits, thousands separated (12345.6 → 12,346; 97.94 → 97.9; 0.62174 → 0.622)."""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _script(results_name: str) -> str:
    """The benchmark that wrote bench/results/<results_name>.json: the longest leading part of the name (cut at
    hyphens) that is a script in bench/ (`robustness-surfaces-encoder12` → `robustness`, run with `--name`)."""
    parts = results_name.split("-")
    for n in range(len(parts), 0, -1):
        if (HERE / f"{'-'.join(parts[:n])}.py").is_file():
            return "-".join(parts[:n])
    return results_name


def readme_table(results: dict[str, dict]) -> str:
    rows = ["| what | figure | beside it | run |", "|---|---|---|---|"]
    for bench, name, what in README_FIGURES:
        data = results.get(bench, {})
        f = next((f for f in data.get("figures", []) if f["figure"] == name), None)
        if f is None:
            rows.append(f"| {what} | not measured (`bench/{_script(bench)}.py`) | | |")
            continue
        beside = f"{_fmt(f['baseline'])} {f['unit']}, {f['baseline_name']}" if "baseline" in f else ""
        for key in ("recall_at_10", "recall_at_10_vs_tie_rule", "p95"):
            if key in f:
                beside += ("; " if beside else "") + f"{key.replace('_', ' ')} {_fmt(f[key])}"
        script = _script(bench)
        run = f"`bench/{script}.py`" + ("" if script == bench else f" (`{bench}.json`)")
        rows.append(f"| {what} | {_fmt(f['value'])} {f['unit']} | {beside} | {run}, {data['when']} |")
    return "\n".join(rows)


def main() -> None:
    results = _load()
    (HERE / "RESULTS.md").write_text(results_md(results))
    text = README.read_text()
    if START in text and END in text:
        head, rest = text.split(START, 1)
        README.write_text(head + START + "\n" + readme_table(results) + "\n" + END + rest.split(END, 1)[1])
    print(HERE / "RESULTS.md")


if __name__ == "__main__":
    main()
