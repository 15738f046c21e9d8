"""``verify-config``: re-derive the realised connectivity from the HardwareConfig alone; compare it with the intent."""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np

from ....passes import Pass, PassContext, annotate_graph, register
from .._annotations import ConfigCheck
from .._problem import Problem
from ..check import Realised, check_config, realise
from ..config import HardwareConfig
from ..errors import ConfigError, Violation

__all__ = ["VerifyConfig", "compare_with_intent"]

_LIMIT = 8  # violations listed per kind; the count says how many there are


def compare_with_intent(
    config: HardwareConfig, g: nx.MultiDiGraph, realised: Realised | None = None
) -> tuple[list[Violation], ConfigCheck]:
    """Compare what ``config`` realises with the quantized weights of graph ``g``.

    The intent comes from the graph's ``signs`` and ``quant`` annotations (not from the config);
    the realisation from :func:`realise`. Checked: every intended synapse (projection, pre, post, sign,
    split copy) is claimed by exactly one physical synapse of the config's projection map, which the
    chip connects to exactly that source and target with that sign and weight; no synapse is claimed
    twice; no unclaimed synapse with a non-zero weight is reached by any source; and, from the chip
    state alone, the summed signed weight between every pair of neurons equals the intended one.
    """
    chip = config.chip
    problem = Problem.from_graph(g, chip)
    N = problem.n_neurons
    out: list[Violation] = []
    realised = realise(config) if realised is None else realised

    gid = {(problem.pops[p], int(i)): k for k, (p, i) in enumerate(zip(problem.pop_of, problem.index_of))}
    src_gid = np.array([gid.get(s, -1) for s in realised.sources] + [-1], np.int64)
    owner = config.circuit_owner()
    neuron_gid = np.array([gid.get((n.population, n.index), -1) for n in config.neurons] + [-1], np.int64)
    weights = config.synapse_weights()
    modes = config.row_modes()
    src_of_syn = realised.synapse_source

    # Projections: the same set in the graph and in the config.
    keys = [e.key for e in problem.edges if e.key not in problem.skipped]
    missing = sorted(set(keys) - set(config.projections))
    extra = sorted(set(config.projections) - {e.key for e in problem.edges})
    for name in missing:
        out.append(Violation(f"projection '{name}'", detail="missing from the configuration's projection map"))
    for name in extra:
        out.append(Violation(f"projection '{name}'", detail="in the configuration but not in the network"))

    # Claimed synapses: the chip must connect each exactly as claimed.
    claimed_cells = []
    claims = []
    for k, info in enumerate(problem.edges):
        pm = config.projections.get(info.key)
        if pm is None:
            continue
        h, r, c = np.array(pm.hemisphere, np.int64), np.array(pm.row, np.int64), np.array(pm.column, np.int64)
        pre, post = np.array(pm.pre, np.int64), np.array(pm.post, np.int64)
        sign, w = np.array(pm.sign, np.int64), np.array(pm.weight, np.int64)
        inside = (
            (h >= 0)
            & (h < chip.hemispheres)
            & (r >= 0)
            & (r < chip.rows_per_hemisphere)
            & (c >= 0)
            & (c < chip.columns)
        )
        if not inside.all():
            out.append(Violation(f"projection '{info.key}'", detail="claims synapses outside the synapse arrays"))
            continue
        want_src = problem.first[info.source] + pre
        want_tgt = problem.first[info.target] + post
        found = src_of_syn[h, r, c]
        got_src = np.where(found >= 0, src_gid[found], -1)
        got_tgt = neuron_gid[owner[h, c]]
        got_sign = modes[h, r].astype(np.int64) - 1
        got_w = weights[h, r, c].astype(np.int64)
        for what, bad in (
            ("is reached by another source (or none)", got_src != want_src),
            ("lies in a column of another neuron", got_tgt != want_tgt),
            ("lies in a row of the other sign", got_sign != sign),
            ("holds another weight", got_w != w),
        ):
            for i in np.nonzero(bad)[0][:_LIMIT]:
                out.append(
                    Violation(
                        f"synapse h{h[i]}:row{r[i]}:col{c[i]} of '{info.key}'[{pre[i]},{post[i]}]",
                        detail=what,
                        check=12,
                    )
                )
            if int(bad.sum()) > _LIMIT:
                out.append(Violation(f"projection '{info.key}'", detail=f"{int(bad.sum())} synapses {what}"))
        claimed_cells.append((h * chip.rows_per_hemisphere + r) * chip.columns + c)
        claims.append(np.stack([np.full(len(pre), k), pre, post, sign, w]))

    cells = np.concatenate(claimed_cells) if claimed_cells else np.zeros(0, np.int64)
    uniq, counts = np.unique(cells, return_counts=True)
    for cell in uniq[counts > 1][:_LIMIT]:
        cell_h, rest = divmod(int(cell), chip.rows_per_hemisphere * chip.columns)
        cell_r, cell_c = divmod(rest, chip.columns)
        out.append(
            Violation(
                f"synapse h{cell_h}:row{cell_r}:col{cell_c}",
                detail="claimed by more than one intended synapse",
                check=12,
            )
        )

    # Claimed multiset == intended multiset, per (projection, pre, post, sign) including split copies.
    intended = np.stack([problem.s_edge, problem.s_i, problem.s_j, problem.s_sign, problem.s_weight])
    got = np.concatenate(claims, axis=1) if claims else np.zeros((5, 0), np.int64)
    intended = intended[:, np.lexsort(intended[::-1])]
    got = got[:, np.lexsort(got[::-1])]
    if intended.shape != got.shape or not np.array_equal(intended, got):
        a = {tuple(x) for x in intended.T.tolist()}
        b = {tuple(x) for x in got.T.tolist()}
        for e, i, j, s, w in sorted(a - b)[:_LIMIT]:
            out.append(
                Violation(
                    f"intended synapse '{problem.edges[e].key}'[{i},{j}] ({'exc' if s == 0 else 'inh'}, w_hw={w})",
                    detail="not realised by the configuration",
                )
            )
        for e, i, j, s, w in sorted(b - a)[:_LIMIT]:
            out.append(
                Violation(
                    f"synapse for '{problem.edges[e].key}'[{i},{j}] ({'exc' if s == 0 else 'inh'}, w_hw={w})",
                    detail="claimed by the configuration but not intended",
                )
            )
        if intended.shape != got.shape and not (a - b) and not (b - a):
            out.append(Violation("intended synapses", got.shape[1], intended.shape[1], detail="copies differ"))

    # Unclaimed synapses reached by a source must have weight 0.
    con = realised.contacts
    contact_cells = (con["h"] * chip.rows_per_hemisphere + con["r"]) * chip.columns + con["c"]
    unclaimed = ~np.isin(contact_cells, uniq)
    stray = unclaimed & (con["weight"] > 0)
    for i in np.nonzero(stray)[0][:_LIMIT]:
        s = realised.sources[con["src"][i]]
        k = owner[con["h"][i], con["c"][i]]
        t = f"{config.neurons[k].population}[{config.neurons[k].index}]" if k >= 0 else "an unused circuit"
        out.append(
            Violation(
                f"synapse h{con['h'][i]}:row{con['r'][i]}:col{con['c'][i]}",
                detail=f"unintended connection {s[0]}[{s[1]}] -> {t} with weight {con['weight'][i]}",
                check=12,
            )
        )

    # From the chip state alone: summed signed weight per (source neuron, target neuron).
    s_g = src_gid[con["src"]]
    t_g = neuron_gid[owner[con["h"], con["c"]]]
    signed = con["weight"] * np.where(con["sign"] == 1, -1, 1)
    ok_pair = (s_g >= 0) & (t_g >= 0) & (signed != 0)
    real = _pair_sums(s_g[ok_pair] * N + t_g[ok_pair], signed[ok_pair])
    want_signed = problem.s_weight * np.where(problem.s_sign == 1, -1, 1)
    nz = want_signed != 0
    want = _pair_sums(problem.s_src[nz] * N + problem.s_tgt[nz], want_signed[nz])
    if real != want:
        diff = sorted(k for k in set(real) | set(want) if real.get(k, 0) != want.get(k, 0))
        for key in diff[:_LIMIT]:
            src, tgt = divmod(key, N)
            out.append(
                Violation(
                    f"connection {problem.name(src)} -> {problem.name(tgt)}",
                    detail=f"realised weight {real.get(key, 0)} != quantized weight {want.get(key, 0)}",
                )
            )
        if len(diff) > _LIMIT:
            out.append(Violation("connections", detail=f"{len(diff)} neuron pairs differ in total"))

    summary = ConfigCheck(
        synapses=int(problem.n_slots),
        contacts=len(contact_cells),
        zero_contacts=int((unclaimed & (con["weight"] == 0)).sum()),
        idle_deliveries=int(realised.idle),
        checks=22,
    )
    return out, summary


