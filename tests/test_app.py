"""The app on loopback, called the way a user's script calls it: through gradio_client."""

import io
import ssl

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from indexer.ranking import METRICS
from tests.conftest import draw_shape, on_paper


@pytest.fixture
def square_png(tmp_path):
    import random

    path = tmp_path / "query.png"
    draw_shape("square", random.Random(42)).save(path)
    return path


@pytest.mark.parametrize("metric", METRICS)
def test_search_returns_the_documented_shape(served, square_png, metric):
    client, _, _ = served
    gallery, results, prediction, offset, query, note = client.predict(handle_file(str(square_png)), metric, 5,
                                                          api_name="/search")
    assert len(gallery) == len(results) == 5 and offset == 0
    for item in gallery:
        assert set(item) >= {"image", "caption"} and item["caption"].startswith("#")
        with Image.open(item["image"]) as thumb:  # downloaded by the client: served from the static thumbnails
            assert min(thumb.size) >= 96
    for rank, r in enumerate(results, 1):
        assert r["rank"] == rank and set(r) >= {"id", "score", "label", "source"}
    assert sum(r["label"] == "square" for r in results) >= 4
    assert prediction["label"] == "square" and len(prediction["confidences"]) == 3
    scores = [r["score"] for r in results]
    assert scores == (sorted(scores) if metric == "hamming" else sorted(scores, reverse=True))


def test_the_recommended_client_gets_result_urls_that_serve_the_images(served, square_png):
    """README "Calling it from Python": one TLS context for all requests, images as URLs (download_files=False)."""
    client, _, _ = served
    fast = Client(client.src, verbose=False, ssl_verify=ssl.create_default_context(), download_files=False)
    gallery, results, *_ = fast.predict(handle_file(str(square_png)), "cosine", 3, api_name="/search")
    assert len(gallery) == len(results) == 3
    for item in gallery:
        url = item["image"]["url"]
        assert url.startswith(client.src.rstrip("/") + "/gradio_api/file="), url
        response = httpx.get(url)
        assert response.status_code == 200 and response.content.startswith(b"\x89PNG")
        with Image.open(io.BytesIO(response.content)) as thumb:
            assert min(thumb.size) >= 96


def test_next_page_follows_the_first(served, square_png):
    client, _, _ = served
    _, first, *_ = client.predict(handle_file(str(square_png)), "cosine", 4, api_name="/search")
    _, second, _, offset, *_ = client.predict(handle_file(str(square_png)), "cosine", 4, [], 0, 0,
                                          api_name="/search_next")
    assert offset == 4 and [r["rank"] for r in second] == [5, 6, 7, 8]
    assert not {r["id"] for r in first} & {r["id"] for r in second}


def test_label_filter_never_returns_another_label(served, square_png):
    client, _, _ = served
    _, results, *_ = client.predict(handle_file(str(square_png)), "hamming+rerank", 10, ["circle"], 0,
                                      api_name="/search")
    assert results and {r["label"] for r in results} == {"circle"}


def test_add_then_search_finds_it_then_delete(served_own, tmp_path):
    import random

    client, service, data_dir = served_own
    new = tmp_path / "new.png"
    draw_shape("triangle", random.Random(999)).save(new)
    before = client.predict(api_name="/overview")["images"]
    added, status = client.predict([handle_file(str(new))], "triangle", api_name="/add")
    (item,) = added["added"]
    assert client.predict(api_name="/overview")["images"] == before + 1
    _, results, *_ = client.predict(handle_file(str(new)), "cosine", 3, api_name="/search")
    assert results[0]["id"] == item["id"] and results[0]["score"] == pytest.approx(1, abs=1e-3)
    # stored once, content-addressed, inside the data folder
    assert (data_dir / "images" / item["source"]["file"]).is_file()
    client.predict([handle_file(str(new))], "triangle", api_name="/add")
    assert client.predict(api_name="/overview")["images"] == before + 1
    deleted, _ = client.predict(item["id"], api_name="/delete")
    assert deleted == {"deleted": 1}
    _, results, *_ = client.predict(handle_file(str(new)), "cosine", 3, api_name="/search")
    assert item["id"] not in {r["id"] for r in results}


def test_a_bad_upload_is_an_error_and_the_server_keeps_serving(served, tmp_path, square_png):
    client, _, _ = served
    bad = tmp_path / "notes.png"
    bad.write_text("this is not an image")
    with pytest.raises(AppError, match="not an image"):
        client.predict(handle_file(str(bad)), "cosine", 5, api_name="/search")
    with pytest.raises(AppError, match="nothing was added"):
        client.predict([handle_file(str(bad))], "", api_name="/add")
    _, results, *_ = client.predict(handle_file(str(square_png)), "cosine", 5, api_name="/search")
    assert len(results) == 5


