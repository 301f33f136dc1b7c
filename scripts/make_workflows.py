"""Write the shipped workflows (UI format + API twin) from one Python description each.

    python3 scripts/host.py run --make-workflows      (or: python -m scripts.make_workflows)

Each graph is written once, here; the UI file (`workflows/NAME.json`, loadable in ComfyUI and listed
in its template browser) and the API twin (`workflows/api/NAME.json`, what /prompt takes) are both
derived from it with the live server's /object_info, so they cannot drift apart. A test converts
every UI file back to API format and compares it with its twin.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

# the loaders' file inputs; the frame rate of the clip the tests and `host.py run` put in the clip's place
from scripts.run_workflow import MODEL_INPUTS, SAMPLE_CLIP_FPS
from scripts.workflow import has_control_widget, is_widget, _input_specs

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO / "workflows"

SD15_CKPT = "v1-5-pruned-emaonly.safetensors"
IP2P_CKPT = "instruct-pix2pix-00-22000.safetensors"
CANNY_CONTROLNET = "control_v11p_sd15_canny_fp16.safetensors"
INPUT_CLIP = "zerovideo_input_clip.mp4"  # any clip Load Video reads (mp4, webm, mov, gif); the tests write one
SVD_CKPT = "svd_xt.safetensors"
EXVIDEO_FILE = "ExVideo-SVD-128f-v1.safetensors"
FLUX_UNET, FLUX_VAE = "flux1-dev.safetensors", "ae.safetensors"
FLUX_CLIP_L, FLUX_T5 = "clip_l.safetensors", "t5xxl_fp16.safetensors"
SD35_UNET, SD35_VAE = "sd3.5_medium.safetensors", "sd3.5_medium_vae.safetensors"
SD35_CLIP_G = "clip_g.safetensors"
ZIMAGE_UNET, ZIMAGE_TE = "z_image_turbo_bf16.safetensors", "qwen_3_4b.safetensors"  # its VAE is Flux's ae

# Where each model file comes from, for the frontend's missing-models dialog (`properties.models` of the node
# that loads it: name, url, directory = the models/ folder it goes into). The ExVideo file is the released
# fp16 weights (DiffSynth-Studio's ExVideo example names this download), saved under our name.
MODELS = {
    SD15_CKPT: ("https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5/resolve/main/"
                "v1-5-pruned-emaonly.safetensors", "checkpoints"),
    IP2P_CKPT: ("https://huggingface.co/timbrooks/instruct-pix2pix/resolve/main/instruct-pix2pix-00-22000.safetensors",
                "checkpoints"),
    CANNY_CONTROLNET: ("https://huggingface.co/comfyanonymous/ControlNet-v1-1_fp16_safetensors/resolve/main/"
                       "control_v11p_sd15_canny_fp16.safetensors", "controlnet"),
    SVD_CKPT: ("https://huggingface.co/stabilityai/stable-video-diffusion-img2vid-xt/resolve/main/svd_xt.safetensors",
               "checkpoints"),
    EXVIDEO_FILE: ("https://huggingface.co/ECNU-CILab/ExVideo-SVD-128f-v1/resolve/main/model.fp16.safetensors",
                   "exvideo"),
    # Flux-dev (gated: accept the licence on Hugging Face first), its text encoders and VAE as ComfyUI's own Flux
    # templates name them
    FLUX_UNET: ("https://huggingface.co/black-forest-labs/FLUX.1-dev/resolve/main/flux1-dev.safetensors",
                "diffusion_models"),
    FLUX_CLIP_L: ("https://huggingface.co/comfyanonymous/flux_text_encoders/resolve/main/clip_l.safetensors",
                  "text_encoders"),
    FLUX_T5: ("https://huggingface.co/comfyanonymous/flux_text_encoders/resolve/main/t5xxl_fp16.safetensors",
              "text_encoders"),
    FLUX_VAE: ("https://huggingface.co/black-forest-labs/FLUX.1-schnell/resolve/main/ae.safetensors", "vae"),
    # SD3.5 medium (gated), its VAE (the diffusers folder's file, saved under our name) and CLIP-G; CLIP-L and T5
    # are the same files as Flux's
    SD35_UNET: ("https://huggingface.co/stabilityai/stable-diffusion-3.5-medium/resolve/main/sd3.5_medium.safetensors",
                "diffusion_models"),
    SD35_VAE: ("https://huggingface.co/stabilityai/stable-diffusion-3.5-medium/resolve/main/vae/"
               "diffusion_pytorch_model.safetensors", "vae"),
    SD35_CLIP_G: ("https://huggingface.co/Comfy-Org/stable-diffusion-3.5-fp8/resolve/main/text_encoders/"
                  "clip_g.safetensors", "text_encoders"),
    # Z-Image Turbo and its Qwen3-4B text encoder as Comfy-Org repackaged them for ComfyUI's Z-Image template
    ZIMAGE_UNET: ("https://huggingface.co/Comfy-Org/z_image_turbo/resolve/main/split_files/diffusion_models/"
                  "z_image_turbo_bf16.safetensors", "diffusion_models"),
    ZIMAGE_TE: ("https://huggingface.co/Comfy-Org/z_image_turbo/resolve/main/split_files/text_encoders/"
                "qwen_3_4b.safetensors", "text_encoders"),
}


def model_entries(node: dict) -> list[dict]:
    """ComfyUI's model metadata for a node that loads model files (empty for any other node)."""
    out = []
    for key in MODEL_INPUTS.get(node["class_type"], ()):
        file = node["inputs"].get(key)
        if file in MODELS:
            url, directory = MODELS[file]
            out.append({"name": file, "url": url, "directory": directory})
    return out


class Graph:
    """A tiny graph builder: `g.add(id, class_type, title=None, **inputs)`; links are `(id, slot)`."""

    def __init__(self, name: str, description: str, tiny_frames: int, tiny_sets: tuple = (), tiny_fps: float = 0.0,
                 audio: bool = False, min_comfyui: str | None = None):
        self.name = name
        self.min_comfyui = min_comfyui  # the oldest ComfyUI release whose nodes and model classes it needs
        self.tiny_frames = tiny_frames  # frames the tests expect when run on the tiny models
        self.tiny_fps = tiny_fps  # the saved video's frame rate the tests expect (on the tests' sample clip)
        self.audio = audio  # the saved video carries the input clip's audio
        self.tiny_sets = list(tiny_sets)  # --set overrides the tests add to keep CPU runs short
        self.description = description
        self.nodes: dict[int, dict] = {}
        self.notes: list[str] = []

    def add(self, node_id: int, class_type: str, title: str | None = None, **inputs):
        self.nodes[node_id] = {"class_type": class_type, "title": title, "inputs": inputs}
        return node_id

    def note(self, text: str):
        self.notes.append(text)


