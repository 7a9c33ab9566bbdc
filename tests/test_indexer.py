import numpy as np
import pytest
from PIL import Image

from indexer.embedder import Embedder
from indexer.factory import open_store
from indexer.pipeline import build_index
from indexer.ranking import METRICS
from indexer.store import IncompatibleCollection, StoreError, point_id
from tests.conftest import same_ranking
from training.data import load_image_dataset


@pytest.fixture(scope="module")
def embedder(tiny_model):
    return Embedder(tiny_model)


@pytest.fixture
def store(indexed):
    qdrant, name = indexed
    s = open_store(name, str(qdrant))
    yield s
    s.close()


def _query(embedder, shapes_dir, row=0):
    ds = load_image_dataset(str(shapes_dir))
    item = ds["train"][row]
    return embedder.embed([item["image"]], embedder.profile), ds["train"].features["label"].names[item["label"]]


def test_embeddings_have_the_schema_shapes(embedder, shapes_dir):
    emb, _ = _query(embedder, shapes_dir)
    assert emb.floats.shape == (1, embedder.float_dim) and emb.codes.shape == (1, 16)
    assert np.allclose(np.linalg.norm(emb.floats, axis=1), 1, atol=1e-5)
    assert set(np.unique(emb.codes)) <= {0, 1} and emb.codes.dtype == np.uint8


def test_bfloat16_embeddings_match_float32_and_search_the_same_collection(tiny_model, shapes_dir, store):
    images = load_image_dataset(str(shapes_dir))["train"]["image"]
    b16 = Embedder(tiny_model, precision="bfloat16")
    f32 = Embedder(tiny_model, precision="float32").embed(images, b16.profile)
    got = b16.embed(images, b16.profile)
    assert (got.codes == f32.codes).mean() >= 0.98
    assert (got.floats * f32.floats).sum(1).min() >= 0.999
    assert got.floats.dtype == np.float32 and np.allclose(np.linalg.norm(got.floats, axis=1), 1, atol=1e-5)
    assert (got.probs.argmax(1) == f32.probs.argmax(1)).mean() >= 0.98
    assert store.require(b16.meta)  # precision is informational, not a different model
    hits = store.search("cosine", got.floats[5], got.codes[5], k=1)
    assert hits[0].payload["source"]["filename"] == load_image_dataset(str(shapes_dir))["train"][5]["path"]


def test_embedding_precision_is_checked(tiny_model, monkeypatch):
    monkeypatch.setenv("EMBED_PRECISION", "fp8")
    with pytest.raises(ValueError, match="EMBED_PRECISION"):
        Embedder(tiny_model)
    monkeypatch.setenv("EMBED_PRECISION", "float32")
    assert Embedder(tiny_model).precision == "float32"


def test_a_database_image_finds_itself_first(store, embedder, shapes_dir):
    emb, label = _query(embedder, shapes_dir, row=5)
    cos = store.search("cosine", emb.floats[0], emb.codes[0], k=10)
    # a folder's image is named by its file: the source is its path, and its id does not depend on its row
    assert cos[0].payload["source"] == {"dataset": str(shapes_dir), "split": "train",
                                        "filename": load_image_dataset(str(shapes_dir))["train"][5]["path"]}
    assert cos[0].score == pytest.approx(1.0, abs=1e-4)
    ham = store.search("hamming", emb.floats[0], emb.codes[0], k=10)
    assert ham[0].score == 0 and ham[0].id == cos[0].id  # ties at distance 0 are broken by cosine
    rerank = store.search("hamming+rerank", emb.floats[0], emb.codes[0], k=10)
    assert rerank[0].id == cos[0].id
    for hits in (cos, ham, rerank):
        assert sum(h.payload["label"] == label for h in hits) >= 7
    assert [h.score for h in cos] == sorted((h.score for h in cos), reverse=True)
    assert [h.score for h in ham] == sorted(h.score for h in ham)


