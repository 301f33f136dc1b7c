"""Text2Video-Zero (Khachatryan et al., ICCV 2023): cross-frame attention and motion dynamics in latents."""
from __future__ import annotations

import functools

import torch
from comfy_api.latest import io

from ..kernels.attention import ANCHOR_MODES, cross_frame_kv
from ..kernels import warp
from . import _patching
from ._schema import (CATEGORY, advanced, attention_videos_input, check_choice, check_percent_range, check_range,
                      first_error, require_finite, schema)

PAPER = "Text2Video-Zero (Khachatryan et al., ICCV 2023, arXiv 2303.13439)"
T2VZ_CATEGORY = f"{CATEGORY}/Text2Video-Zero"
ALIASES = ["Text2Video-Zero", "T2V-Zero", "text2video zero", "cross-frame attention", "sparse causal attention"]


class CrossFrameAttn1(_patching.FrameKVPatch):
    """attn1 patch: every frame's self-attention reads keys/values from its anchor frames (same chunk).

    Under core context windows the model sees only a window of the video; the global frame 0 stays the
    "first" anchor: its states are kept per step from the window that holds it and reused by the
    windows that do not.
    """

    def __init__(self, mode: str, sigmas: _patching.SigmaRange, video: bool, **kw):
        super().__init__(sigmas, video, **kw)
        self.mode = mode

    def kv(self, x, chunks, extra_options):
        return cross_frame_kv(x, chunks, self.mode, first=self._global_first(x, chunks, extra_options))

    def _global_first(self, x, chunks, extra_options):
        window = extra_options.get("context_window")
        state = _patching.run_state(extra_options)
        if window is None or state is None or "first" not in self.mode:
            return None
        sigma = float(extra_options["sigmas"].reshape(-1)[0])
        kinds = extra_options.get("cond_or_uncond") or [0] * chunks
        where = (tuple(extra_options.get("block") or ()), extra_options.get("block_index", 0), x.shape[1:])
        cache = state.setdefault(("t2vz_first", id(self)), {})
        frames = x.shape[0] // chunks
        if 0 in window.index_list:
            pos = window.index_list.index(0)
            for c, kind in enumerate(kinds):
                cache[(where, kind)] = (sigma, x[c * frames + pos].detach())
            return None if pos == 0 else x.view(chunks, frames, *x.shape[1:])[:, pos]
        firsts = [cache.get((where, kind)) for kind in kinds]
        if any(f is None or f[0] != sigma for f in firsts):
            return None  # frame 0 not seen yet at this step: fall back to the window's own first frame
        return torch.stack([f[1].to(x) for f in firsts])  # .to: a multi-GPU step may run it on another device


class _ControlNetState:
    """What the ControlNet's wrapped attn1 modules (U-Net ControlNets) or blocks (Flux, SD3 ControlNets) need from
    the current call (set in get_control)."""

    def __init__(self, mode: str, sigmas: _patching.SigmaRange, videos: int = 1):
        self.mode = mode
        self.sigmas = sigmas
        self.videos = videos
        self.chunks = None
        self.sigma = None
        self.dit_patch = None  # a DiT ControlNet's K/V patch (CrossFrameAttn1), None for U-Net ControlNets
        self.dit_options = None  # its transformer_options for the current call


@_patching.module_bound
def _cross_frame_attn1_forward(attn, state: _ControlNetState, x, context=None, value=None, *args, **kwargs):
    """CrossAttention.forward of a ControlNet self-attention, with keys/values from the anchor frames."""
    chunks = state.chunks
    if context is None and value is None and chunks and x.shape[0] % chunks == 0 and state.sigmas.active(state.sigma):
        groups = _patching.video_groups(chunks, x.shape[0] // chunks, state.videos,
                                        "Cross-Frame Attention (ControlNet)")
        context = value = cross_frame_kv(x, groups, state.mode)
    return type(attn).forward(attn, x, context, value, *args, **kwargs)


