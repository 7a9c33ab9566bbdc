"""Bad input gets a clear message; awkward but valid images are converted; nothing stored is lost."""

import io

import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from tests.hostile import awkward_cases, bad_cases
from training.images import BadImage, open_image, to_rgb

BAD = bad_cases()
AWKWARD = awkward_cases()


@pytest.mark.parametrize("name", list(BAD))
def test_bad_file_is_refused_with_a_message(name):
    data, word = BAD[name]
    with pytest.raises(BadImage, match=word):
        open_image(data)


@pytest.mark.parametrize("name", list(AWKWARD))
def test_awkward_image_is_converted(name):
    image = to_rgb(open_image(AWKWARD[name]))
    assert image.mode == "RGB"
    expected = (48, 64) if name == "jpeg_exif_rotated" else (64, 48)  # EXIF rotation honoured
    assert image.size == expected


def test_animated_gif_uses_its_first_frame():
    image = to_rgb(open_image(AWKWARD["animated_gif"]))
    assert image.getpixel((5, 5))[0] > 150  # the first frame's red half, not the green second frame


def test_transparency_is_composited_on_white():
    rgba = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    buf = io.BytesIO()
    rgba.save(buf, format="PNG")
    assert to_rgb(open_image(buf.getvalue())).getpixel((0, 0)) == (255, 255, 255)


def test_every_bad_upload_is_an_api_error_and_nothing_changes(served, tmp_path):
    client, _, _ = served
    before = client.predict(api_name="/overview")
    for name, (data, word) in BAD.items():
        path = tmp_path / f"{name}.png"
        path.write_bytes(data)
        with pytest.raises(AppError, match=word):
            client.predict(handle_file(str(path)), "cosine", 3, api_name="/search")
        with pytest.raises(AppError, match=word):
            client.predict([handle_file(str(path))], "x", api_name="/add")
    assert client.predict(api_name="/overview") == before
    ok = tmp_path / "ok.png"
    ok.write_bytes(AWKWARD["rgba_png"])
    _, results, *_ = client.predict(handle_file(str(ok)), "cosine", 3, api_name="/search")
    assert len(results) == 3


@pytest.mark.parametrize("name", list(AWKWARD))
def test_awkward_upload_is_searchable(served, tmp_path, name):
    client, _, _ = served
    path = tmp_path / (f"{name}.jpg" if name == "png_named_jpg" else f"{name}.bin")
    path.write_bytes(AWKWARD[name])
    _, results, *_ = client.predict(handle_file(str(path)), "hamming", 3, api_name="/search")
    assert len(results) == 3


def test_an_upload_over_the_size_limit_is_refused(served, tmp_path):
    client, service, _ = served
    big = tmp_path / "big.png"
    big.write_bytes(BAD["text"][0] * (int(service.settings.max_upload_mb * 1024 * 1024) // 300 + 10))
    # gradio_client reads the limit from the page's config and refuses before sending...
    with pytest.raises((AppError, ValueError), match="(?i)limit|too large|exceed"):
        client.predict(handle_file(str(big)), "cosine", 3, api_name="/search")
    # ...and a client that sends it anyway is refused by the server, before anything reads it
    import httpx

    with big.open("rb") as f:
        response = httpx.post(client.src.rstrip("/") + "/gradio_api/upload", files={"files": ("big.png", f)})
    assert response.status_code == 413, response.text
