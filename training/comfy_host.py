"""Import the host ComfyUI as a library, and this pack as the package `zerovideo`, for the training tools.

The ComfyUI folder comes from ZEROVIDEO_COMFYUI_DIR (or ZEROVIDEO_COMFYUI). ComfyUI parses no argv when
imported as a library; `cpu` sets its --cpu before comfy.model_management is imported, because that module
picks its device at import time. (The developer tools in scripts/ import through here too.)
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACK_NAME = "zerovideo"


def configured_comfyui() -> Path | None:
    d = os.environ.get("ZEROVIDEO_COMFYUI_DIR") or os.environ.get("ZEROVIDEO_COMFYUI")
    return Path(d).resolve() if d else None


def import_comfy(folder: Path, cpu: bool) -> object:
    """Put ComfyUI's `folder` on sys.path and configure its args; returns comfy.model_management."""
    d = str(folder)
    if d not in sys.path:
        sys.path.insert(0, d)
    import comfy.cli_args
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