def _pair_sums(keys: np.ndarray, values: np.ndarray) -> dict[int, int]:
    if len(keys) == 0:
        return {}
    uniq, inv = np.unique(keys, return_inverse=True)
    sums = np.bincount(inv, weights=values).astype(np.int64)
    return {int(k): int(v) for k, v in zip(uniq, sums) if v != 0}


@register
@dataclass(frozen=True)
class VerifyConfig(Pass):
    """Prove that the ``HardwareConfig`` realises exactly the quantized network; changes nothing.

    Independent of how ``route`` built the configuration: it follows each event through the configured
    crossbar, PADI buses, driver row selects and masks, row signs and synapse labels
    (:func:`snncomp.targets.bss2.check.realise`), applies every configuration rule of spec §5.2
    (:func:`~snncomp.targets.bss2.check.check_config`), and compares the result with the ``quant``
    annotations (:func:`compare_with_intent`). Any difference fails with every problem listed.
    """

    name = "verify-config"
    requires = ("hardware-config", "quantized")
    ensures = ("config-verified",)

    def run(self, graph: nx.MultiDiGraph, ctx: PassContext) -> nx.MultiDiGraph:
        if graph.graph["ann"].get("partitioned") is not None:
            return graph.copy()  # several partitions: the 'partition' pass lowered each on its own
        config = graph.graph["ann"].get("hardware_config")
        if not isinstance(config, HardwareConfig):
            raise ConfigError("no hardware configuration to verify; run route first", [])
        realised = realise(config)
        problems = check_config(config, realised)
        more, summary = compare_with_intent(config, graph, realised)
        problems += more
        if problems:
            raise ConfigError("the hardware configuration does not realise the network", problems)
        g = graph.copy()
        annotate_graph(g, config_check=summary)
        ctx.remark(summary.text())
        return g
