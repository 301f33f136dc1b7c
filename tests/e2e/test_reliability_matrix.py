"""The reliability matrix: bad inputs for every node through the HTTP API, as a user would send them.

Each case must fail the way ComfyUI fails for its own nodes — `node_errors` at validation (HTTP 400 or 200
with errors) or an `execution_error` — with a message that names the input or the fix, and the same server
must then run a good prompt.
"""
from __future__ import annotations

import threading

import pytest
import torch
from zv_testing import tiny_prompt

from scripts.comfy_server import ComfyError

T2V, ZS2, SD15, SVD = "t2vz_text_to_video", "zs2_text_to_video", "sd15_frames_baseline", "svd_img2vid_baseline"
ZS_X2, ZS_VIDEO, EXV = "zerosmooth_svd_x2", "zerosmooth_interpolate_video", "exvideo_svd_128_frames"
FLUX, SD35, ZIMAGE = "flux_t2vz_text_to_video", "sd35_zs2_text_to_video", "zimage_t2vz_text_to_video"  # DiTs
QUICK = {T2V: ["EmptyLatentImage.batch_size=3"], ZS2: ["EmptyLatentImage.batch_size=3"],
         **{dit: ["EmptySD3LatentImage.batch_size=3", "BasicScheduler.steps=2"] for dit in (FLUX, SD35, ZIMAGE)},
         SD15: ["EmptyLatentImage.batch_size=2", "KSampler.steps=1"],
         ZS_X2: ["ZeroVideo.SelfCascadeInterpolate.key_frames=2", "BasicScheduler.steps=1"],
         ZS_VIDEO: ["BasicScheduler.steps=1"],
         EXV: ["SVD_img2vid_Conditioning.video_frames=4", "KSampler.steps=1"]}

# (id, workflow, --set overrides, text the error must contain)
VALIDATION = [
    ("steps below min", SD15, ["KSampler.steps=0"], "steps"),
    ("unknown checkpoint", SD15, ['1.ckpt_name="no_such_model.safetensors"'], "ckpt_name"),
    ("anchor not an option", T2V, ['ZeroVideo.CrossFrameAttentionPatch.anchor="last"'], "anchor"),
    ("sigma range inverted", T2V, ["ZeroVideo.CrossFrameAttentionPatch.start_percent=0.9",
                                   "ZeroVideo.CrossFrameAttentionPatch.end_percent=0.1"], "start_percent"),
    ("t0 not below t1", T2V, ["ZeroVideo.Text2VideoZeroSampler.t0=47", "ZeroVideo.Text2VideoZeroSampler.t1=44"],
     "t0"),
    ("interpolation not an option", T2V, ['ZeroVideo.Text2VideoZeroSampler.interpolation="cubic"'],
     "interpolation"),
    ("motion above max", T2V, ["ZeroVideo.Text2VideoZeroSampler.motion_x=1000"], "motion_x"),
    ("lambda below zero", ZS2, ["ZeroVideo.DependencyNoise.noise_lambda=-0.1"], "noise_lambda"),
    ("noise mode not an option", ZS2, ['ZeroVideo.DependencyNoise.mode="magic"'], "mode"),
    ("mu above one", ZS2, ["ZeroVideo.TemporalMomentumAttention.mu=1.5"], "mu"),
    ("mu below zero", ZS2, ["ZeroVideo.TemporalMomentumAttention.mu=-0.5"], "mu"),
    ("factor not x2/x4", ZS_X2, ['ZeroVideo.SelfCascadeInterpolate.factor="x3"'], "factor"),
    ("one key frame", ZS_X2, ["ZeroVideo.SelfCascadeInterpolate.key_frames=1"], "key_frames"),
    ("correction strength above one", ZS_X2, ["ZeroVideo.HiddenStateCorrection.strength=2.0"], "strength"),
    ("schedule not an option", ZS_X2, ['ZeroVideo.HiddenStateCorrection.schedule="cosine"'], "schedule"),
    ("ExVideo mode not an option", EXV, ['ZeroVideo.ExVideoTemporalExtend.mode="magic"'], "mode"),
    ("tiled decode overlap above half a tile", ZS_X2, ["ZeroVideo.TemporalTiledVAEDecode.frames_per_tile=4",
                                                       "ZeroVideo.TemporalTiledVAEDecode.overlap=3"],
     "overlap (3) must be at most half of frames_per_tile (4), i.e. 2"),
    ("tiled decode tile below min", ZS_X2, ["ZeroVideo.TemporalTiledVAEDecode.frames_per_tile=0"],
     "frames_per_tile"),
    ("ExVideo weights without a file", EXV,
     ['ZeroVideo.ExVideoTemporalExtend.extension="(none: training-free modes)"'], "needs an extension file"),
]

