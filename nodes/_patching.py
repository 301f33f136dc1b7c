"""Shared hook helpers: which attention calls are spatial, how many chunks/frames, sigma ranges, per-run state.

Conventions (COMFYUI_HOOKS.md §2-3): in a U-Net call the batch is `chunks·F` rows, `chunks =
len(cond_or_uncond)`. On video U-Nets (SVD) every self-attention block is called twice per depth: first
the spatial block on `(chunks·F, h·w, C)`, then the temporal block on `(chunks·h·w, F, C)`. A
DIFFUSION_MODEL wrapper puts a call counter into `transformer_options`, so a patch can tell the two apart
by parity even when `F == h·w` makes the shapes identical.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import threading

import comfy.ldm.modules.attention as comfy_attention
import comfy.patcher_extension
import comfy.utils
import torch

from ..kernels.exvideo import sinusoid

log = logging.getLogger("ZeroVideo")

CALLS_KEY = "zerovideo_attn1_calls"
STATE_KEY = "zerovideo_run_state"


def self_attention_blocks(model) -> list:
    """The BasicTransformerBlocks of the diffusion model whose attn1 is self-attention."""
    dm = model.get_model_object("diffusion_model")
    return [m for m in dm.modules()
            if isinstance(m, comfy_attention.BasicTransformerBlock) and not m.disable_self_attn]


def attention_keys(model) -> list[tuple[str, int]]:
    """(block name, number) of every transformer stack of the U-Net, as `patches_replace` keys them."""
    dm = model.get_model_object("diffusion_model")
    keys = []
    for name, blocks in (("input", dm.input_blocks), ("output", dm.output_blocks)):
        keys += [(name, i) for i, block in enumerate(blocks)
                 if any(isinstance(m, comfy_attention.SpatialTransformer) for m in block)]
    middle = getattr(dm, "middle_block", None)  # None in distilled U-Nets without one (BK-SDM)
    if middle is not None and any(isinstance(m, comfy_attention.SpatialTransformer) for m in middle):
        keys.append(("middle", 0))
    return keys


def require_unet_self_attention(model, node: str, dits: str = "") -> None:
    """Refuse a model without U-Net self-attention; `dits`: the DiT families the node also takes, for the message."""
    if not self_attention_blocks(model):
        name = type(model.get_model_object("diffusion_model")).__name__
        also = f", and {dits} DiTs" if dits else ""
        what = " and is not a supported DiT" if dits else ""
        raise ValueError(f"{node}: this model ({name}) has no U-Net self-attention blocks to patch{what}. "
                         f"It works with SD1.x, SD2.x, SDXL and SVD U-Nets{also}.")


FP8_DTYPES = tuple(getattr(torch, n) for n in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz")
                   if hasattr(torch, n))


def compute_dtype(model) -> torch.dtype:
    """The dtype the diffusion model computes in: its weight dtype, or the manual-cast dtype ComfyUI picked for
    weights it cannot compute in (fp8 weights, fp16 on a CPU, …). Tensors a node adds live in this dtype: an fp8
    copy would lose precision, and most torch kernels (lerp, conv3d) have no fp8 version."""
    base = getattr(model, "model", model)
    dtype = getattr(base, "manual_cast_dtype", None) or base.get_dtype()
    return torch.float32 if dtype in FP8_DTYPES else dtype


def is_video_unet(model) -> bool:
    dm = model.get_model_object("diffusion_model")
    return any(isinstance(m, comfy_attention.SpatialVideoTransformer) for m in dm.modules())


_MISSING = object()


@functools.lru_cache(maxsize=256)
def _positions(fn, skip: int) -> dict[str, int]:
    """Name → position of the arguments `fn` takes positionally, the first `skip` (a bound method's self) left out.
    Cached: the wrappers ask at every model call, and a signature costs tens of microseconds."""
    params = list(inspect.signature(fn).parameters.values())[skip:]
    return {p.name: i for i, p in enumerate(params) if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)}


def _position(executor, name: str) -> int | None:
    """Where the wrapped function takes the argument `name` positionally (None: keyword only / unknown)."""
    original = getattr(executor, "original", None)
    # bound methods are new objects at every attribute access: cache by their function
    fn, skip = (original.__func__, 1) if inspect.ismethod(original) else (original, 0)
    try:
        return _positions(fn, skip).get(name)
    except (TypeError, ValueError):  # no signature (or unhashable): unknown
        return None


def argument(executor, args, kwargs, name: str, default=_MISSING):
    """The argument `name` of the call a wrapper received, whether the caller passed it by position or by
    keyword: its position comes from the wrapped function's signature (a U-Net's `_forward` and a DiT's differ)."""
    if name in kwargs:
        return kwargs[name]
    i = _position(executor, name)
    if i is not None and i < len(args):
        return args[i]
    if default is _MISSING:
        raise TypeError(f"ZeroVideo: the wrapped call {getattr(executor, 'original', executor)!r} has no argument "
                        f"{name!r}")
    return default


def with_argument(executor, args, kwargs, name: str, value) -> tuple[tuple, dict]:
    """(args, kwargs) with the argument `name` set to `value`, where the caller put it."""
    i = _position(executor, name)
    if name not in kwargs and i is not None and i < len(args):
        return (*args[:i], value, *args[i + 1:]), kwargs
    return args, {**kwargs, name: value}


def _count_calls(executor, *args, **kwargs):
    transformer_options = argument(executor, args, kwargs, "transformer_options")
    transformer_options[CALLS_KEY] = {}
    try:
        return executor(*args, **kwargs)
    finally:
        transformer_options.pop(CALLS_KEY, None)


def add_call_counter(model) -> None:
    """Install (once per model clone) the wrapper that lets patches tell spatial from temporal calls."""
    model.remove_wrappers_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, CALLS_KEY)
    model.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, CALLS_KEY, _count_calls)


