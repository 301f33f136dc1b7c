"""ExVideo post-tuning: retrain SVD's 16 temporal blocks for long videos (ALGORITHMS.md §4.2).

    python -m training.exvideo_posttune --checkpoint svd_xt.safetensors --videos clips/ --out my_exvideo.safetensors

Run it from the pack's folder (`ComfyUI/custom_nodes/ZeroVideo/`, with ComfyUI's own python; the ComfyUI
folder is found two levels up, or give `--comfyui DIR`), or from a development clone with the venv of
scripts/host.py. (`python -m scripts.exvideo_posttune`, its earlier name, still runs it.) It imports ComfyUI
as a library, loads the checkpoint with ComfyUI's loader, and
writes the extension in the released DiffSynth layout (`blocks.{N}.…`, 528 tensors) that the
**ExVideo Temporal Extend** node reads from `models/exvideo/`. `--help` lists every option.

What is trained (everything else is frozen, `requires_grad=False`):
  * all parameters of the 16 temporal blocks ExVideo ships: `time_pos_embed` (the position MLP) and
    `time_stack.0.*` (norm_in, ff_in, attn1, attn2, norm1-3, ff) of each `SpatialVideoTransformer`;
  * the new learned position table E ∈ R^{rows×C} (initialised with the sinusoid at the "ping-pong" ids,
    `kernels.exvideo.pingpong_ids`) and the new identity-initialised Conv3d (3×3×3, reflect padding).
  `--init FILE` starts from an existing extension file instead (e.g. the released ExVideo-SVD-128f-v1).

The training forward is the node's own forward: the same position/Conv3d hooks (`nodes.exvideo`'s
`_table_provider`/`_conv_forward` and `_patching._positions_forward`) are installed on the model this
script loaded, with the table and Conv3d as trainable parameters. The only difference is that the
Conv3d is always applied, where the node skips an exactly-identity one.

Recipe (ExVideo's, [ref] in ALGORITHMS.md):
  * a training sample is T consecutive frames (`--frames`, default 128) of a random video, center-cropped
    and resized to `--size`² (default 512); its first frame is the condition image, as in ComfyUI's
    SVD_img2vid_Conditioning: CLIP-vision embedding of the clean frame, VAE latent of the clean frame and
    augmentation_level 0, as the released training conditions (`--augmentation A` adds pixel noise × A to
    the frame before encoding and passes A as augmentation_level; this script's earlier default was 0.02,
    the inference setting ExVideo recommends), fps 30 (`--fps`);
  * motion bucket id from the pixel std over time: s = mean over pixels of std_t(frames), pixels in
    [-1, 1], looked up in the released training's 128-entry threshold table (`--motion-mapping table`, the
    default: bucket = the last entry ≤ s; s = 0.03 → 9). `--motion-mapping sqrt` is this script's earlier
    rule, round(127·sqrt(min(s / 0.44, 1))) clamped to [1, 127] (0.44 ≈ the table's last entry), which puts
    low-motion clips in higher buckets than the released weights learned (s = 0.03 → 33): use it only to
    continue a run started with it. `--motion-bucket N` fixes the id instead;
  * σ = (σmax^(1/7) + u·(σmin^(1/7) − σmax^(1/7)))^7 with u ~ U(0, 1), σ ∈ [0.002, 700] (the continuous
    Karras schedule of SVD's EDM parameterisation), one σ for the whole clip; x_σ = x0 + σ·ε;
  * x0 = the clip's VAE latents × `--latent-scale` (default 0.13025, the scale of DiffSynth-Studio's SVD VAE
    encoder that the released training used, `SVDVAEEncoder.scaling_factor`; the condition frame's latent stays
    unscaled, as in both DiffSynth and ComfyUI). `--latent-scale 0.18215` is ComfyUI's SVD latent format, the
    units ComfyUI's samplers hand the model, and this trainer's earlier target: the released weights learned
    latents 1.40× smaller than that, so `--init` from the released file with 0.18215 retrains toward another
    target;
  * loss = sqrt(1 + σ²)/σ · mean((D(x_σ; σ) − 1.01·x0)²): the x0 prediction of ComfyUI's V_PREDICTION_EDM
    denoiser against the clip's latents × 1.01 (ExVideo's "contrast enhance" factor against grey videos);
  * AdamW (lr 1e-5, weight decay 0.01), batch 1, optional gradient checkpointing, fp32/bf16/fp16 autocast;
  * EMA over checkpoints: at every checkpoint (`--checkpoint-every` steps, ExVideo's "epoch"; and at the
    end) ema ← d·ema + (1 − d)·w with d = `--ema` (0.9), starting from the first checkpoint's weights.
    `--out` holds the EMA weights (the raw weights with `--ema 0`); the resume state holds both.

Resumable state (`--resume DIR`, default `<out>.state/`): `DIR/latest` names the newest
`DIR/step-NNNNNNN/` with weights.safetensors (raw, DiffSynth layout, fp32), ema.safetensors,
optimizer.pt (AdamW + GradScaler state; read with torch.load(weights_only=True)) and state.json (step and
clip counters, settings). Every file is written to a temporary name and renamed, so an interrupted run
leaves the previous checkpoint intact. All randomness of a clip (its choice, start frame, augmentation, σ,
noise) comes from a torch.Generator seeded with (--seed, the clip's place in the run), so a resumed run
draws the clips the uninterrupted one would have. Running the same command again with `--resume DIR`
continues up to `--steps`. `--steps 0` only writes the initial extension (the training-free ping-pong table
and identity Conv3d in the file layout), e.g. as a baseline.

Several GPUs (one process per GPU, started by torchrun on one machine or several):

    torchrun --nproc_per_node 8 -m training.exvideo_posttune --checkpoint svd_xt.safetensors --videos clips/ \
        --out my_exvideo.safetensors --grad-checkpointing
    torchrun --nnodes 2 --node_rank R --master_addr HOST --master_port 29500 --nproc_per_node 8 -m training.…

Each rank trains on its own clips (the run's clips k·N … k·N + N − 1 at step k go to the N = processes ×
`--grad-accumulation` slots in rank order), DistributedDataParallel averages the gradients of the trained
tensors, and rank 0 alone updates the EMA and writes the state and `--out` (atomically, as above); the other
ranks wait for it. One step on N processes equals one step of one process with `--grad-accumulation N` over
the same clips. A resume keeps the saved run's clips per step on whatever number of processes it is started
with (e.g. 8 GPUs → 2 GPUs with 4 accumulated clips each); `--grad-accumulation K` changes it on purpose.
`--shard-optimizer` splits the AdamW moments over the ranks (ZeroRedundancyOptimizer, ZeRO stage 1: 6.7 GB
/ N per GPU for SVD-XT); the state on disk is the whole AdamW state either way, so a sharded run resumes
unsharded and vice versa. Every rank reads the checkpoint, the videos and the resume state itself: on
several machines they must be on a filesystem all of them see. NCCL on GPUs, gloo on the CPU.
Why ZeRO stage 1 and not FSDP's SHARD_GRAD_OP (stage 2, which also shards the 3.3 GB of gradients): FSDP
flattens a wrapped module's parameters into one tensor of one dtype and swaps the module's parameters for
views into it, while this trainer mixes frozen bf16 weights with fp32 trained ones inside the same blocks and
keeps references to the trained tensors (the position tables and Conv3d live in hooks bound to them). The
optimizer moments are the largest per-GPU item (6.7 GB of ≈ 17 GB static), and ZeroRedundancyOptimizer
shards them without touching the model.

Memory plan for one 80 GB GPU (SVD-XT, 128 frames at 512² → latents 128×4×64×64; estimates, not a
measurement; per GPU the same under torchrun, except the AdamW moments with --shard-optimizer: 6.7 / N GB):
  * weights: the UNet has 1.52 B parameters; 833 M are trained (497 M retrained + 335 M Conv3d + 1.6 M
    tables). Frozen 1.03 B in bf16/fp16 = 2.1 GB (fp32 with `--precision fp32`: 4.1 GB). Trained weights
    are fp32 masters: 3.3 GB + grads 3.3 GB + AdamW moments 6.7 GB = 13.3 GB. CLIP-vision ViT-H (1.3 GB)
    and the VAE (0.2 GB) are only used under no_grad. The EMA copy (3.3 GB) lives in host RAM.
    Static total ≈ 17 GB.
  * activations: one level-1 feature map (320 ch × 64² × 128 frames) is 168 M values = 335 MB in bf16;
    level 2 (640 ch, 32²) 168 MB, level 3 (1280 ch, 16²) 84 MB. Inside a level-1 transformer the GEGLU
    hidden state is 128·4096 tokens × 2560 = 2.7 GB, and a SpatialVideoTransformer (spatial + temporal
    block + Conv3d) keeps ≈ 20 GB for its backward. Without checkpointing the whole UNet would keep
    ≈ 250 GB: it cannot fit. Attention goes through ComfyUI's attention function (on NVIDIA by default
    PyTorch SDPA, i.e. flash/memory-efficient kernels), so no T×T or (h·w)² score matrix is stored.
  * `--grad-checkpointing` wraps every SpatialVideoTransformer (the 16 temporal blocks with their spatial
    halves) and every VideoResBlock in torch.utils.checkpoint: only block inputs and the U-Net skips stay
    alive (≈ 8-10 GB), and the block being recomputed adds ≈ 20-25 GB at level 1.
  * `--precision bf16` (default; fp16 adds a GradScaler): matmuls/convs in half precision, norms and the
    loss in fp32, parameters and optimizer in fp32.
  * expected peak with bf16 + `--grad-checkpointing`: ≈ 45-55 GB, leaving headroom on 80 GB. Use both
    flags for 128 frames at 512²; short clips or small sizes fit without checkpointing.
  * host side: RAM for the checkpoint while it loads (5-10 GB for SVD-XT), the EMA (3.3 GB) and one
    decoded clip (128×512²×3 floats = 400 MB). Disk: a resume state is 13.3 GB (weights 3.3 + EMA 3.3 + AdamW 6.7),
    the newest two are kept; the output file is 1.67 GB in fp16.
"""
from __future__ import annotations

