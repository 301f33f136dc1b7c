"""ExVideo post-tuning on several processes: the real torchrun launcher, a gloo process group on the CPU,
DistributedDataParallel and ZeroRedundancyOptimizer, on the tiny SVD (scripts/tiny_posttune.py).

Acceptance of issue 15 item 2: 2 ranks × 1 clip per step give the weights of 1 process accumulating the same
2 clips per step; a 2-rank run stopped at a checkpoint resumes on 1 and on 2 processes to the uninterrupted
run's weights and EMA; the AdamW state can be sharded and still resumes unsharded.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
WORKER = REPO / "scripts" / "tiny_posttune.py"
FRAMES, SIZE, STEPS = 8, 64, 3


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    from scripts.run_workflow import write_sample_video
    d = tmp_path_factory.mktemp("dist-videos")
    write_sample_video(d / "a.webp", frames=FRAMES, size=SIZE)
    write_sample_video(d / "b.webp", frames=FRAMES + 3, size=SIZE)
    return d


def trainer_args(videos, out: Path, *extra) -> list[str]:
    """The worker's command line: the trainer's arguments on the tiny models, a checkpoint at every step."""
    return [str(WORKER), "--checkpoint", "in-memory.safetensors", "--videos", str(videos), "--out", str(out),
            "--frames", str(FRAMES), "--size", str(SIZE), "--device", "cpu", "--precision", "fp32", "--seed", "7",
            "--checkpoint-every", "1", *extra]


def launch_env() -> dict:
    """One thread per rank, gloo on the loopback interface, this repository importable."""
    return dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo", PYTHONPATH=os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))


def train(videos, out: Path, processes: int, *extra) -> subprocess.CompletedProcess:
    """The trainer on `processes` ranks (torchrun --standalone) or as one plain process."""
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
                if processes > 1 else [sys.executable])
    r = subprocess.run([*launcher, *trainer_args(videos, out, *extra)], capture_output=True, text=True,
                       timeout=600, env=launch_env(), cwd=str(out.parent), stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-6000:]
    return r


def state(out: Path, step: int) -> dict:
    import safetensors.torch
    d = out.with_name(out.stem + ".state") / f"step-{step:07d}"
    return {"weights": safetensors.torch.load_file(str(d / "weights.safetensors")),
            "ema": safetensors.torch.load_file(str(d / "ema.safetensors")),
            "info": json.loads((d / "state.json").read_text())}


def assert_same_training(a: dict, b: dict, before: dict) -> None:
    """Weights and EMA within 1e-5 of each tensor's scale, and the step's update itself (weights − weights
    before) within 1e-3 of the update's scale: a gradient from other clips moves AdamW's first steps by ±lr."""
    for what in ("weights", "ema"):
        for k, x in a[what].items():
            y = b[what][k]
            assert float((x - y).abs().max()) <= 1e-5 * max(float(x.abs().max()), 1e-12), (what, k)
    for k, x in a["weights"].items():
        da, db = x - before[k], b["weights"][k] - before[k]
        assert float((da - db).abs().max()) <= 1e-3 * max(float(da.abs().max()), 1e-12), k


def kill_after_first_checkpoint(videos, out: Path, *extra) -> str:
    """Start a long 2-rank run, SIGKILL the launcher and both ranks as soon as a checkpoint exists: the run
    stops wherever it is (maybe while writing the next one)."""
    latest = out.with_name(out.stem + ".state") / "latest"
    proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             *trainer_args(videos, out, "--steps", "50", *extra)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=launch_env(), cwd=str(out.parent),
                            stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    try:
        while not latest.is_file():
            assert proc.poll() is None, f"the run ended before its first checkpoint: {proc.stderr.read()[-4000:]}"
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    return latest.read_text().strip()


@pytest.fixture(scope="module")
def runs(videos, tmp_path_factory):
    """The runs all tests compare (each a real launch): 1 process accumulating 2 clips per step; 2 ranks; 2 ranks
    with a sharded AdamW killed after a checkpoint, then resumed on 1 process and on 2 sharded ranks."""
    root = tmp_path_factory.mktemp("dist-runs")
    out = {name: root / name / "ext.safetensors" for name in ("accumulate", "ranks", "killed", "on1", "on2")}
    for p in out.values():
        p.parent.mkdir()
    logs = {"accumulate": train(videos, out["accumulate"], 1, "--steps", str(STEPS), "--grad-accumulation", "2"),
            "ranks": train(videos, out["ranks"], 2, "--steps", str(STEPS))}
    logs["killed at"] = kill_after_first_checkpoint(videos, out["killed"], "--shard-optimizer")
    for name in ("on1", "on2"):
        shutil.copytree(out["killed"].with_name("ext.state"), out[name].with_name("ext.state"))
    logs["on1"] = train(videos, out["on1"], 1, "--steps", str(STEPS))
    logs["on2"] = train(videos, out["on2"], 2, "--steps", str(STEPS), "--shard-optimizer")
    return out, logs


def worker_models(comfy):
    """The worker's tiny models, built in this process."""
    from scripts import tiny_posttune
    return tiny_posttune.tiny_models_for_training()


