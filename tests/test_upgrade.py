"""A collection built before the ±1 code layout (0/1 bytes, Manhattan distance) is never searched wrongly: it is
refused with what to do, and `python -m indexer upgrade` converts it from its stored vectors, on the embedded
engine and through the REST requests (the stand-in)."""

import json

import numpy as np
import pytest

from indexer.__main__ import main
from indexer.factory import open_store
from indexer.ranking import METRICS
from indexer.store import IncompatibleCollection
from tests.conftest import same_ranking


def _old_layout_copy(indexed) -> tuple[dict, list]:
    """The indexed shapes written as the previous version wrote them: codes as 0/1 uint8 compared by Manhattan
    distance, no `code` payload key, no layout in the metadata. Returns (meta, points)."""
    qdrant, name = indexed
    store = open_store(name, str(qdrant))
    try:
        meta = {k: v for k, v in store.meta.items() if k != "layout"}
        points = list(store.all_points(with_vectors=True))
    finally:
        store.close()
    for p in points:
        p.payload.pop("code")
    return meta, points


def _write_old_edge(folder, name, meta, points) -> None:
    from qdrant_edge import (
        Distance,
        EdgeConfig,
        EdgeShard,
        EdgeVectorParams,
        PayloadSchemaType,
        Point,
        UpdateOperation,
        VectorStorageDatatype,
    )

    root = folder / name
    root.mkdir(parents=True)
    shard = EdgeShard.create(str(root / "shard"), EdgeConfig(vectors={
        "float": EdgeVectorParams(size=meta["float_dim"], distance=Distance.Cosine),
        "code": EdgeVectorParams(size=meta["n_bits"], distance=Distance.Manhattan,
                                 datatype=VectorStorageDatatype.Uint8),
    }))
    shard.update(UpdateOperation.create_field_index("label", PayloadSchemaType.Keyword))
    shard.update(UpdateOperation.upsert_points([
        Point(id=p.id, vector={"float": p.float_vector.tolist(), "code": p.code_vector.astype(float).tolist()},
              payload=p.payload) for p in points]))
    shard.flush()
    shard.close()
    (root / "meta.json").write_text(json.dumps(meta))