import argparse
import bisect
import collections
import contextlib
import functools
import importlib
import json
import math
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import torch.utils.checkpoint

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # `python training/exvideo_posttune.py` as well as `python -m training.exvideo_posttune`
    sys.path.insert(0, str(REPO))

from training import distributed  # noqa: E402

# recipe constants (ALGORITHMS.md §4.2)
SIGMA_MIN, SIGMA_MAX, KARRAS_RHO = 0.002, 700.0, 7.0
TARGET_SCALE = 1.01  # x0 target = latents × 1.01
# x0 = raw VAE latent × this: DiffSynth-Studio's SVD VAE encoder scale (diffsynth/models/svd_vae_encoder.py,
# SVDVAEEncoder.scaling_factor), the released ExVideo training's; ComfyUI's SVD latent format uses 0.18215.
RELEASED_LATENT_SCALE = 0.13025
COMFYUI_LATENT_SCALE = 0.18215
MOTION_FULL_STD = 0.44  # `--motion-mapping sqrt`: temporal pixel std (pixels in [-1, 1]) that maps to bucket 127
MOTION_MAX_BUCKET = 127
# The released training's motion buckets: bucket i holds temporal pixel stds in [MOTION_THRESHOLDS[i],
# MOTION_THRESHOLDS[i + 1]), the last one everything above. The figures are DiffSynth-Studio's
# (examples/ExVideo/ExVideo_svd_train.py, MotionBucketManager.thresholds, read 2026-12-02).
MOTION_THRESHOLDS = (
    0.000000000, 0.012205946, 0.015117834, 0.018080613, 0.020614484, 0.021959992, 0.024088068, 0.026323952,
    0.028277775, 0.029968588, 0.031836554, 0.033596724, 0.035121530, 0.037200287, 0.038914755, 0.040696491,
    0.042368013, 0.044265781, 0.046311017, 0.048243891, 0.050294187, 0.052142400, 0.053634230, 0.055612389,
    0.057594258, 0.059410289, 0.061283995, 0.063603796, 0.065192916, 0.067146860, 0.069066539, 0.070390493,
    0.072588451, 0.073959745, 0.075889029, 0.077695683, 0.079783581, 0.082162730, 0.084092639, 0.085958421,
    0.087700523, 0.089684933, 0.091688842, 0.093335517, 0.094987206, 0.096664011, 0.098314710, 0.100262381,
    0.101984538, 0.103404313, 0.105280340, 0.106974818, 0.109028399, 0.111164779, 0.113065213, 0.114362158,
    0.116407216, 0.118063427, 0.119524263, 0.121835820, 0.124242283, 0.126202747, 0.128989249, 0.131672353,
    0.133417681, 0.135567948, 0.137313649, 0.139189199, 0.140912935, 0.143525436, 0.145718485, 0.148315132,
    0.151039496, 0.153218940, 0.155252382, 0.157651082, 0.159966752, 0.162195817, 0.164811596, 0.167341709,
    0.170251891, 0.172651157, 0.175550997, 0.178372145, 0.181039348, 0.183565900, 0.186599866, 0.190071866,
    0.192574754, 0.195026234, 0.198099136, 0.200210452, 0.202522039, 0.205410406, 0.208610669, 0.211623028,
    0.214723110, 0.218520239, 0.222194016, 0.225363150, 0.229384825, 0.233422622, 0.237012610, 0.240735114,
    0.243622541, 0.247465774, 0.252190471, 0.257356376, 0.261856794, 0.266556412, 0.271076709, 0.277361482,
    0.281250387, 0.286582440, 0.291158527, 0.296712339, 0.303008437, 0.311793238, 0.318485111, 0.326999635,
    0.332138240, 0.341770738, 0.354188830, 0.365194678, 0.379234344, 0.401538879, 0.416078776, 0.440871328,
)
MOTION_MAPPINGS = ("table", "sqrt")

