"""IR: exact JSON round-trip, deterministic text form, schema, golden text."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import GOLDEN_DIR, check_golden, roundtrip
from hypothesis import given
from strategies import networks

from snncomp import ir
from snncomp.ir import Edge, InputNode, LIFNode, LINode, Network

ROOT = Path(__file__).resolve().parents[1]


def small_network() -> Network:
    return Network(
        name="small",
        nodes=(
            InputNode(name="x", size=3),
            LIFNode(name="h", size=4, tau_mem=10e-3, tau_syn=5e-3, t_refrac=1e-3, max_spikes=1),
            LINode(name="o", size=2, tau_mem=np.array([10e-3, 20e-3]), tau_syn=5e-3),
        ),
        edges=(
            Edge(source="x", target="h", weight=np.arange(12, dtype=np.float64).reshape(3, 4) / 10),
            Edge(source="h", target="h", weight=-np.eye(4, dtype=np.float32), delay=5e-4),
            Edge(source="h", target="o", weight=np.ones((4, 2)), mask=np.eye(4, 2, dtype=bool)),
        ),
        metadata={"author": "tests"},
    )


@given(networks())
def test_random_networks_roundtrip_json_exactly(net: Network) -> None:
    back = roundtrip(net)
    for e0, e1 in zip(net.edges, back.edges):
        assert e0.weight.dtype == e1.weight.dtype
        assert e0.weight.shape == e1.weight.shape
        assert e0.weight.tobytes() == e1.weight.tobytes()


@given(networks())
def test_text_form_is_deterministic(net: Network) -> None:
    text = ir.format(net)
    assert text == ir.format(ir.loads(ir.dumps(net)))
    assert text == str(net)
    # One line per node and edge, plus header, outputs and closing brace.
    assert len(text.splitlines()) == len(net.nodes) + len(net.edges) + 3


def test_float64_bits_survive_awkward_values() -> None:
    vals = np.array([[0.1, 1 / 3, 5e-324, -2.2250738585072014e-308, 1.7976931348623157e308, -0.0]])
    net = Network(
        name="bits",
        nodes=(InputNode(name="x", size=1), LIFNode(name="h", size=6, tau_mem=np.nextafter(1.0, 2.0), tau_syn=1e-300)),
        edges=(Edge(source="x", target="h", weight=vals),),
    )
    back = roundtrip(net)
    assert back.edges[0].weight.tobytes() == vals.tobytes()
    assert back.node("h").tau_mem == np.nextafter(1.0, 2.0)
    f32 = np.array([[np.float32(0.1), np.float32(1e-45)]], dtype=np.float32)
    net32 = net.replace(
        nodes=(net.nodes[0], LIFNode(name="h", size=2, tau_mem=1.0, tau_syn=1.0)),
        edges=(Edge(source="x", target="h", weight=f32),),
    )
    assert roundtrip(net32).edges[0].weight.tobytes() == f32.tobytes()


def test_arrays_are_read_only_and_models_frozen() -> None:
    net = small_network()
    with pytest.raises(ValueError):
        net.edges[0].weight[0, 0] = 5.0
    with pytest.raises(Exception, match="frozen"):
        net.name = "other"  # type: ignore[misc]


def test_equality_sees_dtype_and_values() -> None:
    net = small_network()
    e = net.edges[0]
    assert e == Edge(source="x", target="h", weight=e.weight.copy())
    assert e != Edge(source="x", target="h", weight=e.weight.astype(np.float32))
    w = e.weight.copy()
    w[0, 0] = np.nextafter(w[0, 0], 1.0)
    assert e != Edge(source="x", target="h", weight=w)


def test_golden_text(update_golden: bool) -> None:
    check_golden(GOLDEN_DIR / "ir_small.txt", ir.format(small_network()) + "\n", update_golden)


def test_schema_file_is_current() -> None:
    committed = json.loads((ROOT / "docs" / "schema.json").read_text())
    assert committed == ir.json_schema(), "docs/schema.json is stale: run `snncomp schema -o docs/schema.json`"


def test_schema_describes_every_node_kind() -> None:
    schema = ir.json_schema()
    defs = schema["$defs"]
    for kind in ("InputNode", "LIFNode", "LINode", "Edge"):
        assert kind in defs
    assert defs["LIFNode"]["additionalProperties"] is False


def test_implicit_and_declared_outputs() -> None:
    net = small_network()
    assert net.output_names() == ("o",)
    assert net.replace(outputs=("h", "o")).output_names() == ("h", "o")


def test_edge_keys_are_unique() -> None:
    net = small_network()
    dup = net.replace(
        edges=(*net.edges, net.edges[0], Edge(source="x", target="h", weight=net.edges[0].weight, name="x->h#1"))
    )
    keys = dup.edge_keys()
    assert len(set(keys)) == len(keys)
    assert keys[0] == "x->h" and keys[-1] == "x->h#1"
