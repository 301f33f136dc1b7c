"""ExVideo (Duan et al., arXiv 2406.14130): the extension file layout, frame positions and latent renorm.

ExVideo extends SVD's 16 temporal blocks (`SpatialVideoTransformer`s): a learned frame-position table
E ∈ R^{T_max×C} replaces the sinusoid of `arange(T)` in front of the (retrained) `time_pos_embed` MLP, and
a new identity-initialised Conv3d (3×3×3, reflect padding) mixes `x + pos_emb` per video before the
temporal transformer. The released file (DiffSynth-Studio's `ExVideo-SVD-128f-v1`) names tensors
`blocks.{N}.…`; `exvideo_keymap` maps all 528 of them to ComfyUI's SVD U-Net.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# DiffSynth block number -> ComfyUI SpatialVideoTransformer path (inside diffusion_model)
BLOCK_MAP = {
    7: "input_blocks.1.1", 17: "input_blocks.2.1", 29: "input_blocks.4.1", 39: "input_blocks.5.1",
    51: "input_blocks.7.1", 61: "input_blocks.8.1", 83: "middle_block.1",
    113: "output_blocks.3.1", 123: "output_blocks.4.1", 133: "output_blocks.5.1", 144: "output_blocks.6.1",
    154: "output_blocks.7.1", 164: "output_blocks.8.1", 175: "output_blocks.9.1", 185: "output_blocks.10.1",
    195: "output_blocks.11.1",
}
DETECT_KEY = "blocks.185.positional_embedding.embeddings"
BASE_FRAMES = 25  # SVD-XT's training length: positions 0..24 are in distribution
PINGPONG_LOW = 4  # ping-pong ids bounce inside [4, 24] after the first 25

# per-block tensor name (DiffSynth) -> ComfyUI name relative to the block; None: new in ExVideo
_MODULES = {
    "positional_embedding_proj.0": "time_pos_embed.0", "positional_embedding_proj.2": "time_pos_embed.2",
    "norm_in": "time_stack.0.norm_in", "act_fn_in.proj": "time_stack.0.ff_in.net.0.proj",
    "ff_in": "time_stack.0.ff_in.net.2", "norm1": "time_stack.0.norm1", "norm2": "time_stack.0.norm2",
    "norm_out": "time_stack.0.norm3", "act_fn_out.proj": "time_stack.0.ff.net.0.proj",
    "ff_out": "time_stack.0.ff.net.2",
}
_ATTN = {"to_q": "to_q", "to_k": "to_k", "to_v": "to_v", "to_out": "to_out.0"}
TABLE = "positional_embedding.embeddings"
CONV_WEIGHT, CONV_BIAS = "positional_conv.weight", "positional_conv.bias"


def block_keys() -> dict[str, str | None]:
    """The 33 tensors of one block: DiffSynth name -> ComfyUI name relative to the block (None: new)."""
    out: dict[str, str | None] = {TABLE: None, CONV_WEIGHT: None, CONV_BIAS: None}
    for src, dst in _MODULES.items():
        out[f"{src}.weight"] = f"{dst}.weight"
        out[f"{src}.bias"] = f"{dst}.bias"
    for attn in ("attn1", "attn2"):
        for src, dst in _ATTN.items():
            out[f"{attn}.{src}.weight"] = f"time_stack.0.{attn}.{dst}.weight"
        out[f"{attn}.to_out.bias"] = f"time_stack.0.{attn}.to_out.0.bias"
    return out


def exvideo_keymap() -> dict[str, str | None]:
    """All 528 DiffSynth keys -> ComfyUI state-dict keys (`diffusion_model.…`), None for the new tensors."""
    per_block = block_keys()
    return {f"blocks.{n}.{src}": (None if dst is None else f"diffusion_model.{path}.{dst}")
            for n, path in BLOCK_MAP.items() for src, dst in per_block.items()}


def detect_frames(sd: dict) -> int | None:
    """Frame count of an ExVideo extension state dict (the position table's length), or None."""
    table = sd.get(DETECT_KEY)
    return None if table is None else int(table.shape[0])


def split_extension(sd: dict) -> tuple[dict[str, torch.Tensor], dict[str, dict[str, torch.Tensor]], list[str]]:
    """(weights to set by ComfyUI key, new tensors per block path {table, conv_weight, conv_bias}, unmatched keys)."""
    keymap = exvideo_keymap()
    weights, new, unmatched = {}, {path: {} for path in BLOCK_MAP.values()}, []
    for key, tensor in sd.items():
        if key not in keymap:
            unmatched.append(key)
            continue
        dst = keymap[key]
        if dst is not None:
            weights[dst] = tensor
            continue
        n = int(key.split(".")[1])
        leaf = key.split(".", 2)[2]
        new[BLOCK_MAP[n]][{TABLE: "table", CONV_WEIGHT: "conv_weight", CONV_BIAS: "conv_bias"}[leaf]] = tensor
    return weights, new, unmatched


def pingpong_ids(frames: int, base: int = BASE_FRAMES, low: int = PINGPONG_LOW) -> torch.Tensor:
    """0..base−1, then reflect back and forth inside [low, base−1] (period 2·(base−1−low))."""
    ids = list(range(min(frames, base)))
    span = base - 1 - low
    for k in range(frames - len(ids)):
        phase = (k + 1) % (2 * span)
        ids.append(base - 1 - phase if phase <= span else low + (phase - span))
    return torch.tensor(ids, dtype=torch.float32)


def sample_rows(values: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """`values` (rows along dim 0) at `positions`: the rows themselves at whole positions, linear between
    neighbouring rows at fractional ones (the last row is held past the end)."""
    lo = positions.floor()
    i0 = lo.long().clamp(0, values.shape[0] - 1).to(values.device)
    if torch.equal(lo, positions):
        return values[i0]
    i1 = (i0 + 1).clamp(max=values.shape[0] - 1)
    frac = (positions - lo).to(values).view(-1, *[1] * (values.ndim - 1))
    return torch.lerp(values[i0], values[i1], frac)


def interpolated_positions(frames: int, base: int = BASE_FRAMES) -> torch.Tensor:
    """Position interpolation: frames beyond `base` squeeze into [0, base) (scale base/T)."""
    pos = torch.arange(frames, dtype=torch.float32)
    return pos * (base / frames) if frames > base else pos


def sinusoid(positions: torch.Tensor, channels: int, max_period: float = 10000.0) -> torch.Tensor:
    """The [cos, sin] embedding SVD uses for frame indices (ComfyUI's timestep_embedding layout)."""
    half = channels // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = positions.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if channels % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


def positional_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, videos: int,
                    h: int, w: int) -> torch.Tensor:
    """ExVideo's Conv3d on temporal-block input `(videos·h·w, T, C)`, per video, reflect padding."""
    s, t, c = x.shape
    v = x.view(videos, h, w, t, c).permute(0, 4, 3, 1, 2)  # (videos, C, T, h, w)
    if min(t, h, w) > 1:
        v = F.pad(v, (1,) * 6, mode="reflect")
    else:  # a length-1 axis cannot reflect: pad axis by axis, repeating the length-1 ones
        for dim, size in ((2, t), (1, h), (0, w)):
            pad = [0] * 6
            pad[2 * dim:2 * dim + 2] = [1, 1]
            v = F.pad(v, pad, mode="reflect" if size > 1 else "replicate")
    v = F.conv3d(v, weight.to(v), None if bias is None else bias.to(v))
    return v.permute(0, 3, 4, 2, 1).reshape(s, t, c)


def identity_conv_weight(channels: int) -> torch.Tensor:
    """A 3×3×3 Conv3d weight that maps every input to itself (ExVideo's initialisation)."""
    w = torch.zeros(channels, channels, 3, 3, 3)
    w[torch.arange(channels), torch.arange(channels), 1, 1, 1] = 1.0
    return w


def renorm_latents(latents: torch.Tensor, contrast: float = 1.2) -> torch.Tensor:
    """ExVideo's pre-decode step: each frame to the clip's global mean/std, then × contrast.

    latents: `(F, C, h, w)`. Frames drifting in brightness over 128 frames are pulled back together.
    """
    x = latents.float()
    mean, std = x.mean(), x.std()
    per_mean = x.mean(dim=(1, 2, 3), keepdim=True)
    per_std = x.std(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
    return (((x - per_mean) / per_std * std + mean) * contrast).to(latents.dtype)
