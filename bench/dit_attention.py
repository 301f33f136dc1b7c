"""Cross-Frame and Temporal Momentum Attention on DiT image models: step time patched vs unpatched.

Tiny (CPU, the default): the tiny Flux, SD3, Z-Image and HiDream of the tests, 8 frames at 64² (16 image tokens
— Z-Image pads to 32 — and 7 text tokens per frame): this measures the per-call overhead of the attention
override. `--full` (a GPU): the full-size Flux-dev (19 double + 38 single blocks, 3072 wide) and SD3.5-medium-like
(24 joint blocks, 1536 wide) architectures with random weights in bf16, 8 frames at 512² (1024 image tokens, 256
text tokens per frame), where the cost of the technique itself shows (goal: ≤ 1.05× for one anchor).
"""
from __future__ import annotations

import torch

from bench import models
from bench.common import compare
from scripts import tiny_models

FLUX_FULL = dict(tiny_models.FLUX_TINY_DIT, vec_in_dim=768, context_in_dim=4096, hidden_size=3072, num_heads=24,
                 depth=19, depth_single_blocks=38, axes_dim=[16, 56, 56])
SD35_FULL = {"in_channels": 16, "pos_embed_scaling_factor": None, "depth": 24, "patch_size": 2,
             "pos_embed_max_size": 384, "num_patches": 147456, "adm_in_channels": 2048, "qk_norm": "rms",
             "x_block_self_attn_layers": list(range(13)),
             "context_embedder_config": {"target": "torch.nn.Linear",
                                         "params": {"in_features": 4096, "out_features": 1536}}}


def _model(family: str, full: bool, device: str):
    import comfy.supported_models
    models.import_comfy()
    if not full:
        return tiny_models.tiny_image_dit(family, seed=2)
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    cls, cfg = ((comfy.supported_models.Flux, FLUX_FULL) if family == "flux" else (comfy.supported_models.SD3,
                                                                                     SD35_FULL))
    return tiny_models.patcher(tiny_models._model(cls, cfg, 0, dtype=dtype, calibrate=False))


# tiny conditioning per family: (text width, pooled width); 7 prompt tokens
TINY_CONDS = {"flux": (32, 32), "sd3": (64, 64), "z_image": (32, 32), "hidream": (32, 32)}


def _conds(family: str, mp, full: bool):
    g = torch.Generator().manual_seed(1)
    if full:
        dim, pooled, tokens = (4096, 768, 256) if family == "flux" else (4096, 2048, 154)
    else:
        (dim, pooled), tokens = TINY_CONDS[family], 7

    def extra():
        out = {"pooled_output": torch.randn(1, pooled, generator=g), "guidance": 3.5}
        if family == "hidream":  # the Llama hidden states of its two tiny blocks
            out["conditioning_llama3"] = torch.randn(1, 2, 5, 32, generator=g)
        return out
    return tuple([[torch.randn(1, tokens, dim, generator=g), extra()]] for _ in range(2))


def _call(mp, pos, neg, frames, size, steps=2, cfg=2.0):
    import comfy.sample
    latent = torch.zeros(frames, 16, size // 8, size // 8)
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(0))

    def run():
        return comfy.sample.sample(mp, noise, steps, cfg, "euler", "simple", pos, neg, latent, seed=0,
                                   disable_pbar=True)
    return run


def run(device: str = "cpu", full: bool = False, repeats: int = 9):
    from scripts.comfy_env import import_pack
    models.import_comfy()
    import_pack()
    from zerovideo.nodes.text2video_zero import CrossFrameAttentionPatch
    from zerovideo.nodes.zs2 import TemporalMomentumAttention
    frames = models.OVERRIDE.get("frames", 8)
    size = models.OVERRIDE.get("size", 512 if full else 64)
    out = {}
    # full: the Flux-dev and SD3.5 configurations; tiny: also Z-Image (image tokens last, padded) and HiDream
    # (image tokens first), the other two token layouts
    for family in ("flux", "sd3") if full else tuple(TINY_CONDS):
        mp = _model(family, full, device)
        pos, neg = _conds(family, mp, full)
        cross = CrossFrameAttentionPatch.execute(model=mp, anchor="first", start_percent=0.0, end_percent=1.0)
        two = CrossFrameAttentionPatch.execute(model=mp, anchor="first+previous", start_percent=0.0, end_percent=1.0)
        tma = TemporalMomentumAttention.execute(model=mp, mu=0.98, anchor_mix=0.0, start_percent=0.0, end_percent=1.0)
        name = f"dit_attention_{family}" + models.suffix(full)
        out[family] = compare(
            name, (f"{family} unpatched", _call(mp, pos, neg, frames, size)),
            [(f"{family} + cross-frame (first)", _call(cross.args[0], pos, neg, frames, size)),
             (f"{family} + cross-frame (first+previous)", _call(two.args[0], pos, neg, frames, size)),
             (f"{family} + momentum (mu 0.98)", _call(tma.args[0], pos, neg, frames, size))],
            device=device, repeats=repeats,
            notes={"frames": frames, "size": [size, size], "steps": 2, "cfg": 2.0, "sampler": "euler",
                   "model": "full-size random weights" if full else "the tests' tiny model"})
    return out
