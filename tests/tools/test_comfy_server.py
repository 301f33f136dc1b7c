"""The test host's own judgement of a server log: which import failures are the pack's."""
from scripts.comfy_server import PACK_DIR_NAME, ComfyServer


def server_with_log(workdir, text: str) -> ComfyServer:
    srv = ComfyServer(comfy_dir=workdir / "comfyui", python="python3", workdir=workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    srv.log_path.write_text(text)
    return srv


def test_host_module_failures_are_not_the_packs_even_inside_a_clone_named_like_it(server, tmp_path):
    """A new user clones into `ZeroVideo` (the README's name); the host tree then lives in ZeroVideo/.cache, and
    ComfyUI's own failed optional modules (nodes_audio without torchaudio) name paths that contain it."""
    log = server.log_text()
    assert server.import_failures() == []
    host = str(server.comfy_dir)
    moved = f"/home/user/{PACK_DIR_NAME}/.cache/comfyui"
    host_lines = [line for line in log.splitlines() if host in line]
    text = log.replace(host, moved)
    fake = server_with_log(tmp_path / "srv", text)
    assert fake.import_failures() == []
    if not any("Cannot import" in line or "IMPORT FAILED" in line for line in host_lines):  # torchaudio present
        text += (f"\nCannot import {moved}/comfy_extras/nodes_audio.py module for custom nodes: "
                 f"No module named 'torchaudio'\n")
        assert server_with_log(tmp_path / "srv2", text).import_failures() == []


def test_a_failure_of_the_pack_itself_is_reported(tmp_path):
    pack = tmp_path / "srv" / "custom_nodes" / PACK_DIR_NAME
    lines = [f"Cannot import {pack} module for custom nodes: No module named 'einops'",
             f"   0.0 seconds (IMPORT FAILED): {pack}",
             f"   0.0 seconds (IMPORT FAILED): {pack}-old",  # another pack in a folder with a longer name
             f"   0.1 seconds: {pack}"]
    srv = server_with_log(tmp_path / "srv", "\n".join(lines) + "\n")
    assert srv.import_failures() == lines[:2]