def _answers(location, name, points):
    store = open_store(name, location)
    try:
        return [store.search(metric, p.float_vector, p.code_vector)
                for p in points[:: len(points) // 6] for metric in METRICS]
    finally:
        store.close()


def _same_answers(a, b) -> bool:
    return all(same_ranking(x, y) for x, y in zip(a, b, strict=True))


def test_an_old_embedded_collection_is_refused_then_upgraded_in_place(indexed, tiny_model, tmp_path, capsys):
    from indexer.embedder import Embedder

    meta, points = _old_layout_copy(indexed)
    _write_old_edge(tmp_path / "q", "old", meta, points)
    store = open_store("old", str(tmp_path / "q"))
    try:
        with pytest.raises(IncompatibleCollection, match=r"older layout.*indexer upgrade --collection old.*--recreate"):
            store.require(Embedder(tiny_model).meta)
    finally:
        store.close()

    assert main(["upgrade", "--collection", "old", "--qdrant", str(tmp_path / "q")]) == 0
    assert json.loads(capsys.readouterr().out) == {"collection": "old", "points": len(points), "upgraded": True}
    assert sorted(p.name for p in (tmp_path / "q").iterdir()) == ["old"]  # no staging left behind
    store = open_store("old", str(tmp_path / "q"))
    try:
        assert store.require(Embedder(tiny_model).meta)["layout"] == 2
        assert store.count() == len(points) and store.label_counts() == _count_labels(points)
    finally:
        store.close()
    # the same answers as the collection indexed by this version, vectors and payloads kept
    assert _same_answers(_answers(str(tmp_path / "q"), "old", points), _answers(str(indexed[0]), indexed[1], points))
    assert main(["upgrade", "--collection", "old", "--qdrant", str(tmp_path / "q")]) == 0
    assert json.loads(capsys.readouterr().out)["upgraded"] is False


def test_an_upgrade_stopped_after_setting_the_old_shard_aside_is_recovered(indexed, tmp_path, capsys):
    meta, points = _old_layout_copy(indexed)
    _write_old_edge(tmp_path / "q", "old", meta, points)
    root = tmp_path / "q" / "old"
    (root / "shard").rename(root / "shard.old")  # where a stop between the two renames leaves it
    assert main(["upgrade", "--collection", "old", "--qdrant", str(tmp_path / "q")]) == 0
    assert json.loads(capsys.readouterr().out)["points"] == len(points)
    assert not (root / "shard.old").exists()


def test_an_old_collection_behind_rest_is_upgraded(indexed, tmp_path, rest_standin, capsys, monkeypatch):
    from qdrant_client import QdrantClient, models

    meta, points = _old_layout_copy(indexed)
    client = QdrantClient(url=rest_standin.url, api_key=rest_standin.api_key)
    client.create_collection("old", vectors_config={
        "float": models.VectorParams(size=meta["float_dim"], distance=models.Distance.COSINE),
        "code": models.VectorParams(size=meta["n_bits"], distance=models.Distance.MANHATTAN,
                                    datatype=models.Datatype.UINT8)}, metadata=meta)
    client.upsert("old", [models.PointStruct(id=p.id, vector={"float": p.float_vector.tolist(),
                                                              "code": p.code_vector.tolist()}, payload=p.payload)
                          for p in points])
    monkeypatch.setenv("QDRANT_API_KEY", rest_standin.api_key)
    assert main(["upgrade", "--collection", "old", "--qdrant", rest_standin.url]) == 0
    assert json.loads(capsys.readouterr().out) == {"collection": "old", "points": len(points), "upgraded": True}
    assert not client.collection_exists("old__upgrading")
    assert client.get_collection("old").config.params.vectors["code"].distance == models.Distance.DOT
    assert _same_answers(_answers(rest_standin.url, "old", points), _answers(str(indexed[0]), indexed[1], points))
    client.close()


def _count_labels(points) -> dict:
    labels, counts = np.unique([p.payload["label"] for p in points], return_counts=True)
    return dict(zip(labels.tolist(), counts.tolist(), strict=True))



def test_a_collection_whose_codes_its_model_made_before_the_hyperplanes_is_upgraded_from_its_vectors(
        shapes_dir, tmp_path):
    from indexer.embedder import Embedder
    from indexer.pipeline import build_index
    from training.model import build_model

    model_dir, qdrant = tmp_path / "m", str(tmp_path / "q")
    model, processor = build_model("tiny", n_bits=16, id2label={0: "a", 1: "b"}, image_size=32,
                                   overrides={"instance_dim": 64, "instance_bits": True})
    model.save_pretrained(model_dir)
    processor.save_pretrained(model_dir)

    def build(name):
        store = open_store(name, qdrant)
        try:
            build_index(Embedder(model_dir), store, str(shapes_dir), batch_size=32)
            return {p.id: p for p in store.all_points(with_vectors=True)}
        finally:
            store.close()

    before = build("shapes")  # the instance output's own signs: 16 + 64 bits
    config = json.loads((model_dir / "config.json").read_text())
    (model_dir / "config.json").write_text(json.dumps(dict(config, instance_code_bits=32, instance_code_seed=0,
                                                                   class_code_weight=2)))
    store = open_store("shapes", qdrant)
    with pytest.raises(IncompatibleCollection, match="indexer upgrade --collection shapes --model"):
        store.require(Embedder(model_dir).meta)
    store.close()

    assert main(["upgrade", "--collection", "shapes", "--qdrant", qdrant, "--model", str(model_dir)]) == 0
    fresh = build("fresh")  # the same pictures embedded by the model as it is now: 16 × 2 + 32 bits
    store = open_store("shapes", qdrant)
    try:
        store.require(Embedder(model_dir).meta)
        after = {p.id: p for p in store.all_points(with_vectors=True)}
    finally:
        store.close()
    assert set(after) == set(before) == set(fresh)
    for pid, point in after.items():
        np.testing.assert_array_equal(point.float_vector, before[pid].float_vector)
        np.testing.assert_array_equal(point.code_vector[:32], np.tile(before[pid].code_vector[:16], 2))
    differing = np.mean([np.mean(after[p].code_vector != fresh[p].code_vector) for p in after])
    # a bit may differ where a projection sits at a float's last digit
    assert len(next(iter(after.values())).code_vector) == 16 * 2 + 32 and differing < 0.005