def spatial_layout(n, extra_options: dict, video: bool, owner=None) -> tuple[int, int] | None:
    """(chunks, frames) if this attention call is spatial (over the frames of a batch), else None (temporal).

    On video U-Nets, calls of one block alternate spatial, temporal; `owner` (the patch object) keeps each
    patch's count apart when several patches or slots (attn1/attn2) count the same blocks.
    """
    chunks = len(extra_options.get("cond_or_uncond") or [0])
    if video:
        calls = extra_options.get(CALLS_KEY)
        if calls is not None:
            key = (id(owner), tuple(extra_options.get("block") or ()), extra_options.get("block_index", 0))
            k = calls.get(key, 0)
            calls[key] = k + 1
            if k % 2:
                return None
        else:
            shape = extra_options.get("activations_shape")
            if shape is None or n.shape[0] != shape[0] or n.shape[1] != shape[2] * shape[3]:
                return None
    if n.shape[0] % chunks:
        return None
    return chunks, n.shape[0] // chunks


class SigmaRange:
    """Active while `sigma_end ≤ σ ≤ sigma_start` (start/end given as sampling percents, like core nodes)."""

    def __init__(self, model, start_percent: float, end_percent: float):
        if not 0.0 <= start_percent <= end_percent <= 1.0:
            raise ValueError(f"start_percent ({start_percent}) must be ≤ end_percent ({end_percent}), both in [0, 1]")
        sampling = model.get_model_object("model_sampling")
        self.sigma_start = float(sampling.percent_to_sigma(start_percent))
        self.sigma_end = float(sampling.percent_to_sigma(end_percent))
        self.always = start_percent == 0.0 and end_percent == 1.0

    def active(self, sigma: float | None) -> bool:
        return self.always or sigma is None or self.sigma_end <= sigma <= self.sigma_start

    def __contains__(self, extra_options: dict) -> bool:
        sigmas = extra_options.get("sigmas")
        return self.active(None if sigmas is None else float(sigmas.reshape(-1)[0]))


class RunState:
    """Per-sampling-run scratch space, keyed by the patch that owns it; fresh for every run."""

    def __init__(self):
        self.data: dict = {}

    def __deepcopy__(self, memo):
        return RunState()


def _fresh_state(executor, *args, **kwargs):
    # CFGGuider.sample has already cloned model_options for this run (samplers.py), so this is per run.
    executor.class_obj.model_options.setdefault("transformer_options", {})[STATE_KEY] = RunState()
    return executor(*args, **kwargs)


def add_run_state(model) -> None:
    """Give every sampling run of `model` an empty RunState at transformer_options[STATE_KEY]."""
    model.remove_wrappers_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, STATE_KEY)
    model.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, STATE_KEY, _fresh_state)


def run_state(extra_options: dict) -> dict | None:
    state = extra_options.get(STATE_KEY)
    return None if state is None else state.data


class FrameKVPatch:
    """Base of the attn1 patches that replace self-attention keys/values by a function of the frames.

    Queries stay per frame. The transform is applied to the `context`/`value` the patch receives (the
    normed hidden states, or what an earlier patch in the list made of them), so patches stack.
    Subclasses implement `kv(x, chunks, extra_options) -> x'` on `(chunks·F, N, C)` tensors.
    """

    def __init__(self, sigmas: SigmaRange, video: bool, videos: int = 1, node: str = "ZeroVideo"):
        self.sigmas = sigmas
        self.video = video
        self.videos = videos
        self.node = node

    def kv(self, x, chunks: int, extra_options: dict):
        raise NotImplementedError

    def __call__(self, n, context, value, extra_options):
        layout = spatial_layout(n, extra_options, self.video, self)
        if layout is None or extra_options not in self.sigmas:
            return n, context, value
        chunks = video_groups(layout[0], layout[1], self.videos, self.node,
                              extra_options.get("context_window") is not None)
        new_context = self.kv(context, chunks, extra_options)
        new_value = new_context if value is context else self.kv(value, chunks, extra_options)
        return n, new_context, new_value