@_patching.module_bound
def _cross_frame_dit_block_forward(block, state: _ControlNetState, *args, **kwargs):
    """forward of a Flux ControlNet's double- or single-stream block or an SD3 ControlNet's joint block (they take
    transformer_options and hand it to their attention). The ControlNet calls its blocks without
    transformer_options; given this call's, the block's joint attention runs through the DiT K/V patch
    (nodes/_dit.py): every frame's image-token keys/values from its anchor frames, text tokens per frame."""
    if state.dit_options is not None:
        kwargs["transformer_options"] = state.dit_options
    return type(block).forward(block, *args, **kwargs)


def _dit_controlnet_blocks(control_model) -> list[str]:
    """Paths of the blocks of a Flux ControlNet (double and single stream) or an SD3 MMDiT ControlNet (joint
    blocks): blocks whose joint attention over [text, image] the DiT K/V patch reaches; [] for other models."""
    import comfy.cldm.mmdit as sd3_controlnet
    import comfy.ldm.flux.controlnet as flux_controlnet
    if isinstance(control_model, flux_controlnet.ControlNetFlux):
        names = ("double_blocks", "single_blocks")
    elif type(control_model) is sd3_controlnet.ControlNet:
        names = ("joint_blocks",)
    else:
        return []
    return [f"{name}.{i}" for name in names for i in range(len(getattr(control_model, name)))]


def _dit_controlnet_options(cn, x_noisy, t, cond, transformer_options) -> dict:
    """transformer_options for the blocks of a Flux or SD3 ControlNet call: the DiT K/V patch with this call's
    token counts ([text, image] in every block; a Union Flux ControlNet's control-mode token leads the text; an
    SD3.5 MMDiT-X block's second attention is over the image alone)."""
    from . import _dit
    context = cond.get("crossattn_controlnet", cond["c_crossattn"])
    text = int(context.shape[1])
    if getattr(cn.control_model, "controlnet_mode_embedder", None) is not None and cn.extra_args.get("control_type"):
        text += 1
    image = _dit.image_tokens(cn.control_model, *x_noisy.shape[-2:])
    return {"cond_or_uncond": transformer_options.get("cond_or_uncond"), "sigmas": t,
            _dit.OVERRIDE: _dit.dispatch, _dit.PATCHES_KEY: [cn.zv_state.dit_patch],
            _dit.CALL_KEY: _dit.call_state(text, image)}


def cross_frame_controlnet(control_net, mode: str, sigmas: _patching.SigmaRange, videos: int = 1):
    """A copy of a standard ControlNet whose self-attention is cross-frame attention (paper §4: ControlNet video).

    Core runs the ControlNet's U-Net copy without transformer_options, so model attention patches never reach
    it. The copy gets its own ModelPatcher with object patches on each attn1.forward (applied only while it
    is loaded, never on the shared module), and a ControlNet subclass that records the chunk count and σ of
    each call for them.
    """
    import comfy.controlnet
    if not isinstance(control_net, comfy.controlnet.ControlNet) or getattr(control_net, "control_model", None) is None:
        raise ValueError(f"Cross-Frame Attention: control_net must be a standard ControlNet; got "
                         f"{type(control_net).__name__} (ControlLoRA and T2I adapters are not supported).")
    out = _controlnet_class().copy_of(control_net, _ControlNetState(mode, sigmas, videos))
    return _with_cross_frame_patches(out, control_net.control_model_wrapped.clone())


def _with_cross_frame_patches(cn, wrapped):
    """`cn` with `wrapped` (a ModelPatcher of cn.control_model) as its model, object patches reading cn's per-call
    state on each attn1.forward (U-Net ControlNets) or on each DiT block's forward (Flux and SD3 ControlNets)."""
    import comfy.ldm.modules.attention as att
    import comfy.utils
    blocks = [(name, m) for name, m in cn.control_model.named_modules()
              if isinstance(m, att.BasicTransformerBlock) and not m.disable_self_attn]
    dit_blocks = _dit_controlnet_blocks(cn.control_model)
    if dit_blocks:
        s = cn.zv_state
        s.dit_patch = CrossFrameAttn1(s.mode, s.sigmas, video=False, videos=s.videos,
                                      node="Cross-Frame Attention (ControlNet)")
        for path in dit_blocks:
            wrapped.add_object_patch(f"{path}.forward", functools.partial(
                _cross_frame_dit_block_forward, comfy.utils.get_attr(cn.control_model, path), s))
    elif not blocks:
        raise ValueError(f"Cross-Frame Attention: control_net is a {type(cn.control_model).__name__}, which has no "
                         f"U-Net self-attention to make cross-frame (this input takes SD1.x, SD2.x, SDXL, Flux and "
                         f"SD3 ControlNets). For another DiT's ControlNet leave control_net unconnected and apply the "
                         f"ControlNet as usual: the model's own attention is cross-frame, and the Text2Video-Zero "
                         f"Sampler gives every frame its own hint.")
    for name, block in blocks:
        wrapped.add_object_patch(f"{name}.attn1.forward",
                                 functools.partial(_cross_frame_attn1_forward, block.attn1, cn.zv_state))
    _patching.rebind_on_clone(wrapped)
    cn.control_model_wrapped = wrapped
    return cn


