"""The common benchmark runner.

Each benchmark times a baseline and one or more variants **in the same process**, with warm-up and
several repeats, and reports the median time and peak memory of each as a ratio to the baseline.
Peak memory is `torch.cuda.max_memory_allocated` on CUDA; on CPU it is the peak of the bytes torch allocated
and had not yet freed during the call, from the profiler's per-op allocation records (deterministic, unlike
RSS, which the allocator's reuse of freed pages makes meaningless at this scale). Results are printed and
written to bench/results/NAME-DEVICE.json.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Measurement:
    label: str
    median_s: float
    times_s: list[float]
    peak_mem_bytes: int
    time_ratio: float = 1.0
    mem_ratio: float = 1.0
    extra: dict = field(default_factory=dict)


def _sync(device: str):
    if device.startswith("cuda"):
        import torch
        torch.cuda.synchronize()


def _peak(fn, device: str) -> int:
    import gc

    import torch
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        _sync(device)
        return torch.cuda.max_memory_allocated() - base
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    live = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak


def compare(name: str, baseline: tuple[str, Callable], variants: list[tuple[str, Callable]],
            device: str = "cpu", warmup: int = 1, repeats: int = 9, notes: dict | None = None,
            write: bool = True) -> list[Measurement]:
    """Time the baseline and each variant; print and save ratios against the baseline.

    Repeats are interleaved (A B C A B C …) so that drift in machine speed hits every variant alike.
    """
    entries = [baseline, *variants]
    for _, fn in entries:
        for _ in range(warmup):
            fn()
    times = [[] for _ in entries]
    for _ in range(repeats):
        for i, (_, fn) in enumerate(entries):
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[i].append(time.perf_counter() - t0)
    results = [Measurement(label, statistics.median(t), t, _peak(fn, device))
               for (label, fn), t in zip(entries, times)]
    base = results[0]
    for m in results[1:]:
        m.time_ratio = m.median_s / base.median_s
        m.mem_ratio = m.peak_mem_bytes / base.peak_mem_bytes if base.peak_mem_bytes > 0 else float("nan")
    report(name, results, device)
    if write:
        save(name, results, device, notes or {})
    return results


def report(name: str, results: list[Measurement], device: str) -> None:
    print(f"\n== {name} ({device}) ==")
    print(f"{'variant':<44} {'median':>10} {'time x':>8} {'peak mem':>11} {'mem x':>7}")
    for m in results:
        print(f"{m.label:<44} {m.median_s * 1000:>8.1f}ms {m.time_ratio:>8.3f} "
              f"{m.peak_mem_bytes / 2**20:>9.1f}Mi {m.mem_ratio:>7.3f}")


def save(name: str, results: list[Measurement], device: str, notes: dict) -> Path:
    import torch
    RESULTS.mkdir(exist_ok=True)
    dev = device
    if device.startswith("cuda"):
        dev = torch.cuda.get_device_name().replace(" ", "_")
    path = RESULTS / f"{name}-{dev}.json"
    path.write_text(json.dumps({
        "benchmark": name, "device": dev, "torch": torch.__version__, "machine": platform.machine(),
        "cpus": os.cpu_count(), "when": time.strftime("%Y-%m-%d %H:%M:%S"), "notes": notes,
        "results": [asdict(m) for m in results]}, indent=2) + "\n")
    return path


def save_table(name: str, device: str, rows: dict, notes: dict | None = None) -> Path:
    """Save measurements that are not a baseline/variant comparison (e.g. scaling tables)."""
    import torch
    RESULTS.mkdir(exist_ok=True)
    dev = torch.cuda.get_device_name().replace(" ", "_") if device.startswith("cuda") else device
    path = RESULTS / f"{name}-{dev}.json"
    path.write_text(json.dumps({"benchmark": name, "device": dev, "torch": torch.__version__,
                                "cpus": os.cpu_count(), "when": time.strftime("%Y-%m-%d %H:%M:%S"),
                                "notes": notes or {}, "rows": rows}, indent=2) + "\n")
    return path
