"""The real ComfyUI frontend in headless Chromium (driven over the DevTools protocol, no browser download):
every shipped workflow is loaded through the UI's own loading path, checked for missing nodes and widgets,
our nodes are checked for their tooltips, the workflow is queued from the UI on the tiny models and must run
to completion. A screenshot per workflow goes to $ZEROVIDEO_ARTIFACTS (default .cache/ui-screenshots).

Needs Debian's `chromium-headless-shell` (or `chromium`): `apt-get install chromium-headless-shell`
(.ci/run installs it).
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from zv_testing import tiny_prompt

from scripts import make_workflows
from scripts.comfy_server import free_port
from scripts.workflow import load

REPO = Path(__file__).resolve().parents[2]
GRAPHS = {g.name: g for g in (make() for make in make_workflows.GRAPHS)}
ARTIFACTS = Path(os.environ.get("ZEROVIDEO_ARTIFACTS") or REPO / ".cache" / "ui-screenshots")


def chromium_binary() -> str:
    from scripts.host import BROWSER_PACKAGE, BROWSERS  # what `host.py test` looks for and installs
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    why = os.environ.get("ZEROVIDEO_NO_BROWSER") or f"the UI test needs headless Chromium: apt-get install {BROWSER_PACKAGE}"
    if os.environ.get("CI") or os.environ.get("ZEROVIDEO_REQUIRE_UI"):
        pytest.fail(why)  # CI installs it (scripts/host.py test): a missing browser there is a failure
    pytest.skip(why)


class Browser:
    """A headless Chromium page, driven over the DevTools protocol (websocket-client)."""

    def __init__(self, profile: Path):
        import websocket
        self.port = free_port()
        self.proc = subprocess.Popen(
            [chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             f"--remote-debugging-port={self.port}", f"--user-data-dir={profile}", "--window-size=1600,1000",
             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        targets = None
        for _ in range(150):
            try:
                targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list").read())
                break
            except OSError:
                time.sleep(0.2)
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=120)
        self.next_id = 0
        self.console: list[str] = []
        self.call("Page.enable")
        self.call("Runtime.enable")

    def call(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("method") == "Runtime.consoleAPICalled" and msg["params"]["type"] in ("warning", "error"):
                self.console.append(" ".join(str(a.get("value", a.get("description", "")))
                                             for a in msg["params"]["args"]))
            elif msg.get("method") == "Runtime.exceptionThrown":
                self.console.append(msg["params"]["exceptionDetails"].get("text", "exception"))
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def js(self, expression: str):
        res = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"{expression[:80]}…: {res['exceptionDetails']}")
        return res["result"].get("value")

    def wait(self, expression: str, timeout: float = 90):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.js(expression):
                return
            time.sleep(0.5)
        raise TimeoutError(expression)

    def escape(self):
        """Close whatever dialog is open (the first-run template browser, toasts)."""
        for kind in ("keyDown", "keyUp"):
            self.call("Input.dispatchKeyEvent", type=kind, key="Escape", code="Escape", windowsVirtualKeyCode=27)

    def screenshot(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))

    def close(self):
        """Stop Chromium and every helper process it started (its own process group)."""
        import signal
        self.ws.close()
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def browser(server, tmp_path_factory):
    client = server.client()
    for setting, value in (("Comfy.TutorialCompleted", True), ("Comfy.Workflow.ShowMissingNodesWarning", True),
                           ("LiteGraph.Canvas.LowQualityRenderingZoomThreshold", 0.1)):  # readable screenshots
        client.request(f"/settings/{setting}", value, method="POST")  # no first-run template browser
    b = Browser(tmp_path_factory.mktemp("chromium"))
    try:
        b.call("Page.navigate", url=server.url)
        b.wait("!!(window.app && window.app.graph && window.LiteGraph && app.vueAppReady)")
        b.escape()
        yield b
    finally:
        b.close()


def tiny_widget_values(object_info: dict, name: str) -> list[tuple[str, str, object]]:
    """(node id, widget, value) that turn the shipped workflow into its tiny-model run."""
    shipped = load(REPO / "workflows" / "api" / f"{name}.json")
    tiny = tiny_prompt(object_info, name, GRAPHS[name].tiny_sets)
    return [(nid, key, value) for nid, node in tiny.items() for key, value in node["inputs"].items()
            if not isinstance(value, list) and shipped[nid]["inputs"].get(key) != value]


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_workflow_loads_renders_and_runs_from_the_ui(browser, client, object_info, name):
    ui = load(REPO / "workflows" / f"{name}.json")
    browser.console.clear()
    browser.js(f"(async () => {{ await app.loadGraphData({json.dumps(ui)}); }})()")
    missing = browser.js("app.graph._nodes.filter(n => !LiteGraph.registered_node_types[n.type]).map(n => n.type)")
    assert missing == [], f"{name}: missing node types {missing}"
    assert browser.js("app.graph._nodes.length") == len(ui["nodes"])
    warnings = [c for c in browser.console if "widget" in c.lower() or "missing" in c.lower()]
    assert warnings == [], f"{name}: {warnings}"
    dialogs = browser.js("Array.from(document.querySelectorAll('.p-dialog')).map(d => d.innerText).join(' | ')")
    assert "missing" not in dialogs.lower(), f"{name}: {dialogs}"

    ours = browser.js("""JSON.stringify(app.graph._nodes.filter(n => n.type.startsWith('ZeroVideo.')).map(n => {
        const d = n.constructor.nodeData;
        const inputs = Object.assign({}, d.input.required || {}, d.input.optional || {});
        return {type: n.type, untipped: Object.entries(inputs).filter(([k, v]) => !(v[1] && v[1].tooltip)).map(([k]) => k),
                outputs: (d.output_tooltips || []).filter(t => !t).length, description: !!d.description,
                widgets: (n.widgets || []).length, size: [n.size[0], n.size[1]]};
    }))""")
    for node in json.loads(ours):
        assert node["untipped"] == [] and node["outputs"] == 0 and node["description"], node
        assert node["size"][0] > 0 and node["size"][1] > 0, node

    browser.escape()
    browser.screenshot(ARTIFACTS / f"{name}.png")  # as shipped (also the template thumbnail's source)

    for nid, key, value in tiny_widget_values(object_info, name):
        found = browser.js(f"""(() => {{ const n = app.graph.getNodeById({int(nid)});
            const w = n && (n.widgets || []).find(w => w.name === {json.dumps(key)});
            if (!w) return false; w.value = {json.dumps(value)}; return true; }})()""")
        assert found, f"{name}: node {nid} has no widget {key}"

    before = set(client.get_json("/history"))
    browser.js("(async () => { await app.queuePrompt(0, 1); })()")
    deadline = time.monotonic() + 300
    new = set()
    while time.monotonic() < deadline:
        history = client.get_json("/history")
        new = set(history) - before
        if new and all(history[p].get("status", {}).get("completed") is not None for p in new):
            break
        time.sleep(0.5)
    assert new, f"{name}: queueing from the UI sent no prompt"
    for pid in new:
        status = history[pid]["status"]
        assert status["status_str"] == "success", f"{name}: {status}"
