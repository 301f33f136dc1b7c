"""Import the host ComfyUI in-process (tests, benchmarks, the tiny-model builder).

The host folder comes from ZEROVIDEO_COMFYUI_DIR (set by scripts/host.py) or ZEROVIDEO_COMFYUI.
ComfyUI parses no argv when imported as a library; we set --cpu (and --deterministic for tests)
before comfy.model_management is imported, because that module picks its device at import time.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACK_NAME = "zerovideo"


def comfyui_dir() -> Path:
    d = os.environ.get("ZEROVIDEO_COMFYUI_DIR") or os.environ.get("ZEROVIDEO_COMFYUI")
    if d:
        return Path(d).resolve()
    try:
        from scripts import host
    except ImportError:  # a registry install ships only the post-tuning CLI's scripts, not the test host
        raise SystemExit("ZeroVideo: set ZEROVIDEO_COMFYUI_DIR (or --comfyui) to your ComfyUI folder") from None
    return host.comfyui_dir()


def import_comfy(cpu: bool | None = None):
    """Put ComfyUI on sys.path and configure its args; returns comfy.model_management."""
    d = str(comfyui_dir())
    if d not in sys.path:
        sys.path.insert(0, d)
    import comfy.cli_args
    if cpu is None:
        cpu = os.environ.get("ZEROVIDEO_DEVICE", "cpu") == "cpu"
    if "comfy.model_management" not in sys.modules:
        comfy.cli_args.args.cpu = cpu
    import comfy.model_management
    return comfy.model_management


def import_pack():
    """Import this repository as the package `zerovideo`, the way ComfyUI imports a custom node."""
    if PACK_NAME in sys.modules:
        return sys.modules[PACK_NAME]
    spec = importlib.util.spec_from_file_location(
        PACK_NAME, REPO / "__init__.py", submodule_search_locations=[str(REPO)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK_NAME] = module
    spec.loader.exec_module(module)
    return module
