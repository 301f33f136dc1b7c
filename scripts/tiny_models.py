"""Tiny random-weight models built with ComfyUI's own classes (HOST.md §4).

Two kinds:
- checkpoint files that the stock loaders accept (`CheckpointLoaderSimple` for SD1.5,
  `ImageOnlyCheckpointLoader` for SVD), cached by a hash of their recipe;
- Python-level ModelPatchers with very small configs for fast in-process tests.

ComfyUI's ops skip weight init (their tensors are uninitialised memory), so every builder re-runs the
torch `reset_parameters` of each layer and fills the remaining parameters explicitly.

    python -m scripts.tiny_models [DIR]    build (or reuse) the checkpoints and print their paths
"""
from __future__ import annotations

import functools
import hashlib
import inspect
import json
import math
import sys
from pathlib import Path

from scripts.comfy_env import import_comfy

SD15_NAME = "zerovideo_tiny_sd15.safetensors"
SVD_NAME = "zerovideo_tiny_svd.safetensors"

_UNET_BASE = {"use_checkpoint": False, "image_size": 32, "use_spatial_transformer": True, "legacy": False}

# Detected by model_detection as SD15: model_channels 320 and context 768 are fixed by the detector.
SD15_CHECKPOINT_UNET = dict(
    _UNET_BASE, adm_in_channels=None, in_channels=4, out_channels=4, model_channels=320,
    num_res_blocks=[1, 1], channel_mult=[1, 1], transformer_depth=[1, 1],
    transformer_depth_output=[1, 1, 1, 1], transformer_depth_middle=1,
    use_linear_in_transformer=False, context_dim=768,
    use_temporal_resblock=False, use_temporal_attention=False)

_SVD_VIDEO = dict(
    extra_ff_mix_layer=True, use_spatial_context=True, merge_strategy="learned_with_images",
    merge_factor=0.0, video_kernel_size=[3, 1, 1], use_temporal_resblock=True,
    use_temporal_attention=True, disable_temporal_crossattention=False)

# Detected as SVD_img2vid. Same block layout as the real SVD (16 SpatialVideoTransformers at input
# 1,2,4,5,7,8, middle, output 3-11), with every level at 320 channels. (transformer_depth_output lists the
# output blocks from the last to the first: ComfyUI pops it from the end.)
SVD_CHECKPOINT_UNET = dict(
    {**_UNET_BASE, **_SVD_VIDEO}, num_classes="sequential", adm_in_channels=768, in_channels=8,
    out_channels=4, model_channels=320, num_res_blocks=[2, 2, 2, 2], channel_mult=[1, 1, 1, 1],
    transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0],
    transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0], transformer_depth_middle=1,
    use_linear_in_transformer=True, context_dim=1024)

# The real architectures (random weights): for benchmarks on a GPU, where speed is what matters.
SD15_FULL_UNET = dict(
    SD15_CHECKPOINT_UNET, num_res_blocks=[2, 2, 2, 2], channel_mult=[1, 2, 4, 4],
    transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0], transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0])
SVD_FULL_UNET = dict(SVD_CHECKPOINT_UNET, channel_mult=[1, 2, 4, 4])

# Python-level models: same layouts, a few channels.
SD15_TINY_UNET = dict(
    SD15_CHECKPOINT_UNET, model_channels=32, context_dim=64, channel_mult=[1, 2])
SVD_TINY_UNET = dict(
    SVD_CHECKPOINT_UNET, model_channels=64, context_dim=64, channel_mult=[1, 1, 1, 1])
# SDXL's layout in small: no attention on the first level, two transformer blocks per stack (block_index 0
# and 1), linear projections, 64-channel heads, size/crop conditioning (adm 1280 pooled + 6×256).
SDXL_TINY_UNET = dict(
    _UNET_BASE, num_classes="sequential", adm_in_channels=2816, in_channels=4, out_channels=4, model_channels=64,
    num_res_blocks=[1, 1], channel_mult=[1, 2], transformer_depth=[0, 2], transformer_depth_output=[0, 0, 2, 2],
    transformer_depth_middle=2, use_linear_in_transformer=True, context_dim=64, num_head_channels=64,
    use_temporal_resblock=False, use_temporal_attention=False)

_FILL = {"vae_scale": 1.0, "vae_shift": 0.0, "mix_factor": 0.0, "logit_scale": math.log(1 / 0.07)}


_EMPTY_BUFFERS = {"pos_embed"}


