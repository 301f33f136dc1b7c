"""Run a workflow file through ComfyUI and save what it outputs.

    python3 scripts/host.py run workflows/sd15_frames_baseline.json --out out/
    python3 scripts/host.py run WF.json --server http://127.0.0.1:8188 --set 6.seed=3 --set KSampler.steps=30

Without --server a headless ComfyUI (the pinned test host, or ZEROVIDEO_COMFYUI) is started for the run
with this pack loaded. Its checkpoints come from --models (a ComfyUI models folder; also
ZEROVIDEO_MODELS). A checkpoint the workflow names that is not found there is replaced by the tiny
random-weight model of the same family, and the run is shrunk to a CPU-sized preview (64 px, at
most 4 steps): the output is noise and proves only that the graph runs. Both are printed. An input file a
Load Image / Load Video node names that the server lacks is replaced by a synthetic 8-frame clip (an animated
WEBP, or an MP4 with audio).

Outputs are copied into --out as the server saved them (Save Video: an h264 MP4 with the workflow embedded);
for each video the frames, fps and duration are printed. --frames also writes every frame as PNG.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from scripts import tiny_models as tiny
from scripts.comfy_server import ComfyClient, ComfyError, default_server
from scripts.workflow import WorkflowError, apply_sets, is_ui, load, ui_to_api

# loader class -> (input name, tiny model of that family)
LOADERS = {
    "CheckpointLoaderSimple": ("ckpt_name", tiny.SD15_NAME),
    "ImageOnlyCheckpointLoader": ("ckpt_name", tiny.SVD_NAME),
    "ControlNetLoader": ("control_net_name", tiny.CONTROLNET_NAME),
    "ZeroVideo.ExVideoTemporalExtend": ("extension", tiny.EXVIDEO_NAME),
}
# checkpoint names that ask for the tiny InstructPix2Pix model instead of the plain SD1.5 one
IP2P_HINTS = ("pix2pix", "ip2p")
# every loader class the shipped workflows use -> the inputs that name its model files (the DiT workflows' loaders
# included; their tiny stand-ins, scripts/tiny_models.py "DiT workflows", load only in the test server, whose host
# pack hands their sizes to ComfyUI's loaders)
MODEL_INPUTS = {**{cls: (key,) for cls, (key, _) in LOADERS.items()},
                "UNETLoader": ("unet_name",), "VAELoader": ("vae_name",), "CLIPLoader": ("clip_name",),
                "DualCLIPLoader": ("clip_name1", "clip_name2"),
                "TripleCLIPLoader": ("clip_name1", "clip_name2", "clip_name3")}
SAMPLE_CLIP_FPS = 8.0  # the sample clip's frame rate (the tests expect the clip workflows' fps from it)
TINY_SIZE = 64
TINY_MAX_STEPS = 4
STEP_NODES = {"KSampler", "BasicScheduler"}


def tiny_file(class_type: str, name, inputs: dict) -> str | None:
    """The tiny stand-in for a model file a loader names, or None when there is none."""
    low = str(name).lower()
    if class_type in LOADERS:
        return tiny.IP2P_NAME if any(h in low for h in IP2P_HINTS) else LOADERS[class_type][1]
    if class_type == "UNETLoader":
        return (tiny.FLUX_NAME if "flux" in low else tiny.SD35_NAME if "sd3" in low else
                tiny.ZIMAGE_NAME if "z_image" in low else None)
    if class_type == "VAELoader":
        return tiny.VAE16_NAME
    if class_type == "CLIPLoader":
        return tiny.QWEN3_NAME if "qwen_3_4b" in low else None
    kind = "sd3" if class_type == "TripleCLIPLoader" or inputs.get("type") == "sd3" else \
        "flux" if inputs.get("type") == "flux" else None
    if kind is None:
        return None
    part = "t5xxl" if "t5" in low else "clip_g" if "clip_g" in low else "clip_l"
    return tiny.TE_NAMES.get((kind, part))


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def available_files(object_info: dict, class_type: str, name: str) -> set[str]:
    spec = object_info.get(class_type, {}).get("input", {}).get("required", {}).get(name)
    return set(spec[0]) if spec and isinstance(spec[0], list) else set()


def substitute_tiny(api: dict, object_info: dict) -> list[str]:
    """Swap missing model files for the tiny models and shrink the run; returns what was changed."""
    changes = []
    for nid, node in api.items():
        for key in MODEL_INPUTS.get(node["class_type"], ()):
            old = node["inputs"].get(key)
            if old in available_files(object_info, node["class_type"], key):
                continue
            new = tiny_file(node["class_type"], old, node["inputs"])
            if new is not None:
                node["inputs"][key] = new
                changes.append(f"node {nid} {node['class_type']}: model {old!r} not found -> {new}")
    if not changes:
        return changes
    for nid, node in api.items():
        inp = node["inputs"]
        for key in ("width", "height"):
            if isinstance(inp.get(key), int) and inp[key] > TINY_SIZE and not isinstance(inp.get(key), bool):
                changes.append(f"node {nid} {node['class_type']}: {key} {inp[key]} -> {TINY_SIZE}")
                inp[key] = TINY_SIZE
        if node["class_type"] in STEP_NODES and isinstance(inp.get("steps"), int) and inp["steps"] > TINY_MAX_STEPS:
            changes.append(f"node {nid} {node['class_type']}: steps {inp['steps']} -> {TINY_MAX_STEPS}")
            inp["steps"] = TINY_MAX_STEPS
    return changes


class Progress:
    """A one-line text progress bar fed by the server's websocket events."""

    def __init__(self, api: dict, stream=sys.stderr):
        self.api = api
        self.stream = stream
        self.tty = stream.isatty()

    def __call__(self, kind: str, data: dict):
        if kind == "executing" and data.get("node") is not None:
            node = self.api.get(str(data["node"]), {})
            self._line(f"running node {data['node']} ({node.get('class_type', '?')})", end=True)
        elif kind == "progress":
            v, m = data.get("value", 0), max(data.get("max", 1), 1)
            bar = "#" * int(30 * v / m)
            self._line(f"  [{bar:<30}] {v}/{m}", end=not self.tty or v >= m)
        elif kind == "execution_cached" and data.get("nodes"):
            self._line(f"cached: nodes {', '.join(map(str, data['nodes']))}", end=True)

    def _line(self, text, end):
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if end else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv")