@pytest.mark.parametrize("metric", METRICS)
def test_the_engine_ranks_as_the_numpy_reference(store, embedder, shapes_dir, metric):
    """Every metric's answer is the reference rule's (indexer.ranking), through each of the plans: queries whose
    code many points share (the tie at distance 0 ranked by cosine inside the engine), pages past that tie, and
    codes flipped in 1 to 6 bits (the tie at 1–2 bits a filter on the codes within it; beyond, a prefetch). Hamming
    hits report the exact integer distance."""
    from indexer import ranking

    train = load_image_dataset(str(shapes_dir))["train"]
    emb = embedder.embed(train["image"], embedder.profile)
    index, rng = {p: i for i, p in enumerate(train["path"])}, np.random.default_rng(0)
    cosine = emb.floats @ emb.floats.T

    def distance(code, rows):
        return ranking.hamming(code[None], emb.codes[rows])[0]

    plans = 0
    for row in range(0, len(train), 7):
        for flips in (0, 1, 2, 4, 6):
            code = emb.codes[row].copy()
            code[rng.choice(code.size, flips, replace=False)] ^= 1
            for k, oversampling in ((10, 2), (35, 4)):
                expected = ranking.top(metric, emb.floats[row], code, emb.floats, emb.codes, k, k * oversampling)
                hits = store.search(metric, emb.floats[row], code, k=k, oversampling=oversampling, split="train")
                got = [index[h.payload["source"]["filename"]] for h in hits]
                # the same points in the same order, but for cosines equal to float32 rounding (< 1e-5) swapped
                assert np.allclose(cosine[row, got], cosine[row, expected], atol=1e-5)
                assert (distance(code, got) == distance(code, expected)).all()
                assert len(set(got) ^ set(expected.tolist())) <= 2
                if metric == "hamming":
                    assert [h.score for h in hits] == distance(code, got).tolist()
                plans += 1
    assert plans == len(range(0, len(train), 7)) * 5 * 2


def test_label_filter_and_paging(store, embedder, shapes_dir):
    emb, _ = _query(embedder, shapes_dir)
    only = store.search("cosine", emb.floats[0], emb.codes[0], k=20, labels=["triangle"])
    assert only and {h.payload["label"] for h in only} == {"triangle"}
    first = store.search("cosine", emb.floats[0], emb.codes[0], k=10)
    both = store.search("cosine", emb.floats[0], emb.codes[0], k=20)
    second = store.search("cosine", emb.floats[0], emb.codes[0], k=10, offset=10)
    assert [h.id for h in first + second] == [h.id for h in both]


def test_indexing_twice_adds_nothing(indexed, embedder, shapes_dir):
    qdrant, name = indexed
    store = open_store(name, str(qdrant))
    try:
        before = store.count()
        assert before == 120
        report = build_index(embedder, store, str(shapes_dir))
        assert report.indexed == 0 and report.skipped_existing == 120
        assert store.count() == before
        assert sum(store.label_counts().values()) == before
    finally:
        store.close()


def test_another_model_is_refused(indexed, embedder):
    qdrant, name = indexed
    store = open_store(name, str(qdrant))
    try:
        other = dict(embedder.meta, model="other", model_sha256="0" * 64)
        with pytest.raises(IncompatibleCollection, match="other"):
            store.require(other)
        # the same weights with another code length: a code from an earlier version, converted from the stored vectors
        with pytest.raises(IncompatibleCollection, match="indexer upgrade --collection"):
            store.require(dict(embedder.meta, n_bits=64))
    finally:
        store.close()


def test_mirror_views_embed_an_image_and_its_mirror_alike(tiny_model, shapes_dir, store):
    """A model trained with flips embeds the mean over an image and its mirror, so both search alike."""
    images = load_image_dataset(str(shapes_dir))["train"]["image"][:24]
    mirrored = [image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for image in images]
    both = Embedder(tiny_model, precision="float32")
    assert both.views == "image+mirror"  # what training recorded in the model's config
    a, b = both.embed(images, None), both.embed(mirrored, None)
    assert np.abs(a.floats - b.floats).max() < 1e-4 and np.abs(a.probs - b.probs).max() < 1e-4
    assert (a.codes == b.codes).mean() > 0.99
    one = Embedder(tiny_model, precision="float32", views="image")
    assert np.abs(one.embed(images, None).floats - one.embed(mirrored, None).floats).max() > 1e-3
    # a collection built from both views refuses queries embedded from one
    with pytest.raises(IncompatibleCollection, match="EMBED_VIEWS"):
        store.require(one.meta)
    with pytest.raises(ValueError, match="EMBED_VIEWS"):
        Embedder(tiny_model, views="rotations")