def init_weights(module, seed: int) -> None:
    """Initialise every parameter of `module` deterministically (torch defaults, then explicit fills)."""
    import torch
    torch.manual_seed(seed)
    covered = set()
    with torch.no_grad():
        for m in module.modules():
            for cls in type(m).__mro__:
                if cls.__module__.startswith("torch.nn.modules") and "reset_parameters" in cls.__dict__:
                    cls.reset_parameters(m)
                    covered.update(id(p) for p in m.parameters(recurse=False))
                    break
        for name, p in module.named_parameters():
            if id(p) in covered:
                continue
            leaf = name.rsplit(".", 1)[-1]
            if leaf in _FILL:
                p.fill_(_FILL[leaf])
            else:
                p.normal_(0.0, 0.02)
        # buffers that hold weights but are made with torch.empty (SD3's MMDiT position embedding): uninitialised
        # memory otherwise, different in every process (and sometimes NaN)
        for name, b in module.named_buffers():
            if name.rsplit(".", 1)[-1] in _EMPTY_BUFFERS and b.is_floating_point():
                b.normal_(0.0, 0.02)


def calibrate_output(model, seed: int) -> None:
    """Scale the U-Net's last conv so that its prediction has unit std, like a trained model's.

    Random residual stacks grow their activations layer by layer; left alone the tiny models predict
    values in the hundreds, and every float comparison in the tests would be against that scale.
    """
    import torch
    dm = model.diffusion_model
    g = torch.Generator().manual_seed(seed)
    frames = 2
    x = torch.randn(frames, dm.in_channels, 8, 8, generator=g)
    ctx = torch.randn(frames, 1, model.model_config.unet_config["context_dim"], generator=g)
    kw = {}
    if getattr(dm, "num_classes", None) is not None:
        kw["y"] = torch.randn(frames, dm.label_emb[0][0].in_features, generator=g)
    if getattr(dm, "use_temporal_resblocks", False):
        kw["num_video_frames"] = frames
    with torch.no_grad():
        std = dm(x.to(dm.dtype), torch.full((frames,), 500.0), ctx.to(dm.dtype), **kw).float().std()
        last = dm.out[-1]
        last.weight.div_(std)
        if last.bias is not None:
            last.bias.div_(std)


def _model(config_cls, unet_config: dict, seed: int, dtype=None, calibrate: bool = True):
    import torch
    cfg = config_cls(dict(unet_config))
    cfg.set_inference_dtype(dtype or torch.float32, None)
    model = cfg.get_model({})
    init_weights(model, seed)
    if calibrate:
        calibrate_output(model, seed)
    return model


def sd15_model(unet_config: dict = SD15_TINY_UNET, seed: int = 0, dtype=None):
    import_comfy()
    import comfy.supported_models
    return _model(comfy.supported_models.SD15, unet_config, seed, dtype)


def svd_model(unet_config: dict = SVD_TINY_UNET, seed: int = 0, dtype=None):
    import_comfy()
    import comfy.supported_models
    return _model(comfy.supported_models.SVD_img2vid, unet_config, seed, dtype)


def sdxl_model(unet_config: dict = SDXL_TINY_UNET, seed: int = 0, dtype=None):
    import_comfy()
    import comfy.supported_models
    return _model(comfy.supported_models.SDXL, unet_config, seed, dtype)


# A DiT (SD3's MMDiT, two joint blocks): the wrong model family for every U-Net technique.
SD3_TINY_DIT = {"in_channels": 16, "pos_embed_scaling_factor": None, "depth": 2, "patch_size": 2,
                "pos_embed_max_size": 16, "num_patches": 256, "adm_in_channels": 64,
                "context_embedder_config": {"target": "torch.nn.Linear",
                                            "params": {"in_features": 64, "out_features": 128}}}


def tiny_sd3(seed: int = 0):
    return tiny_image_dit("sd3", seed)


# Flux (dev layout: guidance embedding), one double and one single block, 2 heads of 32 (RoPE axes 8+12+12).
FLUX_TINY_DIT = {"image_model": "flux", "in_channels": 16, "out_channels": 16, "vec_in_dim": 32,
                 "context_in_dim": 32, "hidden_size": 64, "mlp_ratio": 4.0, "num_heads": 2, "depth": 1,
                 "depth_single_blocks": 1, "axes_dim": [8, 12, 12], "theta": 10000, "patch_size": 2,
                 "qkv_bias": True, "guidance_embed": True}


def tiny_flux(seed: int = 0):
    """A tiny Flux built with ComfyUI's own classes (supported_models.Flux → model_base.Flux → ldm Flux)."""
    return tiny_image_dit("flux", seed)


# Other image DiTs the attention nodes take, tiny: Chroma (Flux-like, 64 = 16 latent channels × 2×2 packed),
# AuraFlow (4-channel SDXL latents, 8 register tokens) and Qwen-Image (16-channel latents with a frame axis)
CHROMA_TINY_DIT = {"image_model": "chroma", "in_channels": 64, "out_channels": 64, "context_in_dim": 32,
                   "hidden_size": 64, "mlp_ratio": 4.0, "num_heads": 2, "depth": 1, "depth_single_blocks": 1,
                   "axes_dim": [8, 12, 12], "theta": 10000, "patch_size": 2, "qkv_bias": True, "in_dim": 64,
                   "out_dim": 64, "hidden_dim": 64, "n_layers": 1}
