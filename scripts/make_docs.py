"""Write the node help pages `web/docs/<NodeId>.md` (shown in ComfyUI's node help panel) from the schemas.

    python3 scripts/host.py docs          (or: python -m scripts.make_docs inside the venv)

Every page is derived from the node's own schema (description, inputs with type, default, range and
tooltip, outputs), plus an example workflow, so the help panel never disagrees with the node. A test
regenerates them and compares.
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "web" / "docs"

EXAMPLES = {
    "ZeroVideo.LatentVideoInfo": "Put it after any sampler: `workflows/sd15_frames_baseline.json`.",
    "ZeroVideo.CrossFrameAttentionPatch": "`workflows/t2vz_text_to_video.json` (model), "
                                          "`workflows/t2vz_controlnet_video.json` (model + ControlNet), "
                                          "`workflows/flux_t2vz_text_to_video.json` (Flux), "
                                          "`workflows/zimage_t2vz_text_to_video.json` (Z-Image Turbo).",
    "ZeroVideo.Text2VideoZeroSampler": "`workflows/t2vz_text_to_video.json`: KSamplerSelect (ddim) → this → "
                                       "SamplerCustomAdvanced with an 8-frame latent.",
    "ZeroVideo.MotionLatentWarp": "`workflows/t2vz_graph_form.json`: between KSamplerAdvanced passes.",
    "ZeroVideo.DependencyNoise": "`workflows/zs2_text_to_video.json`: NOISE → SamplerCustomAdvanced.",
    "ZeroVideo.DependencyNoiseModel": "Checkpoint → this → KSampler with a latent batch of frames.",
    "ZeroVideo.TemporalMomentumAttention": "`workflows/zs2_text_to_video.json`, `workflows/zs2_lambda_mu_sweep.json`, "
                                           "`workflows/sd35_zs2_text_to_video.json` (SD3.5).",
    "ZeroVideo.SelfCascadeInterpolate":
        "`workflows/zerosmooth_svd_x2.json`: GUIDER and LATENT → SamplerCustomAdvanced.",
    "ZeroVideo.HiddenStateCorrection": "`workflows/zerosmooth_direct_vs_corrected.json` shows its effect.",
    "ZeroVideo.ExVideoTemporalExtend": "`workflows/exvideo_svd_128_frames.json` (weights), "
                                       "`workflows/exvideo_svd_training_free.json` (no weights).",
    "ZeroVideo.ExVideoLatentRenorm": "`workflows/exvideo_svd_128_frames.json`: before VAE Decode.",
}


# combo inputs whose options are the files a user has: described, not listed
FILE_INPUTS = {("ZeroVideo.ExVideoTemporalExtend", "extension"): "files in models/exvideo/"}


def _range(opts: dict) -> str:
    if "min" in opts or "max" in opts:
        return f"{opts.get('min', '')} … {opts.get('max', '')}"
    if "files" in opts:
        return opts["files"]
    if "options" in opts:
        return ", ".join(f"`{o}`" for o in opts["options"])
    return ""


def page(node_id: str, info: dict) -> str:
    """One help page from a node's /object_info entry (the V1 view of its V3 schema)."""
    lines = [f"# {info['display_name']}", "", info["description"].strip(), "", "## Inputs", "",
             "| input | type | default | range | what it does |", "|---|---|---|---|---|"]
    for section in ("required", "optional"):
        for name in info.get("input_order", {}).get(section, []):
            spec = info["input"][section][name]
            typ = spec[0] if isinstance(spec[0], str) else "COMBO"
            opts = spec[1] if len(spec) > 1 else {}
            if isinstance(spec[0], list):
                opts = dict(opts, options=spec[0])
            if (node_id, name) in FILE_INPUTS:
                opts = dict(opts, files=FILE_INPUTS[(node_id, name)])
            default = opts.get("default", "")
            optional = " (optional)" if section == "optional" else ""
            lines.append(f"| `{name}`{optional} | {typ} | {default} | {_range(opts)} | "
                         f"{opts.get('tooltip', '').replace('|', '/')} |")
    lines += ["", "## Outputs", "", "| output | type | what it is |", "|---|---|---|"]
    for name, typ, tip in zip(info["output_name"], info["output"], info.get("output_tooltips") or []):
        lines.append(f"| `{name}` | {typ} | {(tip or '').replace('|', '/')} |")
    lines += ["", "## Example", "", EXAMPLES.get(node_id, "See the workflows in `workflows/`."), ""]
    return "\n".join(lines)


def write_all(object_info: dict, folder: Path = DOCS) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for node_id, info in sorted(object_info.items()):
        if not node_id.startswith("ZeroVideo."):
            continue
        path = folder / f"{node_id}.md"
        path.write_text(page(node_id, info))
        out.append(path)
    return out


def main() -> int:
    from scripts.comfy_server import live_object_info
    for p in write_all(live_object_info()):
        print("wrote", p.relative_to(REPO))
    return 0


if __name__ == "__main__":
    sys.exit(main())