PYAV_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".flv", ".wmv"}
PIL_SUFFIXES = {".webp", ".gif", ".png", ".apng"}  # animated images: PIL reads their frames directly
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
STATE_FILES = ("weights.safetensors", "optimizer.pt", "state.json")
KEEP_STATES = 2


# --- command line ---------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training.exvideo_posttune",
        description="ExVideo post-tuning: retrain the 16 temporal blocks of an SVD checkpoint on a folder of "
                    "videos and write an extension file (DiffSynth layout) for the ExVideo Temporal Extend node.",
        epilog="Memory plan for one 80 GB GPU at 128 frames × 512²: --precision bf16 --grad-checkpointing "
               "(≈ 45-55 GB peak, see the module docstring).")
    p.add_argument("--checkpoint", required=True, type=Path,
                   help="SVD / SVD-XT checkpoint (.safetensors with UNet, VAE and CLIP vision, as ComfyUI's "
                        "ImageOnlyCheckpointLoader reads it)")
    p.add_argument("--videos", required=True, type=Path,
                   help="folder of training videos (searched recursively): mp4/mov/mkv/webm/avi… via PyAV, "
                        "animated webp/gif/png via PIL; videos shorter than --frames are skipped")
    p.add_argument("--out", required=True, type=Path, help="extension file to write (.safetensors)")
    p.add_argument("--frames", type=int, default=128, help="frames per training clip (default 128)")
    p.add_argument("--size", type=int, default=512, help="square training size in pixels, multiple of 64 (default 512)")
    p.add_argument("--init", type=Path, default=None,
                   help="existing extension file to start from (its table must hold ≥ --frames rows)")
    p.add_argument("--table-frames", type=int, default=None,
                   help="rows of a new position table (default: --frames); the node refuses longer videos")
    p.add_argument("--steps", type=int, default=1000,
                   help="total optimizer steps (a resumed run continues up to it); 0 writes the untrained "
                        "initial extension (ping-pong table, identity Conv3d)")
    p.add_argument("--lr", type=float, default=1e-5, help="AdamW learning rate (default 1e-5)")
    p.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay (default 0.01)")
    p.add_argument("--ema", type=float, default=0.9,
                   help="EMA decay over checkpoints (default 0.9); 0 writes the raw weights")
    p.add_argument("--checkpoint-every", type=int, default=500,
                   help="steps between checkpoints (resume state + --out + EMA update); 0: only at the end")
    p.add_argument("--resume", type=Path, default=None,
                   help="training-state folder: continued from if it holds a state, created otherwise "
                        "(default: <out>.state/)")
    p.add_argument("--precision", choices=sorted(PRECISIONS), default="bf16",
                   help="autocast precision (default bf16; fp16 uses a GradScaler; weights/optimizer stay fp32)")
    p.add_argument("--grad-checkpointing", action="store_true",
                   help="recompute every SpatialVideoTransformer and VideoResBlock in the backward pass "
                        "(needed for 128 frames at 512² on 80 GB)")
    p.add_argument("--device", default="auto", help="cuda, cuda:N, mps or cpu (default: cuda if available)")
    p.add_argument("--fps", type=int, default=30, help="fps conditioning (default 30)")
    p.add_argument("--augmentation", type=float, default=0.0,
                   help="noise augmentation of the condition frame, also passed as augmentation_level (default "
                        "0: the released training's clean first-frame latent; this script used 0.02 before, "
                        "ExVideo's inference setting)")
    p.add_argument("--motion-bucket", type=int, default=None,
                   help="fixed motion bucket id (default: from the clip's pixel std, see --motion-mapping)")
    p.add_argument("--motion-mapping", choices=MOTION_MAPPINGS, default="table",
                   help="pixel std → motion bucket. table (default): the released training's 128-entry "
                        "threshold table (std 0.03 → bucket 9). sqrt: this script's earlier rule, "
                        "round(127·sqrt(std/0.44)) (std 0.03 → 33), for continuing a run started with it")
    p.add_argument("--latent-scale", type=float, default=RELEASED_LATENT_SCALE,
                   help=f"x0 = VAE latent × this (default {RELEASED_LATENT_SCALE}, the released training's scale, "
                        f"DiffSynth's SVD VAE; {COMFYUI_LATENT_SCALE} = ComfyUI's SVD latent format, the units its "
                        f"samplers use, and this trainer's earlier target). Keep one scale for a whole run")
    p.add_argument("--grad-accumulation", type=int, default=None, metavar="K",
                   help="clips per rank and optimizer step (default 1; on --resume, whatever keeps the saved run's "
                        "clips per step at this number of processes). Clips per step = K × processes")
    p.add_argument("--shard-optimizer", action="store_true",
                   help="under torchrun: each rank keeps only its share of the AdamW moments "
                        "(torch.distributed.optim.ZeroRedundancyOptimizer, ZeRO stage 1; not with fp16)")
    p.add_argument("--save-dtype", choices=sorted(PRECISIONS), default="fp16",
                   help="dtype of the --out file (default fp16, like the released file)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data/noise generator (default 0)")
    p.add_argument("--comfyui", type=Path, default=None,
                   help="ComfyUI folder to import (default: $ZEROVIDEO_COMFYUI, the ComfyUI this pack is "
                        "installed in, or the pinned test host of scripts/host.py)")
    return p