AURAFLOW_TINY_DIT = {"cond_seq_dim": 32, "max_seq": 64, "n_double_layers": 1, "n_layers": 2, "dim": 64, "n_heads": 2,
                     "global_conddim": 64, "in_channels": 4, "out_channels": 4, "patch_size": 2}
QWEN_TINY_DIT = {"image_model": "qwen_image", "patch_size": 2, "in_channels": 64, "out_channels": 16,
                 "num_layers": 1, "attention_head_dim": 32, "num_attention_heads": 2, "joint_attention_dim": 32,
                 "axes_dims_rope": (8, 12, 12)}


# Flux 2: the Flux class with Flux 2's switches (global modulation, no pooled vector, 128-channel latent, patch 1).
FLUX2_TINY_DIT = {"image_model": "flux2", "in_channels": 128, "out_channels": 128, "vec_in_dim": None,
                  "context_in_dim": 32, "hidden_size": 64, "mlp_ratio": 3.0, "num_heads": 2, "depth": 1,
                  "depth_single_blocks": 1, "axes_dim": [8, 8, 8, 8], "theta": 2000, "patch_size": 1,
                  "qkv_bias": False, "ops_bias": False, "global_modulation": True, "mlp_silu_act": True,
                  "guidance_embed": True, "default_ref_method": "index", "ref_index_scale": 10.0}
# Lumina 2 (NextDiT: caption refiner, image refiner, joint layers over [caption, image]; grouped K/V heads) and
# Z-Image (the same class with Z-Image's modulation and caption/image padding to multiples of 32 tokens).
LUMINA2_TINY_DIT = {"image_model": "lumina2", "patch_size": 2, "in_channels": 16, "dim": 64, "n_layers": 1,
                    "n_refiner_layers": 1, "n_heads": 2, "n_kv_heads": 1, "multiple_of": 16,
                    "ffn_dim_multiplier": 2.0, "qk_norm": True, "cap_feat_dim": 32, "axes_dims": [8, 12, 12],
                    "axes_lens": [300, 64, 64]}
Z_IMAGE_TINY_DIT = dict(LUMINA2_TINY_DIT, dim=256, n_heads=8, n_kv_heads=8, axes_lens=[1536, 64, 64],  # its
                        n_refiner_layers=2,  # as the released models (two caption-only layers to leave alone)
                        rope_theta=256.0, z_image_modulation=True, time_scale=1000.0,  # modulation needs dim ≥ 256
                        pad_tokens_multiple=32)
# HiDream-I1: double-stream blocks over [image, text], single-stream over [image, text, Llama layer]; MoE MLPs.
HIDREAM_TINY_DIT = {"image_model": "hidream", "patch_size": 2, "in_channels": 16, "out_channels": 16,
                    "num_layers": 1, "num_single_layers": 1, "attention_head_dim": 32, "num_attention_heads": 2,
                    "caption_channels": [32, 32], "text_emb_dim": 32, "num_routed_experts": 2,
                    "num_activated_experts": 1, "axes_dims_rope": [16, 8, 8], "max_resolution": [16, 16],
                    "llama_layers": [0, 1]}


def tiny_image_dit(family: str, seed: int = 0):
    """A tiny DiT image model built with ComfyUI's own classes: "flux", "flux2", "sd3", "sd3.5" (MMDiT-X with a
    4096-wide context, as SD3's text encoders give), "sd3-registers" (SD3's MMDiT with register tokens), "chroma",
    "auraflow", "qwen_image", "lumina2", "z_image" or "hidream"."""
    import_comfy()
    import comfy.supported_models as sm
    cls, cfg = {"flux": (sm.Flux, FLUX_TINY_DIT), "sd3": (sm.SD3, SD3_TINY_DIT), "sd3.5": (sm.SD3, SD35_TINY_DIT),
                "chroma": (sm.Chroma, CHROMA_TINY_DIT), "auraflow": (sm.AuraFlow, AURAFLOW_TINY_DIT),
                "qwen_image": (sm.QwenImage, QWEN_TINY_DIT),
                "sd3-registers": (sm.SD3, dict(SD3_TINY_DIT, register_length=4)),  # learned tokens before the text
                "flux2": (getattr(sm, "Flux2", None), FLUX2_TINY_DIT),  # ComfyUI ≥ 0.3.72
                "lumina2": (sm.Lumina2, LUMINA2_TINY_DIT), "z_image": (sm.Lumina2, Z_IMAGE_TINY_DIT),
                "hidream": (sm.HiDream, HIDREAM_TINY_DIT)}[family]
    if cls is None:
        raise RuntimeError(f"this ComfyUI has no {family} model class")
    return patcher(_model(cls, cfg, seed, calibrate=False))