@functools.lru_cache(maxsize=None)
def _controlnet_class():
    import comfy.controlnet

    class CrossFrameControlNet(comfy.controlnet.ControlNet):
        zv_state: _ControlNetState = None

        @classmethod
        def copy_of(cls, src, state):
            c = cls(None, global_average_pooling=src.global_average_pooling, load_device=src.load_device,
                    manual_cast_dtype=src.manual_cast_dtype)
            c.control_model = src.control_model
            c.control_model_wrapped = src.control_model_wrapped
            c.zv_state = state
            src.copy_to(c)
            return c

        def copy(self):
            return self.copy_of(self, self.zv_state)

        def deepclone_multigpu(self, load_device, autoregister=False):
            """Newer ComfyUI (MultiGPU CFG Split): this ControlNet for another device, with its own copy of the
            control model, its own cross-frame patches on that copy and its own per-call state (the devices
            run at the same time)."""
            import copy

            import comfy.model_patcher
            s = self.zv_state
            c = self.copy_of(self, _ControlNetState(s.mode, s.sigmas, s.videos))
            c.control_model = copy.deepcopy(self.control_model)
            for m in c.control_model.modules():  # patches applied to the source at copy time are not the copy's
                patch = m.__dict__.get("forward")
                if isinstance(patch, functools.partial) and patch.func in (_cross_frame_attn1_forward,
                                                                           _cross_frame_dit_block_forward):
                    del m.forward
            c.load_device = load_device
            wrapped = comfy.model_patcher.ModelPatcher(c.control_model, load_device=load_device,
                                                       offload_device=self.control_model_wrapped.offload_device)
            _with_cross_frame_patches(c, wrapped)
            if autoregister:
                clones = getattr(self, "multigpu_clones", None)
                if clones is None:
                    clones = self.multigpu_clones = {}
                clones[load_device] = c
            return c

        def get_control(self, x_noisy, t, cond, batched_number, transformer_options):
            self.zv_state.chunks = batched_number
            self.zv_state.sigma = float(t.reshape(-1)[0])
            if self.zv_state.dit_patch is not None:
                self.zv_state.dit_options = _dit_controlnet_options(self, x_noisy, t, cond, transformer_options)
            try:
                return super().get_control(x_noisy, t, cond, batched_number, transformer_options)
            finally:
                self.zv_state.dit_options = None

    return CrossFrameControlNet


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
                f"latent batch of frames (one per frame). Models: SD1.x, SD2.x, SDXL and SVD U-Nets; Flux 1 and 2, "
                "Chroma, SD3/SD3.5, AuraFlow, Qwen-Image, Lumina 2, Z-Image and HiDream DiTs (joint attention: the "
                f"image tokens' keys and values come from the anchor, text tokens stay per frame). From {PAPER}. "
                "Cost: about the same as the "
                "unpatched model for one anchor; two-anchor modes double the self-attention keys."),
            search_aliases=ALIASES,
            inputs=[
                io.Model.Input("model", tooltip="An image U-Net (SD1.x, SD2.x, SDXL; on SVD only the spatial "
                                                "attention is patched) or a Flux (1 or 2), Chroma, SD3/SD3.5, "
                                                "AuraFlow, Qwen-Image, Lumina 2, Z-Image or HiDream DiT (there "
                                                "the image tokens' keys/values come from the anchor; text tokens "
                                                "stay per frame)."),
                io.Combo.Input("anchor", options=list(ANCHOR_MODES), default="first",
                               tooltip="Which frames each frame attends to. first: frame 0 (the paper). "
                                       "previous: the frame before (smoother motion, more drift). "
                                       "first+previous: both (sparse-causal attention). first+self: frame 0 "
                                       "and itself (keeps more per-frame detail)."),
                advanced(io.Float.Input)("start_percent", default=0.0, min=0.0, max=1.0, step=0.001,
                               tooltip="Start of the sampling range where the patch is active (0 = first step)."),
                advanced(io.Float.Input)("end_percent", default=1.0, min=0.0, max=1.0, step=0.001,
                               tooltip="End of the sampling range where the patch is active (1 = last step). "
                                       "The paper uses the whole range."),
                attention_videos_input(),
                io.ControlNet.Input("control_net", optional=True,
                                    tooltip="Optional ControlNet to give cross-frame attention too, as in the paper's "
                                            "ControlNet video mode (SD1.x, SD2.x, SDXL, Flux and SD3 ControlNets; "
                                            "another DiT's ControlNet is applied as usual, unconnected here). Use "
                                            "the control_net output in Apply ControlNet."),
            ],
            outputs=[io.Model.Output(tooltip="The model with cross-frame attention (a patched copy; the input "
                                             "model is not changed)."),
                     io.ControlNet.Output(display_name="control_net",
                                          tooltip="The ControlNet with cross-frame attention (a copy), or nothing "
                                                  "when no ControlNet was given.")],
        )

    @classmethod
    def validate_inputs(cls, anchor, start_percent, end_percent):
        return first_error(check_choice("anchor", anchor, ANCHOR_MODES),
                           check_percent_range(start_percent, end_percent))

    @classmethod
    def execute(cls, model, anchor, start_percent, end_percent, control_net=None, videos=1) -> io.NodeOutput:
        m = _patching.patch_model_attn1(model, CrossFrameAttn1, "Cross-Frame Attention", start_percent,
                                        end_percent, videos=videos, mode=anchor)
        cn = None
        if control_net is not None:
            cn = cross_frame_controlnet(control_net, anchor, _patching.SigmaRange(m, start_percent, end_percent),
                                        videos)
        return io.NodeOutput(m, cn)


