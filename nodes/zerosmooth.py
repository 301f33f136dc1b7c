"""ZeroSmooth (Yang et al., arXiv 2406.00908): training-free ×2 / ×4 frame rate for Stable Video Diffusion.

Two nodes that compose:
- `SelfCascadeInterpolate` (→ GUIDER): runs a base branch of t0 key frames and each longer stage (2·t0,
  4·t0 frames) in lock-step, one denoising step at a time, inside any ComfyUI sampler. The latent the
  sampler integrates holds every stage; the output is the longest stage only.
- `HiddenStateCorrection` (MODEL → MODEL): attention replace patches that capture each stage's q/k/v and
  correct the next stage's towards them (temporal: A on q/k/v; spatial: A on Q, A1/A2 on K/V;
  cross-attention: Q), blended with strength w_t; plus frame-position interpolation and windowed temporal
  attention for stages longer than t0. Without it the cascade is the paper's "direct inference" ablation.
"""
from __future__ import annotations

import functools

import comfy.model_patcher
import comfy.patcher_extension
import comfy.samplers
import torch
from comfy.ldm.modules.attention import optimized_attention
from comfy_api.latest import io

from ..kernels import cascade as Z
from . import _patching
from ._schema import CATEGORY, advanced, check_choice, require_finite, schema

PAPER = "ZeroSmooth (Yang et al., arXiv 2406.00908)"
ZS_CATEGORY = f"{CATEGORY}/ZeroSmooth"
ALIASES = ["ZeroSmooth", "frame interpolation", "high frame rate", "self-cascade", "hidden state correction",
           "SVD interpolation"]
ZS_KEY = "zerovideo_zerosmooth"  # transformer_options: what the current U-Net call is (stage, frames, run)
FACTORS = {"x2": 2, "x4": 4}


class StepRun:
    """One denoising step of the cascade: what each stage captured for the next one."""

    def __init__(self, step: int, steps: int, seed: int):
        self.step, self.steps, self.seed = step, steps, seed
        self.captured: dict = {}

    def __deepcopy__(self, memo):
        return self


# --- the guider ---------------------------------------------------------------------------------------------

def _frames_override(executor, *args, **kwargs):
    """DIFFUSION_MODEL wrapper: conds were processed for the whole cascade; each stage has its own frame count."""
    transformer_options = _patching.argument(executor, args, kwargs, "transformer_options")
    zs = transformer_options.get(ZS_KEY)
    if zs is not None and "num_video_frames" in kwargs:
        kwargs["num_video_frames"] = zs["frames"]
    return executor(*args, **kwargs)


def _stage_conds(conds, fps_factor: int):
    out = []
    for emb, opts in conds:
        opts = dict(opts)
        if "fps" in opts:
            opts["fps"] = opts["fps"] * fps_factor
        out.append([emb, opts])
    return out