# Wan 2.1 text-to-video, one block of 128 channels (one head): a video DiT, which the image techniques refuse.
WAN_TINY_DIT = {"image_model": "wan2.1", "model_type": "t2v", "dim": 128, "ffn_dim": 256, "num_heads": 1,
                "num_layers": 1, "in_dim": 16, "out_dim": 16, "patch_size": (1, 2, 2), "freq_dim": 256,
                "window_size": (-1, -1), "qk_norm": True, "cross_attn_norm": True, "eps": 1e-6}


def tiny_wan(seed: int = 0):
    import_comfy()
    import comfy.supported_models
    return patcher(_model(comfy.supported_models.WAN21_T2V, WAN_TINY_DIT, seed, calibrate=False))


def patcher(model):
    """Wrap a BaseModel in a ModelPatcher on the current device (CPU in tests)."""
    mm = import_comfy()
    import comfy.model_patcher
    return comfy.model_patcher.ModelPatcher(model, mm.get_torch_device(), mm.unet_offload_device())


def with_weight_dtype(mp, dtype, compute=None):
    """The same diffusion-model weights loaded as ComfyUI loads a U-Net with a weight dtype (UNETLoader's
    weight_dtype, --fp8_e4m3fn-unet, --bf16-unet…): stored in `dtype`, computed in the manual-cast dtype ComfyUI
    picks for this device (`compute` forces one; `compute=dtype` computes in the weight dtype itself)."""
    mm = import_comfy()
    import torch
    base = mp.model
    unet_config = {k: v for k, v in base.model_config.unet_config.items() if k != "dtype"}
    cfg = type(base.model_config)(unet_config)
    manual = compute if compute is not None else mm.unet_manual_cast(dtype, mm.get_torch_device(),
                                                                     cfg.supported_inference_dtypes)
    cfg.set_inference_dtype(dtype, None if manual == dtype else manual)
    model = cfg.get_model({})
    prefix = "diffusion_model."
    sd = {k[len(prefix):]: v.detach().clone() for k, v in stock_state_dict(mp).items() if k.startswith(prefix)}
    with torch.no_grad():
        model.load_model_weights(sd, "")
    return patcher(model)


def tiny_sd15(seed: int = 0, **overrides):
    return patcher(sd15_model(dict(SD15_TINY_UNET, **overrides), seed))


def tiny_sdxl(seed: int = 0, **overrides):
    return patcher(sdxl_model(dict(SDXL_TINY_UNET, **overrides), seed))


def tiny_svd(seed: int = 0, **overrides):
    return patcher(svd_model(dict(SVD_TINY_UNET, **overrides), seed))


def controlnet_module(unet_config: dict = SD15_TINY_UNET, seed: int = 0, family: str = "SD15"):
    """A cldm ControlNet matching a U-Net config of `family` ("SD15" or "SDXL", ComfyUI's supported-model class;
    hint: 3-channel images)."""
    import_comfy()
    import comfy.cldm.cldm
    import comfy.supported_models
    cfg = getattr(comfy.supported_models, family)(dict(unet_config)).unet_config
    cfg = {k: v for k, v in cfg.items() if k not in ("out_channels", "dtype")}
    net = comfy.cldm.cldm.ControlNet(hint_channels=3, **cfg)
    init_weights(net, seed)
    return net


def tiny_controlnet(seed: int = 0, family: str = "SD15", **overrides):
    """A ComfyUI ControlNet object (what ControlNetLoader returns) for the Python-level tiny SD1.5, or with
    family="SDXL" for the tiny SDXL (its layout; the pooled/size vector `y` is passed on)."""
    mm = import_comfy()
    import comfy.controlnet
    unet = {"SD15": SD15_TINY_UNET, "SDXL": SDXL_TINY_UNET}[family]
    return comfy.controlnet.ControlNet(controlnet_module(dict(unet, **overrides), seed, family),
                                       load_device=mm.get_torch_device())


def tiny_flux_controlnet(seed: int = 0, union_modes: int = 0):
    """A Flux ControlNet for the tiny Flux, as ComfyUI's loader builds an XLabs-style one (ControlNetFlux with an
    image hint, the conditioning's pooled vector and guidance passed on); `union_modes` > 0: with a control-mode
    embedding, as Union ControlNets have (the mode is set with Set Union ControlNet Type)."""
    mm = import_comfy()
    import comfy.controlnet
    import comfy.ldm.flux.controlnet
    import comfy.ops
    cfg = {k: v for k, v in FLUX_TINY_DIT.items() if k != "image_model"}
    net = comfy.ldm.flux.controlnet.ControlNetFlux(num_union_modes=union_modes,
                                                   operations=comfy.ops.disable_weight_init, **cfg)
    init_weights(net, seed)
    return comfy.controlnet.ControlNet(net, load_device=mm.get_torch_device(), extra_conds=["y", "guidance"])


def build_controlnet_checkpoint(path: Path, seed: int = 0) -> None:
    import comfy.utils
    net = controlnet_module(SD15_CHECKPOINT_UNET, seed)
    comfy.utils.save_torch_file(_half(net.state_dict()), str(path), metadata={"zerovideo": "tiny random ControlNet"})


