"""The NIR importer's data: flattened nodes, composed paths, populations, and the state its parts share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import Diagnostic
from ...ir import Edge
from ._common import TIME_UNITS, NIRError
from ._conventions import DEFAULT_DT


@dataclass
class _Leaf:
    """A NIR node after flattening subgraphs."""

    key: str  # flattened, dotted key
    node: Any
    type: str  # NIR type name
    role: str  # input | output | neuron | linear | scale | delay | pass | ignored | unsupported
    size_in: int | None = None
    size_out: int | None = None
    fallback: int | None = None  # size when only (1,)-shaped parameters and no neighbour tells
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"node '{self.key}' ({self.type})"

    @property
    def tied(self) -> bool:
        return self.role in ("neuron", "scale", "delay", "pass")


@dataclass
class _Chain:
    """The composed transfer from a source's spikes to the current point of a path."""

    matrix: np.ndarray | None  # [current, source]; None is the identity
    mixed: bool  # a Linear/Affine has been applied (channels are no longer the source's)
    src_delay: np.ndarray | None  # per source channel
    tgt_delay: np.ndarray | None  # per current channel
    fixed_delay: tuple[float, ...]  # uniform delays already folded in
    path: tuple[str, ...]  # keys of the non-identity transfer nodes passed


@dataclass
class _Pop:
    """An imported population: its IR node, and the factor NIR input gets on the way in."""

    leaf: _Leaf
    name: str
    node: Any
    in_scale: np.ndarray | None  # per target neuron; None for inputs
    scale_f32: bool  # all parameters behind in_scale are float32


class _ImporterBase:
    """The importer's state and problem list; ``_Importer`` combines the parts that work on it."""

    def __init__(
        self,
        nir: Any,
        graph: Any,
        time_unit: str,
        name: str | None,
        convention: str,
        dt: float | None,
    ):
        self.nir = nir
        self.graph = graph
        self.time_unit = time_unit
        self.unit = TIME_UNITS[time_unit]
        self.name = name
        self.convention = convention
        self.dt = DEFAULT_DT[convention] if dt is None else dt
        self.biases: dict[str, np.ndarray] = {}  # neuron key -> summed Affine bias reaching it (NIR units)
        self.recovered_dt: float | None = None  # seconds, where the convention recovers dt from the graph
        self.problems: list[Diagnostic] = []
        self.notes: list[str] = []
        self.approximations: list[str] = []
        self.leaves: dict[str, _Leaf] = {}
        self.subgraphs: dict[str, tuple[list[str], list[str]]] = {}
        self.edges: list[tuple[str, str]] = []
        self.mark: dict[str, Any] | None = None
        # Filled by trace_paths.
        self._pops: dict[str, _Pop] = {}
        self._out_edges: dict[str, list[str]] = {}
        self._edge_order: dict[str, int] = {}
        self._edges: list[tuple[float, Edge]] = []
        self._edge_names: set[str] = set()
        self._outputs: list[str] = []

    def problem(self, where: str, message: str) -> None:
        self.problems.append(Diagnostic(where, message))

    def fail_if_problems(self) -> None:
        if self.problems:
            raise NIRError(f"cannot import NIR graph ({len(self.problems)} problem(s))", self.problems)
