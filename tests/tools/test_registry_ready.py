"""Comfy Registry readiness: the registry's own checker accepts pyproject.toml, and .comfyignore keeps
development material out of the published archive."""
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_comfy_node_validate_passes():
    comfy = os.environ.get("ZEROVIDEO_COMFY_CLI")
    if not comfy:
        pytest.fail("ZEROVIDEO_COMFY_CLI is not set: run the tests through `python3 scripts/host.py test`")
    r = subprocess.run([comfy, "--skip-prompt", "node", "validate"], cwd=REPO, capture_output=True, text=True,
                       timeout=300, stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and "validation checks passed" in r.stdout + r.stderr, r.stdout + r.stderr


def test_comfyignore_excludes_tests_benches_and_caches():
    ignored = {line.strip() for line in (REPO / ".comfyignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {"tests/", "bench/", ".cache/", "scripts/", ".ci/"} <= ignored


def test_pyproject_declares_what_the_registry_needs():
    import tomllib
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    project, comfy = meta["project"], meta["tool"]["comfy"]
    assert "comfyui" not in project["name"].lower()
    assert {"torch", "einops", "numpy"} <= {d.split(">")[0].split("=")[0] for d in project["dependencies"]}
    assert comfy["PublisherId"] and comfy["DisplayName"] and comfy["requires-comfyui"].startswith(">=")
