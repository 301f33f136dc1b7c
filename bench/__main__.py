"""python3 scripts/host.py bench [NAME ...] [--device cuda] [--full]

Runs the named benchmarks (default: all). `--full` uses the full-size SD1.5 (512², 16 frames) and
SVD-XT (576×1024, 25 frames) architectures with random weights, for GPU machines; the default is the
tiny models, for a CPU check of the overhead ratios. `--size`/`--frames` change the shape: `--full --size 256
--frames 8` measures the full architectures on a CPU, where the technique's own cost shows (tiny models at 64²
mostly measure per-call overhead).
"""
from __future__ import annotations

import argparse
import sys

from bench import (dit_attention, exvideo, patch_overhead, posttune, soak, t2vz, t2vz_diffusers, vae_decode,
                   zerosmooth, zs2)

BENCHMARKS = {
    "patch_overhead": patch_overhead.run,
    "t2vz": t2vz.run,
    "t2vz_sampler": t2vz.run_sampler,
    "t2vz_diffusers": t2vz_diffusers.run,
    "zs2": zs2.run,
    "zerosmooth": zerosmooth.run,
    "exvideo": exvideo.run,
    "soak": soak.run,
    "vae_decode": vae_decode.run,
    "posttune": posttune.run,
    "dit_attention": dit_attention.run,
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="host.py bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {', '.join(BENCHMARKS)})")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--full", action="store_true", help="full-size architectures (GPU)")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per variant (default: per benchmark)")
    p.add_argument("--size", type=int, default=None,
                   help="pixel height and width (e.g. --full --size 256 on a CPU: full architectures, small frames)")
    p.add_argument("--frames", type=int, default=None, help="frames (key frames for ZeroSmooth; T and 2T for ExVideo)")
    args = p.parse_args(argv)
    from bench import models
    models.OVERRIDE.update({k: v for k, v in (("size", args.size), ("frames", args.frames)) if v is not None})
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        p.error(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}")
    import os
    os.environ["ZEROVIDEO_DEVICE"] = args.device
    for name in args.names or list(BENCHMARKS):
        kw = {} if args.repeats is None else {"repeats": args.repeats}
        BENCHMARKS[name](device=args.device, full=args.full, **kw)
    return 0


if __name__ == "__main__":
    sys.exit(main())
