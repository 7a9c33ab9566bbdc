import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indexer.metrics import average_precision, code_balance, precision_at, recall_at


def test_average_precision_on_hand_computed_rankings():
    rel = np.array([[1, 0, 1, 0, 0],   # hits at ranks 1 and 3: (1/1 + 2/3) / 2
                    [0, 0, 0, 0, 1],   # one hit at rank 5: 1/5
                    [0, 0, 0, 0, 0]])  # nothing relevant: 0
    assert average_precision(rel) == pytest.approx([5 / 6, 0.2, 0.0])
    # AP@2 divides by the relevant items within the cut-off
    assert average_precision(rel, cutoff=2) == pytest.approx([1.0, 0.0, 0.0])
    assert average_precision(rel, cutoff=3) == pytest.approx([5 / 6, 0.0, 0.0])


def test_precision_and_recall_at_k():
    rel = np.array([[1, 0, 1, 0], [0, 1, 1, 1]])
    assert precision_at(rel, [1, 2, 4]) == pytest.approx({1: 0.5, 2: 0.5, 4: 0.625})
    # query 0 has 2 relevant items in all, query 1 has 4 (one never retrieved)
    assert recall_at(rel, [1, 4], np.array([2, 4])) == pytest.approx({1: 0.25, 4: (1.0 + 0.75) / 2})


def test_code_balance_reports_per_bit_ones_and_correlation():
    codes = np.array([[1, 1, 0], [0, 0, 1], [1, 1, 1], [0, 0, 0]], dtype=np.uint8)
    b = code_balance(codes)
    assert b["ones_per_bit"] == [0.5, 0.5, 0.5]
    # bits 0 and 1 are identical (|r| = 1); bit 2 is uncorrelated with both (r = 0)
    assert b["mean_abs_bit_correlation"] == pytest.approx((1 + 0 + 0) / 3)


def test_evaluate_writes_report_figure_and_card(tiny_model, shapes_dir, indexed, tmp_path):
    from indexer.evaluate import evaluate

    qdrant, name = indexed
    report = evaluate(str(tiny_model), str(shapes_dir), qdrant=str(qdrant), collection=name, output=str(tmp_path),
                      bench_json=str(tmp_path / "bench.json"))
    summary = json.loads((tmp_path / "bench.json").read_text())
    assert set(summary) >= {"accuracy", "bits", "cosine", "hamming", "hamming_rerank", "baselines"}
    assert set(summary["baselines"]) == {"raw_pixels", "phash64"}
    assert (tmp_path / "retrieval.png").stat().st_size > 10_000
    assert "## Retrieval" in (tiny_model / "README.md").read_text()
    # the learned codes beat pixels and pHash on shapes whose colour and position vary
    assert summary["hamming"]["map_all"] > summary["baselines"]["phash64"]["map_all"]
    assert summary["cosine"]["map_all"] > 0.8
    q = report["qdrant"]
    assert q["cosine"]["top10_overlap_with_exact"] > 0.95  # the collection's answers are the exact ones
    assert q["hamming"]["top10_overlap_with_exact"] > 0.95


def test_the_first_k_follow_the_whole_ranking_even_where_a_tie_crosses_the_cut():
    """`ranking.tops` (and `top`, which the engine tests and benchmarks compare with) equal the first k of the
    full stable ranking: points that tie across the k-th place come in database order, not as a partition
    happens to leave them."""
    from indexer import ranking

    rng = np.random.default_rng(0)
    floats = rng.normal(size=(40, 8)).astype(np.float32)
    floats /= np.linalg.norm(floats, axis=1, keepdims=True)
    codes = (rng.random((40, 16)) > 0.5).astype(np.uint8)
    db_floats, db_codes = np.repeat(floats, 6, axis=0), np.repeat(codes, 6, axis=0)  # each point six times
    for metric in ranking.METRICS:
        expected = ranking.rank(metric, floats[:10], codes[:10], db_floats, db_codes)[:, :4]
        np.testing.assert_array_equal(ranking.tops(metric, floats[:10], codes[:10], db_floats, db_codes, 4), expected)
        assert ranking.top(metric, floats[3], codes[3], db_floats, db_codes, 4).tolist() == expected[3].tolist()


def test_the_model_comparison_asks_other_questions_than_the_robustness_bench_and_reads_committed_models(tmp_path):
    """bench/compare.py's queries are never bench/robustness.py's (so a model tuned on one is checked on the other),
    and `REV:PATH` is the model dir as that git revision holds it."""
    import subprocess

    from bench.compare import model_dir, query_rows
    from bench.robustness import bench_rows

    for n in (100, 300, 1000, 1250):
        rows = query_rows(10000, n)
        assert len(set(rows)) == n and not set(rows) & set(bench_rows(10000))
    root = Path(__file__).resolve().parent.parent
    if subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True).returncode != 0:
        pytest.skip("not a git checkout")
    committed = model_dir("HEAD:models/fmnist-small", tmp_path)
    shown = subprocess.run(["git", "show", "HEAD:models/fmnist-small/config.json"], cwd=root, capture_output=True,
                           check=True).stdout
    assert (committed / "config.json").read_bytes() == shown and (committed / "model.safetensors").is_file()
    assert model_dir(str(root / "models/fmnist-small"), tmp_path) == root / "models/fmnist-small"


