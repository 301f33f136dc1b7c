"""Import the host ComfyUI in-process (tests, benchmarks, the tiny-model builder).

The host folder comes from ZEROVIDEO_COMFYUI_DIR (set by scripts/host.py) or ZEROVIDEO_COMFYUI, else the
pinned test host of scripts/host.py. The device defaults to the CPU (ZEROVIDEO_DEVICE=cuda for benchmarks).
The importing itself is training/comfy_host.py's, which the shipped training tools use.
"""
from __future__ import annotations

import os
from pathlib import Path

from training.comfy_host import PACK_NAME, REPO, configured_comfyui, import_pack  # noqa: F401  (re-exported)
from training import comfy_host


def comfyui_dir() -> Path:
    d = configured_comfyui()
    if d is not None:
        return d
    from scripts import host
    return host.comfyui_dir()


def import_comfy(cpu: bool | None = None):
    """Put ComfyUI on sys.path and configure its args; returns comfy.model_management."""
    if cpu is None:
        cpu = os.environ.get("ZEROVIDEO_DEVICE", "cpu") == "cpu"
    return comfy_host.import_comfy(comfyui_dir(), cpu)
