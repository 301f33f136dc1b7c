"""ExVideo (Duan et al., arXiv 2406.14130): SVD extended to 128 frames, and its training-free fallbacks."""
from __future__ import annotations

import functools
import os

import comfy.model_patcher
import comfy.patcher_extension
import folder_paths
import torch
from comfy_api.latest import io

from ..kernels import exvideo as X
from . import _patching
from ._schema import CATEGORY, check_choice, first_error, require_finite, schema

PAPER = "ExVideo (Duan et al., arXiv 2406.14130; DiffSynth-Studio's ExVideo-SVD-128f-v1)"
EXVIDEO_CATEGORY = f"{CATEGORY}/ExVideo"
ALIASES = ["ExVideo", "long video", "128 frames", "SVD extension", "temporal extension"]
MODES = ("weights", "interpolate", "ping-pong")
FOLDER = "exvideo"
NO_FILE = "(none: training-free modes)"
KEY = "zerovideo_exvideo"
# ExVideo's clips are conditioned and played at 30 fps (the spec, ALGORITHMS.md: ExVideo inference defaults [ref]);
# the training-free modes spread the same positions over more frames, and are played at the same rate.
TRAINED_FPS = 30.0

folder_paths.add_model_folder_path(FOLDER, os.path.join(folder_paths.models_dir, FOLDER))
_paths, _extensions = folder_paths.folder_names_and_paths[FOLDER]
if not _extensions:  # an extra_model_paths.yaml entry registers it with no filter: list model files only
    folder_paths.folder_names_and_paths[FOLDER] = (_paths, set(folder_paths.supported_pt_extensions))


def extension_files() -> list[str]:
    try:
        files = folder_paths.get_filename_list(FOLDER)
    except Exception:  # an unregistered folder on an unusual host: offer the training-free modes only
        files = []
    return [NO_FILE, *files]


def load_extension(name: str) -> dict[str, torch.Tensor]:
    """Read an extension file with safetensors only; every failure becomes a message naming the file."""
    if not name.lower().endswith(".safetensors"):
        raise ValueError(f"ExVideo: {name!r} is not a .safetensors file. Pickle-based files (.ckpt/.pt/.bin) are "
                         f"refused because loading them can run code; convert it to safetensors first.")
    path = folder_paths.get_full_path(FOLDER, name)
    if path is None:
        raise ValueError(f"ExVideo: extension file {name!r} not found in models/{FOLDER}/")
    import safetensors.torch
    try:
        sd = safetensors.torch.load_file(path, device="cpu")
    except Exception as e:
        raise ValueError(f"ExVideo: {name!r} could not be read as safetensors (truncated or not a safetensors "
                         f"file?): {e}") from None
    if X.detect_frames(sd) is None:
        raise ValueError(f"ExVideo: {name!r} is not an ExVideo extension file (no {X.DETECT_KEY}).")
    return sd


class ExVideoExtras(torch.nn.Module):
    """The new ExVideo tensors (position tables, Conv3d weights), as a module ComfyUI can load and offload."""

    def __init__(self, new: dict[str, dict[str, torch.Tensor]], dtype):
        super().__init__()
        self.paths = sorted(new)
        for i, path in enumerate(self.paths):
            t = new[path]
            self.register_buffer(f"table_{i}", t["table"].to(dtype))
            self.register_buffer(f"conv_w_{i}", t["conv_weight"].to(dtype))
            self.register_buffer(f"conv_b_{i}", t["conv_bias"].to(dtype))
        self.index = {p: i for i, p in enumerate(self.paths)}

    def get(self, path: str, what: str) -> torch.Tensor:
        return getattr(self, f"{what}_{self.index[path]}")


def _table_provider(extras: ExVideoExtras, path: str, limit: int, frames: int, channels: int):
    """Rows 0..T−1 of the learned position table (the post-tuning CLI's direct hook)."""
    return _table_embed(extras, path, limit, torch.arange(frames, dtype=torch.float32), frames, channels)


def _table_embed(extras: ExVideoExtras, path: str, limit: int, positions: torch.Tensor, base: int, channels: int):
    """The learned table at `positions` among `base` frames: its rows at whole positions, linear between rows
    at fractional ones (frames placed between key frames by Hidden State Correction)."""
    if base > limit:
        raise ValueError(f"ExVideo: {base} frames requested, but the extension's position table holds {limit}. "
                         f"Use at most {limit} frames.")
    return X.sample_rows(extras.get(path, "table"), positions)