def test_a_second_process_cannot_open_the_embedded_collection(indexed):
    qdrant, name = indexed
    first = open_store(name, str(qdrant))
    try:
        with pytest.raises(StoreError, match="open in another process"):
            open_store(name, str(qdrant))
    finally:
        first.close()


def test_embedded_engine_client_local_mode_and_rest_requests_agree(embedder, shapes_dir, tmp_path, rest_standin):
    """One schema, three paths: the embedded engine, qdrant-client's local mode, and the store's REST requests
    (JSON models, API key, quantization settings) answered by the stand-in (tests/qdrant_standin.py: local mode
    behind REST, not a Qdrant server) give the same ids in the same order for the same query."""
    edge = open_store("agree", str(tmp_path / "edge"))
    others = [open_store("agree", ":memory:"), open_store("agree", rest_standin.url, api_key=rest_standin.api_key)]
    assert others[1].remote
    try:
        for s in (edge, *others):
            build_index(embedder, s, str(shapes_dir), splits=("train",))
        emb, _ = _query(embedder, shapes_dir, row=3)
        for other in others:
            assert other.count() == edge.count() and other.label_counts() == edge.label_counts()
            for metric in METRICS:
                for k in (10, 40):  # 40: past the points that share the query's code
                    a = edge.search(metric, emb.floats[0], emb.codes[0], k=k, exact=True)
                    b = other.search(metric, emb.floats[0], emb.codes[0], k=k, exact=True)
                    assert same_ranking(a, b)
            # /duplicates: the same seeded sample, the same pairs
            assert other.sample_ids(20, seed=3) == edge.sample_ids(20, seed=3) != edge.sample_ids(20, seed=4)
            pa, pb = edge.duplicate_pairs(0.9, sample=30, seed=3), other.duplicate_pairs(0.9, sample=30, seed=3)
            assert pa and sorted((x, y) for x, y, _ in pa) == sorted((x, y) for x, y, _ in pb)
        assert "PUT /collections/agree/points" in rest_standin.requests  # it went over HTTP
    finally:
        for s in (edge, *others):
            s.close()


