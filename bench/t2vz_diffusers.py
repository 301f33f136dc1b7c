"""Text2Video-Zero: our one-node procedure (real ComfyUI code) against diffusers' TextToVideoZeroPipeline.

Both sides run the paper's procedure (DDIM, 50 steps, η = 0, cfg 7.5, t0 = 44, t1 = 47, motion 12/12 px,
cross-frame attention on frame 0) with the SAME random SD1.5-layout U-Net weights: the ComfyUI model is
built by scripts/tiny_models.py and its weights are copied into a diffusers `UNet2DConditionModel` through
ComfyUI's own key map (`comfy.utils.unet_to_diffusers`). The prompt embeddings come from one tiny random
CLIP text encoder and are given to both. Nothing is downloaded: every model is built here.

Reported (no threshold; this is a report):
- one plain U-Net forward, ComfyUI vs diffusers (checks the weight transfer);
- the time ratio ours / diffusers for the whole procedure (median of `repeats` interleaved runs);
- max |Δ| of the final latents per frame and overall, in diffusers' latent units, after aligning the
  two setups as far as they can be aligned; every remaining, explained mismatch is printed with it.

Needs `diffusers` in the venv (not a requirement of the pack): the benchmark says how to install it and
returns when it is missing.
"""
from __future__ import annotations

import importlib.util
import inspect
import math
import os
import statistics
import time
import warnings
from pathlib import Path

import torch

from bench import models
from bench.common import compare, save_table

NAME = "t2vz_vs_diffusers"
PROMPT = "a panda is playing guitar on times square"
STEPS, CFG, T0, T1, MOTION = 50, 7.5, 44, 47, 12.0
SEED = 0
# nodes/text2video_zero.py draws its re-noising noise with torch.Generator().manual_seed(seed + 0x72F).
# diffusers draws its own from the pipeline's `generator`; with explicit `latents` and η = 0 that draw is
# the generator's first use, so seeding it with the same number gives both the same tensor (checked below).
RENOISE_SEED_OFFSET = 0x72F
# SD1.5's scheduler config (the model card's scheduler_config.json), as diffusers runs SD1.5.
SD15_DDIM = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                 clip_sample=False, set_alpha_to_one=False, steps_offset=1, timestep_spacing="leading",
                 prediction_type="epsilon")
INSTALL_HINT = ("diffusers is not installed, so this benchmark cannot run. Install it into the benchmark's "
                "interpreter, e.g.\n    .cache/venv/bin/python -m pip install diffusers\n(it is only needed here; "
                "no model is downloaded, all weights are random and built locally).")


# --- models -------------------------------------------------------------------------------------

def comfy_unet_config(full: bool) -> dict:
    from scripts import tiny_models
    return dict(tiny_models.SD15_FULL_UNET if full else tiny_models.SD15_TINY_UNET)


def diffusers_unet_kwargs(cfg: dict, heads: int) -> dict:
    """`UNet2DConditionModel` arguments for the ComfyUI SD1.x-style U-Net config `cfg` (after the
    SD15 class added num_heads 8): same levels, blocks, transformer depths and heads."""
    mult, nrb = cfg["channel_mult"], cfg["num_res_blocks"]
    depth_in, depth_out = cfg["transformer_depth"], cfg["transformer_depth_output"]
    levels = len(mult)
    down_depth = []
    for level in range(levels):
        d = set(depth_in[sum(nrb[:level]):sum(nrb[:level + 1])])
        if len(d) != 1:
            raise ValueError(f"level {level} mixes transformer depths {d}: no diffusers block for that")
        down_depth.append(d.pop())
    # Output blocks: deepest level first, ComfyUI takes their depths from the end of the list.
    rev = list(reversed(depth_out))
    up_depth, start = [], 0
    for level in reversed(range(levels)):
        d = set(rev[start:start + nrb[level] + 1])
        start += nrb[level] + 1
        if len(d) != 1:
            raise ValueError(f"output level {level} mixes transformer depths {d}")
        up_depth.append(d.pop())
    return dict(
        sample_size=cfg["image_size"], in_channels=cfg["in_channels"], out_channels=cfg["out_channels"],
        block_out_channels=tuple(cfg["model_channels"] * m for m in mult), layers_per_block=tuple(nrb),
        down_block_types=tuple("CrossAttnDownBlock2D" if d else "DownBlock2D" for d in down_depth),
        up_block_types=tuple("CrossAttnUpBlock2D" if d else "UpBlock2D" for d in up_depth),
        # (levels without attention ignore their entry; diffusers wants a positive number there)
        transformer_layers_per_block=tuple(max(d, 1) for d in down_depth),
        reverse_transformer_layers_per_block=tuple(max(d, 1) for d in up_depth),
        mid_block_type="UNetMidBlock2DCrossAttn", cross_attention_dim=cfg["context_dim"],
        attention_head_dim=heads,  # SD1.x convention: this number is the head COUNT
        use_linear_projection=cfg["use_linear_in_transformer"], norm_num_groups=32, norm_eps=1e-5,
        flip_sin_to_cos=True, freq_shift=0, downsample_padding=1, act_fn="silu")


