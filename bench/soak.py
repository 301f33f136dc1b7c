"""Soak: 50 consecutive prompts mixing every technique on one headless server; the server's RSS growth after
warm-up (goal < 5%). Seeds change every prompt so nothing is served from the cache."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.common import save_table

MIX = [  # (workflow, --set overrides that keep a CPU run short)
    ("t2vz_text_to_video", ["EmptyLatentImage.batch_size=3"]),
    ("zs2_text_to_video", ["EmptyLatentImage.batch_size=3"]),
    ("t2vz_controlnet_video", ["EmptyLatentImage.batch_size=8", "BasicScheduler.steps=2"]),
    ("zerosmooth_svd_x2", ["ZeroVideo.SelfCascadeInterpolate.key_frames=2", "BasicScheduler.steps=2"]),
    ("exvideo_svd_128_frames", ["SVD_img2vid_Conditioning.video_frames=4", "KSampler.steps=1"]),
]
SEED_INPUTS = {"RandomNoise": "noise_seed", "KSampler": "seed", "ZeroVideo.DependencyNoise": "seed"}


def run(device: str = "cpu", full: bool = False, repeats: int = 50):
    import psutil

    from scripts import run_workflow, tiny_models
    from scripts.comfy_server import default_server
    from scripts.workflow import apply_sets, load
    tiny_models.ensure_checkpoints(tiny_models.default_folder())
    repo = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="zv-soak-") as tmp, default_server(Path(tmp)) as server:
        client = server.client()
        with tempfile.TemporaryDirectory() as d:
            from scripts.make_workflows import INPUT_CLIP
            client.upload(run_workflow.write_sample_clip(Path(d) / INPUT_CLIP), INPUT_CLIP)
        info = client.object_info()
        prompts = []
        for wf, sets in MIX:
            api = load(repo / "workflows" / "api" / f"{wf}.json")
            run_workflow.substitute_tiny(api, info)
            prompts.append((wf, apply_sets(api, sets)))
        proc = psutil.Process(server.proc.pid)
        rss, t0 = [], time.monotonic()
        for i in range(repeats):
            wf, prompt = prompts[i % len(prompts)]
            for node in prompt.values():
                if node["class_type"] in SEED_INPUTS:
                    node["inputs"][SEED_INPUTS[node["class_type"]]] = 1000 + i
            client.run(prompt)
            rss.append(proc.memory_info().rss)
        warm = rss[len(MIX) * 2 - 1]  # after every workflow ran twice
        growth = rss[-1] / warm - 1
    print(f"\n== soak: {repeats} prompts over {len(MIX)} workflows in {time.monotonic() - t0:.0f}s ==")
    print(f"server RSS after warm-up {warm / 2**20:.0f} MiB, at the end {rss[-1] / 2**20:.0f} MiB: "
          f"growth {growth:+.1%} (goal < 5%)")
    save_table("soak", device, {"prompts": repeats, "rss_bytes": rss, "warm_rss": warm, "growth": growth},
               {"workflows": [w for w, _ in MIX]})
    return growth
