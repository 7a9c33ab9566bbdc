"""Several examples as one query (/search_examples): more like these, less like those, called as a user's script
calls it (gradio_client), ranked as indexer.ranking's reference ranks the same examples."""

import random

import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from indexer import ranking
from tests.conftest import draw_shape


@pytest.fixture(scope="module")
def stored(served):
    """Every stored point of the served collection: ids, labels, floats, codes (the reference's database)."""
    _, service, _ = served
    hits, _ = service.require_store().scroll(limit=10_000, with_vectors=True)
    ids = [h.id for h in hits]
    labels = [h.payload["label"] for h in hits]
    return ids, labels, np.stack([h.float_vector for h in hits]), np.stack([h.code_vector for h in hits])


def _pick(stored, label, n, skip=0):
    ids, labels, _, _ = stored
    return [i for i, lab in enumerate(labels) if lab == label][skip:skip + n]


def _ask(client, positive="", negative="", metric="cosine", k=8, strategy="average_vector", offset=0,
         pos_pictures=None, neg_pictures=None, labels=None):
    return client.predict(positive, negative, pos_pictures, neg_pictures, metric, k, labels or [], 0, strategy, offset,
                          api_name="/search_examples")


@pytest.mark.parametrize("metric,strategy", [("cosine", "average_vector"), ("hamming", "average_vector"),
                                             ("hamming+rerank", "average_vector"), ("cosine", "best_score")])
def test_examples_rank_as_the_numpy_reference(served, stored, metric, strategy):
    client, _, _ = served
    ids, _, floats, codes = stored
    pos, neg = _pick(stored, "square", 2), _pick(stored, "circle", 1)
    gallery, results, predicted, offset, query, note = _ask(
        client, ", ".join(ids[i] for i in pos), ids[neg[0]], metric, 8, strategy)
    order = ranking.rank_examples(strategy, metric, floats[pos], codes[pos], floats[neg], codes[neg], floats, codes,
                                  8 * ranking.OVERSAMPLING)
    want = [i for i in order if i not in pos + neg][:8]
    got = [ids.index(r["id"]) for r in results]
    # The same ranking: the reference's keys of what came back are the reference's first eight keys, in order. The
    # engine scores in float32: two points whose keys differ by less than 1e-5 may come back in either order.
    if strategy == "best_score":
        keys = -ranking.best_scores(floats[pos], floats[neg], floats)
    else:
        fvec, code = ranking.examples_query(floats[pos], codes[pos], floats[neg], codes[neg])
        keys = ranking.sort_keys(metric, fvec, code, floats, codes, 8 * ranking.OVERSAMPLING)[0]
    np.testing.assert_allclose(keys[got], keys[want], atol=1e-5)
    assert not set(got) & set(pos + neg) and len(set(got)) == 8
    assert len(gallery) == 8 and offset == 0 and query["strategy"] == strategy
    assert [e["id"] for e in query["examples"]["positive"]] == [ids[i] for i in pos]
    assert "More like 2 example(s)" in note and "less like 1" in note


def test_a_negative_example_pushes_its_label_down(served, stored):
    """Positives of two labels; a negative of one of them: that label ranks lower than without it."""
    client, _, _ = served
    ids, labels, floats, _ = stored

    def central(label, n):  # the label's n images nearest its mean: typical of it, whatever the model
        rows = _pick(stored, label, 10_000)
        return [rows[i] for i in np.argsort(-(floats[rows] @ floats[rows].mean(0)))[:n]]

    circle, other_circle = central("circle", 2)
    pos = [ids[i] for i in central("square", 1) + [circle]]
    neg = [ids[other_circle]]

    def circles(results):
        return sum(r["label"] == "circle" for r in results)

    _, without, *_ = _ask(client, " ".join(pos), k=10)
    _, with_neg, *_ = _ask(client, " ".join(pos), " ".join(neg), k=10)
    assert circles(with_neg) < circles(without)


def test_pages_follow_one_another_and_pictures_are_examples(served, tmp_path):
    client, _, _ = served
    square = tmp_path / "square.png"
    draw_shape("square", random.Random(5)).save(square)
    _, first, *_ = _ask(client, k=4, pos_pictures=[handle_file(str(square))])
    _, second, _, offset, query, _ = _ask(client, k=4, offset=4, pos_pictures=[handle_file(str(square))])
    assert offset == 4 and [r["rank"] for r in second] == [5, 6, 7, 8]
    assert not {r["id"] for r in first} & {r["id"] for r in second}
    assert sum(r["label"] == "square" for r in first + second) >= 6
    assert query["examples"]["positive"][0]["picture"]  # the picture's sha256


@pytest.mark.parametrize("kwargs,says", [({}, "at least one example"),
                                         ({"positive": "nonsense"}, "not an image id"),
                                         ({"positive": "2f1c6b8e-0000-4000-8000-000000000000"}, "no stored image"),
                                         ({"metric": "hamming", "strategy": "best_score"}, "cosine"),
                                         ({"strategy": "sum"}, "average_vector.*best_score")])
def test_wrong_examples_say_what_to_do(served, stored, kwargs, says):
    client, _, _ = served
    kwargs = {"positive": stored[0][0], **kwargs} if kwargs.get("metric") or kwargs.get("strategy") else kwargs
    with pytest.raises(AppError, match=says):
        _ask(client, **kwargs)
    assert _ask(client, stored[0][0], k=2)[1]  # the server keeps serving
