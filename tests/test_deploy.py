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
APP_MAIN = (ROOT / "app" / "__main__.py").read_text() + (ROOT / "indexer" / "store.py").read_text()


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
