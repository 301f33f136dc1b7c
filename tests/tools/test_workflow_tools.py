"""UI → API conversion and --set, on hand-written graphs (no server needed)."""
import pytest

from scripts.workflow import WorkflowError, apply_sets, ui_to_api

INFO = {
    "KSampler": {"input": {"required": {"model": ["MODEL", {}], "seed": ["INT", {"control_after_generate": True}],
                                        "steps": ["INT", {}], "sampler_name": [["euler", "ddim"], {}]}},
                 "input_order": {"required": ["model", "seed", "steps", "sampler_name"]},
                 "output": ["LATENT"], "output_name": ["LATENT"]},
    "Loader": {"input": {"required": {"name": [["a", "b"], {}]}}, "input_order": {"required": ["name"]},
               "output": ["MODEL"], "output_name": ["MODEL"]},
    "Patch": {"input": {"required": {"model": ["MODEL", {}], "strength": ["FLOAT", {}]}},
              "input_order": {"required": ["model", "strength"]}, "output": ["MODEL"], "output_name": ["MODEL"]},
}


def ui(nodes, links):
    return {"nodes": nodes, "links": links, "version": 0.4}


def node(nid, typ, widgets=(), inputs=(), mode=0, outputs=()):
    return {"id": nid, "type": typ, "mode": mode, "widgets_values": list(widgets),
            "inputs": [{"name": n, "type": t, "link": link} for n, t, link in inputs],
            "outputs": [{"name": t, "type": t, "links": []} for t in outputs]}


def test_widgets_are_positional_and_seed_has_a_control_value():
    wf = ui([node(1, "Loader", ["b"], outputs=["MODEL"]),
             node(2, "KSampler", [5, "fixed", 20, "ddim"], [("model", "MODEL", 1)])],
            [[1, 1, 0, 2, 0, "MODEL"]])
    assert ui_to_api(wf, INFO) == {
        "1": {"class_type": "Loader", "inputs": {"name": "b"}},
        "2": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 20, "sampler_name": "ddim", "model": ["1", 0]}},
    }


def test_bypassed_nodes_are_wired_through_and_reroutes_followed():
    wf = ui([node(1, "Loader", ["a"], outputs=["MODEL"]),
             node(2, "Patch", [0.5], [("model", "MODEL", 1)], mode=4, outputs=["MODEL"]),
             node(3, "Reroute", [], [("", "*", 2)], outputs=["MODEL"]),
             node(4, "KSampler", [1, "fixed", 2, "euler"], [("model", "MODEL", 3)])],
            [[1, 1, 0, 2, 0, "MODEL"], [2, 2, 0, 3, 0, "MODEL"], [3, 3, 0, 4, 0, "MODEL"]])
    api = ui_to_api(wf, INFO)
    assert set(api) == {"1", "4"}
    assert api["4"]["inputs"]["model"] == ["1", 0]


def test_unknown_node_type_names_the_missing_pack():
    with pytest.raises(WorkflowError, match="does not know"):
        ui_to_api(ui([node(1, "SomePackNode")], []), INFO)


def test_set_by_id_class_and_title_with_json_values():
    api = {"1": {"class_type": "KSampler", "inputs": {"seed": 1}},
           "2": {"class_type": "Loader", "inputs": {}, "_meta": {"title": "Main model"}}}
    out = apply_sets(api, ["1.seed=7", "KSampler.steps=3", "Main model.name=v1.safetensors", "1.cfg=7.5"])
    assert out["1"]["inputs"] == {"seed": 7, "steps": 3, "cfg": 7.5}
    assert out["2"]["inputs"] == {"name": "v1.safetensors"}
    assert api["1"]["inputs"] == {"seed": 1}, "apply_sets must not modify its input"
    with pytest.raises(WorkflowError, match="expected NODE.INPUT=VALUE"):
        apply_sets(api, ["seed7"])
    with pytest.raises(WorkflowError, match="no node"):
        apply_sets(api, ["9.seed=1"])
