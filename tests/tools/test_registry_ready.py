"""Comfy Registry readiness: the registry's own checker accepts pyproject.toml, and the archive that
`comfy node pack` builds (git-tracked files minus .comfyignore) holds the pack and the post-tuning CLI but no
development material."""
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_comfy_node_validate_passes():
    comfy = comfy_cli()
    r = subprocess.run([comfy, "--skip-prompt", "node", "validate"], cwd=REPO, capture_output=True, text=True,
                       timeout=300, stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and "validation checks passed" in r.stdout + r.stderr, r.stdout + r.stderr


def comfy_cli() -> str:
    comfy = os.environ.get("ZEROVIDEO_COMFY_CLI")
    if not comfy:
        pytest.fail("ZEROVIDEO_COMFY_CLI is not set: run the tests through `python3 scripts/host.py test`")
    return comfy


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """The registry archive as `comfy node pack` builds it, extracted; (folder, member names)."""
    zip_path = REPO / "node.zip"  # where comfy-cli writes it (gitignored); moved out at once
    zip_path.unlink(missing_ok=True)
    r = subprocess.run([comfy_cli(), "--skip-prompt", "node", "pack"], cwd=REPO, capture_output=True, text=True,
                       timeout=300, stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and zip_path.is_file(), r.stdout + r.stderr
    folder = tmp_path_factory.mktemp("registry-archive") / "zerovideo"
    try:
        with zipfile.ZipFile(zip_path) as z:
            names = set(z.namelist())
            z.extractall(folder)
    finally:
        zip_path.unlink(missing_ok=True)
    return folder, names


def test_archive_holds_the_pack_and_no_development_material(archive):
    _, names = archive
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    shipped = [f for f in tracked if f.split("/")[0] in ("nodes", "kernels", "training", "web", "workflows")]
    assert shipped and set(shipped) <= names, set(shipped) - names
    assert {"__init__.py", "pyproject.toml", "LICENSE", "README.md", "requirements.txt", "training/__init__.py",
            "training/comfy_host.py", "training/exvideo_posttune.py"} <= names
    # scripts/ is developer tooling: only the trainer's earlier name (a forwarder) ships
    dev = sorted(n for n in names if n.split("/")[0] in ("tests", "bench", ".ci", ".cache", "out")
                 or (n.startswith("scripts/") and n not in ("scripts/__init__.py", "scripts/exvideo_posttune.py")))
    assert not dev, dev


@pytest.mark.parametrize("module", ["training.exvideo_posttune", "scripts.exvideo_posttune"])
def test_the_post_tuning_cli_runs_from_the_archive(archive, tmp_path, module):
    """As a registry user runs it from custom_nodes/<pack>: it imports ComfyUI and the pack from the archive
    alone (no developer scripts), then refuses a pickle checkpoint with its own message. Under its earlier
    name too."""
    folder, _ = archive
    (tmp_path / "clips").mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("ZEROVIDEO_COMFYUI_DIR", "ZEROVIDEO_COMFYUI")}
    r = subprocess.run([sys.executable, "-m", module,
                        "--comfyui", os.environ["ZEROVIDEO_COMFYUI_DIR"],
                        "--checkpoint", str(tmp_path / "svd.ckpt"), "--videos", str(tmp_path / "clips"),
                        "--out", str(tmp_path / "ext.safetensors"), "--device", "cpu"],
                       cwd=folder, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "pickle files can run code" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_pyproject_declares_what_the_registry_needs():
    import tomllib
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    project, comfy = meta["project"], meta["tool"]["comfy"]
    assert "comfyui" not in project["name"].lower()
    assert {"torch", "einops", "numpy"} <= {d.split(">")[0].split("=")[0] for d in project["dependencies"]}
    assert comfy["PublisherId"] and comfy["DisplayName"] and comfy["requires-comfyui"].startswith(">=")
    # the floor is the oldest host the tests run on (scripts/host.py: the pinned host and the older ones)
    from scripts import host
    tested = [host.HOST_COMFYUI_VERSION, *host.OLD_HOSTS]
    assert comfy["requires-comfyui"] == ">=" + min(tested, key=lambda v: tuple(map(int, v.split("."))))