# (id, workflow, --set overrides, text the execution error must contain)
EXECUTION = [
    ("Text2Video-Zero with one frame", T2V, ["EmptyLatentImage.batch_size=1"], "the latent has 1 frame"),
    ("dependency noise with one frame", ZS2, ["EmptyLatentImage.batch_size=1"], "at least 2 frames"),
    ("ExVideo above its table", EXV, ["SVD_img2vid_Conditioning.video_frames=130"], "position table holds 128"),
    ("input clip frame count differs", ZS_VIDEO, ["ZeroVideo.SelfCascadeInterpolate.key_frames=4"],
     "Self-Cascade Interpolate: key_frames is 4, but key_frames_video has 8 frames"),
    # node 5 takes the clip's first frames: asking for 12 of the 8-frame sample clip is a clip that is too short
    ("input clip shorter than the key frames", ZS_VIDEO,
     ["5.length=12", "ZeroVideo.SelfCascadeInterpolate.key_frames=12"],
     "Self-Cascade Interpolate: key_frames is 12, but key_frames_video has 8 frames"),
    ("input clip size differs", ZS_VIDEO, ["ImageScale.width=128"],
     "Self-Cascade Interpolate: key_frames_video is 128x64 px"),
    ("Flux: Text2Video-Zero with one frame", FLUX, ["EmptySD3LatentImage.batch_size=1"],
     "Text2Video-Zero Sampler: the latent has 1 frame"),
    ("Flux: videos do not split the frames", FLUX, ["EmptySD3LatentImage.batch_size=4",
                                                    "ZeroVideo.CrossFrameAttentionPatch.videos=3"],
     "Cross-Frame Attention: the latent batch has 4 frames, which do not split into videos=3"),
    ("SD3.5: dependency noise with one frame", SD35, ["EmptySD3LatentImage.batch_size=1"],
     "Dependency Noise: needs at least 2 frames per video"),
    ("SD3.5: videos do not split the frames", SD35, ["EmptySD3LatentImage.batch_size=4",
                                                     "ZeroVideo.TemporalMomentumAttention.videos=3"],
     "Temporal Momentum Attention: the latent batch has 4 frames, which do not split into videos=3"),
    ("Z-Image: Text2Video-Zero with one frame", ZIMAGE, ["EmptySD3LatentImage.batch_size=1"],
     "Text2Video-Zero Sampler: the latent has 1 frame"),
]


def first_node(prompt: dict, class_type: str) -> str:
    return next(k for k, n in prompt.items() if n["class_type"] == class_type)


@pytest.fixture(scope="module")
def good(client, object_info):
    """A good prompt; every case is followed by it to show the server still serves."""
    counter = iter(range(10 ** 6))

    def run():
        prompt = tiny_prompt(object_info, SD15, QUICK[SD15] + [f"KSampler.seed={1000 + next(counter)}"])
        assert client.run(prompt)["status"]["status_str"] == "success"
    return run


@pytest.mark.parametrize("case", VALIDATION, ids=[c[0] for c in VALIDATION])
def test_validation_errors_name_the_input(client, object_info, good, case):
    _, wf, sets, text = case
    status, body = client.queue(tiny_prompt(object_info, wf, QUICK.get(wf, []) + sets))
    assert body.get("node_errors"), (status, body)
    assert text in str(body["node_errors"]), body["node_errors"]
    good()


@pytest.mark.parametrize("case", EXECUTION, ids=[c[0] for c in EXECUTION])
def test_execution_errors_are_clear_messages(client, object_info, good, case):
    _, wf, sets, text = case
    with pytest.raises(ComfyError, match=text) as err:
        client.run(tiny_prompt(object_info, wf, QUICK.get(wf, []) + sets))
    assert "Traceback" not in str(err.value)
    good()


