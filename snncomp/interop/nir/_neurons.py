"""NIR import, populations: NIR neuron nodes as IR populations, undoing each exporter's convention."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
from pydantic import ValidationError

from ...ir import InputNode
from ...ir._io import diagnostics_from_validation_error
from ._common import _BIAS, _MODELS, _NEURON_TYPES, _NODE, _T_REFRAC, _f64, _json, _numeric, _param
from ._conventions import _rockpool_dt, _slow_match
from ._state import _ImporterBase, _Leaf, _Pop


class _Neurons(_ImporterBase):
    def convert_populations(self, names: dict[str, str]) -> dict[str, _Pop]:
        pops: dict[str, _Pop] = {}
        for key, name in names.items():
            leaf = self.leaves[key]
            if leaf.role == "input":
                # Sizes are known here: infer_sizes reports every unknown one and run() stops on it.
                pops[key] = _Pop(leaf, name, InputNode(name=name, size=cast(int, leaf.size_out)), None, False)
                continue
            pop = self.convert_neuron(leaf, name)
            if pop is not None:
                pops[key] = pop
        return pops

    def convert_neuron(self, leaf: _Leaf, name: str) -> _Pop | None:
        node, n, t = leaf.node, cast(int, leaf.size_in), leaf.type  # sized: see convert_populations
        kind = _NEURON_TYPES[t]
        blob = _json(leaf.meta.get(_NODE)) if _NODE in leaf.meta else None
        scalars = set(blob.get("scalar", [])) if isinstance(blob, dict) else None

        def raw(p: str, default: float | None = None) -> np.ndarray:
            value = getattr(node, p, None)
            # flatten's param_sizes reported every missing or non-numeric parameter.
            return cast(np.ndarray, _numeric(default if value is None else value))

        def param(arr: np.ndarray, field_name: str, *, time: bool = False) -> float | np.ndarray:
            return _param(arr, n, scalars, field_name, self.unit if time else 1.0)

        # Zero or negative time constants are reported by the IR's validation below, by name.
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            mapped = self.neuron_mapping(leaf, n)
        if mapped is None:
            return None
        taus, in_scale, bias_scale, deps = mapped
        params: dict[str, Any] = {}
        for f, value in taus.items():
            params[f] = value if isinstance(value, float) else param(value, f, time=True)
        if kind != "if":
            params["v_leak"] = param(raw("v_leak"), "v_leak")
        if kind != "li":
            params["v_threshold"] = param(raw("v_threshold"), "v_threshold")
            params["v_reset"] = param(raw("v_reset", 0.0), "v_reset")
            if isinstance(blob, dict):
                params["max_spikes"] = blob.get("max_spikes")
                if blob.get("t_refrac") is not None:
                    params["t_refrac"] = blob["t_refrac"]
                elif _T_REFRAC in leaf.meta:
                    params["t_refrac"] = leaf.meta[_T_REFRAC]
        if leaf.key in self.biases:
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                bias = self.biases[leaf.key] * bias_scale
            if not np.all(np.isfinite(bias)):
                self.problem(leaf.where, "its Affine bias times r (and w_in) is not finite")
                return None
            params["bias"] = self.exact_bias(leaf, blob, bias, n)
        try:
            ir_node = _MODELS[kind](name=name, size=n, **params)
        except ValidationError as exc:
            reasons = "; ".join(d.message for d in diagnostics_from_validation_error(exc, params))
            self.problem(leaf.where, f"does not make a valid {kind} population: {reasons}")
            return None
        if not np.all(np.isfinite(in_scale)):
            self.problem(leaf.where, "r, w_in and tau give a non-finite input factor")
            return None
        return _Pop(leaf, name, ir_node, in_scale, all(d.dtype == np.float32 for d in deps))

    @staticmethod
    def exact_bias(leaf: _Leaf, blob: Any, bias: np.ndarray, n: int) -> float | np.ndarray:
        """The IR bias: the one snncomp stored while it agrees with the graph's, else the computed one."""
        stored: Any = None
        if isinstance(blob, dict) and isinstance(blob.get("bias"), (int, float)):
            stored = float(blob["bias"])
        elif _BIAS in leaf.meta:
            stored = _numeric(leaf.meta[_BIAS])
        if stored is not None:
            full = np.broadcast_to(np.asarray(stored, dtype=np.float64), (n,))
            if np.allclose(full, bias, rtol=1e-9, atol=1e-12 * max(1.0, float(np.max(np.abs(bias))))):
                return stored if isinstance(stored, float) else np.array(stored)
        flat = bias.reshape(-1)
        return float(flat[0]) if bool(np.all(flat == flat[0])) else np.array(flat)

    def neuron_mapping(
        self, leaf: _Leaf, n: int
    ) -> tuple[dict[str, Any], np.ndarray, np.ndarray, tuple[np.ndarray, ...]] | None:
        """Time constants (in file units), and per target neuron the weight and bias factors.

        The weight factor is the IR weight per unit of NIR weight (``Linear``/``Affine`` ``W``);
        the bias factor the IR ``bias`` per unit of ``Affine`` bias ``b``. With ``convention="nir"``
        they follow NIR's equations; the unit of time cancels from the weights (``r * w_in * W``
        and ``tau`` share it, see docs/nir.md). Derivations of the other conventions: docs/nir.md.
        """
        node, t, conv = leaf.node, leaf.type, self.convention
        cuba = t in ("CubaLIF", "CubaLI")

        def get(p: str, default: float | None = None) -> np.ndarray:
            value = getattr(node, p, None)
            # flatten's param_sizes reported every missing or non-numeric parameter.
            return cast(np.ndarray, _numeric(default if value is None else value))

        def v(arr: np.ndarray) -> np.ndarray:
            return _f64(arr, n)

        r = get("r")
        w_in = get("w_in", 1.0) if cuba else None
        unit = self.unit
        per_second = 1.0 / unit if t == "IF" else 1.0  # IR if bias is dv/dt per second
        if conv == "nir" or (conv == "norse" and t == "IF"):
            if conv != "nir":
                self.approximations.append(f"{leaf.where}: Norse's IF convention is not known; read literally")
            if cuba:
                # tau_syn dI/dt = -I + w_in (W S + b): a spike jumps I by w_in W / tau_syn, the bias drives
                # I towards w_in b; r I enters tau_mem dv/dt. With J = r I (the IR's current) the IR weight
                # is r w_in W / tau_syn and the IR bias (J's rest value) r w_in b.
                assert w_in is not None  # read for cuba types
                tau_syn = get("tau_syn")
                taus = {"tau_mem": get("tau_mem"), "tau_syn": tau_syn}
                return taus, v(r) * v(w_in) / v(tau_syn), v(r) * v(w_in), (r, w_in, tau_syn)
            if t in ("LIF", "LI"):
                # tau dv/dt = (v_leak - v) + r (W S + b): a spike moves v by r W / tau; the bias term is
                # r b, the IR's tau_mem dv/dt = -(v - v_leak) + bias with tau_syn = 0.
                tau = get("tau")
                return {"tau_mem": tau, "tau_syn": 0.0}, v(r) / v(tau), v(r), (r, tau)
            # IF: dv/dt = r (W S + b): a spike moves v by r W; the drift r b is per file unit of time.
            return {}, v(r), v(r) * per_second, (r,)

        if self.dt is None and conv != "rockpool":  # pragma: no cover - every other convention has a default
            self.problem(leaf.where, f"convention {conv!r} needs dt")
            return None
        dt = None if self.dt is None else self.dt / unit  # the step in file units
        if conv in ("snntorch", "spyx"):
            # Discrete time: v[k] = beta v[k-1] + x[k] (snnTorch Leaky, Spyx LIF; the exporter writes
            # tau = dt / (1 - beta)), and for CubaLIF syn[k] = alpha syn[k-1] + x[k], v[k] = beta v[k-1]
            # + syn[k]. A spike adds W to x for one step. The continuous system sampled every dt has
            # exp(-dt / tau_c) = beta, so tau_c = -dt / ln(beta). LIF: a spike jumps v by W (factor 1)
            # and a bias b per step settles v at b / (1 - beta). CubaLIF: the discrete response to a spike
            # is W (beta^(k+1) - alpha^(k+1)) / (beta - alpha); the IR's to a current jump J0 is
            # J0 tau_s / (tau_m - tau_s) (beta^k - alpha^k). Matching the slow term beta^k gives
            # J0 = W beta (tau_m - tau_s) / ((beta - alpha) tau_s) (the fast term differs by a factor
            # alpha / beta, i.e. O(dt / tau)); a bias b per step settles v at b / ((1-alpha)(1-beta)).
            assert dt is not None  # both have a default dt
            if t == "IF":
                return {}, np.ones(n), np.full(n, 1.0 / dt) * per_second, ()
            tau_m = v(get("tau_mem") if cuba else get("tau"))
            beta = 1.0 - dt / tau_m
            if cuba:
                alpha = 1.0 - dt / v(get("tau_syn"))
            else:
                alpha = None
            bad = [a for a in (beta, alpha) if a is not None and not np.all((a > 0) & (a < 1))]
            if bad:
                self.problem(
                    leaf.where,
                    f"with dt = {self.dt:g} s its time constants give decay factors 1 - dt/tau outside (0, 1); "
                    "is dt the one the exporter used?",
                )
                return None
            tm = -dt / np.log(beta)
            if not cuba:
                return {"tau_mem": tm, "tau_syn": 0.0}, np.ones(n), 1.0 / (1.0 - beta), ()
            assert alpha is not None  # set for cuba types
            ts = -dt / np.log(alpha)
            wf = _slow_match(alpha, beta, beta, tm, ts, dt)
            self.approximations.append(
                f"{leaf.where}: discrete {conv} synapse (alpha, beta) imported with exact time constants and "
                "the weight matched on the slow component of the response (fast part differs by O(dt/tau))"
            )
            return {"tau_mem": tm, "tau_syn": ts}, wf, 1.0 / ((1.0 - alpha) * (1.0 - beta)), ()
        if conv == "rockpool":
            # Rockpool writes the exact tau and r = tau exp(-dt/tau) / dt (w_in = 1), so dt is recovered
            # from r and tau. LIFTorch per step: isyn += x; vmem *= alpha_m; isyn *= beta_s; vmem += isyn
            # + bias (alpha_m = exp(-dt/tau_mem), beta_s = exp(-dt/tau_syn)). A spike's response is
            # W beta_s (alpha_m^(k+1) - beta_s^(k+1)) / (alpha_m - beta_s); matching the slow term as for
            # snnTorch gives J0 = W beta_s alpha_m (tau_m - tau_s) / ((alpha_m - beta_s) tau_s); a bias b
            # per step settles v at beta_s b / ((1 - beta_s)(1 - alpha_m)).
            tau_m = v(get("tau_mem") if cuba else get("tau"))
            if dt is None:
                dt = _rockpool_dt(float(v(r)[0]), float(tau_m[0]))
                if dt is None:
                    self.problem(leaf.where, "cannot recover dt from r = tau exp(-dt/tau) / dt; pass dt")
                    return None
                if self.recovered_dt is None:
                    self.recovered_dt = dt * unit
            a_m = np.exp(-dt / tau_m)
            if not cuba:
                # LIFNeuronTorch / ExpSynTorch: x[k] added to a state that decays by alpha_m per step.
                return {"tau_mem": tau_m, "tau_syn": 0.0}, np.ones(n), 1.0 / (1.0 - a_m), ()
            tau_s = v(get("tau_syn"))
            b_s = np.exp(-dt / tau_s)
            wf = b_s * _slow_match(b_s, a_m, a_m, tau_m, tau_s, dt)
            self.approximations.append(
                f"{leaf.where}: discrete Rockpool synapse imported with the weight matched on the slow "
                "component of the response (fast part differs by O(dt/tau))"
            )
            return {"tau_mem": tau_m, "tau_syn": tau_s}, wf, b_s / ((1.0 - b_s) * (1.0 - a_m)), ()
        if conv == "norse":
            # Norse writes tau = dt / tau_inv = dt * tau_true (r = 1, w_in = 1, no v_reset: Norse's default
            # 0) and integrates with Euler steps of dt. LIFCell per step: i += x; v += a (v_leak - v + i);
            # i *= alpha, with a = dt/tau_mem, beta = 1 - a, alpha = 1 - dt/tau_syn: the response to a spike
            # W is a W (beta^(k+1) - alpha^(k+1)) / (beta - alpha), snnTorch's Synaptic with gain a, so the
            # same slow-term match applies, with tau_c = -dt / ln(1 - dt/tau) (the sampled decays); a bias
            # b added to i every step settles v at v_leak + b tau_syn / dt. LIFBoxCell/LIBoxCell: v += a
            # (v_leak - v + x), snnTorch's Leaky with gain a: a spike jumps v by a W, a bias settles at b.
            assert dt is not None  # norse has a default dt
            tau_m = v(get("tau_mem") if cuba else get("tau")) / dt  # Norse's tau, in file units
            a = dt / tau_m
            beta = 1.0 - a
            alpha = 1.0 - dt * dt / v(get("tau_syn")) if cuba else np.full(n, 0.5)  # dt / (tau_written / dt)
            bad = [d for d in (beta, alpha) if not np.all((d > 0) & (d < 1))]
            if bad:
                self.problem(
                    leaf.where,
                    f"with dt = {self.dt:g} s its time constants give Euler factors 1 - dt/tau outside (0, 1); "
                    "is dt the one the exporter used?",
                )
                return None
            tm = -dt / np.log(beta)
            if not cuba:
                return {"tau_mem": tm, "tau_syn": 0.0}, v(r) * a, v(r), ()
            assert w_in is not None  # read for cuba types
            ts = -dt / np.log(alpha)
            wf = v(r) * v(w_in) * a * _slow_match(alpha, beta, beta, tm, ts, dt)
            self.approximations.append(
                f"{leaf.where}: Norse's Euler synapse imported with the sampled decays and the weight matched on "
                "the slow component of the response (fast part differs by O(dt/tau))"
            )
            return {"tau_mem": tm, "tau_syn": ts}, wf, v(r) * v(w_in) / (1.0 - alpha), ()
        # sinabs: time in steps of dt. IAF: v += x per step (r = 1); a bias b per step is b / dt per
        # second. LIF/ExpLeak: v = alpha v + (1 - alpha) x with alpha = exp(-1 / tau_steps) (norm_input,
        # Sinabs' default), so a spike jumps v by (1 - alpha) W and a bias b settles v at b.
        if t == "IF":
            return {}, v(r), v(r) / dt * per_second, ()
        if cuba:
            self.problem(leaf.where, "Sinabs writes no CubaLIF/CubaLI; import this graph with another convention")
            return None
        tau_steps = v(get("tau"))
        alpha = np.exp(-1.0 / tau_steps)
        return {"tau_mem": tau_steps * dt, "tau_syn": 0.0}, v(r) * (1.0 - alpha), v(r), ()
