"""Photos on real surfaces: a garment on a texture or in uneven light with a shadow is found and framed like the
collection's images (training.separate, through training.prepare); training sees its objects on generated surfaces
(training.surfaces), prepared the same way."""

import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from app.notes import query_note
from indexer.embedder import Embedder
from indexer.factory import open_store
from indexer.query import Query, QueryPath
from indexer.store import point_id
from tests.test_images import garment
from training.images import open_image, preprocess
from training.prepare import ImageProfile, analyse, measure_profile, prepare
from training.separate import flat_border, settled_rim, surface_of
from training.shading import DARKEST, LIGHTEST

W, H = 400, 300


@pytest.fixture(scope="module")
def profile() -> ImageProfile:
    return measure_profile([garment(fg=fg) for fg in (180, 210, 240)])


def wood(seed: int) -> np.ndarray:
    """A wood-grain table top: warped stripes of two browns, with grain noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    warp = np.asarray(Image.fromarray(rng.random((8, 10)).astype(np.float32)).resize((W, H), Image.Resampling.BICUBIC))
    rings = (np.sin((yy + 25 * warp) * 0.35) * 0.5 + 0.5)[..., None]
    return np.array([150, 105, 70]) * (1 - rings) + np.array([190, 145, 100]) * rings + rng.normal(0, 6, (H, W, 1))


def window_wall(seed: int) -> np.ndarray:
    """A light wall by a window: one colour, light falling off from left to right by a third."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(1.0, 0.67, W)[None, :, None]
    return np.full((H, W, 3), (232, 226, 214), np.float32) * ramp + rng.normal(0, 1.5, (H, W, 1))


