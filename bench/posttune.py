"""ExVideo post-tuning: seconds per optimizer step of the trainer on the tiny SVD (8 frames at 64², fp32, one
CPU thread per process), as one process and as torchrun ranks (gloo), with and without a sharded AdamW.

Each variant runs the real command line (scripts/tiny_posttune.py: the trainer's main() on the tiny models) twice,
for FEW and MANY steps; time per step = (wall time of MANY − wall time of FEW) / (MANY − FEW), so process start,
model building and the final files cancel out. Clips per step: processes × --grad-accumulation.
The tiny model measures the trainer's own overhead (data, conditioning, DDP, checkpoint gathering), not the cost
of the full SVD-XT U-Net, whose step is dominated by the 128-frame forward/backward (README's memory plan).
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import save_table

REPO = Path(__file__).resolve().parent.parent
FEW, MANY = 2, 8
VARIANTS = {  # name: (processes, extra arguments)
    "1 process, 1 clip/step": (1, []),
    "1 process, 2 clips/step (accumulation)": (1, ["--grad-accumulation", "2"]),
    "2 ranks, 1 clip each": (2, []),
    "2 ranks, 1 clip each, sharded AdamW": (2, ["--shard-optimizer"]),
}


def _videos(folder: Path) -> Path:
    from scripts.run_workflow import write_sample_video
    folder.mkdir()
    write_sample_video(folder / "a.webp", frames=8, size=64)
    write_sample_video(folder / "b.webp", frames=11, size=64)
    return folder


def _wall(videos: Path, out: Path, processes: int, steps: int, extra: list[str]) -> float:
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
                if processes > 1 else [sys.executable])
    args = ["--checkpoint", "in-memory.safetensors", "--videos", str(videos), "--out", str(out), "--frames", "8",
            "--size", "64", "--device", "cpu", "--precision", "fp32", "--steps", str(steps),
            "--checkpoint-every", "0", *extra]
    env = dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo")
    t = time.perf_counter()
    r = subprocess.run([*launcher, str(REPO / "scripts" / "tiny_posttune.py"), *args], capture_output=True,
                       text=True, env=env, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    if r.returncode:
        raise SystemExit(f"bench posttune: the trainer failed:\n{r.stderr[-4000:]}")
    return wall


def run(device: str = "cpu", full: bool = False, repeats: int = 1):
    if device != "cpu" or full:
        print("bench posttune: tiny model on the CPU only (the full-size step needs a GPU and real clips)")
    rows, load = {}, os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as d:
        videos = _videos(Path(d) / "videos")
        for v, (name, (processes, extra)) in enumerate(VARIANTS.items()):
            per_step = []
            for r in range(repeats):
                few = _wall(videos, Path(d) / f"{v}-few{r}" / "ext.safetensors", processes, FEW, extra)
                many = _wall(videos, Path(d) / f"{v}-many{r}" / "ext.safetensors", processes, MANY, extra)
                per_step.append((many - few) / (MANY - FEW))
            per_step.sort()
            s = per_step[len(per_step) // 2]
            clips = processes * (2 if "--grad-accumulation" in extra else 1)
            rows[name] = {"processes": processes, "clips_per_step": clips, "s_per_step": round(s, 3),
                          "s_per_clip": round(s / clips, 3)}
    base = rows["1 process, 1 clip/step"]["s_per_clip"]
    print("\nvariant                                   s/step   s/clip   clip time ×")
    for name, r in rows.items():
        r["clip_time_ratio"] = round(r["s_per_clip"] / base, 3)
        print(f"{name:<40} {r['s_per_step']:7.3f}  {r['s_per_clip']:7.3f}   {r['clip_time_ratio']:.2f}")
    save_table("posttune_step_tiny", "cpu", rows,
               {"model": "tiny SVD (64 channels, 16 temporal blocks), 8 frames at 64², fp32, 1 thread per process",
                "method": f"(wall({MANY} steps) - wall({FEW} steps)) / {MANY - FEW}, real command line",
                "cpus": os.cpu_count(), "load_average_at_start": round(load, 2)})
    return rows
