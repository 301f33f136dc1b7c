"""ComfyUI glue: one module per paper, registered through a single V3 extension."""
from comfy_api.latest import ComfyExtension, io

from . import exvideo, text2video_zero, zerosmooth, zs2
from .utility import LatentVideoInfo, TemporalTiledVAEDecode

NODES: list[type[io.ComfyNode]] = [
    LatentVideoInfo,
    TemporalTiledVAEDecode,
    *text2video_zero.NODES,
    *zs2.NODES,
    *zerosmooth.NODES,
    *exvideo.NODES,
]


class ZeroVideoExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)
