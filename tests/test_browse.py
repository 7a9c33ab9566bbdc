"""More like this: a stored image searched by its id, through gradio_client, as the README documents it."""

import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

METRICS = ["cosine", "hamming", "hamming+rerank"]


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
    emb = service.embed_upload(path.read_bytes())
    return emb.floats[0], emb.codes[0]


def test_the_label_chart_starts_at_zero_even_when_every_label_has_as_many_images():
    """Fashion-MNIST has 7,000 images of each label: an axis fitted to the data would be one value, with no bars."""
    from app.main import collection_view

    info = {"images": 21_000, "collection": "c", "model": "m", "n_bits": 64, "float_dim": 128,
            "labels": {"Bag": 7000, "Coat": 7000, "Shirt": 7000}}
    text, chart = collection_view(info)
    assert text.startswith("**21,000 images** in `c`, 3 labels")
    assert chart.y_lim[0] == 0 and chart.y_lim[1] > 7000
    assert chart.value["data"] and len(chart.value["data"]) == 3


def test_thumbnails_are_named_by_content_so_a_rebuilt_source_never_shows_a_stale_one(served, stored_square):
    """Two results from the same source (a folder path) but different pictures get different thumbnails: the
    file is named by the image's sha256, not by the point id."""
    from app.main import _display_file

    client, service, _ = served
    gallery, results, *_ = client.predict(handle_file(str(stored_square)), "cosine", 2, api_name="/search")
    first = dict(results[0])
    assert first["sha256"] and _display_file(service, first).endswith(f"{first['sha256']}.png")
    other = dict(results[1], id=first["id"])  # the same id now showing another picture (a rebuilt folder)
    assert _display_file(service, other) != _display_file(service, first)