@_patching.module_bound
def _conv_forward(block, extras: ExVideoExtras, path: str, x, context=None, transformer_options={}, **kw):
    """time_stack.0.forward with ExVideo's Conv3d applied per video to its input (x + position embedding)."""
    shape = transformer_options.get("activations_shape")
    if shape is not None:
        h, w = shape[2], shape[3]
        x = X.positional_conv(x, extras.get(path, "conv_w"), extras.get(path, "conv_b"), x.shape[0] // (h * w), h, w)
    return type(block).forward(block, x, context=context, transformer_options=transformer_options, **kw)


def _stretched_sinusoid(positions: torch.Tensor, base: int, channels: int):
    """Training-free `interpolate`: the sinusoid at positions squeezed into SVD's 25 (scale 25/T)."""
    return X.sinusoid(positions * (X.BASE_FRAMES / base) if base > X.BASE_FRAMES else positions, channels)


def _pingpong_sinusoid(positions: torch.Tensor, base: int, channels: int):
    """Training-free `pingpong`: the sinusoid at the ping-pong ids (linear between them at fractional positions)."""
    return X.sinusoid(X.sample_rows(X.pingpong_ids(base), positions), channels)


def _remaps_positions(guider) -> bool:
    """Whether another node places this model's frames among fewer positions (Hidden State Correction)."""
    patcher = getattr(guider, "model_patcher", None)
    return any(getattr(_patching.frame_positions(p), "remap", None) is not None
               for p in getattr(patcher, "object_patches", {}).values())


def _check_frame_limit(limit: int, executor, *args, **kwargs):
    """Refuse more frames than the table before sampling starts. With Hidden State Correction the long branch
    reads the table at key-frame positions, so the limit applies to the key frames: the table itself refuses
    more base frames than it holds, at the first step."""
    latent = _patching.argument(executor, args, kwargs, "latent_image", None)
    frames = latent.shape[0] if latent is not None and latent.ndim == 4 else None
    guider = getattr(executor, "class_obj", None)
    if frames is None or _remaps_positions(guider):
        return executor(*args, **kwargs)
    stage = getattr(guider, "longest_call_frames", None)  # a ZeroSmooth cascade: its stages run one at a time
    if callable(stage):
        frames = stage()
        if frames > limit:
            raise ValueError(f"ExVideo: the longest stage of the ZeroSmooth cascade has {frames} frames, but the "
                             f"extension's position table holds {limit}. Use fewer key frames or a smaller factor "
                             f"(or add Hidden State Correction: then the limit applies to the key frames).")
    elif frames > limit:
        raise ValueError(f"ExVideo: {frames} frames requested, but the extension's position table holds {limit}. "
                         f"Set video_frames to at most {limit}.")
    return executor(*args, **kwargs)


def apply_extension(model, sd: dict[str, torch.Tensor], name: str = "extension"):
    """A clone of an SVD ModelPatcher with ExVideo weights (set patches) and its new modules (object patches)."""
    blocks = _patching.require_svd(model, "ExVideo")
    weights, new, unmatched = X.split_extension({k: v.detach() for k, v in sd.items()})
    if unmatched:
        raise ValueError(f"ExVideo: {name} has {len(unmatched)} tensors that are not in the ExVideo layout, e.g. "
                         f"{unmatched[:3]}")
    m = model.clone()
    model_sd = m.model_state_dict()
    missing = [k for k in X.exvideo_keymap().values() if k is not None and k not in weights]
    if missing:
        raise ValueError(f"ExVideo: {name} is incomplete: {len(missing)} of 480 retrained tensors missing, e.g. "
                         f"{missing[:2]}")
    for key, tensor in weights.items():
        if key not in model_sd:
            raise ValueError(f"ExVideo: this SVD model has no {key}: not an SVD U-Net of the released layout")
        if tuple(model_sd[key].shape) != tuple(tensor.shape):
            raise ValueError(f"ExVideo: {name} was made for a different model: {key} is {list(tensor.shape)} in the "
                             f"file but {list(model_sd[key].shape)} in this model (channel size mismatch)")
    paths = {p for p, _ in blocks}
    for path, t in new.items():
        if path not in paths or set(t) != {"table", "conv_weight", "conv_bias"}:
            raise ValueError(f"ExVideo: {name} lacks the position table or Conv3d of block {path}")
        c = t["conv_bias"].shape[0]
        channels = model_sd[f"diffusion_model.{path}.time_pos_embed.0.weight"].shape[1]
        if t["table"].shape[1] != channels or c != channels or t["conv_weight"].shape != (c, c, 3, 3, 3):
            raise ValueError(f"ExVideo: {name}'s position table / Conv3d for {path} are for {t['table'].shape[1]} "
                             f"channels, but this model's block has {channels}")
    m.add_patches({k: ("set", (v,)) for k, v in weights.items()}, 1.0, 1.0)
    extras_patcher = _extras_patcher(new, _patching.compute_dtype(m), m.load_device, m.offload_device)
    extras = extras_patcher.model
    m.set_additional_models(KEY, [extras_patcher])
    _on_deepclone(m, _use_own_extras)
    limit = X.detect_frames(sd)
    holder = _patching.VideoFrames()
    _patching.add_frame_counter(m, holder, KEY)
    _patching.stack_frame_positions(m, blocks, holder, "ExVideo",
                                    embed={p: functools.partial(_table_embed, extras, p, limit) for p, _ in blocks})
    for path, block in blocks:
        if not _is_identity(new[path]):
            m.add_object_patch(f"diffusion_model.{path}.time_stack.0.forward",
                               functools.partial(_conv_forward, block.time_stack[0], extras, path))
    _patching.rebind_on_clone(m)
    m.remove_wrappers_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, KEY)
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, KEY,
                           functools.partial(_check_frame_limit, limit))
    return m


