"""Start a headless ComfyUI with this pack loaded, and talk to any ComfyUI over HTTP + websocket.

Only loopback addresses are used by the server we start. `ComfyClient` works against any URL the
user gives (e.g. their own ComfyUI on the LAN).
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACK_DIR_NAME = "ZeroVideo"
MODEL_KINDS = ("checkpoints", "diffusion_models", "clip_vision", "vae", "controlnet", "loras", "embeddings", "exvideo")


class ComfyError(RuntimeError):
    """A prompt was refused or failed; `.details` holds the server's JSON."""

    def __init__(self, message: str, details=None):
        super().__init__(message)
        self.details = details


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def format_node_errors(body: dict) -> str:
    """Render ComfyUI's `error` + `node_errors` the way its UI lists them."""
    lines = []
    err = body.get("error")
    if isinstance(err, dict):
        lines.append(f"{err.get('message', '')}: {err.get('details', '')}".strip(": "))
    for node_id, info in (body.get("node_errors") or {}).items():
        for e in info.get("errors", []):
            lines.append(f"node {node_id} ({info.get('class_type')}): {e.get('message')}: {e.get('details')}")
    return "\n".join(lines) or json.dumps(body)


class ComfyClient:
    def __init__(self, url: str, client_id: str | None = None):
        self.url = url.rstrip("/")
        self.client_id = client_id or uuid.uuid4().hex

    # -- plain HTTP -------------------------------------------------------------------------
    def request(self, path: str, data=None, method=None, timeout=60):
        body = None if data is None else json.dumps(data).encode()
        req = urllib.request.Request(self.url + path, data=body, method=method,
                                     headers={"Content-Type": "application/json"} if body else {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                raw = r.read()
                status = r.status
        except urllib.error.HTTPError as e:
            raw, status = e.read(), e.code
        ctype_json = raw[:1] in (b"{", b"[")
        return status, (json.loads(raw) if ctype_json else raw)

    def get_json(self, path: str):
        status, body = self.request(path)
        if status != 200:
            raise ComfyError(f"GET {path} -> HTTP {status}", body)
        return body

    def object_info(self) -> dict:
        return self.get_json("/object_info")

    def system_stats(self) -> dict:
        return self.get_json("/system_stats")

    def history(self, prompt_id: str) -> dict:
        return self.get_json(f"/history/{prompt_id}").get(prompt_id, {})

    def view(self, file_info: dict) -> bytes:
        q = urllib.parse.urlencode({k: file_info.get(k, "") for k in ("filename", "subfolder", "type")})
        status, body = self.request("/view?" + q)
        if status != 200:
            raise ComfyError(f"/view {file_info} -> HTTP {status}")
        return body

    def upload(self, path: Path, name: str | None = None) -> str:
        """Upload a file into the server's input folder (POST /upload/image); returns its name there."""
        name = name or Path(path).name
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"overwrite\"\r\n\r\ntrue\r\n"
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + Path(path).read_bytes() + \
            f"\r\n--{boundary}--\r\n".encode()
        req = urllib.request.Request(self.url + "/upload/image", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())["name"]

    def interrupt(self):
        return self.request("/interrupt", {})

    def free(self):
        return self.request("/free", {"unload_models": True, "free_memory": True})

    def forget_cache(self):
        """Make the next prompt execute every node. ComfyUI skips a node whose inputs (up its whole branch) match
        a node of the previous prompt, and a skipped node that is not an output node then reports no UI output
        (ZeroSmooth ×2's corrected branch is the same graph inside zerosmooth_direct_vs_corrected). /free alone
        is acted on between prompts, at a moment the worker picks: it is asked for here, then a two-node prompt
        sharing nothing with a workflow runs; ComfyUI's default cache keeps only the nodes of the prompt it last
        ran, and a /free still pending is acted on right after that prompt, before the next one starts."""
        self.free()
        self.run({"1": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
                  "2": {"class_type": "ZeroVideo.LatentVideoInfo", "inputs": {"latent": ["1", 0]}}})

    def queue(self, prompt: dict, extra_data: dict | None = None) -> tuple[int, dict]:
        """POST /prompt; returns (HTTP status, body) without raising."""
        payload = {"prompt": prompt, "client_id": self.client_id}
        if extra_data:
            payload["extra_data"] = extra_data
        return self.request("/prompt", payload)

    # -- running a prompt -------------------------------------------------------------------
    def run(self, prompt: dict, on_event=None, timeout: float = 600, extra_data=None) -> dict:
        """Queue `prompt`, follow it to the end, return its history entry.

        Raises ComfyError on validation errors (any non-empty node_errors) and on execution errors.
        `on_event(type, data)` receives every websocket message for this prompt.
        """
        ws = self._connect_ws()
        try:
            status, body = self.queue(prompt, extra_data)
            if status != 200 or body.get("node_errors"):
                raise ComfyError(format_node_errors(body), body)
            prompt_id = body["prompt_id"]
            self._follow(ws, prompt_id, on_event, timeout)
        finally:
            if ws is not None:
                ws.close()
        hist = self.history(prompt_id)
        st = hist.get("status", {})
        if st.get("status_str") != "success":
            raise ComfyError(describe_failure(st), hist)
        hist["prompt_id"] = prompt_id
        return hist

    def _connect_ws(self):
        try:
            import websocket  # websocket-client
        except ImportError:
            return None
        u = urllib.parse.urlparse(self.url)
        scheme = "wss" if u.scheme == "https" else "ws"
        ws = websocket.WebSocket()
        ws.connect(f"{scheme}://{u.netloc}{u.path}/ws?clientId={self.client_id}", timeout=30)
        return ws

    def _follow(self, ws, prompt_id, on_event, timeout):
        deadline = time.monotonic() + timeout
        if ws is None:  # no websocket library: poll the history
            while time.monotonic() < deadline:
                if self.history(prompt_id).get("status", {}).get("completed") is not None:
                    return
                time.sleep(0.5)
            raise ComfyError(f"prompt {prompt_id} did not finish in {timeout:.0f}s")
        ws.settimeout(5)
        while True:
            if time.monotonic() > deadline:
                raise ComfyError(f"prompt {prompt_id} did not finish in {timeout:.0f}s")
            try:
                msg = ws.recv()
            except Exception as e:  # timeout: check the history in case we missed the end
                if type(e).__name__ != "WebSocketTimeoutException":
                    raise
                if self.history(prompt_id).get("status", {}).get("completed") is not None:
                    return
                continue
            if not isinstance(msg, str):
                continue  # binary preview frames
            m = json.loads(msg)
            data = m.get("data", {})
            if data.get("prompt_id") not in (None, prompt_id):
                continue
            if on_event:
                on_event(m["type"], data)
            # ComfyUI writes the history entry, then sends executing(node=None): that is the end.
            if m["type"] == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id:
                return


def describe_failure(status: dict) -> str:
    for kind, data in status.get("messages", []):
        if kind == "execution_error":
            return (f"node {data.get('node_id')} ({data.get('node_type')}) failed: "
                    f"{data.get('exception_type')}: {data.get('exception_message', '').strip()}")
        if kind == "execution_interrupted":
            return f"interrupted at node {data.get('node_id')} ({data.get('node_type')})"
    return f"prompt did not succeed: {status}"


class ComfyServer:
    """A headless ComfyUI subprocess on 127.0.0.1 with this repository loaded as a custom node."""

    def __init__(self, comfy_dir: Path, python: str, workdir: Path, model_dirs: dict | None = None,
                 extra_args=(), env: dict | None = None):
        self.comfy_dir = Path(comfy_dir)
        self.python = str(python)
        self.workdir = Path(workdir)
        self.model_dirs = dict(model_dirs or {})
        self.model_roots: list[Path] = []  # ComfyUI-style models folders (checkpoints/, vae/, ...)
        self.extra_args = list(extra_args)
        self.env = env
        self.proc = None
        self.port = None
        self.log_path = self.workdir / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> ComfyClient:
        return ComfyClient(self.url)

    def _write_paths(self) -> Path:
        nodes = self.workdir / "custom_nodes"
        nodes.mkdir(parents=True, exist_ok=True)
        link = nodes / PACK_DIR_NAME
        if not link.exists():
            link.symlink_to(REPO, target_is_directory=True)
        lines = ["zerovideo_test_host:", f"    base_path: {self.workdir}", f"    custom_nodes: {nodes}"]
        for kind, folder in self.model_dirs.items():
            lines.append(f"    {kind}: {folder}")
        for i, root in enumerate(self.model_roots):
            lines += [f"user_models_{i}:", f"    base_path: {root}"]
            lines += [f"    {kind}: {kind}" for kind in MODEL_KINDS]
        yaml = self.workdir / "extra_model_paths.yaml"
        yaml.write_text("\n".join(lines) + "\n")
        return yaml

    def start(self, timeout: float = 180) -> "ComfyServer":
        self.workdir.mkdir(parents=True, exist_ok=True)
        for sub in ("output", "input", "temp", "user"):
            (self.workdir / sub).mkdir(exist_ok=True)
        yaml = self._write_paths()
        self.port = free_port()
        cmd = [self.python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
               "--disable-auto-launch", "--disable-api-nodes",
               "--output-directory", str(self.workdir / "output"),
               "--input-directory", str(self.workdir / "input"),
               "--temp-directory", str(self.workdir / "temp"),
               "--user-directory", str(self.workdir / "user"),
               "--database-url", f"sqlite:///{self.workdir / 'comfyui.db'}",
               "--extra-model-paths-config", str(yaml), *self.extra_args]
        env = dict(self.env or os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("DO_NOT_TRACK", "1")
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, cwd=self.comfy_dir, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        client = self.client()
        while True:
            if self.proc.poll() is not None:
                raise ComfyError(f"ComfyUI exited with {self.proc.returncode} while starting:\n{self.log_tail()}")
            try:
                client.system_stats()
                break
            except (OSError, ComfyError):
                if time.monotonic() > deadline:
                    self.stop()
                    raise ComfyError(f"ComfyUI did not answer in {timeout:.0f}s:\n{self.log_tail()}")
                time.sleep(0.25)
        return self

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    def import_failures(self) -> list[str]:
        """Log lines where ComfyUI reports that our pack failed to import.

        Attributed by module path: ComfyUI names a failed custom node by the folder it loaded it from
        (`custom_nodes/ZeroVideo` here). Its own optional modules (comfy_extras/nodes_audio.py without
        torchaudio, say) are not ours, even when the host tree sits inside a clone that is called ZeroVideo.
        """
        pack = re.escape(str(self.workdir / "custom_nodes" / PACK_DIR_NAME)) + r"(?![\w.-])"
        return [line for line in self.log_text().splitlines()
                if re.search(r"IMPORT FAILED|Cannot import|Error importing", line) and re.search(pack, line)]

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=20)
        self.proc = None
        self._log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def default_server(workdir: Path, extra_args=()) -> ComfyServer:
    """The pinned (or ZEROVIDEO_COMFYUI) host with the tiny checkpoints on its model paths."""
    from scripts import host, tiny_models
    comfy = Path(os.environ.get("ZEROVIDEO_COMFYUI_DIR") or host.comfyui_dir())
    root = tiny_models.default_folder()
    dirs = {kind: root / kind for kind in sorted(set(tiny_models.FOLDERS.values()))}
    server = ComfyServer(comfy, os.environ.get("ZEROVIDEO_SERVER_PYTHON", sys.executable), workdir,
                         model_dirs=dirs, extra_args=extra_args)
    scratch = Path(workdir) / "models"  # a models folder of this server's own (tests drop files there)
    for kind in MODEL_KINDS:
        (scratch / kind).mkdir(parents=True, exist_ok=True)
    server.model_roots.append(scratch)
    return server


def live_object_info() -> dict:
    """/object_info of a throw-away headless server (for the workflow and help-page generators). Raises when
    the pack did not import, so the generators never write files from a server without our nodes."""
    import tempfile
    with tempfile.TemporaryDirectory(prefix="zv-info-") as tmp:
        with default_server(Path(tmp)) as server:
            failures = server.import_failures()
            if failures:
                raise ComfyError(f"ZeroVideo did not load into ComfyUI: {failures}\n{server.log_tail()}")
            return server.client().object_info()