def test_rest_requests_ask_for_binary_codes_quantization_shards_and_indexes(rest_standin, monkeypatch):
    """The request shape a Qdrant server receives (checked at the stand-in, which records it): the same named
    vectors as the embedded schema, `float` binary-quantized in RAM with its originals on disk, `code` as ±1 with
    Dot distance, binary-quantized in RAM and scanned without a graph, the shard number and replication factor
    asked for, the model's metadata and layout, keyword indexes on every field searches filter on; float queries of
    a collection past EXACT_UP_TO ask for rescoring with oversampling, of a smaller one for the originals only; code
    scans for the quantized scores as they are (exact for ±1)."""
    from indexer import plans

    monkeypatch.setattr(plans, "EXACT_UP_TO", 0)  # this collection is searched as a large one is
    store = open_store("cluster", rest_standin.url, api_key=rest_standin.api_key, shards=3, replicas=2)
    try:
        store.ensure({"float_dim": 8, "n_bits": 16, "model": "m", "model_sha256": "abc"})
        body = rest_standin.bodies["PUT /collections/cluster"]
        assert (body["shard_number"], body["replication_factor"]) == (3, 2)
        assert body["metadata"]["model_sha256"] == "abc" and body["metadata"]["layout"] == 2
        fl, code = body["vectors"]["float"], body["vectors"]["code"]
        assert fl["on_disk"] is True and fl["quantization_config"]["binary"]["always_ram"] is True
        assert (fl["size"], fl["distance"]) == (8, "Cosine") and (code["size"], code["distance"]) == (16, "Dot")
        assert code["on_disk"] is True and code["quantization_config"]["binary"]["always_ram"] is True
        assert code["hnsw_config"]["m"] == 0
        indexed = [r for r in rest_standin.requests if r == "PUT /collections/cluster/index"]
        assert len(indexed) == len(plans.INDEXED_FIELDS) == 3
        assert rest_standin.bodies["PUT /collections/cluster/index"]["field_name"] == plans.INDEXED_FIELDS[-1]
        store.upsert(["00000000-0000-0000-0000-000000000001"], np.ones((1, 8), np.float32) / 8**0.5,
                     np.ones((1, 16), np.uint8), [{"label": "a"}])
        store.search("cosine", np.ones(8, np.float32) / 8**0.5, np.zeros(16, np.uint8), k=3)
        [query] = rest_standin.bodies["POST /collections/cluster/points/query/batch"]["searches"]
        quantization = query["params"]["quantization"]
        assert quantization["rescore"] is True and quantization["oversampling"] >= 2
        hits = store.search("hamming", np.ones(8, np.float32) / 8**0.5, np.zeros(16, np.uint8), k=3)
        assert [h.score for h in hits] == [16]  # all 16 bits differ: an exact integer distance
        [scan] = [q for q in rest_standin.queries if q["using"] == "code"]
        assert scan["params"]["quantization"]["rescore"] is False
        assert set(scan["query"]["nearest"]) == {-1.0}  # the code 0…0 as ±1
        monkeypatch.setattr(plans, "EXACT_UP_TO", 10)  # a small collection: scanned, by the original vectors
        monkeypatch.setattr(plans, "SIZE_CHECK_SECONDS", -1)
        store.search("cosine", np.ones(8, np.float32) / 8**0.5, np.zeros(16, np.uint8), k=3)
        [query] = rest_standin.bodies["POST /collections/cluster/points/query/batch"]["searches"]
        assert query["params"]["exact"] is True and query["params"]["quantization"]["ignore"] is True
    finally:
        store.close()


def test_quantized_embedded_collection_finds_what_the_exact_scan_finds(embedder, shapes_dir, tmp_path, monkeypatch):
    """`--quantized`: binary-quantized floats, no graph; searches rescore the quantized scan's candidates (as for a
    collection past EXACT_UP_TO) and return the exact top 10; the collection remembers its layout when reopened."""
    from indexer import plans

    monkeypatch.setattr(plans, "EXACT_UP_TO", 0)
    store = open_store("bq", str(tmp_path), quantized=True)
    try:
        build_index(embedder, store, str(shapes_dir))
        assert store.meta["float_index"] == "binary-quantized"
    finally:
        store.close()
    store = open_store("bq", str(tmp_path))  # reopened without the flag: still quantized
    try:
        assert store.quantized
        for row in range(0, 40, 4):
            emb, _ = _query(embedder, shapes_dir, row=row)
            for metric in METRICS:  # a tie is ranked by the original vectors
                fast = store.search(metric, emb.floats[0], emb.codes[0], k=10)
                exact = store.search(metric, emb.floats[0], emb.codes[0], k=10, exact=True)
                assert [h.id for h in fast] == [h.id for h in exact]
    finally:
        store.close()


def test_an_indexing_run_skips_and_reports_bad_items(embedder, shapes_dir, tmp_path):
    import shutil

    from tests.hostile import bad_cases

    folder = tmp_path / "with_bad"
    shutil.copytree(shapes_dir, folder)
    (folder / "circle" / "999_truncated.png").write_bytes(bad_cases()["png_bad_checksum"][0])
    store = open_store("bad", str(tmp_path / "q"))
    try:
        report = build_index(embedder, store, str(folder))
        assert len(report.bad) == 1 and "damaged" in report.bad[0]["error"]
        assert report.bad[0]["source"]["file"] == "circle/999_truncated.png"  # by path, not by row
        assert report.indexed == 120 and store.count() == 120
    finally:
        store.close()


