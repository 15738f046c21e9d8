"""Every kind of bad input is rejected with the path and the reason."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import networks

from snncomp import IRError, ir

Doc = dict[str, Any]
# A corruption edits a JSON document in place and returns (path, reason) that the error must contain.
Corruption = Callable[[Doc, Any], tuple[str, str]]


def _neuron(doc: Doc, draw: Any, kinds: tuple[str, ...] = ("lif", "li")) -> tuple[int, Doc]:
    idx = [i for i, n in enumerate(doc["nodes"]) if n["kind"] in kinds]
    i = draw(st.sampled_from(idx))
    return i, doc["nodes"][i]


def _edge(doc: Doc, draw: Any) -> tuple[int, Doc]:
    j = draw(st.integers(0, len(doc["edges"]) - 1))
    return j, doc["edges"][j]


def weight_shape(doc: Doc, draw: Any) -> tuple[str, str]:
    j, e = _edge(doc, draw)
    r, c = e["weight"]["shape"]
    e["weight"]["shape"] = [r, c + 1]
    e["weight"]["data"] = e["weight"]["data"] + [0.0] * r
    e["mask"] = None
    return f"edges[{j}]", f"expected shape [{r}, {c}]"


def nan_weight(doc: Doc, draw: Any) -> tuple[str, str]:
    j, e = _edge(doc, draw)
    e["weight"]["data"][0] = draw(st.sampled_from([float("nan"), float("inf"), float("-inf")]))
    return f"edges[{j}].weight", "must be finite"


def nan_param(doc: Doc, draw: Any) -> tuple[str, str]:
    i, n = _neuron(doc, draw)
    n["tau_syn"] = float("nan")
    return f"nodes[{i}] '{n['name']}' ({n['kind']}).tau_syn", "must be finite"


def tau_nonpositive(doc: Doc, draw: Any) -> tuple[str, str]:
    i, n = _neuron(doc, draw)
    field = draw(st.sampled_from(["tau_mem", "tau_syn"]))
    # tau_syn = 0 is legal (instantaneous synapses); a negative one is not.
    n[field] = draw(st.sampled_from([0.0, -1e-3] if field == "tau_mem" else [-1e-3]))
    return f"nodes[{i}] '{n['name']}'", f"{field}: must be > 0"


def reset_above_threshold(doc: Doc, draw: Any) -> tuple[str, str]:
    i, n = _neuron(doc, draw, ("lif",))
    n["v_threshold"] = 1.0
    n["v_reset"] = draw(st.sampled_from([1.0, 2.5]))
    return f"nodes[{i}] '{n['name']}'", "v_reset: must be < v_threshold"


def per_neuron_length(doc: Doc, draw: Any) -> tuple[str, str]:
    i, n = _neuron(doc, draw)
    n["v_leak"] = [0.0] * (n["size"] + 1)
    return f"nodes[{i}] '{n['name']}'", f"v_leak: per-neuron array has length {n['size'] + 1}"


def unknown_kind(doc: Doc, draw: Any) -> tuple[str, str]:
    i, n = _neuron(doc, draw)
    n["kind"] = "izhikevich"
    return f"nodes[{i}] '{n['name']}'", "unknown node kind 'izhikevich'"


def unknown_field(doc: Doc, draw: Any) -> tuple[str, str]:
    where = draw(st.sampled_from(["node", "edge", "top"]))
    if where == "node":
        i, n = _neuron(doc, draw)
        n["tau_adapt"] = 1.0
        return f"nodes[{i}] '{n['name']}' ({n['kind']}).tau_adapt", "unknown field"
    if where == "edge":
        j, e = _edge(doc, draw)
        e["plasticity"] = "stdp"
        return f"edges[{j}].plasticity", "unknown field"
    doc["version"] = 2
    return "version", "unknown field"


def missing_node(doc: Doc, draw: Any) -> tuple[str, str]:
    j, e = _edge(doc, draw)
    end = draw(st.sampled_from(["source", "target"]))
    e[end] = "ghost"
    return f"edges[{j}]", f"{end}: no node named 'ghost'"


def duplicate_name(doc: Doc, draw: Any) -> tuple[str, str]:
    _i, n = _neuron(doc, draw)
    clone = copy.deepcopy(n)
    doc["nodes"].append(clone)
    return f"nodes[{len(doc['nodes']) - 1}].name", f"duplicate node name '{n['name']}'"


def edge_into_input(doc: Doc, draw: Any) -> tuple[str, str]:
    j, e = _edge(doc, draw)
    inp = next(n for n in doc["nodes"] if n["kind"] == "input")
    e["target"] = inp["name"]
    return f"edges[{j}]", f"'{inp['name']}' is an input node"


def mask_shape(doc: Doc, draw: Any) -> tuple[str, str]:
    j, e = _edge(doc, draw)
    r, c = e["weight"]["shape"]
    e["mask"] = {"dtype": "bool", "shape": [r + 1, c], "data": [True] * ((r + 1) * c)}
    return f"edges[{j}]", "mask: shape"


def negative_delay(doc: Doc, draw: Any) -> tuple[str, str]:
    j, e = _edge(doc, draw)
    e["delay"] = -1e-3
    return f"edges[{j}].delay", "greater than or equal to 0"


def bad_size(doc: Doc, draw: Any) -> tuple[str, str]:
    i = draw(st.integers(0, len(doc["nodes"]) - 1))
    n = doc["nodes"][i]
    value, reason = draw(
        st.sampled_from(
            [
                (0, "greater than or equal to 1"),
                (-3, "greater than or equal to 1"),
                (2.5, "valid integer"),
                (3.0, "valid integer"),
                ("4", "valid integer"),
            ]
        )
    )
    n["size"] = value
    return f"nodes[{i}] '{n['name']}' ({n['kind']}).size", reason


def bad_version(doc: Doc, draw: Any) -> tuple[str, str]:
    doc["ir_version"] = draw(st.sampled_from([0, 2, 99, "1"]))
    return "ir_version", "unsupported ir_version"


CORRUPTIONS: dict[str, Corruption] = {
    f.__name__: f
    for f in (
        weight_shape,
        nan_weight,
        nan_param,
        tau_nonpositive,
        reset_above_threshold,
        per_neuron_length,
        unknown_kind,
        unknown_field,
        missing_node,
        duplicate_name,
        edge_into_input,
        mask_shape,
        negative_delay,
        bad_size,
        bad_version,
    )
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
@given(net=networks(kinds=("lif",), max_size=8), data=st.data())
def test_corruption_is_rejected_with_path_and_reason(name: str, net: ir.Network, data: st.DataObject) -> None:
    doc = json.loads(ir.dumps(net))
    path, reason = CORRUPTIONS[name](doc, data.draw)
    with pytest.raises(IRError) as info:
        ir.from_dict(doc)
    msg = str(info.value)
    assert path in msg, msg
    assert reason in msg, msg
    # Also through text (NaN/inf become JSON's non-standard tokens, which json accepts).
    with pytest.raises(IRError):
        ir.loads(json.dumps(doc))


def test_graph_problems_are_reported_together() -> None:
    doc = {
        "name": "multi",
        "nodes": [
            {"kind": "input", "name": "x", "size": 2},
            {"kind": "lif", "name": "h", "size": 3, "tau_mem": 0.01, "tau_syn": 0.005},
        ],
        "edges": [
            {"source": "x", "target": "hh", "weight": [[1.0] * 3] * 2},
            {"source": "x", "target": "h", "weight": [[1.0] * 2] * 3},
            {"source": "h", "target": "x", "weight": [[1.0] * 2] * 3},
        ],
    }
    with pytest.raises(IRError) as info:
        ir.from_dict(doc)
    err = info.value
    assert len(err.diagnostics) == 3
    paths = [d.path for d in err.diagnostics]
    assert paths == ["edges[0] (x->hh).target", "edges[1] (x->h).weight", "edges[2] (h->x).target"]
    assert "did you mean 'h'" in str(err)


def test_not_json_and_not_object(tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x", nodes: []}')
    with pytest.raises(IRError, match=r"bad.json: not valid JSON: .* line 1 column 15"):
        ir.load(bad)
    arr = tmp_path / "arr.json"
    arr.write_text("[1, 2, 3]")
    with pytest.raises(IRError, match="expected a JSON object at the top level, got list"):
        ir.load(arr)
    binary = tmp_path / "bin.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(IRError, match="not valid JSON"):
        ir.load(binary)
    with pytest.raises(IRError, match="cannot read file"):
        ir.load(tmp_path / "missing.json")


def test_plain_pydantic_entry_point_also_names_paths() -> None:
    from pydantic import ValidationError

    doc = {"name": "n", "nodes": [{"kind": "lif", "name": "h", "size": 2, "tau_mem": -1.0, "tau_syn": 1.0}]}
    with pytest.raises(ValidationError) as info:
        ir.Network.model_validate_json(json.dumps(doc))
    assert "nodes.0.lif" in str(info.value) and "tau_mem: must be > 0" in str(info.value)


def test_bool_is_not_a_number() -> None:
    doc = {"name": "n", "nodes": [{"kind": "lif", "name": "h", "size": 2, "tau_mem": True, "tau_syn": 1.0}]}
    with pytest.raises(IRError, match="got bool"):
        ir.from_dict(doc)
