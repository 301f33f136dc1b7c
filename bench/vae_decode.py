"""Decoding long SVD clips: peak memory of the whole clip at once vs VAE Decode (Temporal Tiles), full-size SVD VAE.

Cases (issue 12): 128 frames at 512² and 25 frames at 576×1024; tiles of 16 frames sharing 4 (the node's
defaults) and of 8 sharing 2. "Whole clip" is one decode call over every frame: what core VAE Decode does when
ComfyUI's estimate says the clip fits (it splits the clip into separately decoded pieces otherwise, see notes).

On CUDA: real decodes in bf16, `torch.cuda.max_memory_allocated`, and the time of each. On a CPU, where one
128-frame decode at 512² would take about an hour, the same ComfyUI model runs on PyTorch's meta device (shapes
only, no arithmetic) and the peak is that of the bytes of live tensors, counted op by op (`LiveBytes`); a check
at 8 frames, 128² runs the real decode on the CPU and compares that count with the profiler's allocation peak
(`bench.common._peak`). Both count tensors the model allocates; the decoded frames that ComfyUI moves to its
intermediate device (the CPU) are not counted in either variant.
"""
from __future__ import annotations

import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from bench.common import _peak, save_table
from scripts.comfy_env import import_comfy, import_pack

CASES = [(128, 512, 512), (25, 576, 1024)]
TILES = [(16, 4), (8, 2)]
CHECK = (8, 128, 128, (4, 2))


class LiveBytes(TorchDispatchMode):
    """Peak of the bytes held by live tensor storages while `counting`; a storage counts from the op that
    creates it until it is freed (views and in-place results share their input's storage and do not count)."""

    def __init__(self):
        super().__init__()
        self.live = self.peak = 0
        self.counting = True
        self._held: dict[int, weakref.finalize] = {}

    def _free(self, key: int, nbytes: int) -> None:
        self.live -= nbytes
        self._held.pop(key, None)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if self.counting:
            for t in tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor):
                    storage = t.untyped_storage()
                    key = id(storage)
                    if key not in self._held:
                        n = storage.nbytes()
                        self._held[key] = weakref.finalize(storage, self._free, key, n)
                        self.live += n
                        self.peak = max(self.peak, self.live)
        return out


def _model(device: str, dtype):
    """ComfyUI's SVD VAE model on `device` (meta: shapes only) with the attention CUDA hosts use (SDPA)."""
    import_comfy()
    from scripts import tiny_models
    vae = tiny_models.empty_svd_vae() if device == "meta" else tiny_models.svd_vae(0)
    model = vae.first_stage_model.to(device=device, dtype=dtype).eval()
    if device == "meta":  # ComfyUI picks slice attention on a CPU host; it queries memory stats a meta run lacks
        import comfy.ldm.modules.diffusionmodules.model as M
        for m in model.modules():
            if hasattr(m, "optimized_attention"):
                m.optimized_attention = M.pytorch_attention
    return vae, model


def _decoders(model, z, device: str, tile: tuple[int, int] | None, counter: LiveBytes | None):
    """A closure decoding latent `z` whole (tile None) or in temporal tiles, as the node does."""
    import_pack()
    from zerovideo.kernels import tiles as T
    frames = z.shape[0]
    keep = "meta" if device == "meta" else "cpu"

    def piece(start, end):
        if counter is not None:
            counter.counting = True
        x = model.decode(z[start:end].to(device)).to(keep)
        if counter is not None:
            counter.counting = False  # the blend on the intermediate device is not the decoder's memory
        return x

    def run():
        with torch.inference_mode():
            if tile is None:
                return piece(0, frames)
            return T.blend_tiles(frames, T.temporal_tiles(frames, *tile), piece)
    return run


