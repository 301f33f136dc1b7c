"""Workflow files: UI format (what File → Save writes) and API format (what /prompt takes).

`ui_to_api` converts with the server's `/object_info`, the way the frontend does it: widget values are
positional in `widgets_values`, in the order of the node's inputs, with an extra 'control after
generate' value after seed-like widgets. Frontend-only nodes (notes, reroutes, primitives) vanish;
muted nodes are dropped and bypassed nodes are wired through.
"""
from __future__ import annotations

import json
from pathlib import Path

FRONTEND_ONLY = {"Note", "MarkdownNote", "PrimitiveNode", "Reroute"}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
MODE_MUTED, MODE_BYPASS = 2, 4


class WorkflowError(ValueError):
    pass


def load(path: str | Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise WorkflowError(f"{path} is not valid JSON: {e}") from e


def is_ui(wf: dict) -> bool:
    return isinstance(wf.get("nodes"), list)


def _input_specs(info: dict) -> list[tuple[str, object, dict]]:
    """[(name, type, options)] in the order the frontend lays out widgets."""
    inputs = info.get("input", {})
    order = info.get("input_order") or {s: list(inputs.get(s, {})) for s in ("required", "optional")}
    out = []
    for section in ("required", "optional"):
        for name in order.get(section, []):
            spec = inputs.get(section, {}).get(name)
            if spec is None:
                continue
            typ = spec[0]
            opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            out.append((name, typ, opts))
    return out


def is_widget(typ, opts: dict) -> bool:
    if isinstance(typ, list):
        return not opts.get("forceInput")
    return typ in WIDGET_TYPES and not opts.get("forceInput")


def has_control_widget(name: str, typ, opts: dict) -> bool:
    return typ in ("INT", "FLOAT") and (opts.get("control_after_generate") or name in ("seed", "noise_seed"))


def widget_names(info: dict) -> list[tuple[str, bool]]:
    """[(input name, followed by a control value?)] for the widgets of a node type."""
    return [(n, has_control_widget(n, t, o)) for n, t, o in _input_specs(info) if is_widget(t, o)]


def ui_to_api(ui: dict, object_info: dict) -> dict:
    nodes = {n["id"]: n for n in ui["nodes"]}
    links = {}
    for link in ui.get("links", []):
        if isinstance(link, dict):
            links[link["id"]] = (link["origin_id"], link["origin_slot"])
        else:
            links[link[0]] = (link[1], link[2])

    def resolve(link_id):
        """Follow reroutes and bypassed nodes back to a real output, or None."""
        seen = set()
        while link_id is not None and link_id in links and link_id not in seen:
            seen.add(link_id)
            src, slot = links[link_id]
            node = nodes.get(src)
            if node is None:
                return None
            if node["type"] == "Reroute":
                link_id = (node.get("inputs") or [{}])[0].get("link")
                continue
            if node.get("mode") == MODE_BYPASS:
                out_type = node["outputs"][slot]["type"]
                link_id = next((i.get("link") for i in node.get("inputs", [])
                                if i.get("type") == out_type and i.get("link") is not None), None)
                continue
            if node.get("mode") == MODE_MUTED or node["type"] in FRONTEND_ONLY:
                return None
            return [str(src), slot]
        return None

    api = {}
    for node in ui["nodes"]:
        ctype = node["type"]
        if ctype in FRONTEND_ONLY or node.get("mode") in (MODE_MUTED, MODE_BYPASS):
            continue
        info = object_info.get(ctype)
        if info is None:
            raise WorkflowError(f"node {node['id']} has type {ctype!r}, which this ComfyUI does not know "
                                f"(missing custom node pack?)")
        inputs = {}
        values = list(node.get("widgets_values") or [])
        if isinstance(node.get("widgets_values"), dict):
            inputs.update(node["widgets_values"])
        else:
            i = 0
            for name, control in widget_names(info):
                if i >= len(values):
                    break
                inputs[name] = values[i]
                i += 2 if control else 1
        for inp in node.get("inputs", []):
            if inp.get("link") is None:
                continue
            src = resolve(inp["link"])
            if src is not None:
                inputs[inp["name"]] = src
        entry = {"class_type": ctype, "inputs": inputs}
        if node.get("title"):
            entry["_meta"] = {"title": node["title"]}
        api[str(node["id"])] = entry
    return api


def parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def find_nodes(api: dict, ref: str) -> list[str]:
    """Node ids matching `ref`: an id, a class_type, or a title."""
    if ref in api:
        return [ref]
    hits = [k for k, v in api.items() if v["class_type"] == ref or v.get("_meta", {}).get("title") == ref]
    return hits


def apply_sets(api: dict, sets: list[str]) -> dict:
    """Apply `NODE.INPUT=VALUE` overrides (NODE: id, class type or title; VALUE: JSON or a string)."""
    api = json.loads(json.dumps(api))
    for item in sets:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise WorkflowError(f"--set {item!r}: expected NODE.INPUT=VALUE (e.g. 3.seed=7)")
        key, value = item.split("=", 1)
        ref, name = key.rsplit(".", 1)
        ids = find_nodes(api, ref)
        if not ids:
            raise WorkflowError(f"--set {item!r}: no node with id, class or title {ref!r}")
        for node_id in ids:
            api[node_id]["inputs"][name] = parse_value(value)
    return api
