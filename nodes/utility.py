"""Small helpers that every video graph needs."""
from __future__ import annotations

from comfy_api.latest import io

from ._schema import CATEGORY, schema


def latent_frames(samples) -> tuple[int, int, int, int]:
    """(frames, channels, height, width) of a LATENT tensor; video latents are frame-major batches."""
    if samples.ndim == 4:
        f, c, h, w = samples.shape
    elif samples.ndim == 5:  # [B, C, T, H, W] latents of native video models
        b, c, t, h, w = samples.shape
        f = b * t
    else:
        raise ValueError(f"expected a 4-D or 5-D latent tensor, got shape {tuple(samples.shape)}")
    return f, c, h, w


class LatentVideoInfo(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return schema(
            "LatentVideoInfo",
            display_name="Latent Video Info (ZeroVideo)",
            category=f"{CATEGORY}/utils",
            description="Reports the frame count and size of a video latent, and passes it through.",
            search_aliases=["frame count", "latent info", "video info"],
            is_output_node=True,
            inputs=[io.Latent.Input("latent", tooltip="A video latent: one batch entry per frame.")],
            outputs=[
                io.Latent.Output(display_name="latent", tooltip="The input latent, unchanged."),
                io.Int.Output(display_name="frames", tooltip="Number of frames (latent batch size)."),
                io.Int.Output(display_name="width", tooltip="Width in pixels (latent width x 8)."),
                io.Int.Output(display_name="height", tooltip="Height in pixels (latent height x 8)."),
            ],
        )

    @classmethod
    def execute(cls, latent) -> io.NodeOutput:
        samples = latent["samples"]
        frames, channels, h, w = latent_frames(samples)
        finite = bool(samples.isfinite().all())
        text = (f"{frames} frames, {channels} channels, {w * 8}x{h * 8} px"
                f"{'' if finite else ', NON-FINITE VALUES'}")
        return io.NodeOutput(latent, frames, w * 8, h * 8, ui={"text": [text]})