def diffusers_unet_from_comfy(mp):
    """A diffusers U-Net holding the ComfyUI model's weights (copied through ComfyUI's key map)."""
    import comfy.utils
    from diffusers import UNet2DConditionModel
    dm = mp.model.diffusion_model
    cfg = mp.model.model_config.unet_config  # the config the U-Net was built from (num_heads included)
    unet = UNet2DConditionModel(**diffusers_unet_kwargs(cfg, cfg["num_heads"]))
    comfy_sd = dm.state_dict()
    want = unet.state_dict()
    # unet_to_diffusers also lists SDXL/SD2 embedding keys; keep those this architecture has.
    key_map = {d: c for d, c in comfy.utils.unet_to_diffusers(cfg).items() if d in want}
    missing = sorted(set(want) - set(key_map))
    unused = sorted(set(comfy_sd) - set(key_map.values()))
    if missing or unused:
        raise RuntimeError(f"weight transfer incomplete: diffusers keys without a source {missing[:5]}, "
                           f"ComfyUI keys not used {unused[:5]}")
    sd = {}
    for d, c in key_map.items():
        w = comfy_sd[c]
        if w.shape != want[d].shape:
            if w.numel() != want[d].numel():
                raise RuntimeError(f"{c} {tuple(w.shape)} does not fit {d} {tuple(want[d].shape)}")
            w = w.reshape(want[d].shape)  # 1x1 conv vs linear projections
        sd[d] = w
    unet.load_state_dict(sd, strict=True)
    return unet.to(dm.dtype).eval()


def text_encoder(context_dim: int, seed: int, dtype):
    """The SD1.x tokenizer from ComfyUI's tree (vocab/merges of clip-vit-large-patch14) and a tiny random
    CLIP text encoder whose output width is the U-Net's context_dim."""
    import comfy.sd1_clip
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
    tok_dir = Path(comfy.sd1_clip.__file__).resolve().parent / "sd1_tokenizer"
    # A local folder, loaded the way ComfyUI's own SD1 tokenizer loads it (nothing is fetched).
    tokenizer = CLIPTokenizer.from_pretrained(str(tok_dir), model_max_length=77)
    torch.manual_seed(seed)
    config = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=context_dim, intermediate_size=2 * context_dim,
                            num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=77,
                            projection_dim=context_dim)
    return tokenizer, CLIPTextModel(config).to(dtype).eval()


def tiny_vae(dtype):
    """A tiny random AutoencoderKL with the SD latent layout (4 channels, 8x downsampling). The pipeline
    needs one for its latent size; with output_type="latent" it never decodes."""
    from diffusers import AutoencoderKL
    torch.manual_seed(0)
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8, 8, 8),
                         down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                         layers_per_block=1, norm_num_groups=8).to(dtype).eval()


