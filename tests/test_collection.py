"""The one command, from a folder of pictures to a search answer (app/collection.py; `make collection`)."""

import json
import random
import shutil
from pathlib import Path

import pytest
from gradio_client import Client, handle_file

from tests.conftest import draw_shape, make_shapes, running_app
from tests.hostile import bad_cases


def test_a_folder_goes_to_a_search_answer_and_a_rerun_indexes_only_what_is_new(tmp_path):
    from app.collection import prepare

    folder = tmp_path / "my_pictures"
    folder.mkdir()
    make_shapes(folder, 15, seed=11)
    (folder / "square" / "broken.jpg").write_bytes(bad_cases()["truncated_jpeg"][0])
    kw = dict(qdrant=str(tmp_path / "q"), models_dir=tmp_path / "models", start="tiny", epochs=4, image_size=32)
    first = prepare(folder, **kw)
    assert first["collection"] == "my_pictures" and first["model"] == str(tmp_path / "models" / "my_pictures")
    assert first["training"]["skipped_files"][0]["path"] == "square/broken.jpg"
    # a tenth held out: its accuracy after each epoch, and the best epoch's checkpoint is the model
    assert [v["epoch"] for v in first["training"]["validation"]] == [1, 2, 3, 4]
    best = max(first["training"]["validation"], key=lambda v: v["accuracy"])  # the first of the best
    state = json.loads((Path(first["training"]["best_checkpoint"]) / "trainer_state.json").read_text())
    assert state["epoch"] == best["epoch"] and round(state["best_metric"], 4) == best["accuracy"]
    assert first["index"]["indexed"] == 45 and first["index"]["points"] == 45
    assert first["index"]["bad_items"][0]["source"]["file"] == "square/broken.jpg"

    rng = random.Random(3)
    for i in range(2):
        draw_shape("circle", rng).save(folder / "circle" / f"new{i}.png")
    again = prepare(folder, **kw)
    assert again["training"].startswith("reused")
    assert again["index"]["indexed"] == 2 and again["index"]["skipped_existing"] == 45
    assert again["index"]["points"] == 47

    with running_app(first["model"], tmp_path / "q", "my_pictures", tmp_path / "data") as (url, _):
        _, results, *_ = Client(url, verbose=False).predict(handle_file(str(folder / "circle" / "new0.png")),
                                                            "cosine", 3, api_name="/search")
    assert results[0]["source"]["filename"] == "circle/new0.png" and results[0]["score"] > 0.999


def test_a_folder_without_classes_is_indexed_with_an_existing_model_and_searched(tiny_model, shapes_dir, tmp_path):
    from app.collection import prepare

    flat = tmp_path / "holiday"
    flat.mkdir()
    for path in sorted(shapes_dir.glob("*/*.png"))[::10]:
        shutil.copy(path, flat / f"{path.parent.name}_{path.name}")
    done = prepare(flat, model=str(tiny_model), qdrant=str(tmp_path / "q"))
    assert done["index"]["indexed"] == len(list(flat.iterdir()))
    with running_app(tiny_model, tmp_path / "q", "holiday", tmp_path / "data") as (url, _):
        client = Client(url, verbose=False)
        _, results, *_ = client.predict(handle_file(str(sorted(flat.iterdir())[0])), "cosine", 3, api_name="/search")
        assert {r["label"] for r in results} == {"unlabelled"} and results[0]["score"] > 0.999
    with pytest.raises(ValueError, match="no class sub-folders.*backbone alone"):  # and no backbone to start from
        prepare(flat, qdrant=str(tmp_path / "q2"), models_dir=tmp_path / "models", start="tiny", epochs=1)


def test_the_one_command_indexes_into_the_data_dir_it_is_given(tiny_model, shapes_dir, tmp_path, monkeypatch):
    """`python -m app.collection FOLDER --data-dir D` indexes into D's embedded engine (D/qdrant), where the app it
    starts serves from, and nowhere else."""
    from app.collection import main
    from indexer.factory import open_store

    for name in ("DATA_DIR", "QDRANT_URL", "QDRANT_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # the default data dir would be ./data
    flat = tmp_path / "holiday"
    flat.mkdir()
    for path in sorted(shapes_dir.glob("*/*.png"))[::20]:
        shutil.copy(path, flat / f"{path.parent.name}_{path.name}")
    assert main([str(flat), "--model", str(tiny_model), "--data-dir", str(tmp_path / "mine"), "--no-serve"]) == 0
    assert not (tmp_path / "data").exists()
    store = open_store("holiday", str(tmp_path / "mine" / "qdrant"))
    try:
        assert store.count() == len(list(flat.iterdir()))
    finally:
        store.close()
