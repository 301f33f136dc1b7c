"""ZS² (Chen et al., arXiv 2407.21475): dependency noise model and temporal momentum attention."""
from __future__ import annotations

import comfy.patcher_extension
import torch
from comfy_api.latest import io

from ..kernels import noise as dnm
from ..kernels.attention import momentum_kv
from . import _patching
from ._schema import CATEGORY, advanced, attention_videos_input, check_choice, check_percent_range, schema

PAPER = "ZS² — Fine-grained Zero-shot Video Sampling (Chen, Hu, Wei, Wu; arXiv 2407.21475)"
ZS2_CATEGORY = f"{CATEGORY}/ZS2"
ALIASES = ["ZS2", "ZS²", "zero-shot video sampling", "fine-grained zero-shot video sampling"]
WRAPPER_KEY = "zerovideo_dependency_noise"


def lambda_input():
    return io.Float.Input("noise_lambda", default=0.01, min=0.0, max=1.65, step=0.001,
                          tooltip="λ: how different neighbouring frames' noise is (the paper's divergence target). "
                                  "0 = identical noise (still image); 0.01 (paper) ≈ correlation 0.994; 0.1 ≈ 0.94; "
                                  "0.25 ≈ 0.85; ≥ √e ≈ 1.649 (up to the maximum 1.65) = independent frames. Useful "
                                  "range 0-0.25.")


def mode_input():
    return advanced(io.Combo.Input)("mode", options=list(dnm.MODES), default="closed_form",
                          tooltip="closed_form: α = (1 − λ/√e)², exact and instant. search: the paper's random + "
                                  "line search per frame (slower, same statistics).")


def videos_input():
    return advanced(io.Int.Input)("videos", default=1, min=1, max=256,
                        tooltip="Number of videos in the latent batch (the batch is split into this many equal "
                                "runs of frames; each gets its own chain).")


NOISE = "Dependency Noise"


def frames_per_video(samples: torch.Tensor, videos: int) -> int:
    """Frames per video of a batch of image latents, one per frame: `[frames, C, h, w]`, or `[frames, C, 1, h, w]`
    for image models whose latent format has a time axis (Qwen-Image); the noise chain runs along the batch."""
    if not (samples.ndim == 4 or (samples.ndim == 5 and samples.shape[2] == 1)):
        raise ValueError(f"{NOISE}: the latent is {list(samples.shape)}; it needs a batch of image latents, one "
                         f"per frame ([frames, C, h, w], or [frames, C, 1, h, w]): a video model's latent, with its "
                         f"frames along its own time axis, is not one")
    if samples.shape[0] % videos:
        raise ValueError(f"{NOISE}: the latent has {samples.shape[0]} frames, which do not split into "
                         f"videos={videos} (each video is one run of frames)")
    frames = samples.shape[0] // videos
    if frames < 2:
        raise ValueError(f"{NOISE}: needs at least 2 frames per video; the latent has {samples.shape[0]} "
                         f"frame(s) for {videos} video(s). Set the latent batch size to the frame count.")
    return frames


def correlated(iid: torch.Tensor, lam: float, mode: str, videos: int, seed: int) -> torch.Tensor:
    """ComfyUI's seeded i.i.d. noise (batch_index respected) → dependency noise."""
    frames_per_video(iid, videos)
    g = torch.Generator().manual_seed(seed)
    progress = None
    if mode == "search":  # a loop over frames: show it and let the user stop it
        import comfy.utils
        bar = comfy.utils.ProgressBar(iid.shape[0] - videos)
        progress = lambda done, total: bar.update_absolute(done, total)  # noqa: E731  (also checks interrupts)
    out, _ = dnm.dependency_noise(iid.shape, lam, g, mode, videos, innovations=iid.float(), progress=progress)
    return out.to(iid.dtype)


class DependencyNoiseSource:
    """A NOISE object for SamplerCustomAdvanced (protocol: `.seed`, `generate_noise(latent)`)."""

    def __init__(self, seed: int, lam: float, mode: str, videos: int):
        self.seed = seed
        self.lam = lam
        self.mode = mode
        self.videos = videos

    def generate_noise(self, input_latent: dict) -> torch.Tensor:
        import comfy.sample
        samples = input_latent["samples"]
        iid = comfy.sample.prepare_noise(samples, self.seed, input_latent.get("batch_index"))
        return correlated(iid, self.lam, self.mode, self.videos, self.seed)