def _full_inputs(node: dict, info: dict) -> dict:
    """Inputs with every widget filled (spec value or the node's default)."""
    out = {}
    for name, typ, opts in _input_specs(info):
        if name in node["inputs"]:
            out[name] = node["inputs"][name]
        elif is_widget(typ, opts):
            if isinstance(typ, list):
                out[name] = opts.get("default", typ[0] if typ else None)
            elif "default" in opts:
                out[name] = opts["default"]
    unknown = set(node["inputs"]) - {n for n, _, _ in _input_specs(info)}
    if unknown:
        raise ValueError(f"{node['class_type']} has no inputs {sorted(unknown)}")
    return out


def to_api(g: Graph, object_info: dict) -> dict:
    api = {}
    for nid, node in g.nodes.items():
        inputs = {k: ([str(v[0]), v[1]] if isinstance(v, tuple) else v)
                  for k, v in _full_inputs(node, object_info[node["class_type"]]).items()}
        entry = {"class_type": node["class_type"], "inputs": inputs}
        if node["title"]:
            entry["_meta"] = {"title": node["title"]}
        api[str(nid)] = entry
    return api


def _depths(g: Graph) -> dict[int, int]:
    depth = {}

    def visit(nid):
        if nid not in depth:
            srcs = [v[0] for v in g.nodes[nid]["inputs"].values() if isinstance(v, tuple)]
            depth[nid] = 1 + max((visit(s) for s in srcs), default=-1)
        return depth[nid]

    for nid in g.nodes:
        visit(nid)
    return depth


def to_ui(g: Graph, object_info: dict) -> dict:
    depth = _depths(g)
    rows: dict[int, int] = {}
    links, ui_nodes = [], {}
    order = sorted(g.nodes, key=lambda n: (depth[n], n))
    for i, nid in enumerate(order):
        node = g.nodes[nid]
        info = object_info[node["class_type"]]
        row = rows.get(depth[nid], 0)
        rows[depth[nid]] = row + 1
        inputs = _full_inputs(node, info)
        widgets, sockets = [], []
        for name, typ, opts in _input_specs(info):
            value = inputs.get(name)
            if is_widget(typ, opts):
                entry_type = "COMBO" if isinstance(typ, list) else typ
                if isinstance(value, tuple):
                    sockets.append({"name": name, "type": entry_type, "widget": {"name": name}, "link": None})
                widgets.append(value if not isinstance(value, tuple) else opts.get("default"))
                if has_control_widget(name, typ, opts):
                    widgets.append("fixed")
            else:
                sockets.append({"name": name, "type": typ, "link": None})
        outputs = [{"name": oname, "type": otype, "links": [], "slot_index": k}
                   for k, (otype, oname) in enumerate(zip(info["output"], info["output_name"]))]
        ui = {"id": nid, "type": node["class_type"], "pos": [40 + 360 * depth[nid], 40 + 260 * row],
              "size": [320, 120 + 26 * len(widgets)], "flags": {}, "order": i, "mode": 0,
              "inputs": sockets, "outputs": outputs,
              "properties": {"Node name for S&R": node["class_type"]}, "widgets_values": widgets}
        if models := model_entries(node):
            ui["properties"]["models"] = models
        if node["title"]:
            ui["title"] = node["title"]
        ui_nodes[nid] = ui
    link_id = 0
    for nid in order:
        for sock in ui_nodes[nid]["inputs"]:
            src = g.nodes[nid]["inputs"].get(sock["name"])
            if not isinstance(src, tuple):
                continue
            link_id += 1
            src_id, slot = src
            out = ui_nodes[src_id]["outputs"][slot]
            out["links"].append(link_id)
            sock["link"] = link_id
            links.append([link_id, src_id, slot, nid, ui_nodes[nid]["inputs"].index(sock), out["type"]])
    nodes = [ui_nodes[n] for n in order]
    next_id = max(g.nodes) + 1
    for k, text in enumerate([g.description, *g.notes]):
        nodes.append({"id": next_id + k, "type": "MarkdownNote", "pos": [40 + 420 * k, -260], "size": [400, 220],
                      "flags": {}, "order": len(nodes), "mode": 0, "inputs": [], "outputs": [],
                      "properties": {}, "widgets_values": [text]})
    return {"last_node_id": next_id + len(g.notes), "last_link_id": link_id, "nodes": nodes, "links": links,
            "groups": [], "config": {}, "extra": {"zerovideo": {"name": g.name}}, "version": 0.4}


# --- the shipped graphs ------------------------------------------------------------------------

def sd15_frames_baseline() -> Graph:
    g = Graph("sd15_frames_baseline",
              "# SD1.5 frames baseline\nEight frames sampled independently from one prompt with a stock "
              "KSampler: the flicker every ZeroVideo technique removes. Compare with the Text2Video-Zero "
              "and ZS² workflows, which start from this graph.", tiny_frames=8, tiny_fps=4.0)
    g.add(1, "CheckpointLoaderSimple", ckpt_name=SD15_CKPT)
    g.add(2, "CLIPTextEncode", title="Positive", clip=(1, 1),
          text="a horse galloping on a street, photorealistic, detailed")
    g.add(3, "CLIPTextEncode", title="Negative", clip=(1, 1), text="blurry, low quality, deformed")
    g.add(4, "EmptyLatentImage", width=512, height=512, batch_size=8)
    g.add(5, "KSampler", model=(1, 0), positive=(2, 0), negative=(3, 0), latent_image=(4, 0), seed=7,
          steps=20, cfg=7.5, sampler_name="ddim", scheduler="ddim_uniform", denoise=1.0)
    _decode_and_save(g, 6, (5, 0), (1, 2), g.name, 4.0)
    return g


def svd_img2vid_baseline() -> Graph:
    g = Graph("svd_img2vid_baseline",
              "# SVD image-to-video baseline\nStock Stable Video Diffusion (SVD-XT, 25 frames). Replace the "
              "Empty Image with a Load Image node for your own start frame. The ZeroSmooth and ExVideo "
              "workflows build on this graph.", tiny_frames=8, tiny_sets=("SVD_img2vid_Conditioning.video_frames=8",),
              tiny_fps=6.0)
    g.add(1, "ImageOnlyCheckpointLoader", ckpt_name=SVD_CKPT)
    g.add(2, "EmptyImage", title="Start frame (replace with Load Image)", width=1024, height=576, batch_size=1,
          color=0x3366AA)
    g.add(3, "SVD_img2vid_Conditioning", clip_vision=(1, 1), init_image=(2, 0), vae=(1, 2), width=1024,
          height=576, video_frames=25, motion_bucket_id=127, fps=6, augmentation_level=0.0)
    g.add(4, "VideoLinearCFGGuidance", model=(1, 0), min_cfg=1.0)
    g.add(5, "KSampler", model=(4, 0), positive=(3, 0), negative=(3, 1), latent_image=(3, 2), seed=7,
          steps=20, cfg=2.5, sampler_name="euler", scheduler="karras", denoise=1.0)
    _decode_and_save(g, 6, (5, 0), (1, 2), g.name, 6.0)
    return g