def motion_inputs() -> list:
    """The motion and timing inputs shared by the sampler and the graph-form warp node."""
    return [
        io.Float.Input("motion_x", default=12.0, min=-512.0, max=512.0, step=0.5,
                       tooltip="Horizontal motion per frame, in pixels of a 512-px frame (a fraction of the width "
                               "at any resolution). Positive moves the picture left. Paper: 12."),
        io.Float.Input("motion_y", default=12.0, min=-512.0, max=512.0, step=0.5,
                       tooltip="Vertical motion per frame, in pixels of a 512-px frame. Positive moves the picture "
                               "up. Paper: 12."),
        io.Float.Input("zoom", default=1.0, min=0.5, max=2.0, step=0.005,
                       tooltip="Zoom factor per frame (beyond the paper): 1.02 zooms in 2% each frame, "
                               "below 1 zooms out. 1 = no zoom."),
        io.Float.Input("rotation", default=0.0, min=-45.0, max=45.0, step=0.1,
                       tooltip="Rotation per frame in degrees (beyond the paper); positive turns the picture "
                               "counter-clockwise. 0 = none."),
        advanced(io.Int.Input)("t0", default=44, min=0, max=48,
                     tooltip="Paper's t0: where the warp is taken, in steps from the end of a 50-step "
                             "schedule (scaled to your step count). Must be smaller than t1. Paper: 44."),
        advanced(io.Int.Input)("t1", default=47, min=1, max=49,
                     tooltip="Paper's t1: the noise level the warped frames start from, in steps from the end "
                             "of a 50-step schedule. Larger = more freedom for the other frames. Paper: 47."),
        advanced(io.Combo.Input)("interpolation", options=list(warp.INTERPOLATIONS), default="nearest",
                       tooltip="How the latent is resampled. nearest: the paper (sharp, moves in whole latent "
                               "pixels). bilinear: smoother sub-pixel motion, slightly softer."),
    ]