def test_overview_names_the_model_and_counts_labels(served):
    client, service, _ = served
    info = client.predict(api_name="/overview")
    assert info["n_bits"] == 16 and info["model"] == service.embedder.meta["model"]
    assert sum(info["labels"].values()) == info["images"]


def test_batch_returns_one_result_list_per_image(served, square_png, tmp_path):
    import random

    client, _, _ = served
    circle = tmp_path / "circle.png"
    draw_shape("circle", random.Random(7)).save(circle)
    bad = tmp_path / "empty.png"
    bad.write_bytes(b"")
    out = client.predict([handle_file(str(square_png)), handle_file(str(circle)), handle_file(str(bad))],
                         "hamming", 4, api_name="/search_batch")
    assert [o["index"] for o in out] == [0, 1, 2]
    assert len(out[0]["results"]) == len(out[1]["results"]) == 4
    assert out[0]["predicted"] == "square" and out[1]["predicted"] == "circle"
    assert "empty" in out[2]["error"] and out[2]["results"] == []


def test_duplicates_are_found_and_checked_before_adding(served_own, shapes_dir, tmp_path):
    client, _, _ = served_own
    stored = sorted((shapes_dir / "circle").glob("*.png"))[0]
    before = client.predict(api_name="/overview")["images"]
    copy = tmp_path / "copy.png"
    copy.write_bytes(stored.read_bytes())
    would = client.predict(handle_file(str(copy)), 0.99, api_name="/check_duplicates")
    assert would and would[0]["identical"] and would[0]["score"] == pytest.approx(1, abs=1e-3)
    # the same picture added as an upload (a second copy under another source) makes a duplicate group
    added, _ = client.predict([handle_file(str(copy))], "circle", api_name="/add")
    new_id = added["added"][0]["id"]
    _, groups = client.predict(0.999, 1000, api_name="/duplicates")
    assert any(new_id in {m["id"] for m in g} and len(g) >= 2 for g in groups)
    client.predict(new_id, api_name="/delete")
    assert client.predict(api_name="/overview")["images"] == before


def test_added_image_survives_a_restart_of_the_app(indexed, tiny_model, tmp_path):
    """add → search finds it first → restart the app → still found → delete → gone, all through the API."""
    import random
    import shutil

    from gradio_client import Client

    from tests.conftest import running_app

    qdrant, name = indexed
    own = tmp_path / "qdrant"
    shutil.copytree(qdrant / name, own / name, ignore=shutil.ignore_patterns(".lock"))
    new = tmp_path / "keep.png"
    draw_shape("circle", random.Random(4242)).save(new)

    with running_app(tiny_model, own, name, tmp_path / "data") as (url, _):
        client = Client(url, verbose=False)
        added, _ = client.predict([handle_file(str(new))], "circle", api_name="/add")
        new_id = added["added"][0]["id"]
        assert client.predict(handle_file(str(new)), "cosine", 3, api_name="/search")[1][0]["id"] == new_id
    with running_app(tiny_model, own, name, tmp_path / "data") as (url, _):
        client = Client(url, verbose=False)
        _, results, *_ = client.predict(handle_file(str(new)), "cosine", 3, api_name="/search")
        assert results[0]["id"] == new_id and results[0]["source"]["file"]
        assert client.predict(new_id, api_name="/delete")[0] == {"deleted": 1}
        _, results, *_ = client.predict(handle_file(str(new)), "cosine", 3, api_name="/search")
        assert new_id not in {r["id"] for r in results}


def test_the_query_is_prepared_with_the_collection_profile_and_says_so(served, shapes_dir, square_png, tmp_path):
    """The profile recorded at indexing prepares queries: a square photographed on light paper, in its own colours,
    is moved onto the collection's dark background in those colours, and found among squares; the API says what
    was done."""
    client, service, _ = served
    assert service.profile_source == "collection" and service.profile == service.embedder.profile  # same sample
    stored = sorted((shapes_dir / "square").glob("*.png"))[0]
    _, results, _, _, query, note = client.predict(handle_file(str(stored)), "cosine", 5, api_name="/search")
    assert query["prepared"]["prepared"] and query["prepared"]["profile"] == "collection"
    assert not query["prepared"]["inverted"] and query["unlike"] is False and query["nearest_cosine"] > 0.999
    assert note.startswith("Prepared: object found") and note == query["note"]
    light = tmp_path / "light.png"
    with Image.open(square_png) as im:
        on_paper(im.convert("RGB"), (200, 150), (10, 40)).save(light)
    _, paper_results, prediction, _, query, note = client.predict(handle_file(str(light)), "cosine", 5,
                                                                  api_name="/search")
    assert query["prepared"]["matted"] and not query["prepared"]["inverted"]
    assert "in its own colours" in note or query["unlike"]
    assert query["prepared"]["object"] and query["prepared"]["size"] == [200, 150]
    assert prediction["label"] == "square" and sum(r["label"] == "square" for r in paper_results) >= 4


