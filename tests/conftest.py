"""Shared fixtures: the real ComfyUI host (in-process and as an HTTP server) with tiny models.

Run through `python3 scripts/host.py test`, which installs the host and sets ZEROVIDEO_COMFYUI_DIR.
Every Python process of the session (this one and the servers) runs with tests/netguard on its path:
non-loopback network access is refused and reported, and the session fails if there was any.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NETGUARD = Path(__file__).resolve().parent / "netguard"
for _p in (REPO, REPO / "tests"):  # scripts/ and tests/zv_testing.py
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

_netlog = Path(tempfile.gettempdir()) / f"zerovideo-netlog-{os.getpid()}.txt"
_netlog.unlink(missing_ok=True)
os.environ["ZEROVIDEO_NETLOG"] = str(_netlog)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(NETGUARD), str(REPO), os.environ.get("PYTHONPATH")]))
_spec = importlib.util.spec_from_file_location("zerovideo_netguard", NETGUARD / "sitecustomize.py")
_guard = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_guard)
_guard.install()

from scripts import comfy_env  # noqa: E402

comfy_env.import_pack()  # `zerovideo` (kernels/ need no ComfyUI; nodes/ import it when first used)

# The suite must pass at any torch thread count (CPU kernels round differently with the number of threads):
# ZEROVIDEO_TORCH_THREADS=N runs the in-process tests with N threads.
if os.environ.get("ZEROVIDEO_TORCH_THREADS"):
    import torch  # noqa: E402
    torch.set_num_threads(int(os.environ["ZEROVIDEO_TORCH_THREADS"]))


HOST_FACTS: list[str] = []


def pytest_sessionfinish(session, exitstatus):
    attempts = _netlog.read_text().splitlines() if _netlog.exists() else []
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    line = (f"network guard: {len(attempts)} non-loopback network attempt(s) by the tests and the servers"
            + "".join(f"\n  {a}" for a in attempts))
    if tr:
        if os.environ.get("ZEROVIDEO_TORCH_THREADS"):
            tr.write_line(f"torch threads in the test process: {os.environ['ZEROVIDEO_TORCH_THREADS']}")
        for fact in HOST_FACTS:
            tr.write_line(fact)
        tr.write_line(line)
    if attempts and session.exitstatus == 0:
        session.exitstatus = 1


# --- in-process ComfyUI -------------------------------------------------------------------------

@pytest.fixture(scope="session")
def comfy():
    """ComfyUI imported in this process (CPU); returns comfy.model_management."""
    return comfy_env.import_comfy()


@pytest.fixture(scope="session")
def pack(comfy):
    """This repository as the custom-node package `zerovideo`, with ComfyUI importable for nodes/."""
    return comfy_env.import_pack()


@pytest.fixture(scope="session")
def node_ids(pack):
    import importlib
    nodes = importlib.import_module("zerovideo.nodes")
    return [n.GET_SCHEMA().node_id for n in nodes.NODES]


# --- the HTTP server ----------------------------------------------------------------------------

@pytest.fixture(scope="session")
def tiny_checkpoints(comfy):
    from scripts import tiny_models
    return tiny_models.ensure_checkpoints(tiny_models.default_folder())


@pytest.fixture(scope="session")
def server(tiny_checkpoints, node_ids, tmp_path_factory):
    """A headless ComfyUI on 127.0.0.1 with this pack loaded; stopped at the end of the session."""
    from scripts.comfy_server import ComfyError, default_server
    srv = default_server(tmp_path_factory.mktemp("comfy-server"))
    nodes_dir = srv.workdir / "custom_nodes"  # beside the pack: the test-only nodes of tests/host_nodes/
    nodes_dir.mkdir(parents=True, exist_ok=True)
    (nodes_dir / "zv_test_nodes").symlink_to(Path(__file__).parent / "host_nodes" / "zv_test_nodes")
    try:
        srv.start()
    except ComfyError as e:
        pytest.exit(f"the ComfyUI test host did not start:\n{e}", returncode=3)
    try:
        failures = srv.import_failures()
        info = srv.client().object_info()
        missing = [n for n in node_ids if n not in info]
        if failures or missing:
            pytest.exit(f"ZeroVideo did not load into ComfyUI: import failures {failures}, "
                        f"node ids missing from /object_info {missing}\n{srv.log_tail()}", returncode=3)
        from scripts.make_workflows import INPUT_CLIP
        from scripts.run_workflow import write_sample_clip
        srv.client().upload(write_sample_clip(srv.workdir / INPUT_CLIP), INPUT_CLIP)  # Load Video's sample clip
        stats = srv.client().system_stats()["system"]
        HOST_FACTS.append(f"ComfyUI test host: ComfyUI {stats.get('comfyui_version')} booted at {srv.url} "
                          f"(python {stats.get('python_version', '').split()[0]}, "
                          f"torch {stats.get('pytorch_version')}); "
                          f"ZeroVideo loaded with {len(node_ids)} node(s): {', '.join(node_ids)}")
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def host_facts():
    """Lines printed at the end of the session (what ran on the real host)."""
    return HOST_FACTS


@pytest.fixture(scope="session")
def client(server):
    return server.client()


@pytest.fixture(scope="session")
def object_info(client):
    return client.object_info()