def test_threshold_is_least_cosine_or_most_hamming_bits(store, embedder, shapes_dir):
    emb, _ = _query(embedder, shapes_dir, row=2)
    cos = store.search("cosine", emb.floats[0], emb.codes[0], k=100, threshold=0.95)
    assert cos and all(h.score >= 0.95 for h in cos) and len(cos) < 120
    ham = store.search("hamming", emb.floats[0], emb.codes[0], k=100, threshold=1)
    assert ham and all(h.score <= 1 for h in ham) and len(ham) < 120


def test_indexing_records_the_collection_profile_and_calibration(store, embedder, shapes_dir):
    """The collection's image profile is measured at indexing (the shapes: coloured objects on dark backgrounds)
    and is what queries are prepared with; the nearest-neighbour floor for "unlike" is recorded beside it."""
    from training.prepare import LIGHT_ON_DARK, ImageProfile, profile_of

    meta = store.meta
    profile = ImageProfile.from_dict(meta["image_profile"])
    assert profile == profile_of(load_image_dataset(str(shapes_dir))["train"])
    assert profile.colour and profile.polarity == LIGHT_ON_DARK and max(profile.background) < 60
    assert embedder.profile_for(meta) == (profile, "collection")
    floors = meta["calibration"]["nearest_cosine"]
    assert 0 < floors["p01"] <= floors["p05"] <= floors["p50"] <= 1 and meta["calibration"]["sample"] > 50


def test_duplicates_at_the_demo_collections_size_sample_only_what_was_asked(tmp_path):
    """70,000 points (the demo collection's size; random vectors): a seeded sample of 2,000 (the default cap), the
    same one each time, and every pair starts from a sampled point."""
    rng = np.random.default_rng(0)
    store = open_store("big", str(tmp_path))
    try:
        store.ensure({"float_dim": 16, "n_bits": 16, "model": "m", "model_sha256": "x"})
        n = 70_000
        floats = rng.normal(size=(n, 16)).astype(np.float32)
        floats /= np.linalg.norm(floats, axis=1, keepdims=True)
        ids = [point_id({"row": i}) for i in range(n)]
        for i in range(0, n, 10_000):
            store.upsert(ids[i:i + 10_000], floats[i:i + 10_000], (floats[i:i + 10_000] > 0).astype(np.uint8),
                         [{"label": "x"}] * len(ids[i:i + 10_000]))
        store.flush()
        sample = store.sample_ids(2000, seed=0)
        assert len(set(sample)) == 2000 and sample == store.sample_ids(2000, seed=0)
        pairs = store.duplicate_pairs(0.8, sample=2000, seed=0)
        assert pairs and {a for a, _, _ in pairs} <= set(sample) and all(s >= 0.8 for _, _, s in pairs)
    finally:
        store.close()


def test_a_folder_collection_indexed_by_row_before_is_refused_with_what_to_do(embedder, shapes_dir, tmp_path):
    """A collection from before a folder's images were named by their file: adding to it would index everything
    again under new ids, so the run stops and says to rebuild once."""
    import json

    store = open_store("old", str(tmp_path))
    try:
        build_index(embedder, store, str(shapes_dir), splits=("test",))
        meta_path = store.root / "meta.json"
        meta = json.loads(meta_path.read_text())
        meta.pop("sources")
        meta_path.write_text(json.dumps(meta))
        before = store.count()
        with pytest.raises(StoreError, match="rebuild it once with --recreate"):
            build_index(embedder, store, str(shapes_dir))
        assert store.count() == before
        assert build_index(embedder, store, str(shapes_dir), recreate=True).indexed == 120
    finally:
        store.close()


def test_the_command_line_search_goes_the_apps_query_path(indexed, shapes_dir, tiny_model, capsys):
    """`python -m indexer search IMAGE`: the stored picture itself first, with its label and id."""
    from indexer.__main__ import main

    qdrant, name = indexed
    path = sorted((shapes_dir / "triangle").glob("*.png"))[2]
    assert main(["search", str(path), "--model", str(tiny_model), "--collection", name, "--qdrant", str(qdrant),
                 "--metric", "hamming", "-k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[0].split()[:2] == ["0.0000", "triangle"]
    assert f'"filename": "triangle/{path.name}"' in lines[0]