def stock_state_dict(model) -> dict:
    """The model's own weights. ComfyUI leaves a sampled model loaded with its patcher's weight patches applied
    (ExVideo's, a LoRA's); for a ModelPatcher the originals are in its backup, shared by all its clones."""
    base = getattr(model, "model", model)
    sd = base.state_dict()
    backup = getattr(model, "backup", None) if model is not base else None
    return {k: (backup[k].weight if backup and k in backup else v) for k, v in sd.items()}


def exvideo_extension(model, frames: int = 128, seed: int = 0, perturb: float = 0.0) -> dict:
    """A state dict in the released ExVideo layout for `model` (a BaseModel or ModelPatcher of SVD layout).

    Retrained tensors are the model's own (plus `perturb`·noise), the position table is SVD's own sinusoid
    of arange(frames) and the Conv3d is the identity (plus `perturb`·noise): with perturb = 0 the extended
    model computes exactly what the stock model does for frames ≤ 25.
    """
    import importlib

    import torch
    import_comfy()
    from comfy.ldm.modules.diffusionmodules.util import timestep_embedding

    from scripts.comfy_env import import_pack
    import_pack()
    X = importlib.import_module("zerovideo.kernels.exvideo")
    sd = stock_state_dict(model)
    g = torch.Generator().manual_seed(seed)

    def noisy(t):
        t = t.detach().float().clone()
        return t + perturb * torch.randn(t.shape, generator=g) if perturb else t
    out = {}
    for key, dst in X.exvideo_keymap().items():
        if dst is not None:
            out[key] = noisy(sd[dst])
    for n, path in X.BLOCK_MAP.items():
        c = sd[f"diffusion_model.{path}.time_pos_embed.0.weight"].shape[1]
        out[f"blocks.{n}.{X.TABLE}"] = timestep_embedding(torch.arange(frames), c, repeat_only=False,
                                                          max_period=10000).float()
        out[f"blocks.{n}.{X.CONV_WEIGHT}"] = noisy(X.identity_conv_weight(c))
        out[f"blocks.{n}.{X.CONV_BIAS}"] = noisy(torch.zeros(c))
    return out


def build_exvideo_extension(path: Path, seed: int = 0) -> None:
    import comfy.utils
    model = svd_model(SVD_CHECKPOINT_UNET, seed)  # the same weights as the tiny SVD checkpoint
    sd = exvideo_extension(model, 128, seed, perturb=1e-3)
    comfy.utils.save_torch_file(_half(sd), str(path), metadata={"zerovideo": "tiny random ExVideo extension"})