def meta_peak(model, frames, h, w, dtype, tile) -> int:
    z = torch.zeros(frames, 4, h // 8, w // 8, device="meta", dtype=dtype)
    counter = LiveBytes()
    with counter:
        _decoders(model, z, "meta", tile, counter)()
    return counter.peak


def run(device: str = "cpu", full: bool = True, repeats: int = 1):
    import time

    import_pack()
    from zerovideo.kernels import tiles as T
    rows, notes = {}, {}
    if device.startswith("cuda"):
        dtype = torch.bfloat16
        vae, model = _model(device, dtype)
        for frames, h, w in CASES:
            z = torch.randn(frames, 4, h // 8, w // 8, generator=torch.Generator().manual_seed(0)).to(dtype)
            measured = {}
            for tile in [None, *TILES]:
                fn = _decoders(model, z, device, tile, None)
                t0 = time.perf_counter()
                fn()
                torch.cuda.synchronize()
                measured[tile] = {"peak_bytes": _peak(fn, device), "seconds": time.perf_counter() - t0}
            rows[f"{frames}f_{w}x{h}"] = _row(frames, measured, T)
        notes["measured"] = "torch.cuda.max_memory_allocated, bf16, real decodes"
    else:
        dtype = torch.bfloat16  # what ComfyUI decodes SVD in on current NVIDIA GPUs; halves fp32's bytes
        vae, model = _model("meta", dtype)
        for frames, h, w in CASES:
            measured = {tile: {"peak_bytes": meta_peak(model, frames, h, w, dtype, tile)} for tile in [None, *TILES]}
            rows[f"{frames}f_{w}x{h}"] = _row(frames, measured, T)
        notes["measured"] = ("bytes of live tensors on PyTorch's meta device (shapes of the real ComfyUI model, no "
                             "arithmetic), bf16; time not measured on a CPU (the compute ratio is frames decoded)")
        # the count against real allocations: the same decode on real CPU tensors, float32
        f, h, w, tile = CHECK
        _, cpu_model = _model("cpu", torch.float32)
        _, meta_model = _model("meta", torch.float32)
        z = torch.randn(f, 4, h // 8, w // 8, generator=torch.Generator().manual_seed(0))
        check = {}
        for t in (None, tile):
            real = _peak(_decoders(cpu_model, z, "cpu", t, None), "cpu")
            check[_label(t)] = {"profiler_peak_bytes_cpu": real,
                                "live_bytes_meta": meta_peak(meta_model, f, h, w, torch.float32, t)}
        notes["check_meta_count_vs_cpu_profiler"] = {"case": f"{f}f_{w}x{h} float32", **check}
    # what core VAE Decode does instead: pieces of int(free / estimate) frames, each decoded as its own video
    est = {}
    for frames, h, w in CASES:
        per_frame = vae.memory_used_decode((frames, 4, h // 8, w // 8), torch.bfloat16)
        est[f"{frames}f_{w}x{h}"] = {"comfyui_estimate_bytes_per_frame": per_frame,
                                     **{f"frames_per_piece_with_{g}GiB_free": max(1, int(g * 2**30 / per_frame))
                                        for g in (10, 20, 80)}}
    notes["core_vae_decode_pieces"] = est
    _print(rows)
    save_table("vae_decode_memory", device, rows, notes)
    return rows


def _label(tile) -> str:
    return "whole clip" if tile is None else f"tiles {tile[0]}/{tile[1]}"


def _row(frames: int, measured: dict, T) -> dict:
    """{tile (None: the whole clip): figures} -> {label: figures with the ratios to the whole clip}."""
    base = measured[None]
    row = {}
    for tile, r in measured.items():
        r["mem_ratio"] = r["peak_bytes"] / base["peak_bytes"]
        if tile is not None:
            r["frames_decoded_ratio"] = sum(e - s for s, e in T.temporal_tiles(frames, *tile)) / frames
        if "seconds" in r:
            r["time_ratio"] = r["seconds"] / base["seconds"]
        row[_label(tile)] = r
    return row


def _print(rows: dict) -> None:
    print(f"\n== vae_decode_memory ==\n{'case':<18} {'variant':<12} {'peak':>10} {'mem x':>7} {'frames x':>9}")
    for case, row in rows.items():
        for label, r in row.items():
            print(f"{case:<18} {label:<12} {r['peak_bytes'] / 2**30:>8.2f}Gi {r['mem_ratio']:>7.3f} "
                  f"{r.get('frames_decoded_ratio', 1.0):>9.3f}")