def lamp_lit(seed: int) -> np.ndarray:
    """A pale table top under a lamp: brightest to the right of the middle, falling off round it to a third."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    r = np.hypot(yy - 0.45 * H, xx - 0.72 * W) / W
    return np.full((H, W, 3), (215, 210, 200), np.float32) * (1.05 - 0.9 * r.clip(0, 0.8))[..., None] \
        + rng.normal(0, 2, (H, W, 1))


def photo_on(surface: np.ndarray, colour, shadow: bool) -> tuple[Image.Image, np.ndarray]:
    """A pullover in `colour` lying on `surface`, off-centre at half the frame's height, with a soft shadow to its
    lower right when `shadow`; JPEG'd like a phone photo. Returns the photo and the pullover's mask."""
    shape = garment(size=150, fg=255, bg=0)
    mask = np.zeros((H, W), bool)
    left, top = 60, 50
    mask[top : top + 150, left : left + 150] = np.asarray(shape) > 128
    a = surface.astype(np.float32)
    if shadow:
        s = np.zeros((H, W), np.uint8)
        s[top + 10 : top + 160, left + 12 : left + 162] = np.asarray(shape)
        s = np.asarray(Image.fromarray(s).filter(ImageFilter.GaussianBlur(7)), np.float32) / 255
        a *= 1 - 0.4 * s[..., None]
    a[mask] = colour
    photo = Image.fromarray(a.clip(0, 255).astype(np.uint8))
    from io import BytesIO

    buf = BytesIO()
    photo.save(buf, "JPEG", quality=85)
    return Image.open(BytesIO(buf.getvalue())), mask


def parquet(seed: int) -> np.ndarray:
    """Parquet: square blocks of boards, each block one of two unlike browns, striped along or across."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W]
    block = (yy // 40 + xx // 40) % 2
    boards = np.where(block == 0, yy % 10 < 5, xx % 10 < 5)[..., None]
    light, dark = np.array([205, 120, 50]), np.array([150, 60, 25])
    tone = np.where(block[..., None] == 0, light, dark).astype(np.float32)
    return tone * np.where(boards, 1.0, 0.85) + rng.normal(0, 5, (H, W, 1))


def crumpled_paper(seed: int) -> np.ndarray:
    """Beige paper with creases: its brightness wanders by a fifth, more in blue than in red."""
    rng = np.random.default_rng(seed)
    grid = rng.random((8, 10)).astype(np.float32)
    creases = np.asarray(Image.fromarray(grid).resize((W, H), Image.Resampling.BICUBIC))[..., None]
    return np.array([218, 185, 156]) * (0.85 + 0.3 * creases * np.array([0.5, 0.8, 1.0])) + rng.normal(0, 2, (H, W, 1))


def terrazzo(seed: int, colour) -> np.ndarray:
    """Terrazzo in light stronger on the left: light grey with small flecks of many colours, and four of `colour`
    (the garment's own) a few pixels beyond the middle of each side of `photo_on`'s garment box."""
    rng = np.random.default_rng(seed)
    a = np.array([205, 200, 192], np.float32) + rng.normal(0, 4, (H, W, 1))
    yy, xx = np.mgrid[0:H, 0:W]
    for y, x, r in zip(rng.integers(0, H, 500), rng.integers(0, W, 500), rng.uniform(1.5, 3.5, 500), strict=True):
        a[(yy - y) ** 2 + (xx - x) ** 2 <= r * r] = rng.uniform(30, 220, 3)
    for y, x in ((42, 135), (125, 218), (208, 135), (125, 52)):
        a[(yy - y) ** 2 + (xx - x) ** 2 <= 9] = colour
    return a * np.linspace(1.0, 0.75, W)[None, :, None]


def floor_beyond(table: np.ndarray, seed: int, side: str) -> np.ndarray:
    """`table` with its edge crossing the frame, a little aslant, near the top or the bottom (`side`; or its corner
    in view, "bottom right"): beyond it, an eighth of the frame deep on average, a floor of dark grainy carpet."""
    carpet = np.array([90, 80, 75], np.float32) + np.random.default_rng(seed).normal(0, 7, (H, W, 1))
    return np.where(_beyond(side)[..., None], carpet, table)


def _beyond(side: str) -> np.ndarray:
    """[H, W] bool: the floor's pixels in `floor_beyond` (`side` top, bottom, or a corner: "bottom right")."""
    yy, xx = np.mgrid[0:H, 0:W]
    edge = 0.12 * H + 0.1 * (xx - W / 2)
    if side == "bottom right":  # a table's corner: the floor along the bottom and the right
        return (yy > H - 0.15 * H + 0.05 * (xx - W / 2)) | (xx > W - 0.15 * W - 0.05 * (yy - H / 2))
    return yy < edge if side == "top" else yy > H - edge


CASES = {
    "a red pullover on wood grain": (wood(0), (170, 30, 40), False),
    "a blue pullover on wood grain, with a shadow": (wood(1), (40, 60, 150), True),
    "a green pullover on a wall in uneven light, with a shadow": (window_wall(2), (60, 140, 70), True),
    "a blue pullover on a table under a lamp, its light brightest beside it": (lamp_lit(6), (40, 60, 150), True),
    "a green pullover on parquet of two browns": (parquet(3), (90, 150, 80), False),
    "a grey-blue pullover on crumpled paper, with a shadow (not one)": (crumpled_paper(4), (140, 130, 150), True),
    "a red pullover on terrazzo with flecks of its red": (terrazzo(5, (170, 30, 40)), (170, 30, 40), True),
    "a red pullover on wood grain, the floor beyond the table's edge": (floor_beyond(wood(7), 7, "top"),
                                                                         (170, 30, 40), True),
    "a green pullover on a wall in uneven light, the floor along its foot": (floor_beyond(window_wall(8), 8, "bottom"),
                                                                             (60, 140, 70), False),
    "a blue pullover on a table's corner in uneven light, the floor beyond": (
        floor_beyond(window_wall(10), 10, "bottom right"), (40, 60, 150), True),
}


@pytest.mark.parametrize("case", CASES)
def test_a_garment_on_a_real_surface_is_framed_like_the_collection(profile, case):
    """Texture or a gradient of light round the border is no flat background: the pullover is found (its mask
    overlaps the true one, the wood and the shadow left out), framed as the collection frames its objects, and at
    the model's size looks like the collection's own picture of a pullover: grey, light on black, filling the frame,
    centred, nothing of the surface left in it."""
    surface, colour, shadow = CASES[case]
    photo, truth = photo_on(surface, colour, shadow)
    a = np.asarray(photo)
    assert not flat_border(surface_of(a.astype(np.float32)))
    found = analyse(a)
    assert found.mask is not None
    iou = (found.mask & truth).sum() / (found.mask | truth).sum()
    assert iou > 0.85, iou
    prepared, info = prepare(photo, profile)
    assert prepared.width == prepared.height and info["grey"] and info["surface"]
    assert "on a textured or unevenly lit surface" in query_note({"prepared": {**info, "profile": "collection"}})
    p = np.asarray(prepared.convert("L"), dtype=np.float32)
    border = np.concatenate([p[0], p[-1], p[:, 0], p[:, -1]])
    assert np.median(border) < 10  # the collection's black, none of the surface
    ys, xs = np.nonzero(p > 40)
    assert max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1) >= 0.9 * prepared.width
    assert abs((xs.min() + xs.max()) / 2 - prepared.width / 2) <= 0.05 * prepared.width
    # at the model's size: the silhouette is the collection's pullover
    query = preprocess([prepared], 28, [0.0] * 3, [1.0] * 3)[0, 0] > 0.15
    reference = preprocess([garment(fg=200)], 28, [0.0] * 3, [1.0] * 3)[0, 0] > 0.15
    assert (query & reference).sum() / (query | reference).sum() > 0.75