DIT, VIDEO_DIT, IMAGE_MODEL = "a DiT", "a video DiT", "an image model"
CASCADE = {"factor": "x2", "key_frames": 2, "cfg": 2.5}
# every MODEL node on a model it does not take (UNETLoader of a tiny SD3 MMDiT or Wan 2.1 video DiT; the
# attention nodes take SD3 and Flux), the SVD-only ones on SD1.5 too: (model, node, inputs besides the model, message)
WRONG_FAMILY = [
    (VIDEO_DIT, "ZeroVideo.CrossFrameAttentionPatch", {"anchor": "first", "start_percent": 0.0, "end_percent": 1.0},
     "Cross-Frame Attention: this model (WanModel) has no U-Net self-attention blocks to patch and is not a "
     "supported DiT. It works with SD1.x, SD2.x, SDXL and SVD U-Nets, and Flux"),
    (VIDEO_DIT, "ZeroVideo.TemporalMomentumAttention", {"mu": 0.98, "anchor_mix": 0.0, "start_percent": 0.0,
                                                        "end_percent": 1.0}, "is not a supported DiT"),
    (DIT, "ZeroVideo.HiddenStateCorrection", {"strength": 0.8, "schedule": "linear", "loop": False},
     "Hidden State Correction: needs a Stable Video Diffusion model"),
    (DIT, "ZeroVideo.ExVideoTemporalExtend", {"mode": "interpolate", "extension": "(none: training-free modes)"},
     "ExVideo: needs a Stable Video Diffusion model"),
    (DIT, "ZeroVideo.SelfCascadeInterpolate", dict(CASCADE, color_fix=False),
     "Self-Cascade Interpolate: needs a Stable Video Diffusion model"),
    (IMAGE_MODEL, "ZeroVideo.HiddenStateCorrection", {"strength": 0.8, "schedule": "linear", "loop": False},
     "needs a Stable Video Diffusion model"),
    (IMAGE_MODEL, "ZeroVideo.SelfCascadeInterpolate", dict(CASCADE, color_fix=True),
     "Self-Cascade Interpolate: needs a Stable Video Diffusion model"),
]


@pytest.mark.parametrize("case", WRONG_FAMILY, ids=[f"{c[1].split('.')[1]} on {c[0]}" for c in WRONG_FAMILY])
def test_model_nodes_refuse_the_wrong_model_family(client, object_info, good, case):
    import re

    from scripts.tiny_models import SD3_NAME, WAN_NAME
    family, node, inputs, message = case
    prompt = tiny_prompt(object_info, SD15, QUICK[SD15])
    ksampler = prompt[first_node(prompt, "KSampler")]["inputs"]
    model = [first_node(prompt, "CheckpointLoaderSimple"), 0]
    if family in (DIT, VIDEO_DIT):
        prompt["89"] = {"class_type": "UNETLoader", "inputs": {"unet_name": SD3_NAME if family == DIT else WAN_NAME,
                                                               "weight_dtype": "default"}}
        model = ["89", 0]
    prompt["90"] = {"class_type": node, "inputs": dict(inputs, model=model)}
    if node.endswith("SelfCascadeInterpolate"):
        prompt["90"]["inputs"].update(positive=ksampler["positive"], negative=ksampler["negative"])
        ksampler["latent_image"] = ["90", 1]
    else:
        ksampler["model"] = ["90", 0]
    with pytest.raises(ComfyError, match=re.escape(message)) as err:
        client.run(prompt)
    assert "Traceback" not in str(err.value)
    good()


def test_sampling_a_cascade_with_the_wrong_latent_is_explained(client, object_info, good):
    prompt = tiny_prompt(object_info, ZS_X2, QUICK[ZS_X2])
    sampler = first_node(prompt, "SamplerCustomAdvanced")
    prompt[sampler]["inputs"]["latent_image"] = [first_node(prompt, "SVD_img2vid_Conditioning"), 2]
    with pytest.raises(ComfyError, match="connect the latent output of Self-Cascade Interpolate"):
        client.run(prompt)
    good()


def test_a_mask_of_the_wrong_size_is_named(client, object_info, good):
    prompt = tiny_prompt(object_info, T2V, QUICK[T2V])
    prompt["90"] = {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 32, "height": 32}}
    prompt[first_node(prompt, "ZeroVideo.Text2VideoZeroSampler")]["inputs"]["foreground_mask"] = ["90", 0]
    with pytest.raises(ComfyError, match="foreground_mask is 32x32 px but the video is 64x64 px"):
        client.run(prompt)
    good()


def test_cfg_one_runs_with_only_the_cond_chunk(client, object_info):
    prompt = tiny_prompt(object_info, T2V, QUICK[T2V] + ["CFGGuider.cfg=1.0", "RandomNoise.noise_seed=77"])
    assert client.run(prompt)["status"]["status_str"] == "success"


def saved_latent(server, client, prompt) -> torch.Tensor:
    """Run a prompt whose video latent goes to SaveLatent; the saved tensor."""
    from safetensors.torch import load_file
    info = first_node(prompt, "ZeroVideo.LatentVideoInfo")
    for k in [k for k, n in prompt.items() if n["class_type"] in ("VAEDecode", "CreateVideo", "SaveVideo")]:
        del prompt[k]
    prompt["95"] = {"class_type": "SaveLatent", "inputs": {"samples": [info, 0], "filename_prefix": "zv_split"}}
    history = client.run(prompt)
    (saved,) = history["outputs"]["95"]["latents"]
    return load_file(str(server.workdir / "output" / saved["subfolder"] / saved["filename"]))["latent_tensor"]


