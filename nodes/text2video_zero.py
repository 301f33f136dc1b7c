"""Text2Video-Zero (Khachatryan et al., ICCV 2023): cross-frame attention and motion dynamics in latents."""
from __future__ import annotations

import torch
from comfy_api.latest import io

from ..kernels.attention import ANCHOR_MODES, cross_frame_kv
from . import _patching
from ._schema import CATEGORY, check_percent_range, schema

PAPER = "Text2Video-Zero (Khachatryan et al., ICCV 2023, arXiv 2303.13439)"
T2VZ_CATEGORY = f"{CATEGORY}/Text2Video-Zero"
ALIASES = ["Text2Video-Zero", "T2V-Zero", "text2video zero", "cross-frame attention", "sparse causal attention"]


class CrossFrameAttn1:
    """attn1 patch: every frame's self-attention reads keys/values from its anchor frames (same chunk).

    Under core context windows the model sees only a window of the video; the global frame 0 stays the
    "first" anchor: its hidden states are kept per step from the window that holds it and reused by the
    windows that do not.
    """

    def __init__(self, mode: str, sigmas: _patching.SigmaRange, video: bool):
        self.mode = mode
        self.sigmas = sigmas
        self.video = video

    def __call__(self, n, context, value, extra_options):
        layout = _patching.spatial_layout(n, extra_options, self.video)
        if layout is None or extra_options not in self.sigmas:
            return n, context, value
        chunks, frames = layout
        first = self._global_first(n, chunks, extra_options)
        kv = cross_frame_kv(n, chunks, self.mode, first=first)
        return n, kv, kv

    def _global_first(self, n, chunks, extra_options):
        window = extra_options.get("context_window")
        state = _patching.run_state(extra_options)
        if window is None or state is None or "first" not in self.mode:
            return None
        sigma = float(extra_options["sigmas"].reshape(-1)[0])
        kinds = extra_options.get("cond_or_uncond") or [0] * chunks
        where = (tuple(extra_options.get("block") or ()), extra_options.get("block_index", 0))
        cache = state.setdefault(("t2vz_first", id(self)), {})
        frames = n.shape[0] // chunks
        if 0 in window.index_list:
            pos = window.index_list.index(0)
            for c, kind in enumerate(kinds):
                cache[(where, kind)] = (sigma, n[c * frames + pos].detach())
            return None if pos == 0 else n.view(chunks, frames, *n.shape[1:])[:, pos]
        firsts = [cache.get((where, kind)) for kind in kinds]
        if any(f is None or f[0] != sigma for f in firsts):
            return None  # frame 0 not seen yet at this step: fall back to the window's own first frame
        return torch.stack([f[1] for f in firsts])


class CrossFrameAttentionPatch(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return schema(
            "CrossFrameAttentionPatch",
            display_name="Cross-Frame Attention (Text2Video-Zero)",
            category=T2VZ_CATEGORY,
            description=(
                "Makes an image model draw a batch of frames as one video: each frame's self-attention reads "
                "the keys and values of an anchor frame (the first frame, in the paper) instead of its own, "
                "so objects keep their look across frames. Text cross-attention is untouched. Use with a "
                f"latent batch of frames (one per frame). From {PAPER}. Cost: about the same as the "
                "unpatched model for one anchor; two-anchor modes double the self-attention keys."),
            search_aliases=ALIASES,
            inputs=[
                io.Model.Input("model", tooltip="An image U-Net (SD1.x, SD2.x, SDXL); on SVD only the spatial "
                                                "attention is patched."),
                io.Combo.Input("anchor", options=list(ANCHOR_MODES), default="first",
                               tooltip="Which frames each frame attends to. first: frame 0 (the paper). "
                                       "previous: the frame before (smoother motion, more drift). "
                                       "first+previous: both (sparse-causal attention). first+self: frame 0 "
                                       "and itself (keeps more per-frame detail)."),
                io.Float.Input("start_percent", default=0.0, min=0.0, max=1.0, step=0.001,
                               tooltip="Start of the sampling range where the patch is active (0 = first step)."),
                io.Float.Input("end_percent", default=1.0, min=0.0, max=1.0, step=0.001,
                               tooltip="End of the sampling range where the patch is active (1 = last step). "
                                       "The paper uses the whole range."),
            ],
            outputs=[io.Model.Output(tooltip="The model with cross-frame attention (a patched copy; the input "
                                             "model is not changed).")],
        )

    @classmethod
    def validate_inputs(cls, start_percent, end_percent):
        return check_percent_range(start_percent, end_percent)

    @classmethod
    def execute(cls, model, anchor, start_percent, end_percent) -> io.NodeOutput:
        _patching.require_unet_self_attention(model, "Cross-Frame Attention")
        m = model.clone()
        video = _patching.is_video_unet(m)
        if video:
            _patching.add_call_counter(m)
        _patching.add_run_state(m)
        m.set_model_attn1_patch(CrossFrameAttn1(anchor, _patching.SigmaRange(m, start_percent, end_percent), video))
        return io.NodeOutput(m)


NODES = [CrossFrameAttentionPatch]