def fps_input() -> io.Float.Input:
    """Optional, so prompts saved before it existed keep validating."""
    return io.Float.Input("fps", default=4.0, min=0.1, max=1000.0, step=0.1, optional=True,
                          tooltip="Frame rate to play the video at, passed to the fps output (wire it to Create "
                                  "Video). The motion per frame is fixed, so a higher fps means faster motion. "
                                  "The paper's clips: 8 frames at 4 fps.")


def fps_output() -> io.Float.Output:
    return io.Float.Output(display_name="fps", tooltip="The fps input, for Create Video.")


def mask_input() -> io.Mask.Input:
    return io.Mask.Input("foreground_mask", optional=True,
                         tooltip="Optional foreground mask for background smoothing (paper §3.3): one mask for "
                                 "all frames or one per frame, at the image size. White = foreground.")


def image_frames(x: torch.Tensor, node: str, name: str = "the latent"):
    """A batch of image latents as [frames, C, h, w], and the function that puts a result back into x's layout.
    Image models whose latent format has a time axis (Qwen-Image: [B, C, 1, h, w]) keep it at length 1."""
    if x.ndim == 4:
        return x, lambda t: t
    if x.ndim == 5 and x.shape[2] == 1:
        return x[:, :, 0], lambda t: t.unsqueeze(2)
    raise ValueError(f"{node}: {name} is {list(x.shape)}; it needs a batch of image latents, one per frame "
                     f"([frames, C, h, w], or [frames, C, 1, h, w]): a video model's latent, with its frames along "
                     f"its own time axis, is not one")


def latent_masks(mask, frames: int, h: int, w: int):
    """A MASK `(B, H, W)` as `(frames, 1, h, w)` latent-resolution masks, with clear errors."""
    import torch.nn.functional as F
    if mask is None:
        return None
    if mask.ndim == 2:
        mask = mask[None]
    if mask.shape[0] not in (1, frames):
        raise ValueError(f"foreground_mask has {mask.shape[0]} frames; give 1 (for all frames) or {frames}")
    if abs(mask.shape[1] - 8 * h) > 8 or abs(mask.shape[2] - 8 * w) > 8:
        raise ValueError(f"foreground_mask is {mask.shape[2]}x{mask.shape[1]} px but the video is {8 * w}x{8 * h} px")
    if float(mask.max()) <= 0:
        raise ValueError("foreground_mask is empty (all black): nothing is foreground")
    m = F.interpolate(mask[:, None].float(), size=(h, w), mode="area")
    return m.expand(frames, -1, -1, -1)


def motion_rows(frames, motion_x, motion_y, zoom, rotation):
    return warp.motion_schedule(frames, motion_x, motion_y, zoom, rotation).float()


def check_motion_inputs(t0, t1, interpolation):
    order = True
    if t0 is not None and t1 is not None and t0 >= t1:
        order = f"t0 ({t0}) must be smaller than t1 ({t1}): the warp is taken after the start level"
    return first_error(check_range("t0", t0, 0, 48), check_range("t1", t1, 1, 49), order,
                       check_choice("interpolation", interpolation, warp.INTERPOLATIONS))


def _unwrap(k_model, attr: str):
    """The first object with `attr` behind a k-diffusion model wrapper (KSamplerX0Inpaint → guider → BaseModel),
    or None."""
    m = k_model
    for _ in range(4):
        if m is None or hasattr(m, attr):
            return m
        m = getattr(m, "inner_model", None)
    return None


def _model_sampling(k_model):
    """The model_sampling behind a k-diffusion model wrapper."""
    m = _unwrap(k_model, "model_sampling")
    if m is None:
        raise ValueError("Text2Video-Zero Sampler: cannot find the model's sampling settings (model_sampling); "
                         "use it through SamplerCustom / SamplerCustomAdvanced.")
    return m.model_sampling