def test_the_clipart_bench_makes_a_model_anew_for_another_backbone_and_reuses_it_for_the_same(tiny_backbone,
                                                                                               shapes_dir, tmp_path):
    """bench/clipart.py (and bench/styles.py) keep each method's model between runs: measuring another backbone must
    not read the model made from the last one, and the same backbone must not be made again."""
    import shutil

    from safetensors.torch import load_file, save_file

    from bench.clipart import cache_dir, model_of

    other = tmp_path / "other-backbone"
    shutil.copytree(tiny_backbone, other)
    weights = load_file(other / "model.safetensors")
    first = next(iter(weights))
    weights[first] = weights[first] + 0.5
    save_file(weights, other / "model.safetensors", metadata={"format": "pt"})
    root = tmp_path / "models"
    made, metrics = model_of("backbone", shapes_dir, str(tiny_backbone), root, {})
    again, metrics_again = model_of("backbone", shapes_dir, str(tiny_backbone), root, {})
    assert again == made and metrics_again == metrics
    anew, metrics_anew = model_of("backbone", shapes_dir, str(other), root, {})
    assert anew != made and metrics_anew["model"] == str(other)
    a, b = load_file(anew / "model.safetensors"), load_file(made / "model.safetensors")
    key = next(k for k in a if k.endswith(first))  # the searcher's name for the backbone's weight
    assert not a[key].equal(b[key])
    # a trained method's model is kept apart for each training setting given; one left at the default is not named
    tuned = {s: cache_dir("fine-tuned", str(tiny_backbone), root, {"epochs": None, "body_lr_scale": s})
             for s in (None, 0.1, 1)}
    assert len(set(tuned.values())) == 3 and tuned[None] == cache_dir("fine-tuned", str(tiny_backbone), root, {})


def test_the_robustness_bench_measures_only_the_transforms_asked_for():
    """`--only` picks transforms by part of their name, any case, and several texts add up; none given is all."""
    from bench.robustness import TRANSFORMS, chosen_transforms
    from bench.surfaces import SURFACES

    surfaces = chosen_transforms(["SURFACE"])
    assert len(surfaces) == 2 * len(SURFACES) and all("surface" in n for n in surfaces)  # two shadings each
    both = chosen_transforms(["window", "product photo,"])
    assert sorted(both) == sorted(["on a surface: window light", "on a surface, shaded as a photo: window light",
                                   "product photo, grainy (σ 12)"])
    assert chosen_transforms([]) == TRANSFORMS and chosen_transforms(["no such transform"]) == {}


def test_a_surface_scene_says_whether_its_garment_is_patterned():
    """The bench splits the original-in-top-5 by `info["patterned"]`: the flag is true exactly when the garment was
    drawn in two colours (stripes or checks), a plain one being a single colour where its original is even."""
    from bench.surfaces import _garment, scene

    square = Image.new("L", (28, 28), 0)
    square.paste(200, (4, 4, 24, 24))
    seen = set()
    for seed in range(8):
        rgb, alpha, patterned = _garment(square, np.random.default_rng(seed), 112, 0.0)
        assert alpha[40:72, 40:72].min() > 0.99  # the square's middle, away from its edges' ramp
        assert (rgb[40:72, 40:72].reshape(-1, 3).std(0).max() > 10) == patterned
        photo, _ = scene(square, np.random.default_rng(seed), "linen")
        seen.add(photo.info["patterned"])
    assert seen == {True, False}


@pytest.mark.parametrize("depth", [1, 3, 4])
def test_gimp_patterns_are_read_as_rgb(tmp_path, depth):
    """The bench's photographed surfaces come from GIMP's .pat tiles: a big-endian header (its own size, version,
    width, height, bytes a pixel, "GPAT", a name), then the pixels; grey ones come back grey in RGB, alpha dropped."""
    import struct

    from bench.surfaces import read_pattern

    px = np.random.default_rng(depth).integers(0, 256, (5, 7, depth), dtype=np.uint8)
    name = b"a tile\0"
    path = tmp_path / "tile.pat"
    path.write_bytes(struct.pack(">5I4s", 24 + len(name), 1, 7, 5, depth, b"GPAT") + name + px.tobytes())
    rgb = read_pattern(path)
    assert rgb.shape == (5, 7, 3)
    assert np.array_equal(rgb, np.repeat(px, 3, -1) if depth == 1 else px[..., :3])
    path.write_bytes(b"\0" * 40)
    with pytest.raises(ValueError, match="not a GIMP pattern"):
        read_pattern(path)


def test_the_readme_names_the_script_behind_each_results_file():
    """A results file written under `--name` (robustness-surfaces-…) is credited to the script that wrote it, not to a
    script of that name, which does not exist."""
    from bench.report import _script

    assert _script("robustness-surfaces-encoder12") == "robustness"
    assert _script("clipart-codes384") == "clipart" and _script("masks") == "masks"
    assert _script("no-such-bench") == "no-such-bench"