PROMPT = "a horse galloping on a street, photorealistic, detailed"
NEGATIVE = "blurry, low quality, deformed"


def _sd15_text(g: Graph, prompt: str = PROMPT) -> None:
    """Nodes 1-3: checkpoint and the two prompts."""
    g.add(1, "CheckpointLoaderSimple", ckpt_name=SD15_CKPT)
    g.add(2, "CLIPTextEncode", title="Positive", clip=(1, 1), text=prompt)
    g.add(3, "CLIPTextEncode", title="Negative", clip=(1, 1), text=NEGATIVE)


def _save_video(g: Graph, first: int, images: tuple, name: str, fps, audio: tuple | None = None) -> None:
    """Nodes first, first+1: Create Video (fps a number or a link, audio optional) → Save Video (h264 MP4 with
    the workflow embedded)."""
    extra = {"audio": audio} if audio else {}
    g.add(first, "CreateVideo", images=images, fps=fps, **extra)
    g.add(first + 1, "SaveVideo", video=(first, 0), filename_prefix=f"ZeroVideo/{name}", format="mp4", codec="h264")


TILED_DECODE_NOTE = (
    "## Why VAE Decode (Temporal Tiles)\nSVD's VAE mixes neighbouring frames, so a clip must be decoded as a video, "
    "and all of its frames at once take memory in proportion to their number: 128 frames at 512² need ~56 GiB "
    "(bf16), 25 at 576×1024 ~25 GiB. The stock VAE Decode then splits the clip wherever its memory estimate says, "
    "each piece a separate video (a visible jump between pieces). This node decodes 16 frames at a time and "
    "cross-fades the 4 that neighbouring windows share: ~7 GiB at 512², and fewer frames at once (it says so) when "
    "ComfyUI estimates they do not fit. Lower frames_per_tile if you still run out of memory. Figures: "
    "bench/results/vae_decode_memory-cpu.json.")


def _decode_and_save(g: Graph, first: int, latent: tuple, vae: tuple, name: str, fps,
                     audio: tuple | None = None, tiled: bool = False) -> None:
    """Nodes first..first+3: Latent Video Info, VAE Decode (temporal tiles for long SVD clips, with a note saying
    why), Create Video, Save Video."""
    g.add(first, "ZeroVideo.LatentVideoInfo", latent=latent)
    if tiled:
        g.add(first + 1, "ZeroVideo.TemporalTiledVAEDecode", samples=(first, 0), vae=vae, frames_per_tile=16,
              overlap=4)
        g.note(TILED_DECODE_NOTE)
    else:
        g.add(first + 1, "VAEDecode", samples=(first, 0), vae=vae)
    _save_video(g, first + 2, (first + 1, 0), name, fps, audio)


def _load_clip(g: Graph, first: int, frames: int) -> tuple:
    """Nodes first..first+2: Load Video → Get Video Components → the clip's first `frames` frames. Returns the
    (images, audio, fps) links."""
    g.add(first, "LoadVideo", title="Input clip (mp4, webm, mov, gif)", file=INPUT_CLIP)
    g.add(first + 1, "GetVideoComponents", video=(first, 0))
    g.add(first + 2, "ImageFromBatch", title=f"The clip's first {frames} frames (length: raise for more)",
          image=(first + 1, 0), batch_index=0, length=frames)
    return (first + 2, 0), (first + 1, 1), (first + 1, 2)


def t2vz_text_to_video() -> Graph:
    g = Graph("t2vz_text_to_video",
              "# Text2Video-Zero: text to video (SD1.5)\nThe paper's setup: 8 frames at 512², DDIM 50 steps, CFG "
              "7.5, cross-frame attention to frame 0, global motion (12, 12) from t0=44/t1=47. Any base sampler "
              "works in Text2Video-Zero Sampler; any SD1.x/SDXL checkpoint works. Motion: positive x/y move the "
              "picture left/up; try zoom 1.02 for a slow push-in.", tiny_frames=8, tiny_fps=4.0)
    _sd15_text(g)
    g.add(4, "ZeroVideo.CrossFrameAttentionPatch", model=(1, 0), anchor="first")
    g.add(5, "CFGGuider", model=(4, 0), positive=(2, 0), negative=(3, 0), cfg=7.5)
    _t2vz_sampling(g, 6, (5, 0), (1, 0), (1, 2), "ddim", "ddim_uniform", 50, "EmptyLatentImage")
    return g


def _t2vz_sampling(g: Graph, first: int, guider: tuple, model: tuple, vae: tuple, sampler: str, scheduler: str,
                   steps: int, empty_latent: str) -> None:
    """Nodes first..first+9: KSamplerSelect → Text2Video-Zero Sampler, scheduler, noise, an 8-frame 512² latent,
    SamplerCustomAdvanced, then decode and save at the sampler's fps."""
    g.add(first, "KSamplerSelect", sampler_name=sampler)
    g.add(first + 1, "ZeroVideo.Text2VideoZeroSampler", sampler=(first, 0), fps=4.0)
    g.add(first + 2, "BasicScheduler", model=model, scheduler=scheduler, steps=steps, denoise=1.0)
    g.add(first + 3, "RandomNoise", noise_seed=7)
    g.add(first + 4, empty_latent, title="Frames (batch size = frame count)", width=512, height=512, batch_size=8)
    g.add(first + 5, "SamplerCustomAdvanced", noise=(first + 3, 0), guider=guider, sampler=(first + 1, 0),
          sigmas=(first + 2, 0), latent_image=(first + 4, 0))
    _decode_and_save(g, first + 6, (first + 5, 0), vae, g.name, (first + 1, 1))


