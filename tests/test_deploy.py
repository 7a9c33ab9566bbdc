"""compose.yaml, the Dockerfile and the Space config agree with the code (no Docker engine runs here)."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
DOCKERFILE = (ROOT / "docker" / "Dockerfile").read_text()
APP_MAIN = (ROOT / "app" / "__main__.py").read_text() + (ROOT / "training" / "config.py").read_text()


def test_compose_has_qdrant_app_and_one_shot_indexer():
    services = COMPOSE["services"]
    assert set(services) == {"qdrant", "app", "indexer"}
    qdrant = services["qdrant"]
    assert re.fullmatch(r"qdrant/qdrant:v\d+\.\d+\.\d+", qdrant["image"]), "pin the Qdrant image version"
    assert "healthcheck" in qdrant and qdrant["environment"]["QDRANT__SERVICE__API_KEY"].startswith("${QDRANT_API_KEY")
    assert "qdrant_storage:/qdrant/storage" in qdrant["volumes"] and "qdrant_storage" in COMPOSE["volumes"]
    app = services["app"]
    assert app["build"]["dockerfile"] == "docker/Dockerfile"
    assert app["depends_on"]["qdrant"]["condition"] == "service_healthy"
    assert any(p.endswith(":7860") for p in app["ports"])
    indexer = services["indexer"]
    assert indexer["command"][:4] == ["python3", "-m", "indexer", "build"]
    assert indexer["depends_on"]["qdrant"]["condition"] == "service_healthy"


def test_compose_sets_only_env_names_the_code_reads():
    for service in ("app", "indexer"):
        for name in COMPOSE["services"][service]["environment"]:
            assert f'"{name}"' in APP_MAIN, f"{service} sets {name}, which no code reads"


def test_the_defaults_live_in_one_file_that_make_compose_and_the_image_read():
    """training/defaults.env holds the model dir, collection, dataset and data dir; no other place repeats them, and
    each reads them: the Makefile, compose (unset variables fall through to the file) and the image (whose working
    directory makes the relative defaults land on the mounted folders)."""
    from training import config

    for name in ("Makefile", "compose.yaml", "docker/Dockerfile", "docker/env.example", "app/__main__.py"):
        text = (ROOT / name).read_text()
        for value in (config.DEFAULTS["model"], f'"{config.DEFAULTS["collection"]}"', "COLLECTION=fashion_mnist"):
            assert value not in text, f"{name} repeats the default {value}"
    dry = subprocess.run(["make", "-n", "index"], cwd=ROOT, capture_output=True, text=True).stdout
    assert (f"--model {config.DEFAULTS['model']} --dataset {config.DEFAULTS['dataset']} "
            f"--collection {config.DEFAULTS['collection']}") in dry
    assert re.search(r"^WORKDIR /srv$", DOCKERFILE, re.M) and "defaults.env" in DOCKERFILE
    for service in ("app", "indexer"):
        volumes = COMPOSE["services"][service]["volumes"]
        assert f"./models:/srv/{Path(config.DEFAULTS['model']).parent}:ro" in volumes
        assert f"app_data:/srv/{config.DEFAULTS['data_dir']}" in volumes


def test_dockerfile_is_slim_non_root_healthchecked():
    assert re.search(r"^ARG BASE=python:3\.11-slim", DOCKERFILE, re.M)
    assert "FROM ${BASE}" in DOCKERFILE and "ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu" in DOCKERFILE
    user = re.findall(r"^USER (\S+)", DOCKERFILE, re.M)
    assert user and user[-1] not in ("root", "0")
    assert "HEALTHCHECK" in DOCKERFILE and "EXPOSE 7860" in DOCKERFILE
    assert 'CMD ["python3", "-m", "app"]' in DOCKERFILE
    for pkg in ("training", "indexer", "app"):
        assert f"COPY {pkg} ./{pkg}" in DOCKERFILE


def test_space_front_matter_points_at_a_real_entry_point():
    readme = (ROOT / "README.md").read_text()
    front = yaml.safe_load(readme.split("---")[1])
    assert front["sdk"] == "gradio" and (ROOT / front["app_file"]).is_file()


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI")
def test_docker_compose_config_when_the_plugin_exists(tmp_path):
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("the docker CLI has no compose plugin here")
    env = dict(QDRANT_API_KEY="test-key")
    out = subprocess.run(["docker", "compose", "-f", str(ROOT / "compose.yaml"), "config", "--quiet"],
                         capture_output=True, env={**__import__("os").environ, **env})
    assert out.returncode == 0, out.stderr.decode()


def test_compose_pins_a_qdrant_server_the_installed_client_talks_to():
    from importlib.metadata import version

    from qdrant_client.common.version_check import is_compatible

    server = COMPOSE["services"]["qdrant"]["image"].split(":v")[1]
    assert is_compatible(version("qdrant-client"), server), f"qdrant-client {version('qdrant-client')} vs {server}"


def test_space_bundle_installs_from_requirements_and_serves(tiny_model, shapes_dir, tmp_path):
    """`make space`'s folder: requirements.txt carries every dependency of pyproject.toml; run as the Space runs
    it (`python app/space.py` from its root, INDEX_DATASET set, nothing else installed from the checkout),
    it indexes the dataset and answers /search through gradio_client."""
    import os
    import sys
    import tomllib

    from gradio_client import Client, handle_file
    from packaging.requirements import Requirement

    from app.space import write_bundle
    from bench.common import serve_process

    bundle = write_bundle(tmp_path / "space", tiny_model)
    lines = [x for x in (bundle / "requirements.txt").read_text().splitlines() if x and not x.startswith(("#", "-"))]
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    wanted = {Requirement(d).name for d in deps}
    assert {Requirement(x).name for x in lines} == wanted
    front = yaml.safe_load((bundle / "README.md").read_text().split("---")[1])
    assert (bundle / front["app_file"]).is_file() and not (bundle / "models" / tiny_model.name / "checkpoints").exists()

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "QDRANT_URL", "QDRANT_PATH",
                                                            "GRADIO_SERVER_PORT")}
    env.update(MODEL_DIR=f"models/{tiny_model.name}", COLLECTION="shapes", INDEX_DATASET=str(shapes_dir),
               DATA_DIR=str(tmp_path / "data"), GRADIO_SERVER_NAME="127.0.0.1")
    proc, url = serve_process([sys.executable, front["app_file"], "--port", "0"], cwd=bundle, env=env)
    try:
        client = Client(url, verbose=False)
        query = next((shapes_dir / "square").glob("*.png"))
        _, results, *_ = client.predict(handle_file(str(query)), "cosine", 3, api_name="/search")
        assert len(results) == 3 and results[0]["label"] == "square"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "index: 120 added" in "".join(proc.lines)