class SelfCascadeGuider(comfy.samplers.CFGGuider):
    def __init__(self, model_patcher, key_frames: int, factor: int, color_fix: bool, key_latent=None):
        m = model_patcher.clone()
        m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, ZS_KEY, _frames_override)
        super().__init__(m)
        self.t0 = key_frames
        self.factor = factor
        self.stages = {2: 2, 4: 3}[factor]
        self.color_fix = color_fix
        self.key_latent = key_latent
        self.stage_noise = None

    def frames(self, s: int) -> int:
        return self.t0 * 2 ** s

    def longest_call_frames(self) -> int:
        """The most frames one U-Net call sees (the last stage); the latent holds every stage."""
        return self.frames(self.stages - 1)

    def set_conds(self, positive, negative):
        conds = {}
        for s in range(self.stages):
            conds[f"positive_{s}"] = _stage_conds(positive, 2 ** s)
            conds[f"negative_{s}"] = _stage_conds(negative, 2 ** s)
        self.inner_set_conds(conds)

    def sample(self, noise, latent_image, sampler, sigmas, denoise_mask=None, callback=None, disable_pbar=False,
               seed=None, **kwargs):
        total = self.frames(self.stages - 1)
        if latent_image.ndim != 4 or latent_image.shape[0] != total:
            raise ValueError(f"ZeroSmooth {self.factor}× with {self.t0} key frames makes {total} frames, but the "
                             f"latent has {latent_image.shape[0] if latent_image.ndim == 4 else 'no'} frames: "
                             f"connect the latent output of Self-Cascade Interpolate to the sampler.")
        if denoise_mask is not None:
            raise ValueError("ZeroSmooth does not support a latent noise mask.")
        noises = Z.stage_noise(noise, self.stages)
        latents = Z.stage_noise(latent_image, self.stages)
        self.stage_noise = noises[0]
        # ancestral/SDE samplers: per-step noise drawn for the longest stage and shared like the initial noise
        g = torch.Generator().manual_seed((seed or 0) + 1)

        def shared_noise(sigma, sigma_next):
            n = torch.randn(noise.shape, generator=g)
            return torch.cat(Z.stage_noise(n, self.stages)).to(sigma.device)
        with _patching.noise_sampler_override(sampler, shared_noise):
            out = super().sample(torch.cat(noises), torch.cat(latents), sampler, sigmas, None, callback,
                                 disable_pbar, seed, **kwargs)
        sizes = [self.frames(s) for s in range(self.stages)]
        self.last_stages = list(torch.split(out, sizes))  # every stage's result, for inspection and tests
        return out[-total:]

    def predict_noise(self, x, timestep, model_options={}, seed=None):
        to = model_options.get("transformer_options", {})
        sample_sigmas = to.get("sample_sigmas")
        sigma = float(timestep.reshape(-1)[0])
        step, steps = 0, 1
        if sample_sigmas is not None:
            steps = max(len(sample_sigmas) - 1, 1)
            step = int((sample_sigmas - sigma).abs().argmin())  # nearest: multi-evaluation samplers miss sigmas
        run = StepRun(step, steps, 0 if seed is None else seed)
        outs, start = [], 0
        for s in range(self.stages):
            n = self.frames(s)
            xs, ts = x[start:start + n], timestep[start:start + n]
            start += n
            if s == 0 and self.key_latent is not None:
                keys = self.inner_model.process_latent_in(self.key_latent.to(xs))
                xs = keys + sigma * self.stage_noise.to(xs)
            mo = comfy.model_patcher.create_model_options_clone(model_options)
            to = mo.setdefault("transformer_options", {})
            to[ZS_KEY] = {"stage": s, "frames": n, "t0": self.t0, "run": run, "last": s == self.stages - 1}
            to[_patching.FRAMES_KEY] = n
            d = comfy.samplers.sampling_function(self.inner_model, xs, ts, self.conds.get(f"negative_{s}"),
                                                 self.conds.get(f"positive_{s}"), self.cfg, model_options=mo,
                                                 seed=seed)
            if s == 0 and self.key_latent is not None:
                d = keys
            if self.color_fix and s > 0:
                ref = outs[-1].repeat_interleave(2, dim=0)
                d = Z.adain(d, ref)
            outs.append(d)
        return torch.cat(outs)


def output_fps(positive, source_fps) -> float:
    """The key frames' frame rate: `source_fps` when set, else the fps SVD_img2vid_Conditioning put in the
    conditioning (SVD's own default, 6, when it has none)."""
    if source_fps:
        return float(source_fps)
    return float(next((c[1]["fps"] for c in positive if "fps" in c[1]), 6))