def exact_forward_pipeline_class():
    """The diffusers pipeline with one change, for the diagnosis only: its forward (re-noising) step uses
    ᾱ(t1)/ᾱ(t0) of the levels the latents are actually at. The stock `forward_loop` multiplies
    alphas[t0:t1], i.e. ᾱ(t1−1)/ᾱ(t0−1): one timestep off on both ends."""
    from diffusers import TextToVideoZeroPipeline
    from diffusers.utils.torch_utils import randn_tensor

    class ExactForward(TextToVideoZeroPipeline):
        def forward_loop(self, x_t0, t0, t1, generator):
            eps = randn_tensor(x_t0.size(), generator=generator, dtype=x_t0.dtype, device=x_t0.device)
            ac = self.scheduler.alphas_cumprod
            a = ac[t1] / ac[t0]
            return a.sqrt() * x_t0 + (1 - a).sqrt() * eps

    return ExactForward


# --- the two procedures -------------------------------------------------------------------------

class Setup:
    """Everything both procedures share, built once."""

    def __init__(self, device: str, full: bool):
        from scripts.comfy_env import import_comfy, import_pack
        from scripts import tiny_models
        import_comfy()
        import_pack()
        import comfy.samplers
        from diffusers import DDIMScheduler, TextToVideoZeroPipeline
        from diffusers.utils import logging as dlogging
        dlogging.set_verbosity_error()  # the pipeline's deprecation and safety-checker notices

        self.device, self.dtype = device, models._dtype(device)
        self.frames, h, w = models.SD15_SHAPES["full" if full else "tiny"]
        self.size = (h, w)
        self.cfg = comfy_unet_config(full)
        self.mp = tiny_models.patcher(tiny_models.sd15_model(self.cfg, seed=SEED, dtype=self.dtype))
        self.scale = float(self.mp.model.latent_format.scale_factor)
        self.ms = self.mp.get_model_object("model_sampling")
        unet = diffusers_unet_from_comfy(self.mp).to(device)
        tokenizer, encoder = text_encoder(self.cfg["context_dim"], SEED + 1, self.dtype)
        parts = dict(vae=tiny_vae(self.dtype), text_encoder=encoder, tokenizer=tokenizer, unet=unet,
                     scheduler=DDIMScheduler(**SD15_DDIM), safety_checker=None, feature_extractor=None,
                     requires_safety_checker=False)
        self.pipe = TextToVideoZeroPipeline(**parts).to(device)
        self.pipe.set_progress_bar_config(disable=True)
        self.pipe_exact = exact_forward_pipeline_class()(**parts).to(device)
        self.pipe_exact.set_progress_bar_config(disable=True)

        with torch.no_grad():
            pos, neg = self.pipe.encode_prompt(PROMPT, device, 1, True, None)
        self.positive = [[pos.float().cpu(), {}]]
        self.negative = [[neg.float().cpu(), {}]]

        # ComfyUI's ddim_uniform 50 visits t = 981, 961, …, 1 (every 20th of 1000, from 1), exactly the
        # timesteps of diffusers' DDIM with "leading" spacing and steps_offset 1; it then steps to σ = 0,
        # where diffusers' last step ends at ᾱ_0 (set_alpha_to_one=False), i.e. σ(t=0) ≈ 0.029.
        self.sigmas_stock = comfy.samplers.calculate_sigmas(self.ms, "ddim_uniform", STEPS).float()
        self.sigmas = self.sigmas_stock.clone()
        self.sigmas[-1] = float(self.ms.sigmas[0])  # end where diffusers ends (the matched run)

        # Initial noise: diffusers' x_T is VP-space N(0, I) at t = 981 (init_noise_sigma = 1). ComfyUI
        # multiplies its unit noise by σ_first (not σ_max: 981 < 999) into VE space, where x_VE = x_VP/√ᾱ =
        # x_VP·√(1+σ²). So its unit noise must be x_T·√(1+σ²)/σ. Only frame 0 is used by our sampler
        # (it warps frame 0 into the others); the rest is filled with the same values.
        self.x_T = torch.randn(1, 4, h // 8, w // 8, generator=torch.Generator().manual_seed(SEED))
        s0 = float(self.sigmas[0])
        self.noise = (self.x_T * math.sqrt(1 + s0 ** 2) / s0).expand(self.frames, -1, -1, -1).contiguous()

        from zerovideo.nodes.text2video_zero import CrossFrameAttentionPatch, Text2VideoZeroSampler
        self.model = CrossFrameAttentionPatch.execute(model=self.mp, anchor="first", start_percent=0.0,
                                                      end_percent=1.0).args[0]
        self.sampler = Text2VideoZeroSampler.execute(
            sampler=comfy.samplers.sampler_object("ddim"), motion_x=MOTION, motion_y=MOTION, zoom=1.0,
            rotation=0.0, t0=T0, t1=T1, interpolation="nearest").args[0]

    def ours(self, sigmas=None) -> torch.Tensor:
        """Our procedure; returns ComfyUI's output latents (unscaled, VE at the last σ)."""
        import comfy.sample
        h, w = self.size
        latent = torch.zeros(self.frames, 4, h // 8, w // 8)
        return comfy.sample.sample_custom(self.model, self.noise, CFG, self.sampler,
                                          self.sigmas if sigmas is None else sigmas, self.positive,
                                          self.negative, latent, seed=SEED, disable_pbar=True)

    def theirs(self, pipe=None) -> torch.Tensor:
        """diffusers' procedure; returns its final latents (scaled, VP at ᾱ_0)."""
        pipe = self.pipe if pipe is None else pipe
        gen = torch.Generator("cpu").manual_seed(SEED + RENOISE_SEED_OFFSET)
        h, w = self.size
        with warnings.catch_warnings():  # the pipeline's own meshgrid/grid_sample default notices
            warnings.simplefilter("ignore", UserWarning)
            out = pipe(PROMPT, video_length=self.frames, height=h, width=w, num_inference_steps=STEPS,
                       guidance_scale=CFG, eta=0.0, generator=gen, latents=self.x_T.to(self.dtype),
                       motion_field_strength_x=MOTION, motion_field_strength_y=MOTION, t0=T0, t1=T1,
                       output_type="latent")
        return out.images

    def to_diffusers_units(self, ours: torch.Tensor, sigma_end: float) -> torch.Tensor:
        """ComfyUI output → diffusers latents: × scale factor (process_latent_out undone), VE → VP."""
        return ours.float() * self.scale / math.sqrt(1 + sigma_end ** 2)


# --- checks -------------------------------------------------------------------------------------

def unet_forward_check(s: Setup) -> tuple[float, float]:
    """(max |Δ|, max |output|) of one plain U-Net forward (ε prediction), ComfyUI module vs diffusers module."""
    import comfy.model_management
    comfy.model_management.load_models_gpu([s.mp])  # ComfyUI puts the model on its device
    dm = s.mp.model.diffusion_model
    g = torch.Generator().manual_seed(7)
    h, w = s.size
    x = torch.randn(2, 4, h // 8, w // 8, generator=g).to(s.device, s.dtype)
    ctx = torch.cat([s.positive[0][0], s.negative[0][0]]).to(s.device, s.dtype)
    t = torch.tensor([981.0, 441.0], device=s.device)
    with torch.no_grad():
        a = dm(x, t, ctx).float()
        b = s.pipe.unet(x, t, encoder_hidden_states=ctx).sample.float()
    return float((a - b).abs().max()), float(b.abs().max())


def schedule_check(s: Setup) -> dict:
    """Do the two schedules visit the same timesteps and noise levels?"""
    from diffusers import DDIMScheduler
    sch = DDIMScheduler(**SD15_DDIM)
    sch.set_timesteps(STEPS)
    t_diff = sch.timesteps.tolist()
    t_ours = [int(s.ms.timestep(sig)) for sig in s.sigmas_stock[:-1]]
    ac = sch.alphas_cumprod.double()
    sig_diff = ((1 - ac) / ac).sqrt()
    rel = max(abs(float(s.ms.sigmas[t]) / float(sig_diff[t]) - 1) for t in t_diff + [0])
    return {"timesteps_equal": t_diff == t_ours, "first_last_timestep": [t_diff[0], t_diff[-1]],
            "sigma_rel_diff_max": rel}


def ours_with_renoise_check(s: Setup) -> tuple[torch.Tensor, bool]:
    """Run ours once with a spy on warp.motion_dynamics; returns the output and whether its re-noising
    noise is the tensor diffusers' generator yields first (see RENOISE_SEED_OFFSET)."""
    from zerovideo.kernels import warp
    seen = {}
    original = warp.motion_dynamics

    def spy(*args, **kwargs):
        seen["noise"] = inspect.signature(original).bind(*args, **kwargs).arguments["noise"]
        return original(*args, **kwargs)

    warp.motion_dynamics = spy
    try:
        out = s.ours()
    finally:
        warp.motion_dynamics = original
    h, w = s.size
    want = torch.randn((s.frames - 1, 4, h // 8, w // 8),
                       generator=torch.Generator("cpu").manual_seed(SEED + RENOISE_SEED_OFFSET))
    return out, bool(torch.equal(seen["noise"].float().cpu(), want))


def frame_diffs(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    """max |a − b| of each frame."""
    return [float(d) for d in (a.float().cpu() - b.float().cpu()).abs().flatten(1).max(1).values]


def unet_step_times(s: Setup, n: int = 5) -> dict:
    """Median time of one U-Net forward at the video batch (cond + uncond of every frame), each library's
    own module, for reading the whole-procedure ratio. Same weights, same inputs."""
    import comfy.model_management
    from bench.common import _sync
    comfy.model_management.load_models_gpu([s.mp])
    h, w = s.size
    b = 2 * s.frames
    x = torch.randn(b, 4, h // 8, w // 8).to(s.device, s.dtype)
    t = torch.full((b,), 500.0, device=s.device)
    ctx = torch.randn(b, 77, s.cfg["context_dim"]).to(s.device, s.dtype)
    dm = s.mp.model.diffusion_model
    calls = {"ComfyUI": lambda: dm(x, t, ctx), "diffusers": lambda: s.pipe.unet(x, t, encoder_hidden_states=ctx)}
    times = {name: [] for name in calls}
    with torch.no_grad():
        for fn in calls.values():
            fn()  # warm-up
        for _ in range(n):  # interleaved, like compare()
            for name, fn in calls.items():
                _sync(s.device)
                t0 = time.perf_counter()
                fn()
                _sync(s.device)
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(v) for name, v in times.items()}


# --- the benchmark ------------------------------------------------------------------------------

def run(device: str = "cpu", full: bool = False, repeats: int = 9):
    if importlib.util.find_spec("diffusers") is None:
        print(f"\n== {NAME} ==\n{INSTALL_HINT}")
        return None
    import diffusers
    torch.manual_seed(SEED)
    s = Setup(device, full)
    h, w = s.size
    print(f"\n== {NAME} ({device}, {'full' if full else 'tiny'} SD1.5 U-Net, random weights; diffusers "
          f"{diffusers.__version__}): {s.frames} frames {w}x{h} px, DDIM {STEPS} steps eta 0, cfg {CFG}, "
          f"t0 {T0} t1 {T1}, motion {MOTION:g}/{MOTION:g} px ==")

    unet_err, unet_mag = unet_forward_check(s)
    print(f"[check] one plain U-Net forward, ComfyUI vs diffusers (same weights): max|Δ| {unet_err:.2e} "
          f"(outputs up to {unet_mag:.2f})")
    sched = schedule_check(s)
    print(f"[check] schedules: same timesteps: {sched['timesteps_equal']} "
          f"(t = {sched['first_last_timestep'][0]} … {sched['first_last_timestep'][1]}); noise levels agree to "
          f"{sched['sigma_rel_diff_max']:.1e} relative (ᾱ built in float64 by ComfyUI, float32 by diffusers)")

    with torch.no_grad():
        ours_raw, aligned = ours_with_renoise_check(s)
        ours_stock_raw = s.ours(s.sigmas_stock)
        theirs = s.theirs().float().cpu()
        theirs_exact = s.theirs(s.pipe_exact).float().cpu()
    ours = s.to_diffusers_units(ours_raw, float(s.sigmas[-1]))
    ours_stock = s.to_diffusers_units(ours_stock_raw, 0.0)
    print(f"[check] our re-noising noise is the first draw of diffusers' generator (seed {SEED} + "
          f"{RENOISE_SEED_OFFSET:#x}): {aligned}")

    diffs = {
        "matched": frame_diffs(ours, theirs),
        "vs_diffusers_exact_forward_loop": frame_diffs(ours, theirs_exact),
        "diffusers_exact_vs_stock_forward_loop": frame_diffs(theirs_exact, theirs),
        "ours_stock_ddim_uniform_vs_diffusers": frame_diffs(ours_stock, theirs),
    }
    labels = {
        "matched": "ours vs diffusers (matched setups)",
        "vs_diffusers_exact_forward_loop": "ours vs diffusers with exact forward_loop",
        "diffusers_exact_vs_stock_forward_loop": "diffusers exact vs stock forward_loop",
        "ours_stock_ddim_uniform_vs_diffusers": "ours, stock ddim_uniform (to σ=0), vs diffusers",
    }
    latent_max = float(theirs.abs().max())
    last = s.frames - 1
    print(f"\nfinal latents, max |Δ| (diffusers latent units; its latents reach |x| = {latent_max:.2f}):")
    print(f"  {'':<48} {'frame 0':>9} {f'frames 1-{last}':>11} {'overall':>9}")
    for key, d in diffs.items():
        print(f"  {labels[key]:<48} {d[0]:>9.2e} {max(d[1:]):>11.2e} {max(d):>9.2e}")
    print("  matched, per frame: " + " ".join(f"{d:.2e}" for d in diffs["matched"]))

    ts = [int(t) for t in s.pipe.scheduler.timesteps]
    lvl_t1, lvl_t0 = ts[-T1 - 1], ts[-T0 - 1]
    sigma_end = float(s.sigmas[-1])
    exact = diffs["vs_diffusers_exact_forward_loop"]
    print(f"""
Matched on purpose: U-Net weights; prompt embeddings (prompt and empty negative, from one text encoder,
  given to ComfyUI as conditioning); timesteps {ts[0]}…{ts[-1]}; frame 0's start x_T (diffusers: VP N(0,I) at
  t={ts[0]}; ComfyUI multiplies its unit noise by σ_first into VE space, so it gets x_T·√(1+σ²)/σ); the warp
  (kernels/warp.py reproduces diffusers' grid); the re-noising tensor (seeded generator, checked above).
  DDIM with η=0 is the same update as ComfyUI's "ddim" (Euler in σ space): nothing to change there.
Remaining, explained differences:
  1. The last step. ComfyUI's ddim_uniform ends at σ=0 (the clean x0 prediction); diffusers' SD1.5 DDIM
     ends at ᾱ_0 (set_alpha_to_one=False), which leaves σ(t=0)·ε = {sigma_end:.4f}·ε of noise. In the matched
     run our sampler gets the same σ list with its last σ set to σ(t=0); the "stock" row shows what this
     one difference is worth.
  2. Re-noising (frames 1-{last} only). diffusers' forward_loop uses prod(alphas[t0:t1]) with t0 = {lvl_t0},
     t1 = {lvl_t1}, i.e. ᾱ({lvl_t1 - 1})/ᾱ({lvl_t0 - 1}), one timestep below the levels its latents are at;
     ours adds noise from σ({lvl_t0}) to σ({lvl_t1}). The "exact forward_loop" rows run diffusers with only
     that formula corrected: frames 1-{last} then differ by {max(exact[1:]):.1e} (frame 0: {exact[0]:.1e}).
  3. Float rounding: cfg applied to the x0 prediction (ComfyUI) vs to ε (diffusers), the same formula;
     ᾱ in float64 vs float32; other attention/conv call shapes. Frame 0 sees only this.""")

    # CPU time of this process per call, next to compare's wall clock: on a shared machine other processes
    # stretch the wall time of whichever call they overlap, much less its CPU time.
    cpu_s = {"diffusers": [], "ours": []}

    def cpu_timed(key, fn):
        def call():
            t = time.process_time()
            fn()
            cpu_s[key].append(time.process_time() - t)
        return call

    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    results = compare(NAME, ("diffusers TextToVideoZeroPipeline", cpu_timed("diffusers", s.theirs)),
                      [("ZeroVideo Text2VideoZeroSampler (ComfyUI)", cpu_timed("ours", s.ours))], device=device,
                      warmup=0,  # both paths already ran twice above
                      repeats=repeats, write=False)
    ratio = results[1].time_ratio
    cpu_med = {k: statistics.median(v) for k, v in cpu_s.items()}
    cpu_ratio = cpu_med["ours"] / cpu_med["diffusers"]
    step = unet_step_times(s)
    print(f"time ratio ours/diffusers: {ratio:.3f} wall clock (median of {repeats} interleaved runs), "
          f"{cpu_ratio:.3f} in process CPU time. Each call is the whole procedure with its per-call overhead "
          f"(ComfyUI: model load check, cond preparation; diffusers: prompt encoding with the tiny text encoder, "
          f"512x512 motion fields).")
    print(f"one U-Net forward at batch {2 * s.frames}: ComfyUI {step['ComfyUI'] * 1000:.1f} ms, diffusers "
          f"{step['diffusers'] * 1000:.1f} ms (ratio {step['ComfyUI'] / step['diffusers']:.3f}). Peak-memory "
          f"figures on CPU are RSS growth and mostly noise at this size.")
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cores = os.cpu_count() or 1
    # This process alone accounts for about torch.get_num_threads() of the load average.
    if max(load_before, load_after) - torch.get_num_threads() > 0.5 * cores:
        print(f"NOTE: other processes were busy (1-min load average {load_before:.1f} before and {load_after:.1f} "
              f"after the timed runs, on {cores} CPUs): the wall-clock ratio is unreliable; rerun on an idle "
              f"machine.")

    rows = {
        "timing": {m.label: {"median_s": m.median_s, "times_s": m.times_s, "peak_mem_bytes": m.peak_mem_bytes}
                   for m in results},
        "time_ratio_ours_over_diffusers": ratio,
        "cpu_time_s": cpu_med,
        "cpu_time_ratio_ours_over_diffusers": cpu_ratio,
        "load_average_before_after_timing": [load_before, load_after],
        "unet_forward_s": step,
        "unet_forward_max_abs_diff": unet_err,
        "schedule": sched,
        "renoise_noise_aligned": aligned,
        "final_latents_max_abs_diff": {k: {"per_frame": d, "frame0": d[0], "frames_1_on": max(d[1:]),
                                           "overall": max(d)} for k, d in diffs.items()},
        "diffusers_latent_abs_max": latent_max,
    }
    notes = {"frames": s.frames, "size": [h, w], "steps": STEPS, "cfg": CFG, "eta": 0.0, "t0": T0, "t1": T1,
             "motion": [MOTION, MOTION], "prompt": PROMPT, "seed": SEED, "repeats": repeats,
             "unet": f"{'full' if full else 'tiny'} SD1.5 layout, random weights", "diffusers": diffusers.__version__,
             "diffusers_scheduler": SD15_DDIM, "ours_sigmas": "ddim_uniform 50 with the last sigma set to sigma(t=0)",
             "units": f"diffusers latents (scaled by {s.scale:g}, VP)"}
    save_table(NAME + ("_full" if full else ""), device, rows, notes)
    return rows