def t2vz_graph_form() -> Graph:
    g = Graph("t2vz_graph_form",
              "# Text2Video-Zero with stock KSamplerAdvanced nodes\nThe same procedure spelled out: frame 0 alone "
              "for steps 0-2 and 2-5 (leftover noise kept), Motion Latent Warp makes 8 frames at step 2, and the "
              "last pass denoises them together with cross-frame attention. Keep steps, scheduler and the "
              "step boundaries of the three samplers and the warp node in agreement (50 steps: t1=47 → step 2, "
              "t0=44 → step 5).", tiny_frames=8, tiny_fps=4.0)
    _sd15_text(g)
    g.add(4, "ZeroVideo.CrossFrameAttentionPatch", model=(1, 0), anchor="first")
    g.add(5, "EmptyLatentImage", title="Frame 0", width=512, height=512, batch_size=1)
    common = dict(positive=(2, 0), negative=(3, 0), steps=50, cfg=7.5, sampler_name="ddim",
                  scheduler="ddim_uniform")
    g.add(6, "KSamplerAdvanced", title="Frame 0: steps 0-2", model=(1, 0), latent_image=(5, 0), add_noise="enable",
          noise_seed=7, start_at_step=0, end_at_step=2, return_with_leftover_noise="enable", **common)
    g.add(7, "KSamplerAdvanced", title="Frame 0: steps 2-5", model=(1, 0), latent_image=(6, 0),
          add_noise="disable", noise_seed=7, start_at_step=2, end_at_step=5, return_with_leftover_noise="enable",
          **common)
    g.add(8, "ZeroVideo.MotionLatentWarp", model=(1, 0), latent=(7, 0), first_frame=(6, 0), frames=8, steps=50,
          scheduler="ddim_uniform", seed=7, fps=4.0)
    g.add(9, "KSamplerAdvanced", title="All frames: steps 2-50", model=(4, 0), latent_image=(8, 0),
          add_noise="disable", noise_seed=7, start_at_step=2, end_at_step=10000,
          return_with_leftover_noise="disable", **common)
    _decode_and_save(g, 10, (9, 0), (1, 2), g.name, (8, 1))
    return g


def t2vz_controlnet_video() -> Graph:
    g = Graph("t2vz_controlnet_video",
              "# Text2Video-Zero: ControlNet video (SD1.5 + Canny ControlNet)\nEdges of every frame of your clip guide "
              "the frames; the same initial noise for all frames (Dependency Noise with λ = 0) and cross-frame "
              "attention in both the U-Net and the ControlNet keep the look consistent. Paper: DDIM 20 steps, CFG 9. "
              "Load any clip with Load Video (mp4, webm, mov, gif): its first 8 frames are used (raise the length of "
              "the batch node for more), and the result keeps the clip's fps and audio.", tiny_frames=8,
              tiny_fps=SAMPLE_CLIP_FPS, audio=True)
    g.note("The latent is the clip's frames VAE-encoded and multiplied by 0: an empty latent with exactly one "
           "frame per clip frame at the clip's size, whatever the clip's length.")
    _sd15_text(g, "a shiny golden statue of a horse, studio light")
    g.add(4, "ControlNetLoader", control_net_name=CANNY_CONTROLNET)
    images, audio, fps = _load_clip(g, 5, 8)
    g.add(8, "ImageScale", title="Frames at 512²", image=images, upscale_method="bilinear", width=512, height=512,
          crop="center")
    g.add(9, "Canny", image=(8, 0), low_threshold=0.4, high_threshold=0.8)
    g.add(10, "ZeroVideo.CrossFrameAttentionPatch", model=(1, 0), control_net=(4, 0), anchor="first")
    g.add(11, "ControlNetApplyAdvanced", positive=(2, 0), negative=(3, 0), control_net=(10, 1), image=(9, 0),
          strength=1.0, start_percent=0.0, end_percent=1.0)
    g.add(12, "VAEEncode", title="One latent per clip frame", pixels=(8, 0), vae=(1, 2))
    g.add(13, "LatentMultiply", title="Emptied (× 0)", samples=(12, 0), multiplier=0.0)
    g.add(14, "ZeroVideo.DependencyNoise", title="Same noise for every frame (λ = 0)", seed=7, noise_lambda=0.0)
    g.add(15, "CFGGuider", model=(10, 0), positive=(11, 0), negative=(11, 1), cfg=9.0)
    g.add(16, "KSamplerSelect", sampler_name="ddim")
    g.add(17, "BasicScheduler", model=(1, 0), scheduler="ddim_uniform", steps=20, denoise=1.0)
    g.add(18, "SamplerCustomAdvanced", noise=(14, 0), guider=(15, 0), sampler=(16, 0), sigmas=(17, 0),
          latent_image=(13, 0))
    _decode_and_save(g, 19, (18, 0), (1, 2), g.name, fps, audio)
    return g


def t2vz_video_instruct_pix2pix() -> Graph:
    g = Graph("t2vz_video_instruct_pix2pix",
              "# Text2Video-Zero: Video Instruct-Pix2Pix editing\nEdits every frame of a clip by an instruction with "
              "an InstructPix2Pix checkpoint; cross-frame attention (3-way guidance: text, image, neither) keeps the "
              "edit consistent across frames. Paper: Euler ancestral 50 steps, text guidance 7.5, image guidance "
              "1.0. Load any clip with Load Video (mp4, webm, mov, gif): its first 8 frames are edited (raise the "
              "length of the batch node for more), and the result keeps the clip's fps and audio.", tiny_frames=8,
              tiny_fps=SAMPLE_CLIP_FPS, audio=True)
    g.add(1, "CheckpointLoaderSimple", ckpt_name=IP2P_CKPT)
    g.add(2, "CLIPTextEncode", title="Instruction", clip=(1, 1), text="make it Van Gogh Starry Night style")
    g.add(3, "CLIPTextEncode", title="Negative", clip=(1, 1), text="")
    images, audio, fps = _load_clip(g, 4, 8)
    g.add(7, "ImageScale", title="Frames at 512²", image=images, upscale_method="bilinear", width=512, height=512,
          crop="center")
    g.add(8, "InstructPixToPixConditioning", positive=(2, 0), negative=(3, 0), vae=(1, 2), pixels=(7, 0))
    g.add(9, "ZeroVideo.CrossFrameAttentionPatch", model=(1, 0), anchor="first")
    g.add(10, "DualCFGGuider", model=(9, 0), cond1=(8, 0), cond2=(8, 1), negative=(3, 0), cfg_conds=7.5,
          cfg_cond2_negative=1.0, style="regular")
    g.add(11, "KSamplerSelect", sampler_name="euler_ancestral")
    g.add(12, "BasicScheduler", model=(1, 0), scheduler="normal", steps=50, denoise=1.0)
    g.add(13, "RandomNoise", noise_seed=7)
    g.add(14, "SamplerCustomAdvanced", noise=(13, 0), guider=(10, 0), sampler=(11, 0), sigmas=(12, 0),
          latent_image=(8, 2))
    _decode_and_save(g, 15, (14, 0), (1, 2), g.name, fps, audio)
    return g