@pytest.mark.parametrize("case", CASES)
def test_the_floor_beyond_a_tables_edge_is_told_from_the_table(case):
    """Part of the border shows another surface beyond a straight edge (a floor beyond the table's edge): most of
    that surface is found, and next to none of the table and none of the garment with it; round a single surface
    there is none."""
    photo, truth = photo_on(*CASES[case])
    a = np.asarray(photo).astype(np.float32)
    beyond = surface_of(a).beyond
    if "beyond" not in case and "along its foot" not in case:
        assert not beyond.any()
        return
    floor = _beyond("bottom right" if "corner" in case else "top" if "beyond the" in case else "bottom")
    assert (beyond & floor).sum() > 0.8 * floor.sum() and (beyond & ~floor).sum() < 0.02 * floor.sum()
    assert not (beyond & truth).any()


def test_a_garment_the_frame_cuts_off_is_not_taken_for_a_surface_beyond_it():
    """A pullover in a corner of the picture, cut off by two of its sides, touches the border along a stretch,
    abruptly unlike the wall there, as a floor beyond an edge would; but it goes on past the straight line between
    those ends: it is found as the object, not left out as a surface."""
    table = window_wall(9)
    shape = np.asarray(garment(size=150, fg=255, bg=0)) > 128
    truth = np.zeros((H, W), bool)
    truth[0:120, 0:120] = shape[30:, 30:]
    table[truth] = (40, 60, 150)
    a = table.clip(0, 255).astype(np.uint8)
    assert not surface_of(a.astype(np.float32)).beyond.any()
    found = analyse(a)
    assert (found.mask & truth).sum() / (found.mask | truth).sum() > 0.85


def test_a_small_drawing_in_bands_of_colour_is_not_taken_for_a_floor_beyond_an_edge():
    """A flag of three stripes at 64 px, as a folder of drawings holds them: its bands meet the border as a floor
    beyond a table's edge would, but a picture that small is a drawing or a thumbnail, not a photo of a table."""
    flag = np.zeros((64, 64, 3), np.float32)
    flag[:21], flag[21:43], flag[43:] = (200, 30, 40), (250, 210, 40), (30, 120, 60)
    assert not surface_of(flag).beyond.any()
    big = np.asarray(Image.fromarray(flag.astype(np.uint8)).resize((W, H), Image.Resampling.NEAREST), np.float32)
    assert surface_of(big).beyond.any()  # the same bands in a photo's size: the rule itself would take one


@pytest.mark.parametrize("off", [3, -2])
def test_a_mask_off_the_edge_is_settled_where_a_blend_is_more_object_than_surface(off):
    """The mask, found on a smaller picture and enlarged, runs `off` px over the surface (or short of the edge):
    settled at the picture's own size, the soft edge's blends go to the object where they are more object than
    surface (its true silhouette, alpha > 0.5), on a grainy surface."""
    from scipy import ndimage

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:240, 0:320]
    alpha = np.clip((1 - np.hypot((yy - 120) / 70, (xx - 160) / 100)) * 40 + 0.5, 0, 1)[..., None]
    surface = np.array([200.0, 190.0, 170.0]) + rng.normal(0, 8, (240, 320, 1))
    even = alpha * np.array([60.0, 80.0, 150.0]) + (1 - alpha) * surface
    truth = alpha[..., 0] > 0.5
    grow = ndimage.binary_dilation if off > 0 else ndimage.binary_erosion
    wrong = grow(truth, iterations=abs(off))
    settled = settled_rim(even, wrong, 3.0)
    assert (settled ^ truth).sum() <= 0.2 * (wrong ^ truth).sum(), ((settled ^ truth).sum(), (wrong ^ truth).sum())