class SelfCascadeInterpolate(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return schema(
            "SelfCascadeInterpolate",
            display_name="Self-Cascade Interpolate (ZeroSmooth)",
            category=ZS_CATEGORY,
            description=(
                "Makes Stable Video Diffusion generate ×2 or ×4 the frames at the same motion (a higher frame rate), "
                "training-free: a base branch of key frames and longer branches run in lock-step in one sampling "
                "run; with Hidden State Correction on the model, the long branch is pulled towards the key frames. "
                "Without it you get the paper's 'direct inference' ablation. Use the GUIDER and LATENT outputs "
                f"with SamplerCustomAdvanced (any sampler). From {PAPER}. Cost: ×2 ≈ 1.5× a direct run of the "
                "same frames (+ the correction's second attention pass), ×4 ≈ 1.75×."),
            search_aliases=ALIASES,
            inputs=[
                io.Model.Input("model", tooltip="An SVD / SVD-XT model, optionally patched by Hidden State "
                                                "Correction."),
                io.Conditioning.Input("positive", tooltip="Positive conditioning from SVD_img2vid_Conditioning (its "
                                                          "fps is doubled per stage)."),
                io.Conditioning.Input("negative", tooltip="Negative conditioning from SVD_img2vid_Conditioning."),
                io.Combo.Input("factor", options=list(FACTORS), default="x2",
                               tooltip="Frame-rate factor: x2 (2·t0 frames) or x4 (4·t0 frames, 3 stages)."),
                io.Int.Input("key_frames", default=25, min=2, max=256,
                             tooltip="t0: frames of the base branch (SVD-XT: 25, SVD: 14). With an input video it "
                                     "must equal the video's frame count."),
                io.Float.Input("cfg", default=2.5, min=0.0, max=100.0, step=0.1,
                               tooltip="CFG scale (the top of the ramp when the model has Video Linear CFG Guidance)."),
                advanced(io.Boolean.Input)("color_fix", default=False,
                                 tooltip="AdaIN colour fix: match each long-branch frame's colour statistics to its "
                                         "key frames after every step (from the paper; off by default)."),
                io.Latent.Input("key_frames_video", optional=True,
                                tooltip="Optional: VAE-encoded frames of your own clip to interpolate (beyond the "
                                        "paper). The base branch then follows these frames instead of generating."),
                io.Float.Input("source_fps", default=0.0, min=0.0, max=1000.0, step=0.001, optional=True,
                               tooltip="Optional: the frame rate of the key frames (e.g. Get Video Components' fps "
                                       "for your own clip). 0 = the fps of the conditioning. The fps output is "
                                       "this × factor."),
            ],
            outputs=[
                io.Guider.Output(tooltip="A guider for SamplerCustomAdvanced / SamplerCustom."),
                io.Latent.Output(display_name="latent", tooltip="The empty latent of the output video (factor × "
                                                                "key_frames frames) to sample."),
                io.Float.Output(display_name="fps", tooltip="The frame rate of the output video: factor × the key "
                                                            "frames' fps (source_fps, else the conditioning's), "
                                                            "so the clip lasts as long as the key frames. Wire it "
                                                            "to Create Video."),
            ],
        )

    @classmethod
    def validate_inputs(cls, factor):
        return check_choice("factor", factor, list(FACTORS))

    @classmethod
    def execute(cls, model, positive, negative, factor, key_frames, cfg, color_fix,
                key_frames_video=None, source_fps=0.0) -> io.NodeOutput:
        _patching.require_svd(model, "Self-Cascade Interpolate")
        concat = next((c[1].get("concat_latent_image") for c in positive if "concat_latent_image" in c[1]), None)
        if concat is None:
            raise ValueError("Self-Cascade Interpolate: positive must come from SVD_img2vid_Conditioning (no image "
                             "latent found in it).")
        require_finite("Self-Cascade Interpolate", "the image latent in positive (from SVD_img2vid_Conditioning)",
                       concat)
        keys = None
        if key_frames_video is not None:
            keys = key_frames_video["samples"]
            if keys.ndim != 4:
                raise ValueError(f"Self-Cascade Interpolate: key_frames_video must be an image latent [frames, C, h, "
                                 f"w], got {list(keys.shape)}")
            require_finite("Self-Cascade Interpolate", "key_frames_video", keys)
            if keys.shape[0] != key_frames:
                raise ValueError(f"Self-Cascade Interpolate: key_frames is {key_frames}, but key_frames_video has "
                                 f"{keys.shape[0]} frames: set key_frames to {keys.shape[0]} (or give it a clip "
                                 f"of {key_frames} frames).")
            if keys.shape[-2:] != concat.shape[-2:]:
                raise ValueError(f"Self-Cascade Interpolate: key_frames_video is {keys.shape[-1] * 8}x"
                                 f"{keys.shape[-2] * 8} px but the conditioning image is {concat.shape[-1] * 8}x"
                                 f"{concat.shape[-2] * 8} px: make them the same size.")
        f = FACTORS[factor]
        guider = SelfCascadeGuider(model, key_frames, f, color_fix, keys)
        guider.set_conds(positive, negative)
        guider.set_cfg(cfg)
        latent = torch.zeros([key_frames * f, 4, concat.shape[-2], concat.shape[-1]])
        return io.NodeOutput(guider, {"samples": latent}, f * output_fps(positive, source_fps))


# --- hidden-state correction --------------------------------------------------------------------------------

class _StageFrames(_patching.VideoFrames):
    def __init__(self):
        super().__init__()
        self.t0 = None


def _record_stage(holder: _StageFrames, executor, *args, **kwargs):
    transformer_options = _patching.argument(executor, args, kwargs, "transformer_options")
    zs = transformer_options.get(ZS_KEY)
    holder.t0 = None if zs is None else zs["t0"]
    holder.frames = zs["frames"] if zs is not None else kwargs.get("num_video_frames")
    return executor(*args, **kwargs)


def _interpolated_positions(holder: _StageFrames, frames: int):
    """Long stages: frame j sits at j·t0/t among the t0 key frames (key frame j exactly at base position j);
    other calls keep their positions (a FramePositions remap)."""
    if holder.t0 is None or frames <= holder.t0:
        return None
    return torch.arange(frames, dtype=torch.float32) * Z.position_scale(frames, holder.t0), holder.t0


class CorrectionAttention:
    """attn1 / attn2 replace patch: plain attention, or capture / correct inside a ZeroSmooth cascade."""

    def __init__(self, slot: str, w_max: float, schedule: str, loop: bool):
        self.slot, self.w_max, self.schedule, self.loop = slot, w_max, schedule, loop

    def strength(self, run: StepRun) -> float:
        if self.schedule == "constant":
            return self.w_max
        return Z.strength(1 - run.step / run.steps, self.w_max)

    def __call__(self, q, k, v, extra_options):
        heads, precision = extra_options["n_heads"], extra_options["attn_precision"]

        def attn(q_, k_, v_):
            return optimized_attention(q_, k_, v_, heads, attn_precision=precision, transformer_options=extra_options)
        zs = extra_options.get(ZS_KEY)
        spatial = _patching.spatial_layout(q, extra_options, True, self) is not None
        if zs is None:
            return attn(q, k, v)
        stage, frames, t0, run = zs["stage"], zs["frames"], zs["t0"], zs["run"]
        kinds = extra_options.get("cond_or_uncond") or [0]
        chunks = len(kinds)
        self_attn = self.slot == "attn1"
        temporal_self = not spatial and self_attn

        def full(q_, k_, v_):
            return Z.windowed(attn, q_, k_, v_, t0, dim=1) if temporal_self and frames > t0 else attn(q_, k_, v_)
        # frame axis of the per-chunk views: spatial (chunks, F, N, C) -> 1; temporal (chunks, h·w, F, C) -> 2
        dim = 1 if spatial else 2

        def per_chunk(t):
            if spatial:
                return t.view(chunks, frames, *t.shape[1:])
            return t.view(chunks, t.shape[0] // chunks, *t.shape[1:])
        where = (tuple(extra_options.get("block") or ()), extra_options.get("block_index", 0), spatial, self.slot)
        if stage == 0:
            o = full(q, k, v)
            qs, ks, vs = per_chunk(q), per_chunk(k) if self_attn else None, per_chunk(v) if self_attn else None
            for c, kind in enumerate(kinds):
                run.captured[(where, kind)] = (qs[c], ks[c] if self_attn else None, vs[c] if self_attn else None)
            return o
        last = zs.get("last", False)  # nothing after this stage reads its corrected states
        prev = [run.captured.get((where, kind)) for kind in kinds]
        if last:  # the last stage consumes the captures: dropped, their memory is freed layer by layer
            for kind in set(kinds):
                run.captured.pop((where, kind), None)
        if any(p is None for p in prev):
            return full(q, k, v)  # the previous stage did not run this chunk (e.g. another cond split): leave it
        w = self.strength(run)
        if w == 0 and last:
            return full(q, k, v)
        # (chunks, K, ...) along `dim`; .to(q): with newer ComfyUI's MultiGPU CFG Split a cond may run on another
        # device than at the previous stage
        prev_q = torch.stack([p[0].to(q) for p in prev])
        if self_attn:
            pair_op = Z.pick_pair_operator(run.seed, run.step)
            kv_op = functools.partial(Z.correct_kv, op=pair_op, dim=dim, loop=self.loop) if spatial \
                else functools.partial(Z.correct_q, dim=dim)
            q_hat = Z.correct_q(per_chunk(q), prev_q, dim)
            k_hat = kv_op(per_chunk(k), torch.stack([p[1].to(k) for p in prev]))
            v_hat = kv_op(per_chunk(v), torch.stack([p[2].to(v) for p in prev]))
            if not last:
                for c, kind in enumerate(kinds):
                    run.captured[(where, kind)] = (q_hat[c], k_hat[c], v_hat[c])
            if w == 0:
                return full(q, k, v)
            o_hat = full(q_hat.reshape(q.shape), k_hat.reshape(k.shape), v_hat.reshape(v.shape))
            # w = 1 (constant schedule at full strength) is ô alone: the uncorrected pass is skipped
            return o_hat if w == 1 else Z.blend(full(q, k, v), o_hat, w)
        # cross-attention: K/V do not depend on the frame and only the key frames' queries change (to the
        # previous stage's), so ô differs from o on the key frames alone and only their rows are recomputed
        if not last:
            q_hat = Z.correct_q(per_chunk(q), prev_q, dim)
            for c, kind in enumerate(kinds):
                run.captured[(where, kind)] = (q_hat[c], None, None)
        o = attn(q, k, v)
        if w == 0:
            return o
        if spatial:
            keys_q = prev_q.reshape(-1, *q.shape[1:])
            if k.shape[0] == q.shape[0]:
                k = per_chunk(k)[:, 0::2].reshape(-1, *k.shape[1:])
                v = per_chunk(v)[:, 0::2].reshape(-1, *v.shape[1:])
            o_keys = attn(keys_q, k, v)
            out = o  # a fresh tensor of this call: the key rows are blended in place
            rows = per_chunk(out)[:, 0::2]
            rows.copy_(Z.blend(rows, o_keys.view(rows.shape), w))
        else:
            o_keys = attn(prev_q.reshape(q.shape[0], -1, q.shape[2]), k, v)
            out = o
            rows = out[:, 0::2]
            rows.copy_(Z.blend(rows, o_keys, w))
        return out


class HiddenStateCorrection(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return schema(
            "HiddenStateCorrection",
            display_name="Hidden State Correction (ZeroSmooth)",
            category=ZS_CATEGORY,
            description=(
                "The correction half of ZeroSmooth: inside a Self-Cascade Interpolate run, every attention layer of "
                "the longer branch is pulled towards the key-frame branch (key frames take the key states, in-"
                "between frames keep their differences), blended by strength w_t = w_max·(steps left)/steps: "
                "w_max at the first step, falling linearly to w_max/steps at the last (the paper's t/T). Also "
                "interpolates SVD's frame positions and windows temporal attention "
                "for the longer branches. Outside a cascade the model behaves exactly like the stock model. "
                f"From {PAPER}. Cost: a second attention pass in corrected layers of the long branch."),
            search_aliases=ALIASES,
            inputs=[
                io.Model.Input("model", tooltip="An SVD / SVD-XT model."),
                io.Float.Input("strength", default=0.8, min=0.0, max=1.0, step=0.01,
                               tooltip="w_max: how far the long branch is pulled to the corrected states. Paper: 0.8. "
                                       "0 = no correction of the attention states; the long branches' frame "
                                       "positions stay "
                                       "rescaled and their temporal attention windowed. For the paper's direct "
                                       "inference, leave this node out."),
                advanced(io.Combo.Input)("schedule", options=["linear", "constant"], default="linear",
                               tooltip="linear: w_t = w_max·(steps left)/steps, i.e. w_max at the first step and "
                                       "w_max/steps at the last (the paper's t/T). constant: w_max every step."),
                io.Boolean.Input("loop", default=False,
                                 tooltip="Seamless loops (beyond the paper): treat the last→first frame pair as a pair "
                                         "in the key/value correction."),
            ],
            outputs=[io.Model.Output(tooltip="The model with hidden-state correction (a patched copy).")],
        )

    @classmethod
    def validate_inputs(cls, schedule):
        return check_choice("schedule", schedule, ["linear", "constant"])

    @classmethod
    def execute(cls, model, strength, schedule, loop) -> io.NodeOutput:
        blocks = _patching.require_svd(model, "Hidden State Correction")
        m = model.clone()
        existing = m.model_options.get("transformer_options", {}).get("patches_replace", {})
        if existing.get("attn1") or existing.get("attn2"):
            _patching.log.warning("Hidden State Correction replaces attention patches another node set on this model")
        _patching.add_call_counter(m)
        holder = _StageFrames()
        m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, ZS_KEY,
                               functools.partial(_record_stage, holder))
        _patching.stack_frame_positions(m, blocks, holder, "Hidden State Correction",
                                        remap=functools.partial(_interpolated_positions, holder))
        attn1 = CorrectionAttention("attn1", strength, schedule, loop)
        attn2 = CorrectionAttention("attn2", strength, schedule, loop)
        for key in _patching.attention_keys(m):
            m.set_model_attn1_replace(attn1, *key)
            m.set_model_attn2_replace(attn2, *key)
        return io.NodeOutput(m)


NODES = [SelfCascadeInterpolate, HiddenStateCorrection]