def test_unlike_is_decided_against_the_calibrated_floor(served, tmp_path):
    """Every answer carries the nearest stored image's cosine and the floor calibrated at indexing, and `unlike`
    is their comparison (whether an off-domain picture falls below it is tested on the real model:
    tests/test_realdata.py; this tiny model maps every picture close to every other)."""
    client, service, _ = served
    floor = service.meta["calibration"]["nearest_cosine"]["p01"]
    stripes = tmp_path / "stripes.png"
    a = np.zeros((64, 64, 3), np.uint8)
    a[:, ::2] = (255, 255, 0)
    a[::2, :] = (0, 255, 255)
    Image.fromarray(a).save(stripes)
    _, results, _, _, query, note = client.predict(handle_file(str(stripes)), "hamming", 5, api_name="/search")
    assert len(results) == 5  # answered all the same: the closest there are
    assert query["calibrated_floor"] == floor and query["unlike"] == (query["nearest_cosine"] < floor)
    assert note.startswith("⚠️ This picture is unlike") == query["unlike"]


def test_the_unlike_rule_and_its_note():
    from app.notes import query_note
    from indexer.calibration import unlike_collection

    meta = {"calibration": {"nearest_cosine": {"p01": 0.9, "p05": 0.95, "p50": 0.99}}}
    assert unlike_collection(0.95, meta) == {"unlike": False, "nearest_cosine": 0.95, "calibrated_floor": 0.9}
    far = unlike_collection(0.6, meta)
    assert far["unlike"] is True
    assert "scores 0.600, lower than 99 % of the collection's own images" in query_note(far)
    assert unlike_collection(0.6, {})["unlike"] is None  # a collection indexed before calibration


def test_a_collection_from_before_profiles_still_searches_and_says_how(indexed, tiny_model, tmp_path, square_png):
    """A collection indexed before profiles were recorded falls back to the model's profile; with a model from
    before too, the picture is searched as it is; with PREPARE=0, preparation is off. Each result says which."""
    import json
    import shutil

    from app.service import SearchService, Settings

    qdrant, name = indexed
    shutil.copytree(qdrant / name, tmp_path / "q" / name, ignore=shutil.ignore_patterns(".lock"))
    meta_path = tmp_path / "q" / name / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({k: v for k, v in meta.items() if k not in ("image_profile", "calibration")}))
    old_model = tmp_path / "old-model"
    shutil.copytree(tiny_model, old_model)
    config = json.loads((old_model / "config.json").read_text())
    config.pop("image_profile")
    (old_model / "config.json").write_text(json.dumps(config))
    data = square_png.read_bytes()
    for model, env, source in ((tiny_model, "1", "model"), (old_model, "1", "none"), (tiny_model, "0", "off")):
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("PREPARE", env)
            service = SearchService(Settings(model_dir=str(model), collection=name, qdrant=str(tmp_path / "q"),
                                             data_dir=str(tmp_path / "data")))
        try:
            results, prediction, query = service.search(data, "cosine", 5)
        finally:
            service.close()
        assert len(results) == 5 and query["prepared"]["profile"] == source
        assert query["prepared"]["prepared"] == (source == "model") and query["unlike"] is None
        assert ("searched as it is" in query["note"]) == (source != "model")


def test_the_service_prepares_queries_as_its_profile_says_when_it_changes(served_own, square_png):
    """The service's profile is the query path's: set to none ("as is": what bench/robustness.py compares with), the
    next search is not prepared and says so; set back, it is prepared again."""
    _, service, _ = served_own
    data = square_png.read_bytes()
    profile, source = service.profile, service.profile_source
    service.prepare_with(None, "off")
    _, _, query = service.search(data, "cosine", 3)
    assert query["prepared"] == {"prepared": False, "profile": "off"} and "searched as it is" in query["note"]
    service.prepare_with(profile, source)
    _, _, query = service.search(data, "cosine", 3)
    assert query["prepared"]["prepared"] and query["prepared"]["profile"] == "collection"