def check_args(p: argparse.ArgumentParser, args) -> None:
    if args.frames < 1:
        p.error("--frames must be ≥ 1")
    if args.size < 64 or args.size % 64:
        p.error("--size must be a multiple of 64 (the SVD U-Net downsamples the 1/8 latent three times)")
    if args.table_frames is not None and args.table_frames < args.frames:
        p.error("--table-frames must be ≥ --frames")
    if not 0.0 <= args.ema < 1.0:
        p.error("--ema must be in [0, 1)")
    if args.steps < 0 or args.checkpoint_every < 0:
        p.error("--steps and --checkpoint-every must be ≥ 0")
    if args.out.suffix.lower() != ".safetensors":
        p.error("--out must be a .safetensors file")
    if args.grad_accumulation is not None and args.grad_accumulation < 1:
        p.error("--grad-accumulation must be ≥ 1")
    if args.shard_optimizer and args.precision == "fp16":
        p.error("--shard-optimizer works with --precision bf16 or fp32 (fp16's GradScaler is not combined with it)")
    if not 0.0 < args.latent_scale <= 10.0:
        p.error("--latent-scale must be in (0, 10] (0.13025 released, 0.18215 ComfyUI's SVD latent format)")
    if args.motion_bucket is not None and not 0 <= args.motion_bucket <= 1023:
        p.error("--motion-bucket must be in [0, 1023]")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"exvideo_posttune: error: --device {name}: CUDA is not available in this python")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def setup_comfy(comfyui: Path | None, device: torch.device) -> None:
    """Import ComfyUI (on `device`) and this pack as `zerovideo`."""
    from training import comfy_host
    if comfyui is not None:
        if not (comfyui / "comfy" / "model_base.py").is_file():
            raise SystemExit(f"exvideo_posttune: error: --comfyui {comfyui} is not a ComfyUI folder "
                             f"(no comfy/model_base.py)")
        folder = comfyui.resolve()
    else:
        folder = comfy_host.configured_comfyui()
        host = REPO.parent.parent  # installed as ComfyUI/custom_nodes/<pack>
        if folder is None and (host / "comfy" / "model_base.py").is_file() and (host / "folder_paths.py").is_file():
            folder = host
        if folder is None:
            try:  # a development clone: the pinned test host of scripts/host.py
                from scripts import host as dev_host
                folder = dev_host.comfyui_dir()
            except ImportError:
                raise SystemExit("exvideo_posttune: error: ComfyUI not found: run it from "
                                 "ComfyUI/custom_nodes/<pack>/, or give --comfyui DIR") from None
    os.environ["ZEROVIDEO_COMFYUI_DIR"] = str(folder)
    if device.type == "cuda":
        torch.cuda.set_device(device)  # comfy.model_management uses the current CUDA device
    comfy_host.import_comfy(folder, cpu=device.type == "cpu")
    comfy_host.import_pack()


def _pack(module: str):
    return importlib.import_module(f"zerovideo.{module}")


# --- videos ----------------------------------------------------------------------------------------------

def find_videos(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*")
                  if p.is_file() and p.suffix.lower() in PYAV_SUFFIXES | PIL_SUFFIXES)


def count_frames(path: Path) -> int:
    """Frame count from the container (PyAV) or the image (PIL); counts packets when the header has none."""
    if path.suffix.lower() in PIL_SUFFIXES:
        from PIL import Image
        with Image.open(path) as im:
            return int(getattr(im, "n_frames", 1))
    import av
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.frames:
            return int(stream.frames)
        return sum(1 for packet in container.demux(stream) if packet.size)


def square_resize(image, size: int):
    """Center crop to a square, resize to size² (bicubic, antialiased), RGB uint8 array (size, size, 3)."""
    import numpy as np
    from PIL import Image
    if not isinstance(image, Image.Image):
        image = Image.fromarray(image)
    image = image.convert("RGB")
    w, h = image.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    image = image.crop((left, top, left + s, top + s))
    if s != size:
        image = image.resize((size, size), Image.BICUBIC)
    return np.asarray(image, dtype=np.uint8)


class ShortVideo(ValueError):
    pass


def read_clip(path: Path, start: int, frames: int, size: int) -> torch.Tensor:
    """Frames [start, start + frames) of a video as uint8 (frames, size, size, 3)."""
    import numpy as np
    out = []
    if path.suffix.lower() in PIL_SUFFIXES:
        from PIL import Image, ImageSequence
        with Image.open(path) as im:
            for i, frame in enumerate(ImageSequence.Iterator(im)):
                if i >= start:
                    out.append(square_resize(frame, size))
                if len(out) == frames:
                    break
    else:
        import av
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            # decode from the beginning: exact frame indices without relying on keyframe seeking
            for i, frame in enumerate(container.decode(stream)):
                if i >= start:
                    out.append(square_resize(frame.to_ndarray(format="rgb24"), size))
                if len(out) == frames:
                    break
    if len(out) < frames:
        raise ShortVideo(f"{path}: only {len(out)} frames from frame {start}, {frames} needed")
    return torch.from_numpy(np.stack(out))


@dataclass
class Clip:
    path: Path
    start: int
    pixels: torch.Tensor  # float (T, size, size, 3) in [0, 1], ComfyUI's IMAGE layout


class VideoFolder:
    """Random T-frame clips from the videos of a folder that have at least T frames."""

    def __init__(self, folder: Path, frames: int, size: int, log=print):
        self.frames, self.size = frames, size
        files = find_videos(folder)
        if not files:
            raise ValueError(f"no videos in {folder} (looked for {', '.join(sorted(PYAV_SUFFIXES | PIL_SUFFIXES))})")
        self.videos: list[tuple[Path, int]] = []
        skipped = []
        for f in files:
            try:
                n = count_frames(f)
            except Exception as e:  # unreadable file: report and go on
                skipped.append(f"{f.name} ({type(e).__name__}: {e})")
                continue
            if n >= frames:
                self.videos.append((f, n))
            else:
                skipped.append(f"{f.name} ({n} frames)")
        if skipped:
            log(f"[exvideo_posttune] skipped {len(skipped)} of {len(files)} videos: {', '.join(skipped[:5])}"
                + (" …" if len(skipped) > 5 else ""))
        if not self.videos:
            raise ValueError(f"no video in {folder} has {frames} frames or more")

    def sample(self, gen: torch.Generator) -> Clip:
        for _ in range(10):  # a container may announce more frames than it decodes: draw again
            i = int(torch.randint(len(self.videos), (), generator=gen))
            path, n = self.videos[i]
            start = int(torch.randint(n - self.frames + 1, (), generator=gen))
            try:
                pixels = read_clip(path, start, self.frames, self.size)
            except ShortVideo:
                continue
            return Clip(path, start, pixels.float() / 255.0)
        raise RuntimeError("could not read a clip of the requested length in 10 tries")


# --- recipe pieces ---------------------------------------------------------------------------------------

def motion_score(pixels: torch.Tensor) -> float:
    """Mean over pixels and channels of the std over frames, pixels (T, H, W, C) in [0, 1] taken to [-1, 1]."""
    if pixels.shape[0] < 2:
        return 0.0
    return float((pixels.float() * 2 - 1).std(dim=0).mean())


def bucket_of_score(score: float, mapping: str = "table") -> int:
    """Motion bucket id of a motion score; see --motion-mapping."""
    if mapping == "table":
        return bisect.bisect_right(MOTION_THRESHOLDS, score) - 1 if score >= 0 else 0
    if mapping == "sqrt":
        return max(1, min(MOTION_MAX_BUCKET, round(MOTION_MAX_BUCKET * math.sqrt(min(score / MOTION_FULL_STD,
                                                                                         1.0)))))
    raise ValueError(f"unknown motion mapping {mapping!r}; choose one of {', '.join(MOTION_MAPPINGS)}")


def motion_bucket(pixels: torch.Tensor, mapping: str = "table") -> int:
    """Motion bucket id from the temporal pixel std (pixels (T, H, W, C) in [0, 1]); see the docstring."""
    return bucket_of_score(motion_score(pixels), mapping)


def karras_sigma(u: float) -> float:
    """σ at position u ∈ [0, 1] of the continuous Karras schedule from SIGMA_MAX (u=0) to SIGMA_MIN (u=1)."""
    hi, lo = SIGMA_MAX ** (1 / KARRAS_RHO), SIGMA_MIN ** (1 / KARRAS_RHO)
    return (hi + u * (lo - hi)) ** KARRAS_RHO