class DependencyNoise(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return schema(
            "DependencyNoise",
            display_name="Dependency Noise (ZS²)",
            category=ZS2_CATEGORY,
            description=(
                "Initial noise whose frames depend on each other (an AR(1) chain, every frame still unit "
                "Gaussian), so a batch of frames starts from related noise and moves smoothly instead of "
                "flickering. Feed the NOISE output to SamplerCustomAdvanced; for a stock KSampler use "
                "'Dependency Noise (model patch)'. Any model with a latent batch of frames (SD1.x/SDXL, "
                f"DiTs). From {PAPER}. Cost: negligible (< 1% of one step)."),
            search_aliases=ALIASES + ["dependency noise model", "DNM", "correlated noise", "video noise"],
            is_output_node=True,
            inputs=[
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Seed; the same seed gives bit-identical noise."),
                lambda_input(),
                mode_input(),
                videos_input(),
                io.Latent.Input("latent", optional=True,
                                tooltip="Optional: the latent you will sample, to report the achieved neighbour "
                                        "correlation now (the noise itself is made for whatever latent the sampler "
                                        "gets)."),
            ],
            outputs=[
                io.Noise.Output(tooltip="Noise for SamplerCustomAdvanced."),
                io.Float.Output(display_name="neighbour_correlation",
                                tooltip="Correlation between consecutive frames: measured on the given latent's "
                                        "noise, or the expected sqrt(α) without one."),
            ],
        )

    @classmethod
    def validate_inputs(cls, mode):
        return check_choice("mode", mode, dnm.MODES)

    @classmethod
    def execute(cls, seed, noise_lambda, mode, videos, latent=None) -> io.NodeOutput:
        source = DependencyNoiseSource(seed, noise_lambda, mode, videos)
        if latent is None:
            corr = dnm.alpha_closed_form(noise_lambda) ** 0.5
            text = f"expected neighbour correlation {corr:.4f} (λ = {noise_lambda}, α = {corr ** 2:.4f})"
        else:
            noise = source.generate_noise(latent)
            corr = dnm.neighbour_correlation(noise, videos)
            text = (f"neighbour correlation {corr:.4f} over {noise.shape[0]} frames "
                    f"(λ = {noise_lambda}, expected {dnm.alpha_closed_form(noise_lambda) ** 0.5:.4f})")
        return io.NodeOutput(source, corr, ui={"text": [text]})


class DependencyNoiseSampling:
    """SAMPLER_SAMPLE wrapper: rewrites the sampler's unit-variance noise (and optionally its per-step noise)."""

    def __init__(self, lam: float, mode: str, videos: int, per_step: bool):
        self.lam, self.mode, self.videos, self.per_step = lam, mode, videos, per_step

    def __call__(self, executor, *args, **kwargs):
        noise = _patching.argument(executor, args, kwargs, "noise")
        extra_args = _patching.argument(executor, args, kwargs, "extra_args")
        seed = int(extra_args.get("seed", 0) or 0)
        if noise.any():  # all-zero noise means add_noise is off: leave it alone
            new = correlated(noise.cpu(), self.lam, self.mode, self.videos, seed).to(noise)
            args, kwargs = _patching.with_argument(executor, args, kwargs, "noise", new)
        if not self.per_step:
            return executor(*args, **kwargs)
        with _patching.noise_sampler_override(executor.class_obj, self.noise_sampler(noise.shape, seed)):
            return executor(*args, **kwargs)

    def noise_sampler(self, shape, seed: int):
        alpha = dnm.alpha_closed_form(self.lam)
        g = torch.Generator().manual_seed(seed + 1)

        def sample(sigma, sigma_next):
            iid = torch.randn(shape, generator=g)
            return dnm.ar1_chain(iid, alpha, self.videos).to(sigma.device)
        return sample


class DependencyNoiseModel(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return schema(
            "DependencyNoiseModel",
            display_name="Dependency Noise (ZS², model patch)",
            category=ZS2_CATEGORY,
            description=(
                "Gives a stock KSampler / KSamplerAdvanced the ZS² dependency noise: the sampler's own seeded "
                "noise is turned into frame-correlated noise (same result as the Dependency Noise node with the "
                "same seed). Optionally the per-step noise of ancestral/SDE samplers gets the same dependency. "
                f"Any model with a latent batch of frames (SD1.x/SDXL, DiTs). From {PAPER}. Cost: negligible."),
            search_aliases=ALIASES + ["dependency noise model", "DNM", "correlated noise"],
            inputs=[
                io.Model.Input("model", tooltip="Any model; only the sampler's noise is changed."),
                lambda_input(),
                mode_input(),
                videos_input(),
                io.Boolean.Input("per_step_noise", default=False,
                                 tooltip="Also correlate the fresh noise that ancestral/SDE samplers add at every "
                                         "step (beyond the paper). Off: only the initial noise."),
            ],
            outputs=[io.Model.Output(tooltip="The model with dependency noise (a patched copy).")],
        )

    @classmethod
    def validate_inputs(cls, mode):
        return check_choice("mode", mode, dnm.MODES)

    @classmethod
    def execute(cls, model, noise_lambda, mode, videos, per_step_noise) -> io.NodeOutput:
        m = model.clone()
        m.remove_wrappers_with_key(comfy.patcher_extension.WrappersMP.SAMPLER_SAMPLE, WRAPPER_KEY)
        m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.SAMPLER_SAMPLE, WRAPPER_KEY,
                               DependencyNoiseSampling(noise_lambda, mode, videos, per_step_noise))
        return io.NodeOutput(m)


class MomentumAttn1(_patching.FrameKVPatch):
    """attn1 patch: keys/values are the EMA over frames (per chunk) of the incoming context/value."""

    def __init__(self, mu: float, anchor_mix: float, sigmas: _patching.SigmaRange, video: bool, **kw):
        super().__init__(sigmas, video, **kw)
        self.mu = mu
        self.anchor_mix = anchor_mix

    def kv(self, x, chunks, extra_options):
        return momentum_kv(x, chunks, self.mu, self.anchor_mix)


class TemporalMomentumAttention(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return schema(
            "TemporalMomentumAttention",
            display_name="Temporal Momentum Attention (ZS²)",
            category=ZS2_CATEGORY,
            description=(
                "Each frame's self-attention reads keys and values that are a running average (EMA) over the "
                "frames before it: m_0 = x_0, m_a = μ·m_(a−1) + (1 − μ)·x_a. Smooth motion with a consistent "
                "subject. μ = 1 is cross-frame attention to frame 0, μ = 0 plain self-attention. Stacks with "
                "Cross-Frame Attention and IPAdapter-style patches. Models: SD1.x, SD2.x, SDXL and SVD U-Nets; "
                "Flux 1 and 2, Chroma, SD3/SD3.5, AuraFlow, Qwen-Image, Lumina 2, Z-Image and HiDream DiTs (the "
                f"EMA is over the image tokens' keys and values of the joint attention). From {PAPER}. Cost: one "
                "pass over the "
                "frames per attention layer (≈ the unpatched model)."),
            search_aliases=ALIASES + ["temporal momentum attention", "TMA", "momentum attention"],
            inputs=[
                io.Model.Input("model", tooltip="An image U-Net (SD1.x, SD2.x, SDXL; on SVD only spatial "
                                                "attention is patched) or a Flux (1 or 2), Chroma, SD3/SD3.5, "
                                                "AuraFlow, Qwen-Image, Lumina 2, Z-Image or HiDream DiT (the EMA "
                                                "is over the image tokens' keys/values; text tokens stay per "
                                                "frame)."),
                io.Float.Input("mu", default=0.98, min=0.0, max=1.0, step=0.001,
                               tooltip="Momentum μ: how much each frame's keys/values keep from the previous "
                                       "frames. Paper: 0.98. Lower = more per-frame freedom (and flicker)."),
                advanced(io.Float.Input)("anchor_mix", default=0.0, min=0.0, max=1.0, step=0.01,
                               tooltip="Blend frame 0 back into every frame's keys/values (beyond the paper). The "
                                       "EMA forgets frame 0 over long clips (0.98^63 ≈ 0.28); 0.2-0.5 keeps the "
                                       "subject over 100+ frames. 0 = the paper."),
                advanced(io.Float.Input)("start_percent", default=0.0, min=0.0, max=1.0, step=0.001,
                               tooltip="Start of the sampling range where the patch is active."),
                advanced(io.Float.Input)("end_percent", default=1.0, min=0.0, max=1.0, step=0.001,
                               tooltip="End of the sampling range where the patch is active."),
                attention_videos_input(),
            ],
            outputs=[io.Model.Output(tooltip="The model with temporal momentum attention (a patched copy).")],
        )

    @classmethod
    def validate_inputs(cls, start_percent, end_percent):
        return check_percent_range(start_percent, end_percent)

    @classmethod
    def execute(cls, model, mu, anchor_mix, start_percent, end_percent, videos=1) -> io.NodeOutput:
        return io.NodeOutput(_patching.patch_model_attn1(model, MomentumAttn1, "Temporal Momentum Attention",
                                                         start_percent, end_percent, videos=videos, mu=mu,
                                                         anchor_mix=anchor_mix))


NODES = [DependencyNoise, DependencyNoiseModel, TemporalMomentumAttention]