def video_facts(path: Path) -> dict:
    """Frames, fps, duration (s) and audio of a saved video, read with PyAV (ComfyUI's own video library)."""
    import av
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = sum(1 for _ in c.decode(video=0))
        fps = float(v.average_rate) if v.average_rate else 0.0
        return {"frames": frames, "fps": fps, "duration": frames / fps if fps else 0.0,
                "size": (v.codec_context.width, v.codec_context.height), "audio": bool(c.streams.audio)}


def describe_video(path: Path) -> str:
    f = video_facts(path)
    return (f"{path.name}: {f['frames']} frames at {f['fps']:g} fps = {f['duration']:.2f} s, "
            f"{f['size'][0]}x{f['size'][1]}{', with audio' if f['audio'] else ''}")


def video_frames(path: Path, stem: Path) -> list[Path]:
    """Every frame of a video file as PNG."""
    import av
    paths = []
    with av.open(str(path)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            p = stem.with_name(f"{stem.name}_frame{i:04d}.png")
            frame.to_image().save(p)
            paths.append(p)
    return paths


def save_outputs(client: ComfyClient, hist: dict, out: Path, frames: bool) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    saved = []
    for node_id, ui in hist.get("outputs", {}).items():
        for key, items in ui.items():
            if key == "text":
                for t in items:
                    say(f"node {node_id} says: {t}")
                continue
            if not isinstance(items, list):
                continue
            for item in items:
                if not (isinstance(item, dict) and "filename" in item):
                    continue
                data = client.view(item)
                path = out / item["filename"]
                path.write_bytes(data)
                saved.append(path)
                if path.suffix.lower() in VIDEO_SUFFIXES:
                    say(f"node {node_id} saved {describe_video(path)}")
                    if frames:
                        saved += video_frames(path, out / path.stem)
                elif frames and path.suffix.lower() in (".webp", ".gif", ".png"):
                    saved += extract_frames(data, out / path.stem)
    return saved


def extract_frames(data: bytes, stem: Path) -> list[Path]:
    from PIL import Image, ImageSequence
    img = Image.open(io.BytesIO(data))
    paths = []
    for i, frame in enumerate(ImageSequence.Iterator(img)):
        p = stem.with_name(f"{stem.name}_frame{i:04d}.png")
        frame.convert("RGB").save(p)
        paths.append(p)
    return paths


# input-file loaders: class -> its file input
INPUT_LOADERS = {"LoadImage": "image", "LoadVideo": "file"}


def missing_inputs(api: dict, object_info: dict) -> list[str]:
    """Files that Load Image / Load Video nodes ask for and the server's input folder does not have."""
    missing = set()
    for n in api.values():
        key = INPUT_LOADERS.get(n["class_type"])
        if key and n["inputs"].get(key) not in available_files(object_info, n["class_type"], key):
            missing.add(n["inputs"][key])
    return sorted(missing)


def sample_frames(frames: int = 8, size: int = 64) -> list:
    """A synthetic clip as PIL images: a bright square moving over a vertical gradient."""
    from PIL import Image, ImageDraw
    images = []
    for k in range(frames):
        img = Image.linear_gradient("L").resize((size, size)).convert("RGB")
        x = size // 8 + k * size // (2 * frames)
        ImageDraw.Draw(img).rectangle([x, size // 4, x + size // 3, size // 4 + size // 3], fill=(250, 240, 120))
        images.append(img)
    return images


def write_sample_clip(path: Path, frames: int = 8, size: int = 64, fps: float = SAMPLE_CLIP_FPS,
                      audio: bool = True) -> Path:
    """The sample clip as an h264 MP4 (yuv420p), with a 440 Hz tone as its AAC audio track. Written with PyAV,
    as ComfyUI writes its videos."""
    from fractions import Fraction

    import av
    import numpy as np
    with av.open(str(path), "w") as c:
        v = c.add_stream("h264", rate=Fraction(fps).limit_denominator(1000))
        v.width = v.height = size
        v.pix_fmt = "yuv420p"
        a = c.add_stream("aac", rate=16000) if audio else None  # every stream before the first packet
        for img in sample_frames(frames, size):
            for packet in v.encode(av.VideoFrame.from_image(img)):
                c.mux(packet)
        c.mux(v.encode(None))
        if a is not None:
            t = np.arange(round(16000 * frames / fps)) / 16000
            tone = av.AudioFrame.from_ndarray((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None],
                                              format="flt", layout="mono")
            tone.sample_rate, tone.pts = 16000, 0
            c.mux(a.encode(tone))
            c.mux(a.encode(None))
    return path


def write_sample_video(path: Path, frames: int = 8, size: int = 64) -> Path:
    """The sample clip as an animated WEBP (Load Image reads every frame)."""
    images = sample_frames(frames, size)
    images[0].save(path, save_all=True, append_images=images[1:], duration=125, loop=0, lossless=True)
    return path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="host.py run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workflow", help="workflow file: UI format (File > Save) or API format (File > Export (API))")
    p.add_argument("--server", help="URL of a running ComfyUI (default: start a headless one for this run)")
    p.add_argument("--out", default="out", help="folder for the outputs (default: ./out)")
    p.add_argument("--set", action="append", default=[], metavar="NODE.INPUT=VALUE",
                   help="override an input; NODE is a node id, class type or title; VALUE is JSON or text")
    p.add_argument("--ckpt", help="use this checkpoint name for every checkpoint loader")
    p.add_argument("--models", default=os.environ.get("ZEROVIDEO_MODELS"),
                   help="a ComfyUI models folder to use (default: $ZEROVIDEO_MODELS)")
    p.add_argument("--tiny", action="store_true",
                   help="with --server: also swap missing checkpoints for the tiny test models (if installed)")
    p.add_argument("--input", action="append", default=[], metavar="FILE",
                   help="upload FILE into the server's input folder first (for Load Image / Load Video nodes)")
    p.add_argument("--frames", action="store_true", help="also write every frame of videos and animations as PNG")
    p.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the run")
    p.add_argument("--print-api", action="store_true", help="print the API-format prompt and exit")
    return p


def prepare(args, object_info: dict, own_server: bool) -> dict:
    wf = load(args.workflow)
    api = ui_to_api(wf, object_info) if is_ui(wf) else wf
    if args.ckpt:
        for node in api.values():
            if node["class_type"] in LOADERS:
                node["inputs"][LOADERS[node["class_type"]][0]] = args.ckpt
    if own_server:
        changes = substitute_tiny(api, object_info)
        if changes:
            say("NOTE: no real checkpoint configured for this workflow (use --models DIR or --ckpt NAME).")
            say("      Running on ZeroVideo's tiny random-weight models: the output is noise and only")
            say("      proves that the graph runs. Changed for this run:")
            for c in changes:
                say("        " + c)
    return apply_sets(api, args.set)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    server = None
    tmp = None
    try:
        if args.server:
            client = ComfyClient(args.server)
        else:
            from scripts import tiny_models
            tiny_models.ensure_checkpoints(tiny_models.default_folder())
            tmp = tempfile.TemporaryDirectory(prefix="zerovideo-run-")
            server = default_server(Path(tmp.name))
            if args.models:
                server.model_roots.append(Path(args.models).resolve())
            say(f"starting a headless ComfyUI ({server.comfy_dir}) ...")
            t0 = time.monotonic()
            server.start()
            say(f"ComfyUI is up at {server.url} after {time.monotonic() - t0:.1f}s")
            client = server.client()
        for f in args.input:
            say(f"uploaded {f} as {client.upload(Path(f))}")
        object_info = client.object_info()
        api = prepare(args, object_info, own_server=server is not None or args.tiny)
        missing = missing_inputs(api, object_info)
        if missing and (server is not None or args.tiny):
            with tempfile.TemporaryDirectory() as d:
                for name in missing:
                    sample = (write_sample_clip(Path(d) / name) if Path(name).suffix.lower() in VIDEO_SUFFIXES
                              else write_sample_video(Path(d) / name))
                    client.upload(sample, name)
                    say(f"NOTE: input {name!r} not found: using a synthetic 8-frame clip (use --input FILE)")
        if args.print_api:
            print(json.dumps(api, indent=2))
            return 0
        t0 = time.monotonic()
        hist = client.run(api, on_event=Progress(api), timeout=args.timeout)
        saved = save_outputs(client, hist, Path(args.out), args.frames)
        say(f"done in {time.monotonic() - t0:.1f}s; {len(saved)} file(s) in {args.out}/")
        for p in saved:
            print(p)
        return 0
    except (ComfyError, WorkflowError) as e:
        say(f"error: {e}")
        return 1
    finally:
        if server is not None:
            server.stop()
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