def loss_weight(sigma: float) -> float:
    return math.sqrt(1.0 + sigma * sigma) / sigma


# --- models ----------------------------------------------------------------------------------------------

@dataclass
class Models:
    model: object  # ModelPatcher of an SVD_img2vid
    vae: object  # comfy.sd.VAE
    clip_vision: object  # comfy.clip_vision.ClipVisionModel
    name: str = "SVD"


def load_models(checkpoint: Path, precision: str = "bf16") -> Models:
    """U-Net (frozen weights in the autocast dtype, fp32 for fp32), VAE and CLIP vision of an SVD checkpoint."""
    import comfy.model_base
    import comfy.sd
    checkpoint = Path(checkpoint)
    if checkpoint.suffix.lower() != ".safetensors":
        raise ValueError(f"{checkpoint}: use a .safetensors checkpoint (pickle files can run code when loaded)")
    if not checkpoint.is_file():
        raise ValueError(f"{checkpoint}: no such file")
    try:
        out = comfy.sd.load_checkpoint_guess_config(str(checkpoint), output_vae=True, output_clip=False,
                                                    output_clipvision=True,
                                                    model_options={"dtype": PRECISIONS[precision]})
    except RuntimeError as e:  # ComfyUI's "Could not detect model type", or an unreadable file
        raise ValueError(f"{checkpoint.name}: ComfyUI could not load it as a checkpoint: {str(e).strip()}") from None
    model, _, vae, clip_vision = out[:4]
    if not isinstance(model.model, comfy.model_base.SVD_img2vid):
        raise ValueError(f"{checkpoint.name} is a {type(model.model).__name__} checkpoint; ExVideo post-tuning "
                         f"needs Stable Video Diffusion (SVD / SVD-XT)")
    if vae is None or clip_vision is None:
        raise ValueError(f"{checkpoint.name} has no {'VAE' if vae is None else 'CLIP vision model'}; use the "
                         f"full SVD checkpoint (the one ImageOnlyCheckpointLoader loads)")
    return Models(model, vae, clip_vision, checkpoint.name)


def initial_extension(model_patcher, rows: int) -> dict[str, torch.Tensor]:
    """A fresh extension in the DiffSynth layout: the model's own temporal weights, the sinusoid at the
    ping-pong ids as position table and an identity Conv3d. At rows ≤ 25 frames it equals the stock model."""
    X = _pack("kernels.exvideo")
    sd = model_patcher.model.state_dict()
    ids = X.pingpong_ids(rows)
    out = {}
    for src, dst in X.exvideo_keymap().items():
        if dst is not None:
            out[src] = sd[dst].detach().float().cpu().clone()
    for n, path in X.BLOCK_MAP.items():
        c = sd[f"diffusion_model.{path}.time_pos_embed.0.weight"].shape[1]
        out[f"blocks.{n}.{X.TABLE}"] = X.sinusoid(ids, c)
        out[f"blocks.{n}.{X.CONV_WEIGHT}"] = X.identity_conv_weight(c)
        out[f"blocks.{n}.{X.CONV_BIAS}"] = torch.zeros(c)
    return out


class TrainableExtras(torch.nn.Module):
    """The new ExVideo tensors (position tables, Conv3d) as fp32 parameters, with ExVideoExtras' `get` API."""

    def __init__(self, new: dict[str, dict[str, torch.Tensor]]):
        super().__init__()
        self.paths = sorted(new)
        self.index = {p: i for i, p in enumerate(self.paths)}
        for i, path in enumerate(self.paths):
            t = new[path]
            self.register_parameter(f"table_{i}", torch.nn.Parameter(t["table"].float().clone()))
            self.register_parameter(f"conv_w_{i}", torch.nn.Parameter(t["conv_weight"].float().clone()))
            self.register_parameter(f"conv_b_{i}", torch.nn.Parameter(t["conv_bias"].float().clone()))

    def get(self, path: str, what: str) -> torch.Tensor:
        return getattr(self, f"{what}_{self.index[path]}")


_NEW_LEAVES = {"positional_embedding.embeddings": "table", "positional_conv.weight": "conv_w",
               "positional_conv.bias": "conv_b"}


def _checkpointed(module, *args, **kwargs):
    """module.forward recomputed in the backward pass (non-reentrant: kwargs and frozen inputs are fine)."""
    forward = type(module).forward
    if torch.is_grad_enabled():
        return torch.utils.checkpoint.checkpoint(forward, module, *args, use_reentrant=False, **kwargs)
    return forward(module, *args, **kwargs)


class _Denoiser(torch.nn.Module):
    """D(x; σ) of the SVD model as one module holding every trained parameter (what DistributedDataParallel
    wraps: its gradient hooks average exactly the trained tensors over the ranks)."""

    def __init__(self, model, extras: TrainableExtras, frames):
        super().__init__()
        self.model, self.extras, self.frames = model, extras, frames

    def forward(self, x, sigmas, c_concat, c_crossattn, y):
        t = x.shape[0]
        self.frames.frames = t
        return self.model.apply_model(x, sigmas, c_concat=c_concat, c_crossattn=c_crossattn, y=y,
                                      num_video_frames=t, transformer_options={})


def sample_generator(seed: int, index: int) -> torch.Generator:
    """The random source of the run's `index`-th clip (its choice, start frame, augmentation, σ and noise): a
    function of the seed and the clip's place in the run only, so any number of ranks, gradient accumulation
    or a resume draw the same clips."""
    return torch.Generator().manual_seed((seed * 0x9E3779B97F4A7C15 + index) % (1 << 63))


@dataclass
class Condition:
    latents: torch.Tensor  # (T, 4, h, w) x0: the VAE latents × the latent scale
    concat: torch.Tensor  # (1, 4, h, w) raw VAE latent of the noise-augmented first frame
    context: torch.Tensor  # (1, 1, D) CLIP-vision image embedding of the first frame
    y: torch.Tensor  # (1, 768) fps / motion bucket / augmentation embedding
    bucket: int


