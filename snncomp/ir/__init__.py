"""The snncomp intermediate representation: typed, frozen, JSON round-trippable."""

from ._io import diagnostics_from_validation_error, dumps, from_dict, load, loads, save
from ._models import (
    IR_VERSION,
    NODE_KINDS,
    SPIKING_KINDS,
    SUPPORTED_IR_VERSIONS,
    Edge,
    FrozenModel,
    IFNode,
    InputNode,
    LIFNode,
    LINode,
    Network,
    Node,
    Param,
)
from ._printer import format_array, format_network, format_value, node_order


def format(network: Network) -> str:  # noqa: A001 - mirrors the contract name snncomp.ir.format
    """The deterministic text form of ``network`` (one line per node and edge)."""
    return format_network(network)


def json_schema() -> dict:
    """The published JSON schema of an IR document (``docs/schema.json``)."""
    schema = Network.model_json_schema()
    schema["$id"] = f"https://snncomp.dev/schema/ir-v{IR_VERSION}.json"
    return schema


__all__ = [
    "IR_VERSION",
    "NODE_KINDS",
    "SPIKING_KINDS",
    "SUPPORTED_IR_VERSIONS",
    "Edge",
    "FrozenModel",
    "IFNode",
    "InputNode",
    "LIFNode",
    "LINode",
    "Network",
    "Node",
    "Param",
    "diagnostics_from_validation_error",
    "dumps",
    "format",
    "format_array",
    "format_network",
    "format_value",
    "from_dict",
    "json_schema",
    "load",
    "loads",
    "node_order",
    "save",
]
