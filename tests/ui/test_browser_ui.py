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
    why = (os.environ.get("ZEROVIDEO_NO_BROWSER")
           or f"the UI test needs headless Chromium: apt-get install {BROWSER_PACKAGE}")
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

    def graph_picture(self, path: Path, margin: int = 24):
        """The graph alone, fitted to the canvas: zoom and pan so every node (title bars included) fills the
        frame, redraw, and take the canvas' own pixels (the app's menus, side bars and toasts are page
        elements over the canvas, not in it)."""
        data = self.js(f"""(() => {{
            const c = app.canvas, ds = c.ds, title = LiteGraph.NODE_TITLE_HEIGHT;
            const ns = app.graph._nodes;
            const x0 = Math.min(...ns.map(n => n.pos[0])), x1 = Math.max(...ns.map(n => n.pos[0] + n.size[0]));
            const y0 = Math.min(...ns.map(n => n.pos[1] - title)), y1 = Math.max(...ns.map(n => n.pos[1] + n.size[1]));
            const w = c.canvas.width, h = c.canvas.height;
            ds.scale = Math.min((w - 2 * {margin}) / (x1 - x0), (h - 2 * {margin}) / (y1 - y0));
            ds.offset[0] = w / ds.scale / 2 - (x0 + x1) / 2;
            ds.offset[1] = h / ds.scale / 2 - (y0 + y1) / 2;
            const info = c.show_info;
            c.show_info = false;  // LiteGraph's frame counter in the corner
            c.setDirty(true, true);
            c.draw(true, true);
            const png = c.canvas.toDataURL('image/png');
            c.show_info = info;
            const sx = x => (x + ds.offset[0]) * ds.scale, sy = y => (y + ds.offset[1]) * ds.scale;
            return {{png, w, h,
                     box: [sx(x0), sy(y0), sx(x1), sy(y1)]}};  // where the nodes landed, in canvas pixels
        }})()""")
        x0, y0, x1, y1 = data["box"]
        assert -1 <= x0 and -1 <= y0 and x1 <= data["w"] + 1 and y1 <= data["h"] + 1, data["box"]  # all inside
        assert max((x1 - x0) / data["w"], (y1 - y0) / data["h"]) > 0.9, data["box"]  # and filling the frame
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data["png"].split(",", 1)[1]))

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
    browser.escape()  # whatever an earlier test left open
    browser.console.clear()
    browser.js(f"(async () => {{ await app.loadGraphData({json.dumps(ui)}); }})()")
    missing = browser.js("app.graph._nodes.filter(n => !LiteGraph.registered_node_types[n.type]).map(n => n.type)")
    assert missing == [], f"{name}: missing node types {missing}"
    assert browser.js("app.graph._nodes.length") == len(ui["nodes"])
    warnings = [c for c in browser.console if "widget" in c.lower() or "missing" in c.lower()]
    assert warnings == [], f"{name}: {warnings}"
    dialogs = browser.js("Array.from(document.querySelectorAll('.p-dialog')).map(d => d.innerText).join(' | ')")
    # The test server has none of the real model files: the frontend's missing-models dialog must offer a
    # download for exactly the files the workflow's model metadata names (and nothing else may be missing).
    models = {f"{m['directory']} / {m['name']}" for n in ui["nodes"] for m in n.get("properties", {}).get("models", [])}
    if models:
        assert "Missing Models" in dialogs, f"{name}: no missing-models dialog: {dialogs!r}"
        listed = {line.strip() for line in dialogs.splitlines() if " / " in line}
        assert listed == models, f"{name}: {listed} != {models}"
        assert dialogs.count("Download") == len(models), dialogs
        browser.escape()
        browser.wait("document.querySelectorAll('.p-dialog').length == 0", 20)
    else:
        assert "missing" not in dialogs.lower(), f"{name}: {dialogs}"

    ours = browser.js("""JSON.stringify(app.graph._nodes.filter(n => n.type.startsWith('ZeroVideo.')).map(n => {
        const d = n.constructor.nodeData;
        const inputs = Object.assign({}, d.input.required || {}, d.input.optional || {});
        return {type: n.type,
                untipped: Object.entries(inputs).filter(([k, v]) => !(v[1] && v[1].tooltip)).map(([k]) => k),
                outputs: (d.output_tooltips || []).filter(t => !t).length, description: !!d.description,
                widgets: (n.widgets || []).length, size: [n.size[0], n.size[1]]};
    }))""")
    for node in json.loads(ours):
        assert node["untipped"] == [] and node["outputs"] == 0 and node["description"], node
        assert node["size"][0] > 0 and node["size"][1] > 0, node

    browser.escape()
    browser.screenshot(ARTIFACTS / "app" / f"{name}.png")  # the whole app, as shipped
    browser.graph_picture(ARTIFACTS / f"{name}.png")  # the graph alone: the template thumbnail's source

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