def _exvideo(name: str, description: str, mode: str, extension: str, frames: int) -> Graph:
    g = Graph(name, description, tiny_frames=32,
              tiny_sets=("SVD_img2vid_Conditioning.video_frames=32", "KSampler.steps=2"), tiny_fps=30.0)
    g.add(1, "ImageOnlyCheckpointLoader", ckpt_name=SVD_CKPT)
    g.add(2, "ZeroVideo.ExVideoTemporalExtend", model=(1, 0), mode=mode, extension=extension)
    g.add(3, "EmptyImage", title="Start frame (replace with Load Image)", width=512, height=512, batch_size=1,
          color=0x3366AA)
    g.add(4, "SVD_img2vid_Conditioning", clip_vision=(1, 1), init_image=(3, 0), vae=(1, 2), width=512, height=512,
          video_frames=frames, motion_bucket_id=127, fps=30, augmentation_level=0.02)
    g.add(5, "KSampler", title="Euler / Karras, constant CFG 2", model=(2, 0), positive=(4, 0), negative=(4, 1),
          latent_image=(4, 2), seed=7, steps=50, cfg=2.0, sampler_name="euler", scheduler="karras", denoise=1.0)
    g.add(6, "ZeroVideo.ExVideoLatentRenorm", latent=(5, 0), contrast=1.2)
    _decode_and_save(g, 7, (6, 0), (1, 2), name, (2, 1), tiled=True)
    return g


def exvideo_128_frames() -> Graph:
    return _exvideo(
        "exvideo_svd_128_frames",
        "# ExVideo: SVD-XT to 128 frames\nThe released ExVideo weights (ExVideo-SVD-128f-v1.safetensors in "
        "models/exvideo/) on stock SVD-XT: 128 frames at 512², fps 30, motion bucket 127, augmentation 0.02, Euler / "
        "Karras 50 steps, constant CFG 2 (no linear CFG ramp), and ExVideo's latent renorm (contrast 1.2) before "
        "decoding. Needs a lot of memory: ~128 frames of SVD at once; the decode goes in temporal tiles.", "weights",
        EXVIDEO_FILE, 128)


def exvideo_training_free() -> Graph:
    return _exvideo(
        "exvideo_svd_training_free",
        "# ExVideo fallback without weights: 64 frames\nStretches SVD-XT to 64 frames by squeezing the frame "
        "positions into the 25 it was trained on (position interpolation). Training-free, clearly lower quality "
        "than the ExVideo weights; try mode = ping-pong too.", "interpolate", "(none: training-free modes)", 64)


def _cascade_sampling(g: Graph, first: int, cascade: int) -> int:
    """Nodes first..first+3: seed 7, Euler, Karras 25 steps and SamplerCustomAdvanced on the guider and latent
    of the Self-Cascade Interpolate node `cascade`; returns the sampler node."""
    g.add(first, "RandomNoise", noise_seed=7)
    g.add(first + 1, "KSamplerSelect", sampler_name="euler")
    g.add(first + 2, "BasicScheduler", model=(1, 0), scheduler="karras", steps=25, denoise=1.0)
    return g.add(first + 3, "SamplerCustomAdvanced", noise=(first, 0), guider=(cascade, 0), sampler=(first + 1, 0),
                 sigmas=(first + 2, 0), latent_image=(cascade, 1))


def exvideo_zerosmooth() -> Graph:
    g = Graph("exvideo_zerosmooth_128_frames",
              "# ExVideo + ZeroSmooth: 64 key frames, smoothed to 128\nThe ExVideo weights make SVD-XT hold 64 key "
              "frames (fps 15); ZeroSmooth ×2 fills in the frames between them, so the 128-frame result plays at 30 "
              "fps (ExVideo's training rate). Hidden State Correction reads ExVideo's position table at the in-between "
              "positions. ExVideo's sampling settings (Euler / Karras, constant CFG 2, motion bucket 127, "
              "augmentation 0.02) and latent renorm before decoding. Memory: 64 + 128 frames of SVD per step.",
              tiny_frames=4, tiny_sets=("ZeroVideo.SelfCascadeInterpolate.key_frames=2", "BasicScheduler.steps=2"),
              tiny_fps=30.0)
    g.add(1, "ImageOnlyCheckpointLoader", ckpt_name=SVD_CKPT)
    g.add(2, "ZeroVideo.ExVideoTemporalExtend", model=(1, 0), mode="weights", extension=EXVIDEO_FILE)
    g.add(3, "ZeroVideo.HiddenStateCorrection", model=(2, 0), strength=0.8)
    g.add(4, "EmptyImage", title="Start frame (replace with Load Image)", width=512, height=512, batch_size=1,
          color=0x3366AA)
    g.add(5, "SVD_img2vid_Conditioning", clip_vision=(1, 1), init_image=(4, 0), vae=(1, 2), width=512, height=512,
          video_frames=64, motion_bucket_id=127, fps=15, augmentation_level=0.02)
    g.add(6, "ZeroVideo.SelfCascadeInterpolate", model=(3, 0), positive=(5, 0), negative=(5, 1), factor="x2",
          key_frames=64, cfg=2.0)
    _cascade_sampling(g, 7, 6)
    g.add(11, "ZeroVideo.ExVideoLatentRenorm", latent=(10, 0), contrast=1.2)
    _decode_and_save(g, 12, (11, 0), (1, 2), g.name, (6, 2), tiled=True)
    return g


def _svd_start(g: Graph, size=(1024, 576), frames=25, fps=7, motion=180, cfg_model=True) -> None:
    """Nodes 1-4: SVD-XT, (Video Linear CFG), Hidden State Correction, start image, conditioning."""
    g.add(1, "ImageOnlyCheckpointLoader", ckpt_name=SVD_CKPT)
    g.add(2, "VideoLinearCFGGuidance", model=(1, 0), min_cfg=1.0)
    g.add(3, "EmptyImage", title="Start frame (replace with Load Image)", width=size[0], height=size[1], batch_size=1,
          color=0x3366AA)
    g.add(4, "SVD_img2vid_Conditioning", clip_vision=(1, 1), init_image=(3, 0), vae=(1, 2), width=size[0],
          height=size[1], video_frames=frames, motion_bucket_id=motion, fps=fps, augmentation_level=0.02)