def test_forced_cond_uncond_split_gives_the_same_video(server, client, object_info):
    """ComfyUI's low-memory path (cond and uncond in separate U-Net calls, forced by a test-only node that
    fails the prompt if they ever come together) must give the video of the batched path."""
    sets = QUICK[T2V] + ["BasicScheduler.steps=12", "RandomNoise.noise_seed=31"]
    together = saved_latent(server, client, tiny_prompt(object_info, T2V, sets))
    prompt = tiny_prompt(object_info, T2V, sets)
    guider = prompt[first_node(prompt, "CFGGuider")]["inputs"]
    prompt["90"] = {"class_type": "ZVTest.ForceCondUncondSplit", "inputs": {"model": guider["model"]}}
    guider["model"] = ["90", 0]
    split = saved_latent(server, client, prompt)
    assert together.shape == split.shape == (3, 4, 8, 8)
    assert torch.allclose(together, split, rtol=0, atol=1e-4 * together.abs().max()), \
        (together - split).abs().max()
    assert not torch.equal(together[0], together[1])  # a real video, not a copy of frame 0


INTERRUPTED = [
    ("plain SVD", SVD, ["SVD_img2vid_Conditioning.video_frames=8", "KSampler.steps=40", "KSampler.seed=4242"]),
    ("Text2Video-Zero sampler", T2V, ["EmptyLatentImage.batch_size=3", "RandomNoise.noise_seed=4243"]),
    ("ZeroSmooth cascade", ZS_X2, ["ZeroVideo.SelfCascadeInterpolate.key_frames=2", "BasicScheduler.steps=40",
                                   "RandomNoise.noise_seed=4244"]),
    ("ExVideo", EXV, ["SVD_img2vid_Conditioning.video_frames=4", "KSampler.steps=40", "KSampler.seed=4245"]),
]


@pytest.mark.parametrize("case", INTERRUPTED, ids=[c[0] for c in INTERRUPTED])
def test_interrupt_stops_a_running_prompt_and_the_server_recovers(client, object_info, good, case):
    _, wf, sets = case
    prompt = tiny_prompt(object_info, wf, sets)
    started = threading.Event()

    def on_event(kind, data):
        if kind == "progress" and not started.is_set():
            started.set()
            client.interrupt()
    with pytest.raises(ComfyError, match="interrupted"):
        client.run(prompt, on_event=on_event)
    assert started.is_set()
    good()


def nan_latent(tmp_path, client, name: str, frames: int, h: int = 8, w: int = 8) -> str:
    """A `.latent` file (ComfyUI's SaveLatent format) whose last frame holds a NaN and an inf, uploaded."""
    from safetensors.torch import save_file
    samples = torch.randn(frames, 4, h, w)
    samples[-1, 0, 2, 3] = float("nan")
    samples[-1, 2, 0, 0] = float("inf")
    path = tmp_path / name
    save_file({"latent_tensor": samples, "latent_format_version_0": torch.tensor([])}, str(path))
    return client.upload(path, name)


# (id, workflow, where a LoadLatent of the NaN file goes: (class_type, input), frames, text the error must contain)
NAN_CASES = [
    ("Motion Latent Warp latent", "t2vz_graph_form", ("ZeroVideo.MotionLatentWarp", "latent"), 1,
     "Motion Latent Warp: latent contains NaN or infinite values in 1 of 1 frame(s) (0)"),
    ("Text2Video-Zero Sampler latent", T2V, ("SamplerCustomAdvanced", "latent_image"), 3,
     "Text2Video-Zero Sampler: the latent image (with its starting noise) contains NaN or infinite values "
     "in 1 of 3 frame(s) (2)"),
    ("Latent Renorm latent", EXV, ("ZeroVideo.ExVideoLatentRenorm", "latent"), 4,
     "Latent Renorm: latent contains NaN or infinite values in 1 of 4 frame(s) (3)"),
    ("Self-Cascade key_frames_video", ZS_VIDEO, ("ZeroVideo.SelfCascadeInterpolate", "key_frames_video"), 8,
     "Self-Cascade Interpolate: key_frames_video contains NaN or infinite values in 1 of 8 frame(s) (7)"),
]


@pytest.mark.parametrize("case", NAN_CASES, ids=[c[0] for c in NAN_CASES])
def test_a_nan_latent_is_refused_naming_the_input(client, object_info, good, tmp_path, case):
    _, wf, (class_type, input_name), frames, text = case
    prompt = tiny_prompt(object_info, wf, QUICK.get(wf, []))
    name = nan_latent(tmp_path, client, f"nan_{wf}.latent", frames)
    prompt["80"] = {"class_type": "LoadLatent", "inputs": {"latent": name}}
    prompt[first_node(prompt, class_type)]["inputs"][input_name] = ["80", 0]
    with pytest.raises(ComfyError) as err:
        client.run(prompt)
    assert text in str(err.value)
    assert "Traceback" not in str(err.value)
    good()