def test_specks_of_the_garments_colour_beside_it_do_not_stretch_its_frame():
    """Terrazzo's flecks of the garment's own colour a few pixels from its edge: the graph cut takes them as object,
    and the object's box, which frames it, would grow by them; apart from the garment, they are dropped."""
    photo, truth = photo_on(*CASES["a red pullover on terrazzo with flecks of its red"])
    found = analyse(np.asarray(photo))
    ys, xs = np.nonzero(truth)
    assert np.abs(np.subtract(found.box, (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))).max() <= 4, found.box


@pytest.mark.parametrize("case", CASES)
def test_a_photo_on_a_surface_is_prepared_the_same_every_time(profile, case):
    """The graph cut's colour models start from k-means on OpenCV's random numbers: the same photo, prepared again
    or on another thread (the server's), is the same picture, so it finds the same results every time."""
    photo, _ = photo_on(*CASES[case])
    first = np.asarray(prepare(photo, profile)[0])
    with ThreadPoolExecutor(2) as pool:
        again = [np.asarray(p[0]) for p in pool.map(lambda _: prepare(photo, profile), range(4))]
    for other in again:
        assert other.shape == first.shape and np.array_equal(other, first)


def test_a_flat_background_is_still_analysed_as_one_colour(profile):
    """A dark pullover on an even light background takes the flat path, as before surfaces were handled: the
    background is the border's colour and no light field is divided out."""
    photo = Image.new("RGB", (320, 240), (246, 244, 240))
    photo.paste((40, 40, 50), (100, 60), garment(size=100, fg=255, bg=0))
    found = analyse(np.asarray(photo))
    assert found.light is None and found.box == (100, 60, 200, 160)
    assert not prepare(photo, profile)[1]["surface"]


def test_training_draws_surface_views_prepared_like_a_photo(shapes_dir):
    """DecodedImages with `surfaces`: every image also has a view of its object on a generated surface, prepared
    (so on the collection's background, framed). RobustCollator adds it after a pair's rows, with its label, its
    image's first view as its partner, for the share it is given; without pairs it takes the image's place."""
    from training.augment import RobustCollator
    from training.data import load_image_dataset
    from training.inputs import DecodedImages
    from training.prepare import profile_of

    split = load_image_dataset(str(shapes_dir))["train"].select(range(12))
    prof = profile_of(split)
    mean, std = [0.5] * 3, [0.5] * 3
    ds = DecodedImages(split, 32, mean, std, "robust", prof, surfaces=True)
    assert ds.surfaces.shape == ds.pixels.shape
    item = ds[0]
    assert item["surface_values"].shape == item["pixel_values"].shape
    # prepared: the collection's background round the border
    bg = (torch.tensor(prof.background) / 255 - 0.5) / 0.5
    s = item["surface_values"]
    border = torch.cat([s[:, 0], s[:, -1], s[:, :, 0], s[:, :, -1]], dim=1)
    assert (border - bg.view(3, 1)).abs().median() < 0.1
    assert not torch.equal(ds.surfaces, ds.pixels)  # another picture of the object than the collection's own
    batch = [ds[i] for i in range(8)]
    labels = torch.tensor([b["labels"] for b in batch])
    out = RobustCollator(bg, pairs=True, surfaces=1.0)(batch)
    assert out["pixel_values"].shape == (24, 3, 32, 32) and len(out["pairs"]) == 24
    assert torch.equal(out["labels"], torch.cat([labels, labels, labels]))
    assert torch.equal(out["pairs"][16:], torch.arange(8)) and torch.equal(out["views_of"], torch.arange(8).repeat(3))
    none = RobustCollator(bg, pairs=True, surfaces=0.0)(batch)
    assert none["pixel_values"].shape == (16, 3, 32, 32) and len(none["pairs"]) == 16 and "views_of" not in none
    single = RobustCollator(bg, surfaces=1.0)(batch)
    assert single["pixel_values"].shape == (8, 3, 32, 32) and torch.equal(single["labels"], labels)
    plain = DecodedImages(split, 32, mean, std, "robust", prof)
    assert plain.surfaces is None and "surface_values" not in plain[0]