def _zerosmooth(name: str, factor: str, description: str) -> Graph:
    n = {"x2": 2, "x4": 4}[factor]
    g = Graph(name, description, tiny_frames=2 * n,
              tiny_sets=("ZeroVideo.SelfCascadeInterpolate.key_frames=2", "BasicScheduler.steps=2"), tiny_fps=7.0 * n)
    _svd_start(g)
    g.add(5, "ZeroVideo.HiddenStateCorrection", model=(2, 0), strength=0.8)
    g.add(6, "ZeroVideo.SelfCascadeInterpolate", model=(5, 0), positive=(4, 0), negative=(4, 1), factor=factor,
          key_frames=25, cfg=2.5)
    _cascade_sampling(g, 7, 6)
    _decode_and_save(g, 11, (10, 0), (1, 2), name, (6, 2), tiled=True)
    return g


def zerosmooth_x2() -> Graph:
    return _zerosmooth(
        "zerosmooth_svd_x2", "x2",
        "# ZeroSmooth ×2: SVD-XT at twice the frame rate\n25 key frames and a 50-frame branch run in lock-step; "
        "Hidden State Correction pulls the long branch towards the key frames (w_max 0.8, linear). Conditioning per "
        "the paper: motion bucket 180, augmentation 0.02, fps 7 (doubled for the long branch). Output: 50 frames at "
        "14 fps. Bypass Hidden State Correction for the paper's 'direct inference' baseline.")


def zerosmooth_x4() -> Graph:
    return _zerosmooth(
        "zerosmooth_svd_x4", "x4",
        "# ZeroSmooth ×4: SVD-XT at four times the frame rate\nThree stages (25 → 50 → 100 frames) in lock-step, each "
        "corrected towards the previous one. Output: 100 frames at 28 fps. Needs memory for 175 frames of SVD at "
        "once per step; lower the resolution if it does not fit.")


def _clip_interpolation(name: str, description: str, note: str, loop: bool) -> Graph:
    g = Graph(name, description, tiny_frames=16, tiny_sets=("BasicScheduler.steps=2",), tiny_fps=2 * SAMPLE_CLIP_FPS,
              audio=True)
    g.note(note)
    g.add(1, "ImageOnlyCheckpointLoader", ckpt_name=SVD_CKPT)
    g.add(2, "VideoLinearCFGGuidance", model=(1, 0), min_cfg=1.0)
    images, audio, fps = _load_clip(g, 3, 8)
    g.add(6, "ImageScale", image=images, upscale_method="bilinear", width=1024, height=576, crop="center")
    g.add(7, "ImageFromBatch", title="First frame", image=(6, 0), batch_index=0, length=1)
    g.add(8, "VAEEncode", pixels=(6, 0), vae=(1, 2))
    g.add(9, "SVD_img2vid_Conditioning", clip_vision=(1, 1), init_image=(7, 0), vae=(1, 2), width=1024, height=576,
          video_frames=8, motion_bucket_id=180, fps=7, augmentation_level=0.02)
    g.add(10, "ZeroVideo.HiddenStateCorrection", title="Loop: last → first corrected too" if loop else None,
          model=(2, 0), strength=0.8, loop=loop)
    g.add(11, "ZeroVideo.SelfCascadeInterpolate", model=(10, 0), positive=(9, 0), negative=(9, 1), factor="x2",
          key_frames=8, cfg=2.5, key_frames_video=(8, 0), source_fps=fps)
    _cascade_sampling(g, 12, 11)
    _decode_and_save(g, 16, (15, 0), (1, 2), g.name, (11, 2), audio)
    return g


def zerosmooth_input_video() -> Graph:
    return _clip_interpolation(
        "zerosmooth_interpolate_video",
        "# ZeroSmooth: interpolate your own clip ×2\nYour frames become the key frames (the base branch follows "
        "them, forward-noised at every step) and SVD-XT fills in one frame between each pair: twice the "
        "frames at twice the clip's fps, with its audio. Load any clip with Load Video (mp4, webm, mov, gif); "
        "its first 8 frames are the key frames (the batch node's length and key_frames must agree). The first "
        "frame is the image condition.",
        "key_frames on Self-Cascade Interpolate must equal the length of the batch node (the clip's first "
        "frames); a shorter clip is refused with the frame count it has.", loop=False)


def zerosmooth_seamless_loop() -> Graph:
    return _clip_interpolation(
        "zerosmooth_seamless_loop",
        "# ZeroSmooth: a seamless loop at twice the frame rate\nFor a clip that loops (its last frame leads back "
        "to its first, e.g. a cinemagraph or a ping-pong clip): ZeroSmooth ×2 with Hidden State Correction's "
        "loop on, so the frame it adds after the last key frame is corrected towards the transition back to "
        "frame 0, like every other in-between frame. The MP4 loops without a jump when played on repeat.",
        "Use a clip that already loops; key_frames must equal the batch node's length. The output has 2 × "
        "key_frames frames: the last one sits between the last key frame and the first.", loop=True)


def zerosmooth_side_by_side() -> Graph:
    g = Graph("zerosmooth_direct_vs_corrected",
              "# Direct inference vs ZeroSmooth, same seed\nLeft: SVD-XT asked for 50 frames directly (the paper's "
              "'direct inference' ablation: the self-cascade without Hidden State Correction). Right: the same run "
              "with Hidden State Correction. Same noise, same conditioning.",
              tiny_frames=4, tiny_sets=("ZeroVideo.SelfCascadeInterpolate.key_frames=2", "BasicScheduler.steps=2"),
              tiny_fps=14.0)
    _svd_start(g)
    g.add(5, "ZeroVideo.HiddenStateCorrection", model=(2, 0), strength=0.8)
    g.add(6, "ZeroVideo.SelfCascadeInterpolate", title="Direct inference", model=(2, 0), positive=(4, 0),
          negative=(4, 1), factor="x2", key_frames=25, cfg=2.5)
    g.add(7, "ZeroVideo.SelfCascadeInterpolate", title="ZeroSmooth", model=(5, 0), positive=(4, 0), negative=(4, 1),
          factor="x2", key_frames=25, cfg=2.5)
    g.add(8, "RandomNoise", noise_seed=7)
    g.add(9, "KSamplerSelect", sampler_name="euler")
    g.add(10, "BasicScheduler", model=(1, 0), scheduler="karras", steps=25, denoise=1.0)
    g.add(11, "SamplerCustomAdvanced", title="Direct inference", noise=(8, 0), guider=(6, 0), sampler=(9, 0),
          sigmas=(10, 0), latent_image=(6, 1))
    g.add(12, "SamplerCustomAdvanced", title="ZeroSmooth", noise=(8, 0), guider=(7, 0), sampler=(9, 0),
          sigmas=(10, 0), latent_image=(7, 1))
    g.add(13, "ZeroVideo.LatentVideoInfo", latent=(12, 0))
    g.add(14, "ZeroVideo.TemporalTiledVAEDecode", samples=(11, 0), vae=(1, 2), frames_per_tile=16, overlap=4)
    g.add(15, "ZeroVideo.TemporalTiledVAEDecode", samples=(13, 0), vae=(1, 2), frames_per_tile=16, overlap=4)
    g.note(TILED_DECODE_NOTE)
    g.add(16, "ImageStitch", title="Left: direct, right: ZeroSmooth", image1=(14, 0), image2=(15, 0),
          direction="right", match_image_size=True, spacing_width=8, spacing_color="white")
    _save_video(g, 17, (16, 0), g.name, (7, 2))
    return g