def _extras_patcher(new: dict, dtype, load_device, offload_device, **_ignored):
    """A ModelPatcher of a fresh ExVideoExtras. It carries itself as its `cached_patcher_init`: newer ComfyUI
    (MultiGPU CFG Split) builds each GPU's copy of an additional model from that factory."""
    p = comfy.model_patcher.ModelPatcher(ExVideoExtras(new, dtype), load_device=load_device,
                                         offload_device=offload_device)
    p.cached_patcher_init = (_extras_patcher, (new, dtype, load_device, offload_device))
    return p


def _swap(obj, old, new):
    """`obj` with every reference to `old` inside our patch objects (partials, FramePositions, dicts) replaced by
    `new`: new objects, the originals stay with the model they belong to."""
    if obj is old:
        return new
    if isinstance(obj, functools.partial):
        return functools.partial(obj.func, *(_swap(a, old, new) for a in obj.args),
                                 **{k: _swap(v, old, new) for k, v in obj.keywords.items()})
    if isinstance(obj, _patching.FramePositions):
        return _patching.FramePositions(_swap(obj.remap, old, new), _swap(obj.embed, old, new))
    if isinstance(obj, dict):
        return {k: _swap(v, old, new) for k, v in obj.items()}
    return obj


def _use_own_extras(src, clone) -> None:
    """After a deep clone for another device (its additional models rebuilt from their factories): the ExVideo
    patches of the clone read the clone's own table and Conv3d weights."""
    old = [p.model for p in src.get_additional_models_with_key(KEY)]
    new = [p.model for p in clone.get_additional_models_with_key(KEY)]
    if len(old) != 1 or len(new) != 1 or old[0] is new[0]:
        return
    for key, patch in list(clone.object_patches.items()):
        clone.object_patches[key] = _swap(patch, old[0], new[0])


def _on_deepclone(model, callback) -> None:
    """Run `callback(src, clone)` after newer ComfyUI deep-clones `model` for another device; hosts without
    multi-GPU deep clones (0.3.75) have no such callback, and nothing to do."""
    kind = getattr(comfy.patcher_extension.CallbacksMP, "ON_DEEPCLONE_MULTIGPU", None)
    if kind is not None:
        model.remove_callbacks_with_key(kind, KEY)
        model.add_callback_with_key(kind, KEY, callback)


def _is_identity(t: dict[str, torch.Tensor]) -> bool:
    """An untrained (identity) Conv3d is skipped: exact, and it saves a 3×3×3 conv per block."""
    w, b = t["conv_weight"], t["conv_bias"]
    return bool((b == 0).all()) and torch.equal(w.float(), X.identity_conv_weight(w.shape[0]))