def test_surface_views_are_kept_for_a_resumed_run(shapes_dir, tmp_path, caplog):
    """Drawn once into the cache folder (the run's checkpoints), read back by the next run on the same data."""
    from training.data import load_image_dataset
    from training.inputs import DecodedImages
    from training.prepare import profile_of

    split = load_image_dataset(str(shapes_dir))["train"].select(range(6))
    prof = profile_of(split)
    first = DecodedImages(split, 24, [0.5] * 3, [0.5] * 3, "robust", prof, surfaces=True, cache=tmp_path)
    assert len(list(tmp_path.glob("surface-views-*.pt"))) == 1
    with caplog.at_level("INFO", logger="training.inputs"):
        again = DecodedImages(split, 24, [0.5] * 3, [0.5] * 3, "robust", prof, surfaces=True, cache=tmp_path)
    assert "surface views from" in caplog.text and torch.equal(first.surfaces, again.surfaces)
    other = DecodedImages(split, 24, [0.5] * 3, [0.5] * 3, "robust", prof, surfaces=True, cache=tmp_path, seed=1)
    assert len(list(tmp_path.glob("surface-views-*.pt"))) == 2 and not torch.equal(other.surfaces, first.surfaces)


def shaded(size: int, dark: float) -> np.ndarray:
    """A pullover's shading: 0 at its left edge rising to 1 at its right, [size, size], inside its silhouette (a
    `garment` of this size) the strength `dark + (1 - dark) * shading`, 0 outside."""
    shading = np.broadcast_to(np.linspace(0, 1, size, dtype=np.float32), (size, size))
    return (np.asarray(garment(size=size, fg=255, bg=0)) > 128) * (dark + (1 - dark) * shading)


def pullovers_shaded_left_to_right() -> ImageProfile:
    """A collection whose pullovers are shaded from faint at the left to bright at the right."""
    return measure_profile([Image.fromarray((shaded(28, d) * 255).astype(np.uint8)) for d in (0.2, 0.3, 0.4)])


def pullover_on_a_wall(colour: np.ndarray, wall_light: float = 1.0) -> Image.Image:
    """A photo of such a pullover, 150 px, on a lit wall (its light times `wall_light`): `colour` (RGB, or
    [150, 150, 3] pixel by pixel) darkened by up to 30 % where the collection's picture is brighter."""
    mask, light = np.zeros((H, W), bool), shaded(150, 0.0)
    mask[50:200, 60:210] = np.asarray(garment(size=150, fg=255, bg=0)) > 128
    a = window_wall(3) * wall_light
    a[mask] = (np.broadcast_to(colour, (150, 150, 3)) * (1 - 0.3 * light)[..., None])[mask[50:200, 60:210]]
    return Image.fromarray(a.clip(0, 255).astype(np.uint8))


def right_minus_left(prepared: Image.Image) -> float:
    """How much brighter the prepared object's right half is than its left (0-1)."""
    p = np.asarray(prepared.convert("L"), dtype=np.float32) / 255
    obj = p > 0.05
    cols = np.nonzero(obj.any(0))[0]
    half = (cols.min() + cols.max()) // 2
    return float(p[:, half:][obj[:, half:]].mean() - p[:, :half][obj[:, :half]].mean())


def test_a_garment_on_a_surface_is_shaded_as_the_collections_objects_are():
    """A collection whose pullovers are shaded from faint at the left to bright at the right; a photo of one in its
    own colour on a surface, darker where the collection's picture is brighter (the collection's images are photos
    with light and dark swapped), and only a little, as a mid-coloured garment on a light table is. Prepared, the
    pullover keeps its shading's direction and takes the collection's spread of strength, where drawing it by its
    distance from the table alone leaves it a narrow band."""
    collection = pullovers_shaded_left_to_right()
    assert collection.levels[0] < 0.4 and collection.levels[-1] > 0.9
    photo = pullover_on_a_wall(np.array([120, 90, 80], np.float32))
    spreads = {}
    for name, profile in (("shaded", collection), ("by distance", replace(collection, levels=()))):
        prepared, info = prepare(photo, profile)
        assert info["surface"] and info.get("shaded", False) == (name == "shaded")
        note = query_note({"prepared": {**info, "profile": "collection"}})
        assert ("shaded as the collection's objects are" in note) == (name == "shaded")
        p = np.asarray(prepared.convert("L"), dtype=np.float32) / 255
        spreads[name + ", right - left"] = right_minus_left(prepared)
        spreads[name] = np.percentile(p[p > 0.05], 90) - np.percentile(p[p > 0.05], 10)
    assert spreads["shaded"] == pytest.approx(collection.levels[-2] - collection.levels[1], abs=0.1)
    assert spreads["shaded, right - left"] > 0.2  # brighter at the right, as the collection's pullovers are
    assert spreads["by distance"] < 0.6 * spreads["shaded"]


