"""Image references cannot leave the data folder; Gradio serves only what it must; secrets stay secret."""

import logging
import os
from pathlib import Path

import httpx
import pytest

from app.gallery import example_files
from indexer.sources import SourceError, resolve_image


@pytest.mark.parametrize("rel, why", [("../../etc/passwd", "points outside"), ("/etc/passwd", "points outside"),
                                      ("ab/../../../etc/hostname", "points outside"), ("", "empty image reference")])
def test_crafted_file_reference_is_refused(tmp_path, rel, why):
    """Refused for what it is, not found missing: the files it names exist, and are never opened."""
    (tmp_path / "images").mkdir()
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "hostname").write_text("secret")  # what ab/../../etc/hostname from images/ reaches
    with pytest.raises(SourceError, match=why):
        resolve_image({"source": {"file": rel}}, tmp_path / "images")
    with pytest.raises(SourceError, match=why):
        resolve_image({"source": {"file": rel.replace("../../../", "../../")}}, tmp_path / "images")


def test_symlink_out_of_the_data_folder_is_refused(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    (images / "ab").mkdir()
    os.symlink("/etc/passwd", images / "ab" / "evil.png")
    with pytest.raises(SourceError, match="outside"):
        resolve_image({"source": {"file": "ab/evil.png"}}, images)


def test_gradio_serves_examples_but_not_arbitrary_or_stored_files(served):
    client, service, data_dir = served
    examples = example_files(service)
    assert examples
    base = client.src.rstrip("/")
    ok = httpx.get(f"{base}/gradio_api/file={examples[0]}")
    assert ok.status_code == 200 and ok.content[:4] == b"\x89PNG"
    secret = data_dir / "qdrant-like-secret.txt"
    secret.write_text("do not serve")
    model_file = Path(service.settings.model_dir, "config.json").resolve()
    index_file = next(p for p in Path(service.settings.qdrant).rglob("*") if p.is_file()).resolve()
    for path in ("/etc/passwd", str(secret), str(Path(__file__).resolve()), str(model_file), str(index_file)):
        r = httpx.get(f"{base}/gradio_api/file={path}")
        assert r.status_code in (403, 404) and b"root:" not in r.content and b"do not serve" not in r.content


def test_api_key_never_reaches_the_logs_or_the_page(tiny_model, tmp_path, caplog, monkeypatch, refusing_port):
    from app.service import SearchService, Settings

    port = refusing_port
    key = "sk-test-0123456789-very-secret"
    monkeypatch.setenv("QDRANT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("QDRANT_API_KEY", key)
    caplog.set_level(logging.DEBUG)
    service = SearchService(Settings(model_dir=str(tiny_model), data_dir=str(tmp_path)))
    try:
        status = service.status()
        assert "does not answer" in status and key not in status
        assert key not in caplog.text
    finally:
        service.close()


@pytest.mark.parametrize("rel", ["../../etc/passwd", "/etc/passwd", "a/../../x.png"])
def test_a_folder_images_reference_cannot_leave_its_folder(tmp_path, rel):
    with pytest.raises(SourceError, match="outside"):
        resolve_image({"source": {"dataset": str(tmp_path), "split": "train", "filename": rel}}, tmp_path)