def video_groups(chunks: int, frames: int, videos: int, node: str, windowed: bool = False) -> int:
    """How many independent groups of frames a batch of `chunks` conds × `frames` holds: each cond's frames are
    `videos` videos one after the other (Dependency Noise's `videos`), and no frame reads another video's."""
    if videos == 1:
        return chunks
    if frames % videos:
        raise ValueError(f"{node}: the latent batch has {frames} frames, which do not split into videos={videos} "
                         f"equal videos. Set the batch size to videos × frames per video.")
    if windowed:
        raise ValueError(f"{node}: videos={videos} does not work with context windows (a window would mix the "
                         f"videos); sample the videos one at a time or set videos to 1.")
    return chunks * videos


def patch_model_attn1(model, patch_cls, node: str, start_percent: float, end_percent: float, videos: int = 1,
                      **kw):
    """Clone `model` and add a FrameKVPatch subclass as an attn1 patch (with the hooks it needs); on a supported
    DiT image model (nodes/_dit.SUPPORTED) as a K/V patch of its joint attention instead
    (nodes/_dit.py)."""
    if videos < 1:
        raise ValueError(f"{node}: videos must be at least 1, got {videos}")
    if not self_attention_blocks(model):
        from . import _dit
        if _dit.family(model) is not None:
            return _dit.patch_model(model, patch_cls, node, start_percent, end_percent, videos=videos, **kw)
        require_unet_self_attention(model, node, dits=_dit.SUPPORTED)
    m = model.clone()
    video = is_video_unet(m)
    if video:
        add_call_counter(m)
    add_run_state(m)
    m.set_model_attn1_patch(patch_cls(sigmas=SigmaRange(m, start_percent, end_percent), video=video, videos=videos,
                                      node=node, **kw))
    return m


# --- object patches bound to modules: rebound when a clone gets another model instance -------------------

_MODULE_BOUND: set = set()
REBIND_KEY = "zerovideo_rebind_modules"


def module_bound(fn):
    """Mark `fn` as an object-patch function whose first argument is the module whose `forward` it replaces
    (patched as `functools.partial(fn, module, ...)` under the key `PATH.forward`)."""
    _MODULE_BOUND.add(fn)
    return fn


def _rebind_modules(src, clone) -> None:
    """ON_CLONE callback: a clone that got another model instance (newer ComfyUI: MultiGPU CFG Split's deep
    clones, dynamic VRAM's delegates, `clone(model_override=...)`) gets every module-bound patch rebound to the
    module at the same path of its own instance; otherwise it would run the first instance's modules."""
    if clone.model is src.model:
        return
    for key, patch in list(clone.object_patches.items()):
        if isinstance(patch, functools.partial) and patch.func in _MODULE_BOUND and key.endswith(".forward"):
            module = comfy.utils.get_attr(clone.model, key[:-len(".forward")])
            clone.object_patches[key] = functools.partial(patch.func, module, *patch.args[1:], **patch.keywords)


def rebind_on_clone(model) -> None:
    """Keep `model`'s module-bound object patches on the right modules in every clone made from it."""
    model.remove_callbacks_with_key(comfy.patcher_extension.CallbacksMP.ON_CLONE, REBIND_KEY)
    model.add_callback_with_key(comfy.patcher_extension.CallbacksMP.ON_CLONE, REBIND_KEY, _rebind_modules)


# --- SVD temporal blocks: frame count and frame positions (shared by ExVideo and ZeroSmooth) -------------

class VideoFrames(threading.local):
    """The frame count of the current video U-Net call, set by a DIFFUSION_MODEL wrapper (one per patch). Per
    thread: with newer ComfyUI's MultiGPU CFG Split each device runs its share of a step in its own thread."""

    def __init__(self):
        self.frames: int | None = None

    def __deepcopy__(self, memo):
        return self  # shared by the wrapper and the object patches of every clone


def svd_temporal_blocks(model) -> list[tuple[str, object]]:
    """(path inside diffusion_model, SpatialVideoTransformer) of every temporal block."""
    dm = model.get_model_object("diffusion_model")
    return [(name, m) for name, m in dm.named_modules() if isinstance(m, comfy_attention.SpatialVideoTransformer)]


def require_svd(model, node: str) -> list[tuple[str, object]]:
    blocks = svd_temporal_blocks(model)
    if not blocks:
        name = type(model.get_model_object("diffusion_model")).__name__
        raise ValueError(f"{node}: needs a Stable Video Diffusion model (SVD / SVD-XT); this model ({name}) has no "
                         f"temporal transformer blocks.")
    return blocks


