"""ZeroVideo: training-free video research (Text2Video-Zero, ZS², ZeroSmooth, ExVideo) as ComfyUI nodes.

ComfyUI imports this file and calls `comfy_entrypoint()` (V3 node API). The node modules are imported
there, not at import time, so `kernels/` stays importable without ComfyUI (tests, benchmarks).
"""

WEB_DIRECTORY = "./web"  # node help pages (web/docs/<NodeId>.md) for ComfyUI's help panel


async def comfy_entrypoint():
    from .nodes import ZeroVideoExtension
    return ZeroVideoExtension()
