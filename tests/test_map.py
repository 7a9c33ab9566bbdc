"""The map of the collection (indexer/atlas.py, app/collection_map.py): what it places where, that it is kept
with the collection per version, and that a write makes the app compute it again."""

import random
import time

import numpy as np
from gradio_client import handle_file

from app.collection_map import AXES, from_pixels, to_pixels
from indexer import atlas
from indexer.factory import open_store
from tests.conftest import draw_shape, own_collection


def _wait_for(client, changed_from=None, timeout=120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = client.predict(api_name="/collection_map")
        if m and m.get("version") != changed_from:
            return m
        time.sleep(0.3)
    raise AssertionError("the map was not (re)computed in time")


def test_the_map_keeps_each_label_together_and_places_other_vectors_among_their_own(indexed, tmp_path):
    qdrant, name = own_collection(indexed, tmp_path)
    store = open_store(name, str(qdrant))
    try:
        m = atlas.compute(store)
        hits = store.retrieve(atlas.all_ids(store), with_vectors=True)
    finally:
        store.close()
    xy, labels = np.asarray(m["xy"]), np.asarray(m["labels"])
    assert len(xy) == m["points"] == len(hits) == 120 and xy.min() >= 0 and xy.max() <= 1
    dist = ((xy[:, None] - xy[None]) ** 2).sum(-1) + np.eye(len(xy)) * 9
    assert (labels[dist.argmin(1)] == labels).mean() >= 0.9  # a point's nearest on the map shares its label
    # A vector placed by its nearest sampled points lands nearest points of its own label.
    floats = {h.id: h.float_vector for h in hits}
    sampled = np.stack([floats[i] for i in m["ids"]])
    sampled /= np.linalg.norm(sampled, axis=1, keepdims=True)
    noisy = sampled[::7] + np.random.default_rng(0).normal(0, 0.05, sampled[::7].shape)
    placed = atlas.locate(noisy, sampled, xy)
    near = ((placed[:, None] - xy[None]) ** 2).sum(-1).argmin(1)
    assert (labels[near] == labels[::7]).mean() >= 0.9


def test_a_click_maps_back_to_the_point_drawn_there():
    xy = np.random.default_rng(1).random((50, 2))
    px = to_pixels(xy)
    left, top, width, height = AXES
    assert (px[:, 0] >= left).all() and (px[:, 0] <= left + width).all() and (px[:, 1] <= top + height).all()
    back = np.array([from_pixels(*p) for p in px])
    assert np.allclose(back, xy)


def test_the_map_is_kept_with_the_collection_and_a_write_makes_a_new_one(served_own, tmp_path):
    client, service, _ = served_own
    first = _wait_for(client)
    assert first["points"] == 120 and set(first["labels"]) == {"circle", "square", "triangle"}
    new = tmp_path / "new.png"
    draw_shape("square", random.Random(77)).save(new)
    added, _ = client.predict([handle_file(str(new))], "square", api_name="/add")
    second = _wait_for(client, changed_from=first["version"])
    assert second["points"] == 121
    store = service.require_store()
    assert store.meta["map"]["version"] == second["version"] and atlas.is_current(store, store.meta["map"])
    client.predict(added["added"][0]["id"], api_name="/delete")
    assert _wait_for(client, changed_from=second["version"])["version"] == first["version"]  # the same points again