def zs2_text_to_video() -> Graph:
    g = Graph("zs2_text_to_video",
              "# ZS²: zero-shot text to video (SD1.5)\nDependency noise (λ = 0.01: neighbouring frames start from "
              "strongly related noise) and temporal momentum attention (μ = 0.98: every frame attends to a running "
              "average of the frames before it). 8 frames, DDIM 50 steps, CFG 7.5 as in the paper. Raise λ for "
              "more motion, lower μ for more per-frame freedom.", tiny_frames=8, tiny_fps=4.0)
    _sd15_text(g)
    g.add(4, "ZeroVideo.TemporalMomentumAttention", model=(1, 0), mu=0.98)
    g.add(5, "CFGGuider", model=(4, 0), positive=(2, 0), negative=(3, 0), cfg=7.5)
    g.add(6, "KSamplerSelect", sampler_name="ddim")
    g.add(7, "BasicScheduler", model=(1, 0), scheduler="ddim_uniform", steps=50, denoise=1.0)
    g.add(8, "EmptyLatentImage", title="Frames (batch size = frame count)", width=512, height=512, batch_size=8)
    g.add(9, "ZeroVideo.DependencyNoise", seed=7, noise_lambda=0.01, latent=(8, 0))
    g.add(10, "SamplerCustomAdvanced", noise=(9, 0), guider=(5, 0), sampler=(6, 0), sigmas=(7, 0),
          latent_image=(8, 0))
    _decode_and_save(g, 11, (10, 0), (1, 2), g.name, 4.0)
    return g


def zs2_t2vz_motion() -> Graph:
    g = Graph("zs2_t2vz_motion",
              "# ZS² + Text2Video-Zero: momentum attention with a camera move\nText2Video-Zero's motion dynamics "
              "(frame 0 warped by (12, 12) per frame at t0/t1) combined with ZS²'s temporal momentum attention "
              "instead of plain cross-frame attention, and dependency noise. 8 frames, DDIM 50 steps.",
              tiny_frames=8, tiny_fps=4.0)
    _sd15_text(g)
    g.add(4, "ZeroVideo.TemporalMomentumAttention", model=(1, 0), mu=0.98)
    g.add(5, "CFGGuider", model=(4, 0), positive=(2, 0), negative=(3, 0), cfg=7.5)
    g.add(6, "KSamplerSelect", sampler_name="ddim")
    g.add(7, "ZeroVideo.Text2VideoZeroSampler", sampler=(6, 0), fps=4.0)
    g.add(8, "BasicScheduler", model=(1, 0), scheduler="ddim_uniform", steps=50, denoise=1.0)
    g.add(9, "EmptyLatentImage", title="Frames (batch size = frame count)", width=512, height=512, batch_size=8)
    g.add(10, "ZeroVideo.DependencyNoise", seed=7, noise_lambda=0.01)
    g.add(11, "SamplerCustomAdvanced", noise=(10, 0), guider=(5, 0), sampler=(7, 0), sigmas=(8, 0),
          latent_image=(9, 0))
    _decode_and_save(g, 12, (11, 0), (1, 2), g.name, (7, 1))
    return g


DIT_NOTE = (
    "## DiT models\nOn DiT image models (Flux 1 and 2, SD3/SD3.5, Z-Image, Lumina 2, Chroma, AuraFlow, "
    "Qwen-Image, HiDream) the attention nodes change the image tokens' keys and values in every attention block "
    "(from frame 0, or the running average over frames); each frame keeps its own text tokens and queries. Latent "
    "batch size = frame count. Video DiTs and other models are refused by name.")


def _dit_t2vz(g: Graph, first: int, model: tuple, conditioning: tuple, vae: tuple, steps: int) -> None:
    """Nodes first..: Cross-Frame Attention on a DiT, a CFG-1 BasicGuider, Text2Video-Zero sampling (euler,
    simple) of an 8-frame SD3-style latent, decode and save; the DiT note."""
    g.add(first, "ZeroVideo.CrossFrameAttentionPatch", model=model, anchor="first")
    g.add(first + 1, "BasicGuider", model=(first, 0), conditioning=conditioning)
    _t2vz_sampling(g, first + 2, (first + 1, 0), model, vae, "euler", "simple", steps, "EmptySD3LatentImage")
    g.note(DIT_NOTE)


def flux_t2vz_text_to_video() -> Graph:
    g = Graph("flux_t2vz_text_to_video",
              "# Text2Video-Zero on Flux: text to video\nFlux-dev (guidance 3.5, CFG 1, euler 20 steps, 8 frames at "
              "512²) with cross-frame attention to frame 0 and the paper's global motion (12, 12) from t0/t1 scaled "
              "to 20 steps. Any Flux fine-tune works; for Flux-schnell use 4-8 steps.", tiny_frames=8, tiny_fps=4.0)
    g.add(1, "UNETLoader", unet_name=FLUX_UNET, weight_dtype="default")
    g.add(2, "DualCLIPLoader", clip_name1=FLUX_T5, clip_name2=FLUX_CLIP_L, type="flux")
    g.add(3, "VAELoader", vae_name=FLUX_VAE)
    g.add(4, "CLIPTextEncode", title="Prompt", clip=(2, 0), text=PROMPT)
    g.add(5, "FluxGuidance", conditioning=(4, 0), guidance=3.5)
    _dit_t2vz(g, 6, model=(1, 0), conditioning=(5, 0), vae=(3, 0), steps=20)
    return g


