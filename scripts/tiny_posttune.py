"""One process of a post-tuning run on the Python-level tiny models (started by torchrun in
tests/tools/test_exvideo_posttune_distributed.py and bench/posttune.py, or by plain python for one process).

    python scripts/tiny_posttune.py [TRAINER ARGS]

Builds the tiny SVD (seed 3), tiny TAESD and tiny CLIP vision as tests/tools/test_exvideo_posttune.py does,
then runs the trainer's own main() with them: the command line, torchrun's environment, the process group
and the files are the real ones; only the checkpoint loading is replaced by the tiny models.
"""
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script; imported (by the tests) it must not go in front of ComfyUI's
    sys.path.insert(0, str(REPO))  # folder, or `import nodes` would find this repository's nodes/

import torch  # noqa: E402

SEED = 3


def tiny_models_for_training():
    import comfy.sd
    from scripts import tiny_models
    from training import exvideo_posttune
    with tempfile.TemporaryDirectory() as d:
        clip_vision = tiny_models.tiny_clip_vision(Path(d))
    return exvideo_posttune.Models(tiny_models.tiny_svd(seed=SEED), comfy.sd.VAE(sd=tiny_models._taesd_sd(4)),
                                   clip_vision, "tiny-svd")


if __name__ == "__main__":
    torch.set_num_threads(1)
    from scripts.comfy_env import import_comfy, import_pack
    import_comfy(cpu=True)
    import_pack()
    from training import exvideo_posttune
    sys.exit(exvideo_posttune.main(sys.argv[1:], models=tiny_models_for_training()))