class PostTuner:
    """The SVD U-Net with ExVideo's extended temporal blocks in training form, plus AdamW.

    The loaded model is changed in place (the trained tensors become fp32 parameters, the position and
    Conv3d hooks are installed on its modules): it belongs to this tuner afterwards.
    """

    def __init__(self, models: Models, extension: dict[str, torch.Tensor], *, device="cpu", precision="fp32",
                 grad_checkpointing=False, lr=1e-5, weight_decay=0.01, fps=30, augmentation=0.0,
                 motion_bucket_id: int | None = None, motion_mapping: str = "table",
                 latent_scale: float = RELEASED_LATENT_SCALE, name="extension",
                 ranks: distributed.Ranks | None = None, shard_optimizer: bool = False):
        import comfy.ldm.modules.diffusionmodules.openaimodel as openaimodel
        import comfy.utils
        X = _pack("kernels.exvideo")
        node = _pack("nodes.exvideo")
        patching = _pack("nodes._patching")
        self.models = models
        self.device = torch.device(device)
        self.precision = precision
        self.autocast_dtype = PRECISIONS[precision]
        self.fps, self.augmentation, self.fixed_bucket = fps, augmentation, motion_bucket_id
        self.motion_mapping, self.latent_scale = motion_mapping, float(latent_scale)
        self.model = models.model.model  # the BaseModel; its diffusion_model is trained
        blocks = patching.require_svd(models.model, "ExVideo post-tuning")
        # the node's own checks: layout, completeness, channel sizes (raises with a message naming the file)
        node.apply_extension(models.model, extension, name)
        weights, new, _ = X.split_extension(extension)
        self.rows = X.detect_frames(extension)

        self.model.requires_grad_(False)
        self.model.to(self.device)
        self.extras = TrainableExtras(new).to(self.device)
        # every trainable tensor by its DiffSynth key, in the layout's order (the optimizer's order)
        self.params: dict[str, torch.nn.Parameter] = {}
        for src, dst in X.exvideo_keymap().items():
            if dst is None:
                n, leaf = src.split(".", 2)[1:]
                self.params[src] = self.extras.get(X.BLOCK_MAP[int(n)], _NEW_LEAVES[leaf])
                continue
            module_path, attr = dst.rsplit(".", 1)
            module = comfy.utils.get_attr(self.model, module_path)
            param = torch.nn.Parameter(weights[dst].detach().to(self.device, torch.float32).clone())
            setattr(module, attr, param)  # replaces the frozen tensor: fp32 master weight, requires_grad
            self.params[src] = param

        # the node's forward: position table in front of time_pos_embed, Conv3d in front of time_stack.0
        self.frames = patching.VideoFrames()
        for path, block in blocks:
            provider = functools.partial(node._table_provider, self.extras, path, self.rows)
            block.time_pos_embed.forward = functools.partial(patching._positions_forward, block.time_pos_embed,
                                                             provider, self.frames)
            block.time_stack[0].forward = functools.partial(node._conv_forward, block.time_stack[0], self.extras, path)
        if grad_checkpointing:
            for _, module in blocks:
                module.forward = functools.partial(_checkpointed, module)
            for module in self.model.diffusion_model.modules():
                if isinstance(module, openaimodel.VideoResBlock):
                    module.forward = functools.partial(_checkpointed, module)

        self.ranks = ranks or distributed.Ranks()
        self.net = _Denoiser(self.model, self.extras, self.frames)
        if self.ranks.active:  # gradients averaged over the ranks in the backward pass
            from torch.nn.parallel import DistributedDataParallel
            self.net = DistributedDataParallel(
                self.net, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                gradient_as_bucket_view=True)
        params = list(self.params.values())
        self.sharded = shard_optimizer and self.ranks.active
        if self.sharded:  # each rank holds the AdamW moments of its share of the parameters
            from torch.distributed.optim import ZeroRedundancyOptimizer
            self.optimizer = ZeroRedundancyOptimizer(params, optimizer_class=torch.optim.AdamW, lr=lr,
                                                     weight_decay=weight_decay)
        else:
            self.optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        self.scaler = torch.amp.GradScaler(self.device.type) if precision == "fp16" else None
        self._clip_cache: collections.OrderedDict = collections.OrderedDict()

    # -- conditioning ------------------------------------------------------------------------------------

    def _image_embedding(self, clip: Clip) -> torch.Tensor:
        """CLIP-vision embedding of the clip's first frame, cached: it has no random part."""
        key = (str(clip.path), clip.start)
        if key not in self._clip_cache:
            emb = self.models.clip_vision.encode_image(clip.pixels[:1]).image_embeds
            self._clip_cache[key] = emb.float().cpu()
            if len(self._clip_cache) > 256:
                self._clip_cache.popitem(last=False)
        return self._clip_cache[key].to(self.device)

    @torch.no_grad()
    def condition(self, clip: Clip, gen: torch.Generator) -> Condition:
        """SVD_img2vid_Conditioning's inputs for a clip, and the clip's latents as the x0 target."""
        vae, model = self.models.vae, self.model
        pixels = clip.pixels
        latents = (vae.encode(pixels).float() * self.latent_scale).to(self.device)
        first = pixels[:1]
        if self.augmentation > 0:
            first = first + torch.randn(first.shape, generator=gen) * self.augmentation
        concat = vae.encode(first).float().to(self.device)
        bucket = self.fixed_bucket if self.fixed_bucket is not None else motion_bucket(pixels, self.motion_mapping)
        y = model.encode_adm(fps=self.fps, motion_bucket_id=bucket, augmentation_level=self.augmentation)
        context = self._image_embedding(clip)[:, None]
        return Condition(latents, concat, context, y.float().to(self.device), bucket)

    # -- model -------------------------------------------------------------------------------------------

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.precision != "fp32")

    def denoise(self, x: torch.Tensor, sigma: float, cond: Condition) -> torch.Tensor:
        """D(x; σ): the x0 prediction of ComfyUI's SVD model (V_PREDICTION_EDM), batch = one video."""
        t = x.shape[0]
        sigmas = torch.full((t,), float(sigma), device=x.device)
        return self.net(x, sigmas, cond.concat.repeat(t, 1, 1, 1), cond.context.repeat(t, 1, 1), cond.y.repeat(t, 1))

    def loss(self, cond: Condition, sigma: float, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(weighted loss, plain MSE) of the clip's latents noised to σ with `noise`."""
        x = cond.latents + sigma * noise
        with self.autocast():
            denoised = self.denoise(x, sigma, cond)
        mse = F.mse_loss(denoised.float(), cond.latents * TARGET_SCALE)
        return mse * loss_weight(sigma), mse

    def train_step(self, samples) -> dict:
        """One optimizer step on this rank's clips: `samples` = [(clip, its generator), …]. The gradient is the
        mean over the clips of every rank (each clip's loss / its count here; DDP averages over the ranks).
        The returned loss and MSE are that mean too, the same on every rank."""
        n = len(samples)
        total, total_mse, sigma, bucket = 0.0, 0.0, 0.0, 0
        for i, (clip, gen) in enumerate(samples):
            cond = self.condition(clip, gen)
            s = karras_sigma(float(torch.rand((), generator=gen)))
            noise = torch.randn(cond.latents.shape, generator=gen).to(self.device)
            last = i == n - 1
            # DDP averages the gradients over the ranks in the last clip's backward pass only
            sync = contextlib.nullcontext() if last or not self.ranks.active else self.net.no_sync()
            with sync:
                loss, mse = self.loss(cond, s, noise)
                loss = loss / n
                (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
            total, total_mse = total + float(loss.detach()), total_mse + float(mse.detach()) / n
            if i == 0:
                sigma, bucket = s, cond.bucket
        skipped = False
        if self.scaler is not None:
            scale = self.scaler.get_scale()
            self.scaler.step(self.optimizer)  # skipped when the scaled fp16 gradients overflowed
            self.scaler.update()
            skipped = self.scaler.get_scale() < scale
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        total, total_mse = distributed.mean(self.ranks, [total, total_mse], self.device)
        return {"loss": total, "mse": total_mse, "sigma": sigma, "bucket": bucket, "skipped": skipped}

    def optimizer_state(self) -> dict | None:
        """The whole AdamW state (on rank 0; None on the others). With a sharded optimizer every rank must
        call this: the shares are gathered on rank 0."""
        if self.sharded:
            self.optimizer.consolidate_state_dict(to=0)
        return self.optimizer.state_dict() if self.ranks.main else None

    # -- state -------------------------------------------------------------------------------------------

    def extension_state_dict(self) -> dict[str, torch.Tensor]:
        """The trained tensors in the DiffSynth layout (528 keys), fp32 on the CPU."""
        return {k: p.detach().float().cpu().clone() for k, p in self.params.items()}

    @torch.no_grad()
    def load_extension_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        missing = [k for k in self.params if k not in sd]
        if missing:
            raise ValueError(f"training state lacks {len(missing)} tensors, e.g. {missing[:2]}")
        for k, p in self.params.items():
            if tuple(sd[k].shape) != tuple(p.shape):
                raise ValueError(f"training state: {k} is {list(sd[k].shape)}, the model needs {list(p.shape)}")
            p.copy_(sd[k])


# --- files -----------------------------------------------------------------------------------------------

def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def save_extension(sd: dict[str, torch.Tensor], path: Path, dtype: torch.dtype, metadata: dict) -> None:
    """Write an extension file atomically (temporary file in the same folder, fsync, rename)."""
    import safetensors.torch
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.tmp-*"):  # left by a run killed while writing
        stale.unlink(missing_ok=True)
    tmp = _tmp_name(path)
    try:
        safetensors.torch.save_file({k: v.to(dtype).contiguous() for k, v in sd.items()}, str(tmp),
                                    metadata={k: str(v) for k, v in metadata.items()})
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # an ordinary file for ComfyUI's models/ folder (safetensors writes 0600)
        _fsync(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = _tmp_name(path)
    tmp.write_text(text)
    _fsync(tmp)
    os.replace(tmp, path)


def save_state(state_dir: Path, step: int, weights: dict, optimizer: dict, scaler: dict | None, ema: dict | None,
               info: dict) -> Path:
    """Write step-NNNNNNN/ under a temporary name, rename it, then point `latest` at it; keep the newest two."""
    import safetensors.torch
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:07d}"
    for stale in state_dir.glob(".step-*.tmp-*"):  # left by a run killed while writing (one writer: rank 0)
        shutil.rmtree(stale, ignore_errors=True)
    tmp = state_dir / f".{name}.tmp-{os.getpid()}"
    tmp.mkdir()
    safetensors.torch.save_file(weights, str(tmp / "weights.safetensors"))
    if ema is not None:
        safetensors.torch.save_file({k: v.contiguous() for k, v in ema.items()}, str(tmp / "ema.safetensors"))
    torch.save({"optimizer": optimizer, "scaler": scaler}, tmp / "optimizer.pt")
    (tmp / "state.json").write_text(json.dumps(dict(info, step=step), indent=1) + "\n")
    for f in tmp.iterdir():
        _fsync(f)
    final = state_dir / name
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _write_text_atomic(state_dir / "latest", name + "\n")
    steps = sorted(d for d in state_dir.glob("step-*") if d.is_dir())
    for old in steps[:-KEEP_STATES]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_state(state_dir: Path) -> Path | None:
    pointer = Path(state_dir) / "latest"
    if not pointer.is_file():
        return None
    d = Path(state_dir) / pointer.read_text().strip()
    missing = [f for f in STATE_FILES if not (d / f).is_file()]
    if missing:
        raise ValueError(f"training state {d} is incomplete (missing {', '.join(missing)})")
    return d


def load_state(d: Path) -> dict:
    import safetensors.torch
    ema = safetensors.torch.load_file(str(d / "ema.safetensors")) if (d / "ema.safetensors").is_file() else None
    return {"weights": safetensors.torch.load_file(str(d / "weights.safetensors")),
            "ema": ema,
            "trainer": torch.load(d / "optimizer.pt", map_location="cpu", weights_only=True),
            "info": json.loads((d / "state.json").read_text())}


def _read_extension(path: Path) -> dict[str, torch.Tensor]:
    import safetensors.torch
    if Path(path).suffix.lower() != ".safetensors":
        raise ValueError(f"--init {path}: only .safetensors extension files are read")
    sd = safetensors.torch.load_file(str(path), device="cpu")
    if _pack("kernels.exvideo").detect_frames(sd) is None:
        raise ValueError(f"--init {path} is not an ExVideo extension file")
    return {k: v.float() for k, v in sd.items()}


# --- the run ---------------------------------------------------------------------------------------------

@dataclass
class Result:
    tuner: PostTuner
    step: int
    out: Path
    state_dir: Path


def _ema_update(ema: dict | None, weights: dict, decay: float) -> dict:
    if ema is None:
        return {k: v.clone() for k, v in weights.items()}
    for k, v in weights.items():
        ema[k].mul_(decay).add_(v, alpha=1.0 - decay)
    return ema


def run(args, models: Models | None = None, log=print, ranks: distributed.Ranks | None = None,
        device: str | None = None) -> Result:
    """Post-tune as the command line says. `models`: already-loaded models to use instead of --checkpoint;
    `ranks`/`device`: this process's place in a torchrun launch (main() joins the group)."""
    from tqdm import tqdm
    ranks = ranks or distributed.Ranks()
    if not ranks.main:
        log = _quiet
    device = resolve_device(device or args.device)
    if models is None:
        log(f"[exvideo_posttune] loading {args.checkpoint} …")
        models = load_models(args.checkpoint, args.precision)
    data = VideoFolder(args.videos, args.frames, args.size, log)
    state_dir = Path(args.resume) if args.resume else args.out.with_name(args.out.stem + ".state")
    found = latest_state(state_dir)
    # every rank reads the state itself: the folder must be one that all of them see
    distributed.same_everywhere(ranks, found.name if found else None,
                                f"the newest training state in {state_dir} (put --out/--resume on a filesystem "
                                f"every rank sees)")
    state = load_state(found) if found else None
    info = state["info"] if state is not None else {}
    if state is not None:
        extension = state["weights"]
        if args.init:
            log(f"[exvideo_posttune] resuming from {found}; --init is ignored")
        saved_scale = float(info.get("latent_scale", COMFYUI_LATENT_SCALE))  # states before the flag: ComfyUI's
        if not math.isclose(saved_scale, args.latent_scale, rel_tol=1e-6):
            raise ValueError(f"the training state {found} was trained with --latent-scale {saved_scale:g}; resume "
                             f"with the same (a run keeps one target scale) or start a new --resume folder")
    elif args.init:
        extension = _read_extension(args.init)
    else:
        extension = initial_extension(models.model, args.table_frames or args.frames)
    rows = _pack("kernels.exvideo").detect_frames(extension)
    if rows < args.frames:
        raise ValueError(f"the position table holds {rows} frames, fewer than --frames {args.frames}")

    # clips per optimizer step = processes × accumulation; a resume keeps the saved run's number
    saved_clips = int(info.get("clips_per_step", 1))
    accumulation = args.grad_accumulation
    if accumulation is None:
        accumulation = 1
        if state is not None:
            if saved_clips % ranks.world:
                raise ValueError(f"the training state {found} took {saved_clips} clips per step, which "
                                 f"{ranks.world} processes cannot share evenly: start {saved_clips} or a divisor "
                                 f"of it, or pass --grad-accumulation to change the clips per step")
            accumulation = saved_clips // ranks.world
    clips_per_step = accumulation * ranks.world
    if state is not None and clips_per_step != saved_clips:
        log(f"[exvideo_posttune] clips per step change from {saved_clips} to {clips_per_step} "
            f"({ranks.world} processes × --grad-accumulation {accumulation})")

    tuner = PostTuner(models, extension, device=device, precision=args.precision,
                      grad_checkpointing=args.grad_checkpointing, lr=args.lr, weight_decay=args.weight_decay,
                      fps=args.fps, augmentation=args.augmentation, motion_bucket_id=args.motion_bucket,
                      motion_mapping=args.motion_mapping, latent_scale=args.latent_scale,
                      name=str(found or args.init or "the initial extension"), ranks=ranks,
                      shard_optimizer=args.shard_optimizer)
    step, done, ema, ema_updates = 0, 0, None, 0
    if state is not None:
        trainer = state["trainer"]
        tuner.optimizer.load_state_dict(trainer["optimizer"])  # sharded: each rank keeps its share
        for group in tuner.optimizer.param_groups:  # the command line's values win over the saved ones
            group["lr"], group["weight_decay"] = args.lr, args.weight_decay
        if tuner.scaler is not None and trainer.get("scaler"):
            tuner.scaler.load_state_dict(trainer["scaler"])
        step = int(info["step"])
        done = int(info.get("clips", step))  # states before several processes: one clip per step
        ema, ema_updates = state["ema"], int(info.get("ema_updates", 0))
        log(f"[exvideo_posttune] resumed at step {step} from {found}")
    if ranks.active:
        log(f"[exvideo_posttune] {ranks.world} processes × {accumulation} clip(s) per step"
            + (", AdamW state sharded" if tuner.sharded else ""))

    def export(weights: dict) -> None:
        """--out: the EMA weights (the raw ones with --ema 0 or before the first EMA update)."""
        use_ema = args.ema > 0 and ema is not None
        metadata = {"format": "ExVideo extension (DiffSynth layout)", "tool": "ZeroVideo exvideo_posttune",
                    "base_model": models.name, "frames": rows, "train_frames": args.frames, "size": args.size,
                    "steps": step, "ema": args.ema if use_ema else "off", "ema_updates": ema_updates,
                    "latent_scale": args.latent_scale}
        save_extension(ema if use_ema else weights, args.out, PRECISIONS[args.save_dtype], metadata)

    def checkpoint() -> None:
        """Every rank calls it (a sharded AdamW state is gathered); rank 0 alone updates the EMA and writes."""
        nonlocal ema, ema_updates
        optimizer = tuner.optimizer_state()
        if ranks.main:
            weights = tuner.extension_state_dict()
            if args.ema > 0:
                ema = _ema_update(ema, weights, args.ema)
                ema_updates += 1
            saved = {"checkpoint": str(Path(args.checkpoint).resolve()), "base": models.name, "frames": args.frames,
                     "table_frames": rows, "size": args.size, "lr": args.lr, "ema": args.ema,
                     "ema_updates": ema_updates, "precision": args.precision, "seed": args.seed,
                     "steps": args.steps, "motion_mapping": args.motion_mapping, "augmentation": args.augmentation,
                     "latent_scale": args.latent_scale, "clips": done, "clips_per_step": clips_per_step,
                     "processes": ranks.world, "grad_accumulation": accumulation}
            save_state(state_dir, step, weights, optimizer,
                       tuner.scaler.state_dict() if tuner.scaler is not None else None,
                       ema if args.ema > 0 else None, saved)
            export(weights)
        distributed.barrier(ranks)  # nobody goes on (or ends) before the files are in place

    bar = tqdm(total=args.steps, initial=min(step, args.steps), desc="ExVideo post-tuning", unit="step",
               dynamic_ncols=True, disable=not ranks.main)
    try:
        while step < args.steps:
            first = done + ranks.rank * accumulation  # this rank's clips of the step, by their place in the run
            samples = []
            for index in range(first, first + accumulation):
                g = sample_generator(args.seed, index)
                samples.append((data.sample(g), g))
            stats = tuner.train_step(samples)
            if not math.isfinite(stats["loss"]) and not stats["skipped"]:  # fp16: the GradScaler skipped it
                raise FloatingPointError(f"step {step + 1}: loss is {stats['loss']} (σ = {stats['sigma']:.4g}); "
                                         f"the last checkpoint in {state_dir} is intact")
            step, done = step + 1, done + clips_per_step
            bar.update(1)
            bar.set_postfix(loss=f"{stats['loss']:.4g}", sigma=f"{stats['sigma']:.3g}", bucket=stats["bucket"],
                            **({"fp16": "overflow, step skipped"} if stats["skipped"] else {}))
            if (args.checkpoint_every and step % args.checkpoint_every == 0) or step == args.steps:
                checkpoint()
    finally:
        bar.close()
    if not distributed.from_main(ranks, args.out.is_file()):  # --steps 0, or resumed at a step ≥ --steps
        if state is None:
            checkpoint()
        else:  # the state of this step exists already: export it without another EMA update
            if ranks.main:
                export(tuner.extension_state_dict())
            distributed.barrier(ranks)
    log(f"[exvideo_posttune] step {step} of {args.steps}: extension {args.out}, training state {state_dir}")
    return Result(tuner, step, args.out, state_dir)


def _quiet(*_args, **_kwargs) -> None:
    pass


def main(argv=None, models: Models | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    ranks, device = distributed.start(args.device, "exvideo_posttune")
    try:
        if models is None:
            setup_comfy(args.comfyui, resolve_device(device))
        try:
            run(args, models, ranks=ranks, device=device)
        except (ValueError, FloatingPointError) as e:
            print(f"exvideo_posttune: error{f' (rank {ranks.rank})' if ranks.active else ''}: {e}", file=sys.stderr)
            return 2
    finally:
        distributed.stop(ranks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