def _taesd_sd(seed: int, latent_channels: int = 4) -> dict:
    """A random TAESD whose decoder gives mid-grey pictures with visible variation (mean 0.5, std 0.25
    before TAESD's own rescaling), instead of the near-black frames of an uncalibrated one."""
    import torch
    import comfy.taesd.taesd
    vae = comfy.taesd.taesd.TAESD(latent_channels=latent_channels)
    init_weights(vae, seed)
    last = [m for m in vae.taesd_decoder.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        y = vae.taesd_decoder(torch.randn(2, latent_channels, 8, 8, generator=torch.Generator().manual_seed(seed)))
        a = 0.25 / float(y.std())
        last.weight.mul_(a)
        last.bias.mul_(a).add_(0.5 - a * float(y.mean()))
    return vae.state_dict()


def tiny_clip_vision(folder: Path, dim: int = 64, seed: int = 5):
    """A real ComfyUI ClipVisionModel with a 2-layer, 32-wide config (its json written to `folder`), projecting to
    `dim` (the tiny SVD's context width)."""
    import comfy.clip_vision
    cfg = Path(folder) / "tiny_clip_vision.json"
    cfg.write_text(json.dumps({
        "hidden_act": "gelu", "hidden_size": 32, "image_size": 32, "intermediate_size": 64, "layer_norm_eps": 1e-5,
        "model_type": "clip_vision_model", "num_attention_heads": 2, "num_channels": 3, "num_hidden_layers": 2,
        "patch_size": 8, "projection_dim": dim}))
    cv = comfy.clip_vision.ClipVisionModel(str(cfg))
    init_weights(cv.model, seed)
    return cv


def empty_svd_vae():
    """`comfy.sd.VAE` with SVD's full architecture (image encoder + temporal decoder) as ComfyUI's loader builds it,
    weights not yet set: built from the one key ComfyUI detects SVD's VAE by (the loader logs every other key as
    missing; kept quiet here)."""
    import logging

    import torch
    import comfy.sd
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        return comfy.sd.VAE(sd={"decoder.mid.block_1.mix_factor": torch.zeros(1)})
    finally:
        root.setLevel(level)


def svd_vae_state_dict(seed: int = 0) -> dict:
    """A random full-size SVD VAE: the decoder's last (temporal) conv scaled so pictures come out mid-grey with
    visible variation instead of saturated."""
    import torch
    model = empty_svd_vae().first_stage_model.float()
    init_weights(model, seed)
    last = model.decoder.conv_out.time_mix_conv
    with torch.no_grad():
        y = model.decode(torch.randn(3, 4, 4, 4, generator=torch.Generator().manual_seed(seed)))
        a = 0.5 / float(y.std())
        last.weight.mul_(a)
        last.bias.mul_(a).sub_(a * float(y.mean()))
    return {k: v.clone() for k, v in model.state_dict().items()}


def svd_vae(seed: int = 0):
    """`comfy.sd.VAE` loaded from `svd_vae_state_dict(seed)`, as VAELoader / a checkpoint loader loads it."""
    import comfy.sd
    return comfy.sd.VAE(sd=svd_vae_state_dict(seed))


def _half(sd: dict) -> dict:
    return {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in sd.items()}


def build_sd15_checkpoint(path: Path, seed: int = 0) -> None:
    import_comfy()
    import comfy.sd
    import comfy.utils
    model = sd15_model(SD15_CHECKPOINT_UNET, seed)
    clip = comfy.sd.CLIP(model.model_config.clip_target())
    init_weights(clip.cond_stage_model, seed + 1)
    sd = model.state_dict_for_saving(clip.get_sd(), _taesd_sd(seed + 2), None)
    comfy.utils.save_torch_file(_half(sd), str(path), metadata={"zerovideo": "tiny random SD1.5"})


def build_ip2p_checkpoint(path: Path, seed: int = 0) -> None:
    """SD1.5 InstructPix2Pix layout: 8 input channels (latent ‖ image latent); detected as SD15_instructpix2pix."""
    import_comfy()
    import comfy.sd
    import comfy.supported_models
    import comfy.utils
    model = _model(comfy.supported_models.SD15_instructpix2pix, dict(SD15_CHECKPOINT_UNET, in_channels=8), seed)
    clip = comfy.sd.CLIP(model.model_config.clip_target())
    init_weights(clip.cond_stage_model, seed + 1)
    sd = model.state_dict_for_saving(clip.get_sd(), _taesd_sd(seed + 2), None)
    comfy.utils.save_torch_file(_half(sd), str(path), metadata={"zerovideo": "tiny random SD1.5 InstructPix2Pix"})


def build_svd_checkpoint(path: Path, seed: int = 0) -> None:
    import_comfy()
    import comfy.clip_vision
    import comfy.utils
    model = svd_model(SVD_CHECKPOINT_UNET, seed)
    config = Path(comfy.clip_vision.__file__).with_name("clip_vision_config_h.json")
    vision = comfy.clip_vision.ClipVisionModel(str(config))
    init_weights(vision.model, seed + 1)
    sd = model.state_dict_for_saving(None, _taesd_sd(seed + 2), vision.get_sd())
    comfy.utils.save_torch_file(_half(sd), str(path), metadata={"zerovideo": "tiny random SVD"})


def build_sd3_diffusion_model(path: Path, seed: int = 0) -> None:
    """A bare SD3 MMDiT file for UNETLoader (ComfyUI detects the family from its keys): the wrong model family
    for every ZeroVideo MODEL node, over HTTP."""
    import_comfy()
    import comfy.utils
    dm = tiny_sd3(seed).model.diffusion_model
    comfy.utils.save_torch_file({k: v.contiguous() for k, v in dm.state_dict().items()}, str(path),
                                metadata={"zerovideo": "tiny random SD3 MMDiT"})


def build_wan_diffusion_model(path: Path, seed: int = 0) -> None:
    """A bare Wan 2.1 T2V file for UNETLoader (detected from its keys): a video DiT, over HTTP."""
    import_comfy()
    import comfy.utils
    dm = tiny_wan(seed).model.diffusion_model
    comfy.utils.save_torch_file({k: v.contiguous() for k, v in dm.state_dict().items()}, str(path),
                                metadata={"zerovideo": "tiny random Wan 2.1 T2V"})


# --- DiT workflows (Flux, SD3.5, Z-Image) on tiny models ----------------------------------------------------
# ComfyUI's loaders fix some sizes that a tiny model cannot have: Flux's detection sets 24 heads of 128 channels,
# and the text encoders' configs are fixed json files (T5-XXL: 4.7 B parameters). These files therefore carry the
# config of their (ComfyUI) classes in their safetensors metadata under TINY_CONFIG_KEY, and the test server's
# host pack (tests/host_nodes/zv_test_nodes) hands it to ComfyUI's own loaders: the classes, loaders, tokenizers
# and samplers that run are ComfyUI's, only the sizes are small. Outside the test server these files do not load.
TINY_CONFIG_KEY = "zerovideo_tiny_config"
TINY_CLIP = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2, "num_hidden_layers": 3,
             "projection_dim": 32}
