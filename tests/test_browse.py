"""More like this: a stored image searched by its id, through gradio_client, as the README documents it."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from indexer.ranking import METRICS
from tests.conftest import make_shapes, running_app


@pytest.fixture
def stored_square(shapes_dir):
    return sorted((shapes_dir / "square").glob("*.png"))[3]


@pytest.fixture
def model_runs(served):
    """How often the model embeds during a test (the real embedder runs; its calls are counted)."""
    _, service, _ = served
    real, calls = service.embedder.embed, []

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    service.embedder.embed = counted
    yield calls
    service.embedder.embed = real


@pytest.mark.parametrize("metric", METRICS)
def test_more_like_a_stored_image_is_its_upload_search_without_itself(served, stored_square, metric):
    """The stored vectors are the upload's vectors (same image, same preparation): searching by id gives the upload
    search's ranking with the image itself left out, for every metric."""
    client, _, _ = served
    _, by_upload, *_ = client.predict(handle_file(str(stored_square)), metric, 8, api_name="/search")
    own = by_upload[0]  # the stored image itself
    assert own["score"] == (0 if metric == "hamming" else pytest.approx(1, abs=1e-3))
    gallery, by_id, label, offset, query, note = client.predict(own["id"], metric, 7, api_name="/search_by_id")
    assert [r["id"] for r in by_id] == [r["id"] for r in by_upload if r["id"] != own["id"]][:7]
    assert [r["rank"] for r in by_id] == list(range(1, 8)) and offset == 0 and len(gallery) == 7
    assert label["label"] == "square" and query["like"]["id"] == own["id"] and query["unlike"] is False
    assert note.startswith("More like the stored image") and own["id"] in note


def test_more_like_this_runs_no_model_and_pages_on(served, stored_square, model_runs):
    client, service, _ = served
    (hit,) = service.require_store().search("cosine", *_vectors(service, stored_square), k=1)
    runs = len(model_runs)
    _, first, *_ = client.predict(hit.id, "hamming+rerank", 5, api_name="/search_by_id")
    _, second, _, offset, query, _ = client.predict(None, "hamming+rerank", 5, [], 0, 0, hit.id,
                                                    api_name="/search_next")
    assert offset == 5 and [r["rank"] for r in second] == [6, 7, 8, 9, 10] and query["like"]["id"] == hit.id
    assert not {r["id"] for r in first} & {r["id"] for r in second}
    assert hit.id not in {r["id"] for r in first + second}
    assert len(model_runs) == runs


def test_more_like_this_keeps_the_label_filter_and_threshold(served, stored_square):
    client, service, _ = served
    (hit,) = service.require_store().search("cosine", *_vectors(service, stored_square), k=1)
    _, circles, *_ = client.predict(hit.id, "cosine", 10, ["circle"], 0, api_name="/search_by_id")
    assert circles and {r["label"] for r in circles} == {"circle"}
    _, near, *_ = client.predict(hit.id, "hamming", 50, [], 1, api_name="/search_by_id")
    assert all(r["score"] <= 1 for r in near)


def test_an_unknown_or_empty_id_says_what_to_do(served):
    client, _, _ = served
    with pytest.raises(AppError, match="'nope' is not an image id.*pick one of the results"):
        client.predict("nope", api_name="/search_by_id")
    missing = "00000000-0000-5000-8000-000000000000"
    with pytest.raises(AppError, match=f"no stored image has the id '{missing}'.*pick one of the results"):
        client.predict(missing, api_name="/search_by_id")
    with pytest.raises(AppError, match="give the id of a stored image"):
        client.predict("  ", api_name="/search_by_id")


def test_search_with_a_like_id_searches_the_stored_image_and_without_one_the_picture(served, stored_square):
    client, service, _ = served
    (hit,) = service.require_store().search("cosine", *_vectors(service, stored_square), k=1)
    _, liked, *_ = client.predict(None, "cosine", 4, [], 0, hit.id, api_name="/search")
    _, by_id, *_ = client.predict(hit.id, "cosine", 4, api_name="/search_by_id")
    assert liked == by_id
    with pytest.raises(AppError, match="upload an image first"):
        client.predict(None, "cosine", 4, api_name="/search")


@pytest.mark.parametrize("metric", METRICS)
def test_captions_show_rank_label_and_the_score_in_the_metrics_unit(served, stored_square, metric):
    client, _, _ = served
    gallery, results, *_ = client.predict(handle_file(str(stored_square)), metric, 3, api_name="/search")
    for item, r in zip(gallery, results, strict=True):
        unit = f"{int(r['score'])} bits apart" if metric == "hamming" else f"similarity {r['score']:.3f}"
        assert item["caption"] == f"#{r['rank']} {r['label']} · {unit}"


def _vectors(service, path):
    emb = service.queries.embed(path.read_bytes())
    return emb.floats[0], emb.codes[0]


def test_the_label_chart_starts_at_zero_even_when_every_label_has_as_many_images():
    """Fashion-MNIST has 7,000 images of each label: an axis fitted to the data would be one value, with no bars."""
    from app.tab_collection import collection_view

    info = {"images": 21_000, "collection": "c", "model": "m", "n_bits": 64, "float_dim": 128,
            "labels": {"Bag": 7000, "Coat": 7000, "Shirt": 7000}}
    text, chart = collection_view(info)
    assert text.startswith("**21,000 images** in `c`, 3 labels")
    assert chart.y_lim[0] == 0 and chart.y_lim[1] > 7000
    assert chart.value["data"] and len(chart.value["data"]) == 3