def zimage_t2vz_text_to_video() -> Graph:
    g = Graph("zimage_t2vz_text_to_video",
              "# Text2Video-Zero on Z-Image Turbo: text to video\nZ-Image Turbo (Qwen3-4B text encoder, shift 3, "
              "CFG 1, euler 9 steps, 8 frames at 512²) with cross-frame attention to frame 0 and the paper's global "
              "motion (12, 12); t0/t1 scale to 9 steps (warp after step 1). Needs ComfyUI 0.3.75 or newer.",
              tiny_frames=8, tiny_fps=4.0, min_comfyui="0.3.75")
    g.add(1, "UNETLoader", unet_name=ZIMAGE_UNET, weight_dtype="default")
    g.add(2, "CLIPLoader", clip_name=ZIMAGE_TE, type="lumina2")
    g.add(3, "VAELoader", vae_name=FLUX_VAE)
    g.add(4, "CLIPTextEncode", title="Prompt", clip=(2, 0), text=PROMPT)
    g.add(5, "ModelSamplingAuraFlow", model=(1, 0), shift=3.0)
    _dit_t2vz(g, 6, model=(5, 0), conditioning=(4, 0), vae=(3, 0), steps=9)
    return g


def sd35_zs2_text_to_video() -> Graph:
    g = Graph("sd35_zs2_text_to_video",
              "# ZS² on SD3.5: zero-shot text to video\nSD3.5 medium (CLIP-L, CLIP-G and T5, CFG 4.5, euler "
              "sgm_uniform 40 steps, 8 frames at 1024²) with dependency noise (λ = 0.01) and temporal momentum "
              "attention (μ = 0.98) over the image tokens of every joint-attention block. SD3 and SD3.5 large work "
              "the same way.", tiny_frames=8, tiny_fps=4.0)
    g.add(1, "UNETLoader", unet_name=SD35_UNET, weight_dtype="default")
    g.add(2, "TripleCLIPLoader", clip_name1=FLUX_CLIP_L, clip_name2=SD35_CLIP_G, clip_name3=FLUX_T5)
    g.add(3, "VAELoader", vae_name=SD35_VAE)
    g.add(4, "CLIPTextEncode", title="Positive", clip=(2, 0), text=PROMPT)
    g.add(5, "CLIPTextEncode", title="Negative", clip=(2, 0), text=NEGATIVE)
    g.add(6, "ZeroVideo.TemporalMomentumAttention", model=(1, 0), mu=0.98)
    g.add(7, "CFGGuider", model=(6, 0), positive=(4, 0), negative=(5, 0), cfg=4.5)
    g.add(8, "KSamplerSelect", sampler_name="euler")
    g.add(9, "BasicScheduler", model=(1, 0), scheduler="sgm_uniform", steps=40, denoise=1.0)
    g.add(10, "EmptySD3LatentImage", title="Frames (batch size = frame count)", width=1024, height=1024,
          batch_size=8)
    g.add(11, "ZeroVideo.DependencyNoise", seed=7, noise_lambda=0.01, latent=(10, 0))
    g.add(12, "SamplerCustomAdvanced", noise=(11, 0), guider=(7, 0), sampler=(8, 0), sigmas=(9, 0),
          latent_image=(10, 0))
    _decode_and_save(g, 13, (12, 0), (3, 0), g.name, 4.0)
    g.note(DIT_NOTE)
    return g


SWEEP_LAMBDAS = (0.0, 0.01, 0.1)
SWEEP_MUS = (0.9, 0.98)


def zs2_sweep() -> Graph:
    g = Graph("zs2_lambda_mu_sweep",
              "# ZS² knobs side by side\nOne prompt and seed, six short clips: columns λ = 0, 0.01, 0.1 (dependency "
              "noise: how different neighbouring frames' noise is), rows μ = 0.9, 0.98 (temporal momentum: how much "
              "each frame keeps from the ones before). Stitched frame by frame into one video. 4 frames, 20 DDIM "
              "steps, 384² per clip to keep it quick.", tiny_frames=4, tiny_fps=4.0)
    _sd15_text(g)
    g.add(4, "EmptyLatentImage", title="Frames (batch size = frame count)", width=384, height=384, batch_size=4)
    g.add(5, "KSamplerSelect", sampler_name="ddim")
    g.add(6, "BasicScheduler", model=(1, 0), scheduler="ddim_uniform", steps=20, denoise=1.0)
    nid = 10
    rows = []
    for mu in SWEEP_MUS:
        model = g.add(nid, "ZeroVideo.TemporalMomentumAttention", title=f"mu = {mu}", model=(1, 0), mu=mu)
        guider = g.add(nid + 1, "CFGGuider", model=(model, 0), positive=(2, 0), negative=(3, 0), cfg=7.5)
        nid += 2
        row = None
        for lam in SWEEP_LAMBDAS:
            noise = g.add(nid, "ZeroVideo.DependencyNoise", title=f"lambda = {lam}", seed=7, noise_lambda=lam)
            samp = g.add(nid + 1, "SamplerCustomAdvanced", noise=(noise, 0), guider=(guider, 0), sampler=(5, 0),
                         sigmas=(6, 0), latent_image=(4, 0))
            dec = g.add(nid + 2, "VAEDecode", samples=(samp, 0), vae=(1, 2))
            nid += 3
            if row is None:
                row = dec
            else:
                row = g.add(nid, "ImageStitch", image1=(row, 0), image2=(dec, 0), direction="right",
                            match_image_size=True, spacing_width=8, spacing_color="white")
                nid += 1
        rows.append(row)
    grid = g.add(nid, "ImageStitch", title="Grid: columns λ, rows μ", image1=(rows[0], 0), image2=(rows[1], 0),
                 direction="down", match_image_size=True, spacing_width=8, spacing_color="white")
    _save_video(g, nid + 1, (grid, 0), g.name, 4.0)
    return g


GRAPHS = [sd15_frames_baseline, svd_img2vid_baseline, t2vz_text_to_video, t2vz_graph_form, t2vz_controlnet_video,
          t2vz_video_instruct_pix2pix, zs2_text_to_video, zs2_t2vz_motion, zs2_sweep, zerosmooth_x2, zerosmooth_x4,
          zerosmooth_input_video, zerosmooth_seamless_loop, zerosmooth_side_by_side, exvideo_128_frames,
          exvideo_training_free, exvideo_zerosmooth, flux_t2vz_text_to_video, sd35_zs2_text_to_video,
          zimage_t2vz_text_to_video]


def write_all(object_info: dict, folder: Path = WORKFLOWS) -> list[Path]:
    (folder / "api").mkdir(parents=True, exist_ok=True)
    written = []
    for make in GRAPHS:
        g = make()
        for path, data in ((folder / f"{g.name}.json", to_ui(g, object_info)),
                           (folder / "api" / f"{g.name}.json", to_api(g, object_info))):
            path.write_text(json.dumps(data, indent=2) + "\n")
            written.append(path)
    return written


def main() -> int:
    from scripts.comfy_server import live_object_info
    for p in write_all(live_object_info()):
        print("wrote", p.relative_to(REPO))
    return 0


if __name__ == "__main__":
    sys.exit(main())
