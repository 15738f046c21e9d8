"""NIR import: :func:`from_nir`, :func:`read_nir` and the importer that combines the parts."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
from pydantic import ValidationError

from ...ir import Edge, Network
from ...ir._io import diagnostics_from_validation_error
from ._common import (
    _FORMAT,
    _MARK,
    _NAME_RE,
    TIME_UNITS,
    NIRError,
    _f64,
    _import_nir,
    _json,
    _numeric,
    _sanitize,
    _unique,
)
from ._conventions import CONVENTIONS
from ._flatten import _Flattener
from ._neurons import _Neurons
from ._paths import _Paths
from ._state import _Leaf, _Pop

if TYPE_CHECKING:  # pragma: no cover - for annotations only; nir stays optional
    import nir


def from_nir(
    graph: nir.NIRGraph,
    *,
    time_unit: str = "s",
    name: str | None = None,
    convention: str = "nir",
    dt: float | None = None,
    tau_syn_ratio: float | None = None,
    if_tau: tuple[float, float] | None = None,
) -> Network:
    """The snncomp network of a NIR graph.

    ``time_unit`` is the unit of the graph's time constants and delays (``"s"``
    or ``"ms"``); NIR files do not record it. ``name`` names the network
    (default: the name stored by :func:`to_nir`, else ``"nir"``).

    ``convention`` says how to read the graph: ``"nir"`` (default) follows NIR's
    equations literally; ``"snntorch"``, ``"spyx"``, ``"rockpool"``, ``"norse"``
    and ``"sinabs"`` undo what that library's exporter writes (discrete time
    steps, spikes read as one-step pulses, its ``r``/``w_in``; see
    ``docs/nir.md``). ``dt`` is the exporter's time step in seconds where the
    file does not store it (defaults in :data:`DEFAULT_DT`; snnTorch: 1e-4 s).

    ``LIF``, ``LI`` and ``IF`` import exactly (instantaneous synapses,
    ``tau_syn = 0``; ``IF`` as ``if``), so ``tau_syn_ratio`` and ``if_tau``,
    which configured an approximation in earlier versions, are ignored with a
    ``DeprecationWarning``.

    Raises :class:`NIRError` naming every node that cannot be imported (nothing
    is half-imported) and :class:`NIRUnavailableError` without the ``nir`` package.
    """
    nir = _import_nir()
    if not isinstance(time_unit, str) or time_unit not in TIME_UNITS:
        raise NIRError(
            f"time_unit must be one of {sorted(TIME_UNITS)}, got {time_unit!r}; NIR files do not record "
            "their time unit, so say which one the file's time constants and delays use"
        )
    if not isinstance(convention, str) or convention not in CONVENTIONS:
        raise NIRError(f"unknown NIR convention {convention!r}; valid conventions: {', '.join(CONVENTIONS)}")
    if dt is not None:
        if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not (math.isfinite(dt) and dt > 0):
            raise NIRError(f"dt must be a time step in seconds > 0, got {dt!r}")
        dt = float(dt)
    if not isinstance(graph, nir.NIRGraph):
        raise NIRError(f"from_nir expects a nir.NIRGraph, got {type(graph).__name__}")
    for option, value in (("tau_syn_ratio", tau_syn_ratio), ("if_tau", if_tau)):
        if value is not None:
            warnings.warn(
                f"from_nir: {option} is deprecated and ignored: NIR LIF, LI and IF now import exactly "
                "(instantaneous synapses, tau_syn = 0)",
                DeprecationWarning,
                stacklevel=2,
            )
    return _Importer(nir, graph, time_unit, name, convention, dt).run()


def read_nir(
    path: str | Path,
    *,
    time_unit: str = "s",
    name: str | None = None,
    convention: str = "nir",
    dt: float | None = None,
    tau_syn_ratio: float | None = None,
    if_tau: tuple[float, float] | None = None,
) -> Network:
    """Read a NIR file (HDF5, as written by ``nir.write``) and import it with :func:`from_nir`.

    The network is named after the file unless the file was written by
    snncomp or ``name`` is given.
    """
    nir = _import_nir()
    p = Path(path)
    try:
        # type_check=False: NIR's type inference can reject graphs we import fine (cycles without
        # an Input edge) and adds Input/Output nodes in place; we infer sizes ourselves.
        graph = nir.read(p, type_check=False)
    except FileNotFoundError:
        raise NIRError(f"{p}: cannot read NIR file: no such file") from None
    except (OSError, ValueError, KeyError, TypeError, AssertionError, RuntimeError, AttributeError, IndexError) as exc:
        # A damaged file: h5py raises RuntimeError for some corrupted HDF5 structures, and nir's
        # parser AttributeError or IndexError where a group or array holds something else.
        raise NIRError(f"{p}: cannot read NIR file: {str(exc) or type(exc).__name__}") from None
    if name is None and _MARK not in (getattr(graph, "metadata", None) or {}):
        name = _sanitize(p.stem) or "nir"
    return from_nir(
        graph,
        time_unit=time_unit,
        name=name,
        convention=convention,
        dt=dt,
        tau_syn_ratio=tau_syn_ratio,
        if_tau=if_tau,
    )


class _Importer(_Flattener, _Neurons, _Paths):
    # -- driver ------------------------------------------------------------------------------
    def run(self) -> Network:
        self.read_mark()
        self.flatten(self.graph, "", top=True)
        self.fail_if_problems()
        self.ignore_inserted_nodes()
        self.infer_sizes()
        self.fail_if_problems()
        if self.convention == "spyx":
            self.reroute_spyx_recurrence()
        self.collect_biases()
        self.fail_if_problems()
        names = self.assign_names()
        pops = self.convert_populations(names)
        edges, outputs = self.trace_paths(pops)
        self.fail_if_problems()
        return self.build(pops, edges, outputs)

    # -- snncomp's own metadata --------------------------------------------------------------
    def read_mark(self) -> None:
        meta = getattr(self.graph, "metadata", None)
        raw = meta.get(_MARK) if isinstance(meta, dict) else None
        if raw is None:
            return
        mark = _json(raw)
        if not isinstance(mark, dict) or mark.get("format") != _FORMAT:
            self.problem("graph metadata", f"'{_MARK}' is not snncomp NIR metadata of format {_FORMAT}")
            return
        self.mark = mark
        if mark.get("time_unit", "s") != self.time_unit:
            self.problem(
                "graph metadata",
                f"this graph was written by snncomp with times in {mark.get('time_unit')!r}; "
                f"import it with time_unit={mark.get('time_unit')!r}, not {self.time_unit!r}",
            )

    # -- populations ---------------------------------------------------------------------------
    def assign_names(self) -> dict[str, str]:
        """IR names for graph inputs and neuron nodes, in the order the network lists them."""
        keys = [leaf.key for leaf in self.leaves.values() if leaf.role in ("input", "neuron")]
        if self.mark is not None:
            order = {k: i for i, k in enumerate(self.mark.get("nodes", []))}
            keys.sort(key=lambda k: order.get(k, len(order)))  # stable: foreign additions keep graph order
        names: dict[str, str] = {}
        taken: set[str] = set()
        renamed: dict[str, str] = {}
        for key in keys:
            ok = _NAME_RE.match(key) is not None and len(key) <= 200
            base = key if ok else (_sanitize(key) or "node")
            name = _unique(base, taken) if base in taken else base
            taken.add(name)
            names[key] = name
            if name != key:
                renamed[name] = key
        if renamed:
            self.notes.append(
                "renamed nodes whose NIR names are not valid IR names: "
                + ", ".join(f"'{k}' -> '{v}'" for v, k in renamed.items())
            )
        return names

    def reroute_spyx_recurrence(self) -> None:
        """Spyx writes a recurrent layer as Input -> w_rec -> lif -> w_rec: its input would pass w_rec.

        Spyx computes ``V = beta V + x + spikes @ w_rec``: the input enters the neurons directly. An edge
        from a subgraph's Input into a weight node that forms a loop with a neuron goes to the neuron.
        """
        edges = set(self.edges)
        new: list[tuple[str, str]] = []
        for s, d in self.edges:
            src, dst = self.leaves[s], self.leaves[d]
            loop = [a for a, b in edges if b == d and a != s and self.leaves[a].role == "neuron" and (d, a) in edges]
            if src.type == "Input" and src.role == "pass" and dst.role == "linear" and len(loop) == 1:
                new.append((s, loop[0]))
                self.notes.append(f"spyx: the input of '{loop[0]}' enters it directly, not through '{d}'")
            else:
                new.append((s, d))
        self.edges = new

    def collect_biases(self) -> None:
        """Every ``Affine`` bias, carried forward through weight nodes to the neurons it reaches.

        An Affine's output is ``W x + b`` for its summed input ``x``, so its bias enters each path once
        (however many sources feed it); a later ``Linear``/``Affine`` multiplies it by its weight, a
        ``Scale`` scales it, a ``Delay`` leaves a constant unchanged.
        """
        out_edges: dict[str, list[str]] = {k: [] for k in self.leaves}
        for s, d in self.edges:
            out_edges[s].append(d)
        for leaf in self.leaves.values():
            if leaf.type != "Affine" or leaf.role == "ignored":
                continue
            b = _numeric(leaf.node.bias)
            if b is None or not np.any(b != 0) or leaf.size_out is None:
                continue
            self.push_bias(leaf, leaf.key, _f64(b, leaf.size_out), out_edges, (leaf.key,))

    def push_bias(
        self, origin: _Leaf, key: str, vec: np.ndarray, out_edges: dict[str, list[str]], seen: tuple[str, ...]
    ) -> None:
        for dst in out_edges[key]:
            leaf = self.leaves[dst]
            if leaf.role == "neuron":
                prev = self.biases.get(dst)
                self.biases[dst] = vec.copy() if prev is None else prev + vec
            elif leaf.role == "output":
                self.problem(
                    origin.where,
                    f"has a nonzero bias that reaches {leaf.where}; a constant input can only enter a neuron "
                    "population (as its bias), not a graph output",
                )
            elif leaf.role in ("linear", "scale", "delay", "pass") and dst not in seen:
                # Weights and scales are numeric: flatten reported any that are not.
                if leaf.role == "linear":
                    nxt = cast(np.ndarray, _numeric(leaf.node.weight)).astype(np.float64) @ vec
                elif leaf.role == "scale":
                    nxt = _f64(cast(np.ndarray, _numeric(leaf.node.scale)), len(vec)) * vec
                else:
                    nxt = vec
                self.push_bias(origin, dst, nxt, out_edges, (*seen, dst))

    # -- result --------------------------------------------------------------------------------
    def build(self, pops: dict[str, _Pop], edges: list[tuple[float, Edge]], outputs: list[str]) -> Network:
        nodes = tuple(p.node for p in pops.values())
        ordered = tuple(e for _, e in sorted(edges, key=lambda x: x[0]))  # stable: ties keep path order
        if self.mark is not None:
            present = {p.name for p in pops.values()}
            name = self.name or self.mark.get("name", "nir")
            outs = tuple(o for o in self.mark.get("outputs", []) if o in present)
            metadata = self.mark.get("metadata", {})
        else:
            name = self.name or "nir"
            outs = tuple(outputs)
            metadata = {"nir.time_unit": self.time_unit}
            if self.convention != "nir":
                dt = self.dt if self.dt is not None else self.recovered_dt
                metadata = {**metadata, "nir.convention": self.convention, "nir.dt": dt}
                if self.convention == "spyx":
                    self.notes.append(
                        "spyx: Spyx tests the previous step's v, so projections out of neurons are delayed by dt; "
                        "Spyx reports each spike one step after snncomp's"
                    )
                if self.convention == "rockpool":
                    self.notes.append(
                        "rockpool: Rockpool's exporter drops a LIFTorch's recurrent weights (has_rec) and its "
                        "own bias parameter; if the model had them, they are missing here"
                    )
                if self.convention in ("spyx", "rockpool", "sinabs") or (
                    self.convention == "snntorch" and any(lf.type in ("LIF", "CubaLIF") for lf in self.leaves.values())
                ):
                    self.notes.append(
                        f"{self.convention}: snncomp resets v to v_reset after a spike; a model that resets by "
                        "subtracting the threshold (the default of snnTorch, Spyx, Rockpool and Sinabs) "
                        "differs after any overshoot"
                    )
        if self.approximations:
            metadata = {**metadata, "nir.approximations": list(self.approximations)}
        if self.notes:
            metadata = {**metadata, "nir.notes": list(self.notes)}
        try:
            return Network(name=name, nodes=nodes, edges=ordered, outputs=outs, metadata=metadata)
        except ValidationError as exc:
            raise NIRError("the imported network is invalid", diagnostics_from_validation_error(exc, {})) from None