def is_flow_model(model_sampling, node: str) -> bool:
    """Rectified flow (x_σ = (1−σ)x0 + σε) or sigma-space diffusion (x_σ = x0 + σε), for re-noising."""
    import comfy.model_sampling as ms
    if isinstance(model_sampling, ms.CONST):
        return True
    if isinstance(model_sampling, ms.EPS):  # EPS, v-prediction, EDM, X0
        return False
    raise ValueError(f"{node}: re-noising is defined for diffusion (eps, v, EDM) and rectified-flow models; this "
                     f"model's sampling ({type(model_sampling).__name__}) is neither.")


def _controls(k_model) -> list:
    """Every ControlNet / T2I adapter (with the ones chained before it) in the conds of the guider behind a
    k-diffusion model wrapper."""
    found = []
    for conds in (getattr(_unwrap(k_model, "conds"), "conds", None) or {}).values():
        for c in conds or []:
            control = c.get("control") if isinstance(c, dict) else None
            while control is not None and not any(control is f for f in found):
                found.append(control)
                control = getattr(control, "previous_controlnet", None)
    return found


def sampler_state(base, sampling, sigma, stored: torch.Tensor) -> torch.Tensor:
    """The sampler's own state x_σ behind a latent that KSamplerAdvanced returned with leftover noise at σ.

    ComfyUI hands a partly denoised latent over as `process_latent_out(inverse_noise_scaling(σ, x_σ))` and
    resumes (add_noise off) from `noise_scaling(σ, 0, process_latent_in(latent))`: the identity for eps/v/EDM
    models, but x_σ/(1−σ) for rectified-flow models (SD3, Flux), so the units must be converted both ways.
    """
    x = base.process_latent_in(stored.float())
    return sampling.noise_scaling(sigma, torch.zeros_like(x), x)


def handover_latent(base, sampling, sigma, x: torch.Tensor) -> torch.Tensor:
    """The latent KSamplerAdvanced expects for a sampler state x_σ (the inverse of `sampler_state`)."""
    return base.process_latent_out(sampling.inverse_noise_scaling(sigma, x))


def text2video_zero_sample(model, x, sigmas, extra_args=None, callback=None, disable=None, *, base, motion,
                           t0, t1, mode, fg_masks=None):
    """k-diffusion sampler function: Text2Video-Zero's procedure around any base sampler (§3.3)."""
    extra_args = {} if extra_args is None else extra_args
    frames = x.shape[0]
    if frames < 2:
        raise ValueError("Text2Video-Zero Sampler: the latent has 1 frame. Set the latent batch size to the number "
                         "of video frames (at least 2).")
    if extra_args.get("denoise_mask") is not None:
        raise ValueError("Text2Video-Zero Sampler does not work with a latent noise mask (inpainting); remove "
                         "the mask or use the MotionLatentWarp node between two samplers.")
    require_finite("Text2Video-Zero Sampler", "the latent image (with its starting noise)", x)
    x4, restore = image_frames(x, "Text2Video-Zero Sampler")
    flow = is_flow_model(_model_sampling(model), "Text2Video-Zero Sampler")
    steps = len(sigmas) - 1
    s1, s0 = warp.paper_steps(steps, t0, t1)
    masks = None if fg_masks is None else latent_masks(fg_masks, frames, x4.shape[2], x4.shape[3]).to(x)

    controls = _controls(model)
    # One stream of per-step noise for the whole run (ancestral / SDE samplers): each pass would otherwise restart
    # the sampler's own generator from the seed and give frame 0 the same draws again at later steps.
    seed = int(extra_args.get("seed", 0))
    stream = torch.Generator().manual_seed(seed)

    def run(latent, sig, offset):
        if len(sig) < 2:
            return latent
        for control in controls:  # hints were cut to this pass's batch; prepare them again for the new frames
            control.cond_hint = None
        cb = None if callback is None else (lambda d: callback(dict(d, i=d["i"] + offset)))

        def noise_sampler(sigma, sigma_next):
            return torch.randn(latent.shape, generator=stream).to(latent)
        with _patching.noise_sampler_override(base, noise_sampler):
            return base.sampler_function(model, latent, sig, extra_args=extra_args, callback=cb, disable=disable,
                                         **base.extra_options)

    x1_t = run(x[:1], sigmas[:s1 + 1], 0)
    x1_t_prime = run(x1_t, sigmas[s1:s0 + 1], s1)
    g = torch.Generator().manual_seed(seed + 0x72F)
    noise = torch.randn((frames - 1, *x4.shape[1:]), generator=g).to(x)
    x_t = warp.motion_dynamics(image_frames(x1_t, "")[0], image_frames(x1_t_prime, "")[0], motion.to(x.device),
                               float(sigmas[s1]), float(sigmas[s0]), noise, mode, masks, flow=flow)
    return run(restore(x_t), sigmas[s1:], s1)


