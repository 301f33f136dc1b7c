"""Models and sampling calls for the benchmarks: tiny (CPU) or full-size random-weight architectures."""
from __future__ import annotations

import torch

from scripts import tiny_models
from scripts.comfy_env import import_comfy

# (frames, pixel height, pixel width) per size class
SD15_SHAPES = {"tiny": (8, 64, 64), "full": (16, 512, 512)}
SVD_SHAPES = {"tiny": (8, 64, 64), "full": (25, 576, 1024)}
# `bench --size PX --frames N`: the same architectures at another shape, e.g. the full-size ones at 256² and 8
# frames on a CPU, where the cost of the technique (not per-call overhead) is what shows
OVERRIDE: dict = {}


def shape(kind: str, full: bool) -> tuple[int, int, int]:
    """(frames, pixel height, pixel width) for "sd15" or "svd", with the command line's override."""
    frames, h, w = (SD15_SHAPES if kind == "sd15" else SVD_SHAPES)["full" if full else "tiny"]
    return OVERRIDE.get("frames", frames), OVERRIDE.get("size", h), OVERRIDE.get("size", w)


def suffix(full: bool) -> str:
    """Result-file suffix: "" (tiny), "_full", or "_full_256px_8f" with an override."""
    out = "_full" if full else ""
    if OVERRIDE:
        out += "".join(f"_{OVERRIDE[k]}{unit}" for k, unit in (("size", "px"), ("frames", "f")) if k in OVERRIDE)
    return out


def _dtype(device: str):
    return torch.float16 if device.startswith("cuda") else torch.float32


def sd15(full: bool, device: str):
    import_comfy()
    cfg = tiny_models.SD15_FULL_UNET if full else tiny_models.SD15_TINY_UNET
    return tiny_models.patcher(tiny_models.sd15_model(cfg, dtype=_dtype(device)))


def svd(full: bool, device: str):
    import_comfy()
    cfg = tiny_models.SVD_FULL_UNET if full else tiny_models.SVD_TINY_UNET
    return tiny_models.patcher(tiny_models.svd_model(cfg, dtype=_dtype(device)))


def sd15_conds(mp):
    dim = mp.model.diffusion_model.input_blocks[1][1].transformer_blocks[0].attn2.to_k.in_features
    g = torch.Generator().manual_seed(1)
    return [[torch.randn(1, 77, dim, generator=g), {}]], [[torch.randn(1, 77, dim, generator=g), {}]]


def svd_conds(mp, h: int, w: int):
    dim = mp.model.diffusion_model.input_blocks[1][1].transformer_blocks[0].attn2.to_k.in_features
    extra = {"concat_latent_image": torch.zeros(1, 4, h // 8, w // 8), "fps": 6, "motion_bucket_id": 127,
             "augmentation_level": 0.0}
    g = torch.Generator().manual_seed(1)
    pos = [[torch.randn(1, 1, dim, generator=g), extra]]
    neg = [[torch.zeros(1, 1, dim), dict(extra, concat_latent_image=torch.zeros(1, 4, h // 8, w // 8))]]
    return pos, neg


def sampling_call(mp, positive, negative, frames: int, h: int, w: int, steps: int = 2, cfg: float = 5.0,
                  sampler: str = "euler"):
    """A closure that samples `frames` latents for `steps` steps with the real ComfyUI sampler stack."""
    import comfy.sample
    latent = torch.zeros(frames, 4, h // 8, w // 8)
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(0))

    def run():
        return comfy.sample.sample(mp, noise, steps, cfg, sampler, "normal", positive, negative, latent,
                                   seed=0, disable_pbar=True)
    return run
