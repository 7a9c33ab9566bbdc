"""The image module: a collection's profile, and a person's picture prepared to look like the collection's images."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from training.images import preprocess
from training.prepare import DARK_ON_LIGHT, LIGHT_ON_DARK, ImageProfile, measure_profile, prepare
from training.views import view_count, view_stack


def garment(size: int = 28, fg: int = 230, bg: int = 0, box=None) -> Image.Image:
    """A Fashion-MNIST-like picture: a bright 'pullover' (body and sleeves) filling a dark square frame."""
    image = Image.new("L", (size, size), bg)
    d = ImageDraw.Draw(image)
    left, top, right, bottom = box or (0, 0, size - 1, size - 1)
    w, h = right - left, bottom - top
    d.rectangle((left + w * 0.25, top, left + w * 0.75, bottom), fill=fg)  # body
    d.polygon([(left + w * 0.25, top), (left, top + h * 0.7), (left + w * 0.12, top + h * 0.75),
               (left + w * 0.3, top + h * 0.3)], fill=fg)  # left sleeve
    d.polygon([(left + w * 0.75, top), (right, top + h * 0.7), (right - w * 0.12, top + h * 0.75),
               (right - w * 0.7, top + h * 0.3)], fill=fg)  # right sleeve
    return image


@pytest.fixture(scope="module")
def fmnist_like_profile() -> ImageProfile:
    return measure_profile([garment(fg=fg) for fg in (180, 210, 240)])


def test_profile_of_a_dark_background_grey_collection(fmnist_like_profile):
    p = fmnist_like_profile
    assert p.polarity == LIGHT_ON_DARK and p.background == (0.0, 0.0, 0.0) and not p.colour
    assert p.fill == pytest.approx(1.0, abs=0.05) and p.centre == pytest.approx((0.5, 0.5), abs=0.05)
    assert p.aspect == 1.0 and p.samples == 3
    assert ImageProfile.from_dict(p.as_dict()) == p and ImageProfile.from_dict(None) is None


def test_a_dark_object_on_white_small_and_off_centre_is_framed_like_the_collection(fmnist_like_profile):
    """A colour photo: a dark red pullover at a fifth of a 320×240 light frame, near its top-left corner, comes
    out as the collection frames its objects: grey, light on black, filling a square frame, centred."""
    photo = Image.new("RGB", (320, 240), (246, 244, 240))
    small = garment(size=48, fg=255, bg=0)  # the shape, as a mask
    photo.paste((120, 20, 30), (30, 20), small)
    prepared, info = prepare(photo, fmnist_like_profile)
    assert info["prepared"] and info["inverted"] and info["grey"]
    assert prepared.width == prepared.height  # the collection's aspect
    a = np.asarray(prepared.convert("L"), dtype=np.float32)
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    assert np.median(border) < 10  # the collection's black background
    ys, xs = np.nonzero(a > 40)
    # the object fills the frame in one dimension and is centred in the other
    assert max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1) >= 0.95 * prepared.width
    assert abs((xs.min() + xs.max()) / 2 - prepared.width / 2) <= 1.5
    assert abs((ys.min() + ys.max()) / 2 - prepared.height / 2) <= 1.5
    # and, at the model's input size, it looks like the collection's own picture of the same garment (dark red on
    # white is as strong as 200 on black)
    reference = preprocess([garment(fg=200)], 28, [0.0] * 3, [1.0] * 3)
    query = preprocess([prepared], 28, [0.0] * 3, [1.0] * 3)
    assert (query - reference).abs().mean() < 0.08
    unprepared = preprocess([photo], 28, [0.0] * 3, [1.0] * 3)
    assert (unprepared - reference).abs().mean() > 4 * (query - reference).abs().mean()


def test_a_collection_image_passes_through_unchanged(fmnist_like_profile):
    image = garment(fg=200).convert("RGB")
    prepared, info = prepare(image, fmnist_like_profile)
    assert not info["inverted"] and info["object"] == [0, 0, 28, 28]
    assert np.array_equal(np.asarray(prepared), np.asarray(image))


@pytest.fixture(scope="module")
def product_shots_profile():
    """A folder of product shots: colour, dark objects on white, 3:2 frames, the object filling 60 %."""
    shots = []
    for i in range(5):
        shot = Image.new("RGB", (300, 200), (250, 250, 250))
        ImageDraw.Draw(shot).ellipse((90, 40 + i, 210, 160 + i), fill=(30, 60 + 20 * i, 160))
        shots.append(shot)
    return measure_profile(shots)


def test_a_light_background_collection_keeps_its_polarity_and_colour(product_shots_profile):
    """The product shots get their own profile, and a mustard object on black is moved, in its own colour, onto the
    collection's white in a 3:2 frame (not inverted to blue)."""
    p = product_shots_profile
    assert p.polarity == DARK_ON_LIGHT and p.colour and p.aspect == 1.5
    assert p.fill == pytest.approx(0.6, abs=0.03) and p.background == (250.0, 250.0, 250.0)
    query = Image.new("RGB", (64, 64), (0, 0, 0))
    ImageDraw.Draw(query).ellipse((5, 5, 25, 25), fill=(200, 170, 80))
    prepared, info = prepare(query, p)
    assert info["matted"] and not info["inverted"] and "grey" not in info
    assert prepared.width / prepared.height == pytest.approx(1.5, abs=0.05)
    a = np.asarray(prepared)
    assert a[0, 0].min() >= 245
    assert np.abs(a[a.shape[0] // 2, a.shape[1] // 2].astype(int) - (200, 170, 80)).max() <= 2


def test_a_drawing_on_a_coloured_background_keeps_its_colours_on_the_collections(product_shots_profile):
    """A white card with a red mark and a black rim on blue, in a colour collection on white: the card stays white
    and the mark red over the collection's background, the blue gone; white lines on black (nothing of them would
    show on white) are inverted instead."""
    card = Image.new("RGB", (64, 64), (70, 90, 200))
    draw = ImageDraw.Draw(card)
    draw.rectangle((16, 8, 47, 55), fill=(255, 255, 255), outline=(0, 0, 0), width=2)
    draw.ellipse((26, 24, 37, 39), fill=(220, 20, 20))
    prepared, info = prepare(card, product_shots_profile)
    a = np.asarray(prepared).astype(int)
    assert info["matted"] and not info["inverted"]
    blue = (a[..., 2] - a[..., 0] > 60) & (a[..., 2] - a[..., 1] > 60)
    assert not blue.any()
    h, w = a.shape[:2]
    assert (a[h // 2, w // 2] == (220, 20, 20)).all() and a[0, 0].min() >= 245
    assert (a[h // 2 - 18, w // 2] >= 250).all()  # the card's white, above the mark
    chalk = Image.new("RGB", (64, 64), (0, 0, 0))
    ImageDraw.Draw(chalk).line((10, 10, 54, 54), fill=(255, 255, 255), width=3)
    prepared, info = prepare(chalk, product_shots_profile)
    assert info["inverted"] and "matted" not in info and np.asarray(prepared).min() < 60



def test_a_faint_drawing_on_a_coloured_background_is_moved_onto_the_collections(product_shots_profile):
    """A drawing too faint to stand out (a thin ring a little darker than its purple background): nothing is framed as
    an object, and the purple is still replaced by the collection's white, the ring kept as a faint line on it (it
    was served on purple, unlike every picture of the collection)."""
    faint = Image.new("RGB", (64, 64), (150, 90, 170))
    ImageDraw.Draw(faint).ellipse((12, 12, 51, 51), outline=(138, 80, 158), width=2)
    prepared, info = prepare(faint, product_shots_profile)
    a = np.asarray(prepared).astype(int)
    assert info["object"] is None and info["matted"]
    assert a[0, 0].min() >= 245 and a[32, 32].min() >= 245  # white round the ring and inside it
    ring = a[32, 12:15].min(0)
    assert ring.max() < 250 and (np.abs(a.max(-1) - a.min(-1)) <= 8).all()  # a faint line, no purple anywhere
    from app.notes import query_note

    assert query_note({"prepared": info}).endswith("searched, its background replaced by the collection's.")

def test_without_a_profile_a_picture_is_only_made_rgb():
    image = garment().convert("LA")
    prepared, info = prepare(image, None)
    assert info == {"prepared": False} and prepared.mode == "RGB" and prepared.size == image.size


def test_a_blank_picture_is_searched_as_it_is(fmnist_like_profile):
    prepared, info = prepare(Image.new("RGB", (40, 30), (128, 128, 128)), fmnist_like_profile)
    assert info["object"] is None and prepared.size == (40, 30)


def test_preprocess_pads_a_non_square_picture_instead_of_cropping_it():
    """A wide picture keeps both ends of its object (a centre crop would cut them off)."""
    wide = Image.new("RGB", (90, 30), (0, 0, 0))
    wide.paste((255, 255, 255), (0, 10, 6, 20))  # a mark at the far left
    wide.paste((255, 255, 255), (84, 10, 90, 20))  # and the far right
    x = preprocess([wide], 30, [0.0] * 3, [1.0] * 3)[0, 0]
    assert x[:, :2].max() > 0.5 and x[:, -2:].max() > 0.5
    assert x[:8].max() == 0 and x[-8:].max() == 0  # padded above and below with the border colour


def test_robust_augmentation_keeps_the_background_and_changes_the_object():
    from training.augment import robust_augment

    torch.manual_seed(0)
    bg = torch.tensor([-1.0, -1.0, -1.0])
    x = preprocess([garment(fg=200, box=(6, 6, 21, 21)) for _ in range(64)], 28, [0.5] * 3, [0.5] * 3)
    y = robust_augment(x, bg)
    assert y.shape == x.shape
    changed = (y - x).abs().flatten(1).amax(1) > 0.1
    assert 0.3 < changed.float().mean() < 1.0  # about half geometric/tonal, half flipped only
    assert torch.allclose(y[:, :, 0, 0], bg.expand(64, 3), atol=1e-4)  # what comes into view is background


def test_robust_augmentation_cut_reframes_an_object_the_edge_cut_off():
    """`cut`: a side and an end of an object that fills the frame are cut off and the rest enlarged to the frame
    again, as preparation frames a picture whose edge cut the object: a horizontal ramp loses values at one end
    only, and what is left still spans the frame in order."""
    from training.augment import robust_augment

    torch.manual_seed(0)
    ramp = torch.linspace(0, 1, 28).view(1, 1, 1, 28).expand(64, 3, 28, 28).contiguous()
    still = dict(p=1.0, rotate=0.0, scale=(1.0, 1.0), shift=0.0, contrast=(1.0, 1.0), blur=(1.0, 1.0))
    y = robust_augment(ramp, torch.full((3,), -1.0), cut=0.1, **still)[:, 0, 14, 1:-1]  # the middle row's inside
    y = torch.where(y[:, :1] > y[:, -1:], y.flip(-1), y)  # undo the mirroring
    assert (y.diff(dim=1) > 0).all()  # still one ramp across the frame: enlarged, not cut into background
    lost_low, lost_high = y[:, 0] > 0.06, y[:, -1] < 0.94  # uncut: 1/27 and 26/27
    assert (lost_low | lost_high).float().mean() > 0.6 and not (lost_low & lost_high).any()  # one end cut
    assert y[:, 0].max() < 0.16 and y[:, -1].min() > 0.84  # by at most `cut` of the size
    plain = robust_augment(ramp, torch.full((3,), -1.0), **still)[:, 0, 14]
    assert torch.allclose(plain.min(1).values, torch.zeros(64), atol=1e-4)  # no cut unless asked


def test_a_faint_object_is_stretched_to_the_collection_contrast(fmnist_like_profile):
    """A pale garment on white (what a light product photo gives once inverted) is as faint as none of the
    collection's objects: it is stretched to the collection's contrast floor; a strong one is left alone."""
    faint = garment(fg=60)
    prepared, info = prepare(faint, fmnist_like_profile)
    assert info["stretched"] > 2
    assert np.asarray(prepared).max() == pytest.approx(fmnist_like_profile.contrast * 255, abs=3)
    assert "stretched" not in prepare(garment(fg=240), fmnist_like_profile)[1]


def test_the_smoothed_views_quiet_pixel_noise_and_keep_the_picture():
    """`image+mirror+smooth`: the image, its mirror, and both through the 3×3 binomial kernel. A flat picture comes
    through unchanged (the border repeated, not padded with zeros), independent pixel noise keeps 36/256 of its
    variance, and the mirror of the smoothed image is the smoothed mirror, so the mean stays mirror-invariant."""
    x = preprocess([garment()], 28, (0.5,) * 3, (0.25,) * 3)
    stack = view_stack(x, "image+mirror+smooth")
    assert stack.shape == (4, 3, 28, 28) and view_count("image+mirror+smooth") == 4
    assert torch.equal(stack[0], x[0]) and torch.equal(stack[1], x[0].flip(-1))
    assert torch.allclose(stack[3], stack[2].flip(-1), atol=1e-6)
    flat = torch.full((1, 3, 8, 8), -2.0)
    assert torch.allclose(view_stack(flat, "image+mirror+smooth"), flat.expand(4, 3, 8, 8))
    noise = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    assert abs(view_stack(noise, "image+mirror+smooth")[2].var().item() - 36 / 256) < 0.01
    assert view_stack(x, "image").shape == (1, 3, 28, 28) and view_count("image+mirror") == 2


def test_a_noisy_picture_is_smoothed_before_its_object_is_found(fmnist_like_profile, monkeypatch):
    """A garment under pixel noise (σ 20, a dim photo's grain): preparation measures the noise on the plain
    background, smooths it with the edges kept, and frames the garment as it frames the clean one; left noisy, stray
    specks widen the object's box and the prepared picture is further from the clean one. A clean picture is not
    smoothed."""
    import training.analysis

    clean = garment(fg=200, box=(5, 3, 22, 24))
    rng = np.random.default_rng(0)
    noisy = Image.fromarray((np.asarray(clean, np.float32) + rng.normal(0, 20, (28, 28))).clip(0, 255).astype(np.uint8))
    reference, clean_info = prepare(clean, fmnist_like_profile)
    assert "smoothed" not in clean_info
    strap = clean.copy()
    ImageDraw.Draw(strap).line((1, 26, 26, 26), fill=150)  # a sandal's strap, 1 px: the 3×3 median erases it
    assert "smoothed" not in prepare(strap, fmnist_like_profile)[1]
    smoothed, info = prepare(noisy, fmnist_like_profile)
    assert 5 < info["smoothed"] < 20
    monkeypatch.setattr(training.analysis, "NOISE_FLOOR", 1e9)  # the same picture, not smoothed
    left_noisy, noisy_info = prepare(noisy, fmnist_like_profile)
    assert "smoothed" not in noisy_info

    def off(a, b):  # mean difference at the model's input size, 0-1
        return (preprocess([a], 28, [0.0] * 3, [1.0] * 3) - preprocess([b], 28, [0.0] * 3, [1.0] * 3)).abs().mean()

    assert all(abs(u - v) <= 1 for u, v in zip(info["object"], clean_info["object"], strict=True))
    assert noisy_info["object"] != clean_info["object"]
    assert off(smoothed, reference) < 0.5 * off(left_noisy, reference)
    from app.notes import query_note

    assert "its noise smoothed away" in query_note({"prepared": {**info, "profile": "collection"}})
    assert "noise" not in query_note({"prepared": {**clean_info, "profile": "collection"}})