# clip_g: ComfyUI's SD3 text encoder tells clip_g from clip_l by a 31st layer
TINY_CLIP_G = dict(TINY_CLIP, num_hidden_layers=32)
TINY_T5 = {"d_model": 32, "d_ff": 64, "d_kv": 16, "num_heads": 2, "num_layers": 1}
# SD3's text encoder pads CLIP-L ‖ CLIP-G to 4096 channels and puts T5's tokens after them: its T5 is 4096 wide
TINY_T5_SD3 = dict(TINY_T5, d_model=4096, d_ff=32, d_kv=8)
SD35_TINY_DIT = {"in_channels": 16, "pos_embed_scaling_factor": None, "depth": 2, "patch_size": 2,
                 "pos_embed_max_size": 16, "num_patches": 256, "adm_in_channels": 64, "qk_norm": "rms",
                 "x_block_self_attn_layers": [0],  # SD3.5-medium style (MMDiT-X): image-only attention in block 0
                 "context_embedder_config": {"target": "torch.nn.Linear",
                                             "params": {"in_features": 4096, "out_features": 128}}}


# Z-Image: its text encoder is Qwen3-4B (ComfyUI's llama.Qwen3_4B; head_dim stays its class's 128), 32 wide here,
# and the tiny Z-Image DiT reads 32-wide captions (Z_IMAGE_TINY_DIT's cap_feat_dim)
TINY_QWEN3 = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3, "num_attention_heads": 1,
              "num_key_value_heads": 1}


def _save_with_config(sd: dict, path: Path, config: dict, what: str) -> None:
    import comfy.utils
    comfy.utils.save_torch_file({k: v.contiguous() for k, v in sd.items()}, str(path),
                                metadata={"zerovideo": what, TINY_CONFIG_KEY: json.dumps(config)})


def build_configured_diffusion_model(family: str, config: dict, what: str, path: Path, seed: int = 0) -> None:
    """A tiny DiT for UNETLoader whose unet config rides in the metadata, for families whose sizes ComfyUI's
    detection fixes (Flux: 24 heads of 128; Z-Image: 3840 wide)."""
    dm = tiny_image_dit(family, seed).model.diffusion_model
    _save_with_config(dm.state_dict(), path, {"unet_config": config}, what)


def build_qwen3_text_encoder(path: Path, seed: int = 0) -> None:
    """Tiny Qwen3-4B-shaped text encoder for CLIPLoader (type lumina2): ComfyUI's Z-Image text encoder class."""
    import_comfy()
    import comfy.text_encoders.z_image
    import torch
    options = {"qwen3_4b_model_config": TINY_QWEN3}
    te = comfy.text_encoders.z_image.ZImageTEModel(dtype=torch.float32, model_options=options)
    init_weights(te, seed)
    _save_with_config(_half(te.qwen3_4b.transformer.state_dict()), path, options, "tiny random Qwen3 (Z-Image)")


def build_sd35_diffusion_model(path: Path, seed: int = 0) -> None:
    """Tiny SD3.5-medium-like MMDiT-X for UNETLoader, for SD3's text encoders (4096-wide context): ComfyUI
    detects all of it from the weights."""
    import comfy.utils
    dm = tiny_image_dit("sd3.5", seed).model.diffusion_model
    comfy.utils.save_torch_file({k: v.contiguous() for k, v in dm.state_dict().items()}, str(path),
                                metadata={"zerovideo": "tiny random SD3.5 MMDiT-X"})


def tiny_text_encoder(kind: str, seed: int = 0):
    """ComfyUI's own Flux (CLIP-L + T5) or SD3 (CLIP-L + CLIP-G + T5) text encoder at the tiny sizes above."""
    import_comfy()
    import comfy.sd
    import comfy.text_encoders.flux
    import comfy.text_encoders.sd3_clip
    import comfy.supported_models_base
    import torch
    if kind == "flux":
        target = comfy.supported_models_base.ClipTarget(comfy.text_encoders.flux.FluxTokenizer,
                                                        comfy.text_encoders.flux.flux_clip())
        options = {"clip_l_model_config": TINY_CLIP, "t5xxl_model_config": TINY_T5}
    else:
        target = comfy.supported_models_base.ClipTarget(comfy.text_encoders.sd3_clip.SD3Tokenizer,
                                                        comfy.text_encoders.sd3_clip.sd3_clip())
        options = {"clip_l_model_config": TINY_CLIP, "clip_g_model_config": TINY_CLIP_G,
                   "t5xxl_model_config": TINY_T5_SD3}
    clip = comfy.sd.CLIP(target, model_options=dict(options, dtype=torch.float32))
    init_weights(clip.cond_stage_model, seed)
    return clip, options


def build_text_encoder(kind: str, part: str, path: Path, seed: int = 0) -> None:
    """One text-encoder file (clip_l, clip_g or t5xxl of `kind`) as DualCLIPLoader/TripleCLIPLoader read it."""
    clip, options = tiny_text_encoder(kind, seed)
    sub = getattr(clip.cond_stage_model, part)
    key = f"{part}_model_config"
    _save_with_config(_half(sub.transformer.state_dict()), path, {key: options[key]}, f"tiny random {part} ({kind})")