def test_a_pale_garment_on_a_dark_surface_is_shaded_by_its_own_darkness():
    """The same pullover, pale, on a dark wall (a white shirt on a dark table): it stands out by being lighter than
    the wall, so its difference from the wall is greatest where it is palest, where the collection's picture is
    faintest. Prepared, it is shaded by its own darkness and is brighter at the right, as the collection's pullovers
    are."""
    collection = pullovers_shaded_left_to_right()
    colour = np.array([235, 225, 215], np.float32)
    on_dark, info = prepare(pullover_on_a_wall(colour, wall_light=0.3), collection)
    assert info["surface"] and info["shaded"]
    assert right_minus_left(on_dark) > 0.15  # by its difference from the wall: as much darker at the right


def test_a_garment_lit_the_other_way_is_searched_with_the_shading_that_finds_nearer_images(tiny_model, tmp_path):
    """A grey collection's garment found on a surface is embedded shaded by its darkness and by its lightness; the
    search keeps the one whose nearest stored image is nearer, and the page says when that is its lightness. The
    collection here holds one image: the photo itself prepared one way or the other (a stand-in for the garment's
    own picture, which a photo lit the one way or the other resembles)."""
    embedder, collection = Embedder(tiny_model), pullovers_shaded_left_to_right()
    buf = io.BytesIO()
    pullover_on_a_wall(np.array([235, 225, 215], np.float32), wall_light=0.3).save(buf, "PNG")
    photo = open_image(buf.getvalue())
    ways = dict(zip((DARKEST, LIGHTEST), embedder.embed_readings(photo, collection), strict=True))
    assert float(ways[DARKEST].floats[0] @ ways[LIGHTEST].floats[0]) < 0.999  # two different queries
    for way, emb in ways.items():
        store = open_store(f"stored-{way}", str(tmp_path / way))
        store.ensure(embedder.meta)
        store.upsert([point_id({"row": 0})], emb.floats, emb.codes, [{"label": "Pullover"}])
        answer = QueryPath(embedder, store, store.meta, collection, "collection").picture(buf.getvalue(), Query())
        assert answer.query["prepared"]["shading"] == way and answer.hits[0].score == pytest.approx(1, abs=1e-3)
        assert ("the other way round" in query_note(answer.query)) == (way == LIGHTEST)
        store.close()


def test_a_striped_garment_on_a_surface_keeps_its_own_shading_under_the_stripes():
    """The same pullover as above in 4-px stripes of its colour and a darker one. Its stripes are finer than a
    collection picture's pixels: smoothed before it is shaded, the pullover seen at the collection's size (28 px)
    still takes the collection's spread of strength and stays brighter at the right; shading the stripes as they
    are spends half the levels on them, and the pullover's own shading is squeezed into what is left."""
    collection = pullovers_shaded_left_to_right()
    stripes = (np.arange(150) // 4 % 2 == 0)[:, None, None]
    colour = np.where(stripes, np.array([120, 90, 80], np.float32), np.array([60, 45, 40], np.float32))
    prepared, info = prepare(pullover_on_a_wall(colour), collection)
    assert info["surface"] and info["shaded"]
    small = prepared.convert("L").resize((28, 28), Image.Resampling.BOX)
    assert right_minus_left(small) > 0.16
    p = np.asarray(small, dtype=np.float32) / 255
    obj = p > 0.05
    spread = np.percentile(p[obj], 90) - np.percentile(p[obj], 10)
    assert spread == pytest.approx(collection.levels[-2] - collection.levels[1], abs=0.1)