class Text2VideoZeroSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return schema(
            "Text2VideoZeroSampler",
            display_name="Text2Video-Zero Sampler (motion dynamics)",
            category=T2VZ_CATEGORY,
            description=(
                "The paper's whole procedure as one SAMPLER for SamplerCustom / SamplerCustomAdvanced: frame 0 is "
                "denoised alone for the first steps, copied to every frame with a global camera motion (warp in "
                "latent space), re-noised, and all frames are denoised together. Use it with a model patched by "
                "Cross-Frame Attention and a latent batch of one entry per frame. Works around any base "
                "sampler (the paper uses DDIM, 50 steps) and any image model (SD1.x/SDXL U-Nets, DiTs; "
                "re-noising follows the model's ε/v/EDM or rectified-flow parameterisation). "
                f"From {PAPER}. Frame 0 is the single image of the same seed for one-step deterministic "
                "samplers (euler, ddim, heun); multistep ones (dpmpp_2m, uni_pc) restart their history at each "
                "pass. Cost: s0 steps of frame 0 alone plus the video from step s1 (at the defaults 0.97× the "
                "frame-steps, 1.06× the model calls of sampling the video directly)."),
            search_aliases=ALIASES + ["motion dynamics", "latent warp", "camera motion"],
            inputs=[
                io.Sampler.Input("sampler", tooltip="The base sampler (e.g. KSamplerSelect → ddim or euler)."),
                *motion_inputs(),
                mask_input(),
                fps_input(),
            ],
            outputs=[io.Sampler.Output(tooltip="A sampler that runs Text2Video-Zero around the base sampler."),
                     fps_output()],
        )

    @classmethod
    def validate_inputs(cls, t0, t1, interpolation):
        return check_motion_inputs(t0, t1, interpolation)

    @classmethod
    def execute(cls, sampler, motion_x, motion_y, zoom, rotation, t0, t1, interpolation,
                foreground_mask=None, fps=4.0) -> io.NodeOutput:
        import comfy.samplers
        if not hasattr(sampler, "sampler_function"):
            raise ValueError("Text2Video-Zero Sampler needs a k-diffusion sampler (e.g. from KSamplerSelect) as "
                             f"its base; got {type(sampler).__name__}.")
        warp.paper_steps(50, t0, t1)  # raises on t0 >= t1 when validation could not see linked values

        def fn(model, x, sigmas, extra_args=None, callback=None, disable=None):
            rows = motion_rows(x.shape[0], motion_x, motion_y, zoom, rotation)
            return text2video_zero_sample(model, x, sigmas, extra_args, callback, disable, base=sampler,
                                          motion=rows, t0=t0, t1=t1, mode=interpolation,
                                          fg_masks=foreground_mask)
        return io.NodeOutput(comfy.samplers.KSAMPLER(fn, inpaint_options=sampler.inpaint_options), float(fps))