def training_free(model, mode: str):
    """ExVideo's fallbacks without weights: interpolated or ping-pong frame positions (lower quality)."""
    blocks = _patching.require_svd(model, "ExVideo")
    m = model.clone()
    holder = _patching.VideoFrames()
    _patching.add_frame_counter(m, holder, KEY)
    _patching.stack_frame_positions(m, blocks, holder, "ExVideo",
                                    embed=_stretched_sinusoid if mode == "interpolate" else _pingpong_sinusoid)
    return m


class ExVideoTemporalExtend(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return schema(
            "ExVideoTemporalExtend",
            display_name="ExVideo Temporal Extend (SVD → 128 frames)",
            category=EXVIDEO_CATEGORY,
            description=(
                "Lets Stable Video Diffusion (SVD-XT) make long videos, up to 128 frames, with the released ExVideo "
                "weights (put the .safetensors file in models/exvideo/): retrained temporal blocks, a learned "
                "frame-position table and a 3D convolution. Without weights, two training-free fallbacks stretch "
                "the frame positions instead (clearly lower quality). Pair with Latent Renorm before decoding. "
                f"From {PAPER}. Cost: memory and time grow linearly with frames; +1 Conv3d per temporal block."),
            search_aliases=ALIASES,
            inputs=[
                io.Model.Input("model", tooltip="An SVD-XT model (ImageOnlyCheckpointLoader)."),
                io.Combo.Input("mode", options=list(MODES), default="weights",
                               tooltip="weights: the ExVideo extension file (best). interpolate: squeeze the frame "
                                       "positions into SVD's 25 (training-free). ping-pong: reuse positions 0-24 "
                                       "back and forth (training-free)."),
                io.Combo.Input("extension", options=extension_files(),
                               tooltip="ExVideo extension file from models/exvideo/ (safetensors only), e.g. "
                                       "ExVideo-SVD-128f-v1. Needed for mode = weights."),
            ],
            outputs=[io.Model.Output(tooltip="The extended SVD model (a patched copy)."),
                     io.Float.Output(display_name="fps", tooltip=f"{TRAINED_FPS:g}: the frame rate ExVideo's clips are "
                                                                 "made and played at (also for the training-free "
                                                                 "modes). Wire it to Create Video; condition SVD "
                                                                 "at the same fps.")],
        )

    @classmethod
    def validate_inputs(cls, mode, extension):
        return first_error(check_choice("mode", mode, MODES), check_choice("extension", extension, extension_files()),
                           "mode = weights needs an extension file from models/exvideo/"
                           if mode == "weights" and extension == NO_FILE else True)

    @classmethod
    def execute(cls, model, mode, extension) -> io.NodeOutput:
        if mode == "weights":
            if extension == NO_FILE:
                raise ValueError("ExVideo: mode = weights needs an extension file from models/exvideo/")
            return io.NodeOutput(apply_extension(model, load_extension(extension), extension), TRAINED_FPS)
        return io.NodeOutput(training_free(model, mode), TRAINED_FPS)


class ExVideoLatentRenorm(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return schema(
            "ExVideoLatentRenorm",
            display_name="Latent Renorm (ExVideo)",
            category=EXVIDEO_CATEGORY,
            description=(
                "ExVideo's step before decoding: every frame's latent is brought to the whole clip's mean and "
                "standard deviation, then multiplied by a contrast factor (1.2 in ExVideo). Stops long videos "
                f"from drifting in brightness and washing out. From {PAPER}. Cost: negligible."),
            search_aliases=ALIASES + ["latent normalize", "post normalize", "contrast"],
            inputs=[
                io.Latent.Input("latent", tooltip="The sampled video latent (one entry per frame)."),
                io.Float.Input("contrast", default=1.2, min=0.5, max=2.0, step=0.01,
                               tooltip="Multiplier after renormalising. ExVideo: 1.2. 1.0 = renormalise only."),
            ],
            outputs=[io.Latent.Output(tooltip="The renormalised latent.")],
        )

    @classmethod
    def execute(cls, latent, contrast) -> io.NodeOutput:
        samples = latent["samples"]
        if samples.ndim != 4 or samples.shape[0] < 2:
            raise ValueError(f"Latent Renorm needs a video latent with at least 2 frames [frames, C, h, w]; got "
                             f"{list(samples.shape)}")
        require_finite("Latent Renorm", "latent", samples)
        out = latent.copy()
        out["samples"] = X.renorm_latents(samples, contrast)
        return io.NodeOutput(out)


NODES = [ExVideoTemporalExtend, ExVideoLatentRenorm]