def test_thumbnails_are_named_by_content_so_a_rebuilt_source_never_shows_a_stale_one(served, stored_square):
    """Two results from the same source (a folder path) but different pictures get different thumbnails: the
    file is named by the image's sha256, not by the point id."""
    from app.gallery import display_file

    client, service, _ = served
    gallery, results, *_ = client.predict(handle_file(str(stored_square)), "cosine", 2, api_name="/search")
    first = dict(results[0])
    assert first["sha256"] and Path(display_file(service, first)).name.startswith(first["sha256"])
    other = dict(results[1], id=first["id"])  # the same id now showing another picture (a rebuilt folder)
    assert display_file(service, other) != display_file(service, first)


@pytest.fixture
def own_folder_app(tiny_model, tmp_path):
    """A folder collection of its own (shapes, plus what a test puts in `extra` before indexing), served: a context
    factory of (gradio_client.Client, SearchService, folder)."""
    import contextlib

    from indexer.embedder import Embedder
    from indexer.factory import open_store
    from indexer.pipeline import build_index

    (tmp_path / "pictures").mkdir()
    folder = make_shapes(tmp_path / "pictures", 10, seed=21)

    @contextlib.contextmanager
    def serve(extra=None):
        for name, write in (extra or {}).items():
            write(folder / "circle" / name)
        store = open_store("pictures", str(tmp_path / "q"))
        try:
            build_index(Embedder(tiny_model), store, str(folder), batch_size=32)
        finally:
            store.close()
        with running_app(tiny_model, tmp_path / "q", "pictures", tmp_path / "data") as (url, service):
            yield Client(url, verbose=False), service, folder

    return serve


def test_a_result_whose_picture_is_gone_keeps_its_tile_so_tile_i_is_result_i(own_folder_app, tmp_path):
    """A click on tile i opens result i (app.tab_search's pick indexes the results with the gallery's index): a result
    whose file is gone gets a placeholder tile instead of being dropped, and every later tile stays in place."""
    from app.gallery import DISPLAY_VERSION, THUMBS, missing_tile

    with own_folder_app() as (client, service, folder):
        query = tmp_path / "query.png"
        shutil.copy(folder / "circle" / "0000.png", query)
        before, _, _ = service.search(query.read_bytes(), "cosine", 9)  # no tiles drawn yet
        gone = before[2]["source"]["filename"]  # not the first: the tiles after it must not shift
        (folder / gone).unlink()
        (THUMBS / f"{before[2]['sha256']}.{DISPLAY_VERSION}.png").unlink(missing_ok=True)  # an earlier run's tile
        gallery, results, *_ = client.predict(handle_file(str(query)), "cosine", 9, api_name="/search")
    assert [r["id"] for r in results] == [r["id"] for r in before]
    assert len(gallery) == len(results) == 9
    assert [g["caption"].split(" ")[0] for g in gallery] == [f"#{r['rank']}" for r in results]
    missing = np.asarray(Image.open(missing_tile()))
    shown = [np.array_equal(np.asarray(Image.open(g["image"])), missing) for g in gallery]
    assert shown == [r["source"]["filename"] == gone for r in results]


def _transparent_heart(path: Path) -> None:
    """A red disc on transparent pixels whose hidden colour is orange: a viewer shows the disc on white."""
    a = np.zeros((40, 40, 4), np.uint8)
    a[..., :3] = (255, 140, 0)  # invisible: alpha 0
    yy, xx = np.mgrid[:40, :40]
    a[(yy - 20) ** 2 + (xx - 20) ** 2 < 144] = (220, 40, 40, 255)
    Image.fromarray(a, "RGBA").save(path)


def _exif_rotated(path: Path) -> None:
    """A JPEG stored 60×30 (a red disc on the left half) with EXIF orientation 6: a viewer shows it 30×60, turned a
    quarter clockwise (the disc at the top)."""
    image = Image.new("RGB", (60, 30), (20, 20, 20))
    a = np.asarray(image).copy()
    yy, xx = np.mgrid[:30, :60]
    a[(yy - 15) ** 2 + (xx - 15) ** 2 < 100] = (220, 40, 40)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(a).save(path, quality=95, exif=exif)


def test_results_are_shown_as_a_viewer_shows_the_file_transparency_on_white_and_upright(own_folder_app):
    """The gallery draws a stored picture through the one image module, as it was embedded: a transparent PNG's
    hidden colours never show (they are white), an EXIF-rotated JPEG stands as its EXIF says."""
    extra = {"heart.png": _transparent_heart, "turned.jpg": _exif_rotated}
    with own_folder_app(extra) as (client, service, folder):
        shown = {}
        for name in extra:
            gallery, results, *_ = client.predict(handle_file(str(folder / "circle" / name)), "cosine", 1,
                                                  api_name="/search")
            assert results[0]["source"]["filename"] == f"circle/{name}"
            shown[name] = np.asarray(Image.open(gallery[0]["image"]).convert("RGB")).astype(int)
    heart, turned = shown["heart.png"], shown["turned.jpg"]
    assert (heart[0, 0] == 255).all() and (heart[len(heart) // 2, len(heart) // 2] == (220, 40, 40)).all()
    h, w, _ = turned.shape
    assert h == 2 * w  # upright: 30×60 enlarged, not 60×30
    top, bottom = turned[: h // 2, :, 0].mean(), turned[h // 2 :, :, 0].mean()
    assert top > bottom + 40  # the disc is in the top half