class MotionLatentWarp(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        import comfy.samplers
        return schema(
            "MotionLatentWarp",
            display_name="Motion Latent Warp (Text2Video-Zero)",
            category=T2VZ_CATEGORY,
            description=(
                "The graph form of Text2Video-Zero's motion dynamics, for use between KSamplerAdvanced passes: "
                "takes frame 0 at step s1 (first_frame) and at step s0 (latent), both with leftover noise, and "
                "returns the video latent at step s1: frame 0 plus warped, re-noised copies. Continue with "
                "KSamplerAdvanced from step s1 (add_noise disabled) on a Cross-Frame Attention model. Any "
                "image model (SD1.x/SDXL U-Nets, DiTs; 4- or 16-channel latents, ε/v/EDM or rectified-flow "
                "re-noising). The Text2Video-Zero Sampler does all of this in one node. "
                f"From {PAPER}."),
            search_aliases=ALIASES + ["motion dynamics", "latent warp", "camera motion"],
            inputs=[
                io.Model.Input("model", tooltip="The model used for sampling (gives the noise levels and latent "
                                                "scale)."),
                io.Latent.Input("latent", tooltip="Frame 0 after step s0, with leftover noise (1 latent)."),
                io.Latent.Input("first_frame", tooltip="Frame 0 after step s1, with leftover noise (1 latent); it "
                                                       "becomes frame 0 of the video."),
                io.Int.Input("frames", default=8, min=2, max=1024, tooltip="Number of video frames. Paper: 8."),
                *motion_inputs(),
                io.Int.Input("steps", default=50, min=1, max=10000,
                             tooltip="Total steps of the schedule used by your KSamplerAdvanced nodes."),
                io.Combo.Input("scheduler", options=list(comfy.samplers.SCHEDULER_NAMES), default="ddim_uniform",
                               tooltip="The scheduler of your KSamplerAdvanced nodes."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Seed of the re-noising noise."),
                mask_input(),
                fps_input(),
            ],
            outputs=[io.Latent.Output(tooltip="The video latent at step s1 (frames × latents)."), fps_output()],
        )

    @classmethod
    def validate_inputs(cls, t0, t1, interpolation, scheduler):
        import comfy.samplers
        return first_error(check_motion_inputs(t0, t1, interpolation),
                           check_choice("scheduler", scheduler, comfy.samplers.SCHEDULER_NAMES))

    @classmethod
    def execute(cls, model, latent, first_frame, frames, motion_x, motion_y, zoom, rotation, t0, t1,
                interpolation, steps, scheduler, seed, foreground_mask=None, fps=4.0) -> io.NodeOutput:
        import comfy.samplers
        for name, lat in (("latent", latent), ("first_frame", first_frame)):
            image_frames(lat["samples"], "Motion Latent Warp", name)
            if lat["samples"].shape[0] != 1:
                raise ValueError(f"Motion Latent Warp: {name} must be a single frame latent [1, C, h, w], got "
                                 f"{list(lat['samples'].shape)}")
            require_finite("Motion Latent Warp", name, lat["samples"])
        if latent["samples"].shape != first_frame["samples"].shape:
            raise ValueError("Motion Latent Warp: latent and first_frame have different sizes "
                             f"({list(latent['samples'].shape)} vs {list(first_frame['samples'].shape)})")
        s1, s0 = warp.paper_steps(steps, t0, t1)
        sampling = model.get_model_object("model_sampling")
        sigmas = comfy.samplers.calculate_sigmas(sampling, scheduler, steps)
        sigma_t, sigma_tp = sigmas[s1], sigmas[s0]
        base = model.model
        x1_t, restore = image_frames(sampler_state(base, sampling, sigma_t, first_frame["samples"]), "")
        x1_tp = image_frames(sampler_state(base, sampling, sigma_tp, latent["samples"]), "")[0]
        _, _, h, w = x1_t.shape
        g = torch.Generator().manual_seed(seed)
        noise = torch.randn((frames - 1, *x1_t.shape[1:]), generator=g)
        x_t = restore(warp.motion_dynamics(x1_t, x1_tp, motion_rows(frames, motion_x, motion_y, zoom, rotation),
                                           float(sigma_t), float(sigma_tp), noise, interpolation,
                                           latent_masks(foreground_mask, frames, h, w),
                                           flow=is_flow_model(sampling, "Motion Latent Warp")))
        out = latent.copy()
        out.pop("noise_mask", None)
        out.pop("batch_index", None)
        samples = handover_latent(base, sampling, sigma_t, x_t).to(first_frame["samples"].dtype)
        samples[:1] = first_frame["samples"]  # exact, not through the latent scale and back
        out["samples"] = samples
        return io.NodeOutput(out, float(fps))


NODES = [CrossFrameAttentionPatch, Text2VideoZeroSampler, MotionLatentWarp]