@pytest.fixture(scope="module")
def initial(comfy, pack):
    """The untrained extension every run starts from, rebuilt from the tiny SVD the worker uses."""
    from training import exvideo_posttune
    return exvideo_posttune.initial_extension(worker_models(comfy).model, FRAMES)


def test_two_ranks_equal_one_process_accumulating_their_clips(runs, initial):
    out, logs = runs
    one, two = state(out["accumulate"], STEPS), state(out["ranks"], STEPS)
    assert_same_training(one, two, initial)
    assert one["info"]["clips"] == two["info"]["clips"] == 2 * STEPS
    assert (one["info"]["processes"], one["info"]["grad_accumulation"]) == (1, 2)
    assert (two["info"]["processes"], two["info"]["grad_accumulation"]) == (2, 1)
    assert "2 processes × 1 clip(s) per step" in logs["ranks"].stdout


def test_the_comparison_tells_one_clip_from_two(runs, initial, comfy, videos, tmp_path):
    """The check above fails for steps on one clip instead of two: had both ranks drawn the same clip, or had one
    rank's gradient not reached the other, it would have said so."""
    from training import exvideo_posttune as pt
    out = tmp_path / "ext.safetensors"
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        args = trainer_args(videos, out, "--steps", str(STEPS))[1:]  # the same run, in this process
        pt.run(pt.build_parser().parse_args(args), worker_models(comfy), log=lambda m: None)
    finally:
        torch.set_num_threads(torch_threads)
    with pytest.raises(AssertionError):
        assert_same_training(state(out, STEPS), state(runs[0]["ranks"], STEPS), initial)


def test_a_killed_run_resumes_on_one_and_on_two_processes(runs, initial):
    """Killed (SIGKILL) after a checkpoint, wherever it then was; resumed on 1 process (accumulating the saved 2
    clips per step) and on 2 sharded ranks: both end at the uninterrupted run's weights and EMA."""
    out, logs = runs
    killed_at = int(logs["killed at"].split("-")[1])
    assert 1 <= killed_at < STEPS, logs["killed at"]
    uninterrupted = state(out["ranks"], STEPS)
    for name in ("on1", "on2"):
        resumed = state(out[name], STEPS)
        assert_same_training(resumed, uninterrupted, initial)
        assert resumed["info"]["clips_per_step"] == 2 and resumed["info"]["clips"] == 2 * STEPS
        assert f"resumed at step {killed_at}" in logs[name].stdout
        # what the kill left half-written is gone once the resumed run writes
        assert not [p.name for p in out[name].parent.rglob(".*tmp*")]
    assert state(out["on1"], STEPS)["info"]["grad_accumulation"] == 2
    assert "AdamW state sharded" in logs["on2"].stdout


def test_a_sharded_adamw_trains_as_the_whole_one(runs, initial):
    out, logs = runs
    assert_same_training(state(out["on2"], STEPS), state(out["accumulate"], STEPS), initial)


def test_rank_zero_alone_writes_and_leaves_no_temporary_files(runs):
    out, logs = runs
    folder = out["ranks"].parent
    assert sorted(p.name for p in folder.iterdir()) == ["ext.safetensors", "ext.state"]
    assert sorted(p.name for p in out["ranks"].with_name("ext.state").iterdir()) == [
        "latest", f"step-{STEPS - 1:07d}", f"step-{STEPS:07d}"]
    assert logs["ranks"].stdout.count(f"[exvideo_posttune] step {STEPS} of {STEPS}") == 1  # one rank reports


def test_two_nodes_of_one_process_each_train_as_two_ranks(runs, initial, videos, tmp_path):
    """Multi-node torchrun (static rendezvous at a master address, one launcher per node), both "nodes" on this
    machine: ranks 0 and 1 with LOCAL_RANK 0 each end at the weights of the 2-rank run on one node."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ext.safetensors"
    nodes = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank", str(n),
                               "--nproc_per_node", "1", "--master_addr", "127.0.0.1", "--master_port", str(port),
                               *trainer_args(videos, out, "--steps", str(STEPS))], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=launch_env(), cwd=str(tmp_path),
                              stdin=subprocess.DEVNULL) for n in (0, 1)]
    outputs = [p.communicate(timeout=600) for p in nodes]
    assert [p.returncode for p in nodes] == [0, 0], [o[1][-3000:] for o in outputs]
    assert "2 processes × 1 clip(s) per step" in outputs[0][0] and "processes" not in outputs[1][0]
    assert_same_training(state(out, STEPS), state(runs[0]["ranks"], STEPS), initial)
