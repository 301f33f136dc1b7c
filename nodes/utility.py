"""Small helpers that every video graph needs."""
from __future__ import annotations

import logging

from comfy_api.latest import io

from ..kernels import tiles as T
from ._schema import CATEGORY, require_finite, schema


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


TILED_DECODE = "VAE Decode (Temporal Tiles)"


def frames_that_fit(vae, samples) -> int:
    """How many frames ComfyUI's VAE Decode would decode at once here: free memory on the VAE's device (with the
    VAE loaded) over ComfyUI's own per-frame estimate, as in `comfy.sd.VAE.decode`."""
    import comfy.model_management as mm
    per_frame = vae.memory_used_decode(samples.shape, vae.vae_dtype)
    mm.load_models_gpu([vae.patcher], memory_required=per_frame, force_full_load=getattr(vae, "disable_offload", False))
    return max(1, int(mm.get_free_memory(vae.device) / max(1, per_frame)))


class TemporalTiledVAEDecode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return schema(
            "TemporalTiledVAEDecode",
            display_name=f"{TILED_DECODE} (ZeroVideo)",
            category=f"{CATEGORY}/utils",
            description=(
                "Decodes a long clip in overlapping windows of frames and cross-fades them where they meet, so "
                "64-128-frame SVD / ExVideo / ZeroSmooth clips decode within a consumer GPU without seams. SVD's VAE "
                "mixes neighbouring frames, so it must see frames together; all 128 at once need ~56 GiB at 512² "
                "(bf16), and the stock VAE Decode then splits the clip wherever its memory estimate says, each "
                "piece decoded as a separate video (a visible jump between pieces). Core VAE Decode (Tiled) decodes "
                "SVD frames one by one (its temporal_size applies to video VAEs only). With frames_per_tile at or "
                "above the clip length the output is exactly VAE Decode's. If ComfyUI estimates that fewer frames "
                "fit in free memory, the windows shrink to that and the node says so."),
            search_aliases=["tiled decode", "temporal tiling", "long video decode", "decode_chunk_size",
                            "decoding_t", "VAE decode video"],
            inputs=[
                io.Latent.Input("samples", tooltip="A video latent: one batch entry per frame (SVD, SD1.5 frames)."),
                io.Vae.Input("vae", tooltip="The VAE that encoded the clip (for SVD: the checkpoint's, with its "
                                            "temporal decoder)."),
                io.Int.Input("frames_per_tile", default=16, min=1, max=4096,
                             tooltip="Frames decoded together (at most; fewer if ComfyUI estimates they do not fit). "
                                     "About 0.45 GiB per frame at 512², 1 GiB at 576×1024 (SVD VAE, bf16). At or "
                                     "above the clip length: one window, identical to VAE Decode."),
                io.Int.Input("overlap", default=4, min=0, max=2048,
                             tooltip="Frames (at least) shared by neighbouring windows, cross-faded linearly; at "
                                     "most half of frames_per_tile. The windows are spread evenly over the clip, "
                                     "so some may share more. 0 = chunks with no cross-fade where the clip "
                                     "divides evenly, as SVD's decoding_t."),
            ],
            outputs=[io.Image.Output(display_name="IMAGE", tooltip="The decoded frames, one image per latent frame.")],
        )

    @classmethod
    def validate_inputs(cls, frames_per_tile, overlap):
        if frames_per_tile is not None and overlap is not None and overlap > frames_per_tile // 2:
            return (f"overlap ({overlap}) must be at most half of frames_per_tile ({frames_per_tile}), i.e. "
                    f"{frames_per_tile // 2}")
        return True

    @classmethod
    def execute(cls, samples, vae, frames_per_tile, overlap) -> io.NodeOutput:
        import comfy.model_management as mm
        import comfy.utils
        latent = samples["samples"]
        if latent.ndim != 4:
            raise ValueError(f"{TILED_DECODE}: samples has shape {tuple(latent.shape)}, a latent of a video VAE "
                             f"(frames compressed inside it). This node is for frame-batch latents (SVD, SD1.5, "
                             f"SDXL); for video VAEs use core VAE Decode (Tiled) with temporal_size.")
        require_finite(TILED_DECODE, "samples", latent)
        frames = latent.shape[0]
        tile, shared = min(frames_per_tile, frames), overlap
        fit = frames_that_fit(vae, latent)
        text = ""
        if fit < tile:
            tile = fit
            shared = min(overlap, tile // 2)
            text = (f"ComfyUI estimates that {fit} frame(s) fit in free memory: windows of {tile} frames "
                    f"(overlap {shared}) instead of {frames_per_tile} (overlap {overlap}).")
            logging.warning("%s: %s", TILED_DECODE, text)
        windows = T.temporal_tiles(frames, tile, min(shared, tile - 1))
        bar = comfy.utils.ProgressBar(len(windows))

        def decode(start, end):
            mm.throw_exception_if_processing_interrupted()
            images = vae.decode(latent[start:end])
            bar.update(1)
            return images

        images = T.blend_tiles(frames, windows, decode)
        summary = f"{frames} frames in {len(windows)} window(s) of {tile}" + (f"; {text}" if text else "")
        return io.NodeOutput(images, ui={"text": [summary]})