def build_vae16(path: Path, seed: int = 0) -> None:
    """A TAESD with 16 latent channels (Flux/SD3 latents) for VAELoader."""
    import_comfy()
    import comfy.utils
    comfy.utils.save_torch_file(_half(_taesd_sd(seed, latent_channels=16)), str(path),
                                metadata={"zerovideo": "tiny random 16-channel TAESD"})


CONTROLNET_NAME = "zerovideo_tiny_controlnet_sd15.safetensors"
IP2P_NAME = "zerovideo_tiny_ip2p_sd15.safetensors"
EXVIDEO_NAME = "zerovideo_tiny_exvideo_128f.safetensors"
SD3_NAME = "zerovideo_tiny_sd3_mmdit.safetensors"
WAN_NAME = "zerovideo_tiny_wan21_t2v.safetensors"
FLUX_NAME = "zerovideo_tiny_flux.safetensors"
SD35_NAME = "zerovideo_tiny_sd35_mmdit.safetensors"
ZIMAGE_NAME = "zerovideo_tiny_z_image.safetensors"
QWEN3_NAME = "zerovideo_tiny_qwen3_4b.safetensors"
VAE16_NAME = "zerovideo_tiny_vae16.safetensors"
# text encoders: (kind, part) -> file
TE_NAMES = {("flux", "clip_l"): "zerovideo_tiny_flux_clip_l.safetensors",
            ("flux", "t5xxl"): "zerovideo_tiny_flux_t5xxl.safetensors",
            ("sd3", "clip_l"): "zerovideo_tiny_sd3_clip_l.safetensors",
            ("sd3", "clip_g"): "zerovideo_tiny_sd3_clip_g.safetensors",
            ("sd3", "t5xxl"): "zerovideo_tiny_sd3_t5xxl.safetensors"}
BUILDERS = {SD15_NAME: build_sd15_checkpoint, SVD_NAME: build_svd_checkpoint,
            CONTROLNET_NAME: build_controlnet_checkpoint, IP2P_NAME: build_ip2p_checkpoint,
            EXVIDEO_NAME: build_exvideo_extension, SD3_NAME: build_sd3_diffusion_model,
            WAN_NAME: build_wan_diffusion_model,
            FLUX_NAME: functools.partial(build_configured_diffusion_model, "flux", FLUX_TINY_DIT, "tiny random Flux"),
            SD35_NAME: build_sd35_diffusion_model, VAE16_NAME: build_vae16,
            ZIMAGE_NAME: functools.partial(build_configured_diffusion_model, "z_image", Z_IMAGE_TINY_DIT,
                                           "tiny random Z-Image"),
            QWEN3_NAME: build_qwen3_text_encoder,
            **{name: functools.partial(build_text_encoder, kind, part) for (kind, part), name in TE_NAMES.items()}}
FOLDERS = {SD15_NAME: "checkpoints", SVD_NAME: "checkpoints", CONTROLNET_NAME: "controlnet", IP2P_NAME: "checkpoints",
           EXVIDEO_NAME: "exvideo", SD3_NAME: "diffusion_models", WAN_NAME: "diffusion_models",
           FLUX_NAME: "diffusion_models", SD35_NAME: "diffusion_models", VAE16_NAME: "vae",
           ZIMAGE_NAME: "diffusion_models", QWEN3_NAME: "text_encoders",
           **{name: "text_encoders" for name in TE_NAMES.values()}}


def recipe_hash(name: str) -> str:
    import torch
    src = inspect.getsource(sys.modules[__name__])
    return hashlib.sha256(json.dumps([name, src, torch.__version__]).encode()).hexdigest()[:16]


def ensure_checkpoints(root: Path, names=tuple(BUILDERS)) -> dict[str, Path]:
    """Build each named model under `root/<ComfyUI folder>/` unless a file with the same recipe hash is there."""
    out = {}
    for name in names:
        folder = root / FOLDERS[name]
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        stamp = path.with_name(path.name + ".recipe")
        want = recipe_hash(name)
        if not (path.is_file() and stamp.is_file() and stamp.read_text().strip() == want):
            print(f"[zerovideo] building tiny checkpoint {name} (random weights) ...", flush=True)
            tmp = path.with_name(path.name + ".partial")
            BUILDERS[name](tmp)
            tmp.replace(path)
            stamp.write_text(want + "\n")
        out[name] = path
    return out


def default_folder() -> Path:
    """The models root (ComfyUI layout: checkpoints/, controlnet/, ...) of the tiny test models."""
    import os
    from scripts import host
    return Path(os.environ.get("ZEROVIDEO_CACHE") or host.cache_dir()) / "models"


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else default_folder()
    for n, p in ensure_checkpoints(target).items():
        print(n, p)
