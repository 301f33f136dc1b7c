"""The foundation end to end: the real ComfyUI server, our pack in it, the shipped workflows over HTTP."""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageSequence

from scripts import make_workflows
from scripts.comfy_server import ComfyError
from scripts.workflow import load, ui_to_api
from zv_testing import tiny_prompt

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / "workflows").glob("*.json"))
GRAPHS = [make() for make in make_workflows.GRAPHS]
EXPECTED_FRAMES = {g.name: g.tiny_frames for g in GRAPHS}
TINY_SETS = {g.name: g.tiny_sets for g in GRAPHS}


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scripts.run_workflow", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=600)


def webp_frames(data: bytes) -> list[Image.Image]:
    return [f.convert("RGB") for f in ImageSequence.Iterator(Image.open(io.BytesIO(data)))]


def webp_frame_count(data: bytes, fps: float) -> int:
    """Frames of an animated WEBP from its ANMF chunks' durations: the encoder merges identical
    neighbouring frames into one longer frame, so the chunk count alone can be lower."""
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    pos, total_ms = 12, 0
    while pos + 8 <= len(data):
        tag, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        if tag == b"ANMF":
            total_ms += int.from_bytes(data[pos + 8 + 12:pos + 8 + 15], "little")
        pos += 8 + size + (size & 1)
    return round(total_ms * fps / 1000)


def test_every_node_is_listed_with_tooltips(object_info, node_ids):
    for node_id in node_ids:
        info = object_info[node_id]
        assert info["python_module"].startswith("custom_nodes."), info["python_module"]
        for section in ("required", "optional"):
            for name, spec in info["input"].get(section, {}).items():
                assert spec[1].get("tooltip"), f"{node_id}.{name} has no tooltip"
        assert all(info["output_tooltips"]), f"{node_id} has outputs without tooltips"
        assert info["category"].startswith("ZeroVideo")


def test_shipped_workflows_are_exactly_the_generated_ones(object_info, tmp_path):
    make_workflows.write_all(object_info, tmp_path)
    for path in sorted(tmp_path.rglob("*.json")):
        shipped = REPO / "workflows" / path.relative_to(tmp_path)
        assert shipped.is_file() and load(shipped) == load(path), f"{shipped} is stale: run host.py workflows"
    assert {p.stem for p in WORKFLOWS} == set(EXPECTED_FRAMES)


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_ui_file_converts_to_its_api_twin(path, object_info):
    assert ui_to_api(load(path), object_info) == load(path.parent / "api" / path.name)


@pytest.mark.parametrize("name", sorted(EXPECTED_FRAMES))
def test_shipped_workflow_runs_over_http(name, client, object_info, host_facts):
    prompt = tiny_prompt(object_info, name, TINY_SETS[name])
    outputs = client.run(prompt)["outputs"]
    infos = [outputs[k]["text"][0] for k, n in prompt.items() if n["class_type"] == "ZeroVideo.LatentVideoInfo"]
    for text in infos:
        assert text.startswith(f"{EXPECTED_FRAMES[name]} frames"), text
        assert "NON-FINITE" not in text
    saves = [k for k, n in prompt.items() if n["class_type"] == "SaveAnimatedWEBP"]
    assert saves
    for k in saves:
        data = client.view(outputs[k]["images"][0])
        count = webp_frame_count(data, prompt[k]["inputs"]["fps"])
        # An encoder given frames that are all identical after lossy coding writes a still WEBP (no ANMF
        # chunks): the frame count is then proven by Latent Video Info on the latent alone.
        assert count == EXPECTED_FRAMES[name] or (count == 0 and infos), count
        first = webp_frames(data)[0]
        # random weights still give an image with some structure, not a constant (NaN decodes to black)
        assert max(hi - lo for lo, hi in first.getextrema()) > 0
    host_facts.append(f"workflow {name} executed over HTTP: {EXPECTED_FRAMES[name]} frames"
                      f"{' (' + infos[0] + ')' if infos else ''}, saved as an animated WEBP")


def test_cli_runs_a_ui_workflow_against_the_server(server, tmp_path):
    wf = REPO / "workflows" / "sd15_frames_baseline.json"
    r = cli(str(wf), "--server", server.url, "--tiny", "--out", str(tmp_path), "--frames", "--set", "KSampler.seed=11")
    assert r.returncode == 0, r.stderr
    assert "tiny random-weight models" in r.stderr
    assert "8 frames" in r.stderr
    assert len(list(tmp_path.glob("*_frame*.png"))) == 8
    assert len(list(tmp_path.glob("*.webp"))) == 1


def test_bad_inputs_return_node_errors_and_the_server_keeps_serving(server, client, object_info, tmp_path):
    bad_steps = tiny_prompt(object_info, "sd15_frames_baseline", ["KSampler.steps=0"])
    status, body = client.queue(bad_steps)
    errors = json.dumps(body.get("node_errors"))
    assert body.get("node_errors") and "steps" in errors and "value_smaller_than_min" in errors

    bad_ckpt = tiny_prompt(object_info, "sd15_frames_baseline", ["1.ckpt_name=\"no_such_model.safetensors\""])
    with pytest.raises(ComfyError, match="no_such_model.safetensors"):
        client.run(bad_ckpt)

    api_file = tmp_path / "bad.json"
    api_file.write_text(json.dumps(bad_steps))
    r = cli(str(api_file), "--server", server.url, "--out", str(tmp_path))
    assert r.returncode == 1
    assert "error:" in r.stderr and "steps" in r.stderr and "Value 0 smaller than min" in r.stderr

    good = tiny_prompt(object_info, "sd15_frames_baseline", ["KSampler.seed=99"])
    assert client.run(good)["status"]["status_str"] == "success"


def test_node_help_pages_are_current_and_served(client, object_info, node_ids, tmp_path):
    from scripts import make_docs
    make_docs.write_all(object_info, tmp_path)
    for node_id in node_ids:
        shipped = REPO / "web" / "docs" / f"{node_id}.md"
        assert shipped.read_text() == (tmp_path / f"{node_id}.md").read_text(), f"{shipped} is stale: host.py docs"
        status, body = client.request(f"/extensions/ZeroVideo/docs/{node_id}.md")
        assert status == 200 and body.decode().startswith("# "), node_id


def test_every_workflow_has_a_template_thumbnail():
    for path in WORKFLOWS:
        thumb = path.with_suffix(".jpg")
        assert thumb.is_file(), f"{thumb.name} missing: run the UI test, then scripts/make_thumbnails.py"
        assert Image.open(thumb).size[0] == 640