FRAMES_KEY = "zerovideo_video_frames"  # transformer_options: the frame count of this call, where a guider knows it


def add_frame_counter(model, holder: VideoFrames, key: str) -> None:
    def count(executor, *args, **kwargs):
        transformer_options = argument(executor, args, kwargs, "transformer_options", {})
        # a ZeroSmooth stage sets its own count; SVD's num_video_frames is the whole cascade's there, and
        # wrapper order decides whether this wrapper sees the guider's override of it
        holder.frames = transformer_options.get(FRAMES_KEY) or kwargs.get("num_video_frames")
        return executor(*args, **kwargs)
    model.remove_wrappers_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, key)
    model.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, key, count)


@module_bound
def _positions_forward(mlp, provider, holder: VideoFrames, t_emb):
    """time_pos_embed.forward with the frame-position input replaced: MLP(provider(T, C)) per video."""
    frames = holder.frames
    if not frames or t_emb.shape[0] % frames:
        return type(mlp).forward(mlp, t_emb)
    inp = provider(frames, t_emb.shape[1])
    if inp is None:  # the provider keeps SVD's own positions for this call
        return type(mlp).forward(mlp, t_emb)
    inp = inp.to(t_emb)
    return type(mlp).forward(mlp, inp.repeat(t_emb.shape[0] // frames, 1))


class FramePositions:
    """The frame-position input of SVD's temporal blocks in two parts, so ZeroVideo nodes stack on one model
    in either order instead of the last one silently replacing the other:

    - `remap(frames) -> (positions, base_frames) | None`: where the frames of this call sit (ZeroSmooth: frame j
      of a long branch sits at j·t0/t among the t0 key frames; None: at 0..T−1 of T).
    - `embed(positions, base_frames, channels) -> (frames, channels)`: what is fed at those positions (ExVideo:
      its learned table or a stretched sinusoid); without one, SVD's own sinusoid of the positions.
    """

    def __init__(self, remap=None, embed=None):
        self.remap, self.embed = remap, embed

    def __call__(self, frames: int, channels: int):
        mapped = self.remap(frames) if self.remap is not None else None
        if mapped is None and self.embed is None:
            return None  # SVD's own positions
        positions, base = mapped if mapped is not None else (torch.arange(frames, dtype=torch.float32), frames)
        if self.embed is None:
            return sinusoid(positions, channels)
        return self.embed(positions, base, channels)


def frame_positions(patch) -> FramePositions | None:
    """The FramePositions inside an object patch of `time_pos_embed.forward`, if a ZeroVideo node set it."""
    if isinstance(patch, functools.partial) and patch.func is _positions_forward \
            and isinstance(patch.args[1], FramePositions):
        return patch.args[1]
    return None


def stack_frame_positions(model, blocks, holder: VideoFrames, node: str, *, remap=None, embed=None) -> None:
    """Install a FramePositions in every temporal block, keeping the part another ZeroVideo node installed.

    `embed`: one function, or a dict of them by block path. A second `embed` (two ExVideo nodes on one model)
    is refused; a second `remap` replaces the first.
    """
    for path, block in blocks:
        block_embed = embed.get(path) if isinstance(embed, dict) else embed
        key = f"diffusion_model.{path}.time_pos_embed.forward"
        old = model.object_patches.get(key)
        base = frame_positions(old)
        if old is not None and base is None:
            raise ValueError(f"{node}: another node already replaced the frame positions of this SVD model; "
                             f"apply {node} to the model before that node.")
        if block_embed is not None and base is not None and base.embed is not None:
            raise ValueError(f"{node}: this model already has ExVideo frame positions; apply ExVideo once.")
        positions = FramePositions(remap if remap is not None else getattr(base, "remap", None),
                                   block_embed if block_embed is not None else getattr(base, "embed", None))
        model.add_object_patch(key, functools.partial(_positions_forward, block.time_pos_embed, positions, holder))
    rebind_on_clone(model)


@contextlib.contextmanager
def noise_sampler_override(sampler, noise_sampler):
    """Give a k-diffusion SAMPLER (KSAMPLER) this `noise_sampler(sigma, sigma_next)` for one run, if its
    function takes one (ancestral / SDE samplers); others are left as they are. Restored afterwards."""
    import inspect
    options = getattr(sampler, "extra_options", None)
    fn = getattr(sampler, "sampler_function", None)
    if options is None or fn is None or "noise_sampler" not in inspect.signature(fn).parameters:
        yield False
        return
    sampler.extra_options = dict(options, noise_sampler=noise_sampler)
    try:
        yield True
    finally:
        sampler.extra_options = options
