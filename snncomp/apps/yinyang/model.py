"""The Yin-Yang network: building it, the names it is read by, compiling it, and running its weights.

:class:`Readout` names the populations and edges the loss, accuracy, evaluation and optimizer read;
:meth:`Readout.of` finds them in a network (its one output, the population projecting onto it, the
edges' params keys). :class:`_WithParams` runs an executable with fake-quantized (and optionally
gain-noised) weights and hands the params on to the loss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import snncomp

from ...errors import SnnCompError, TargetError
from .config import N_CLASSES, N_INPUTS, YinYangConfig, YinYangError


@dataclass(frozen=True)
class Readout:
    """The names the loss, accuracy, evaluation and optimizer read the network by (default: ``build_network``'s)."""

    hidden: str = "h"
    output: str = "o"
    input_edge: str = "x->h"
    output_edge: str = "h->o"

    @classmethod
    def of(cls, network: Any) -> Readout:
        """The names in ``network``: an IR network (e.g. an executable's ``network``) or a DSL one (built here).

        The output is the network's one output population, the hidden population the one projecting
        onto it, the input edge the projection onto that from an input; edges by their params keys.
        """
        if isinstance(network, snncomp.Network):
            network = network.build()
        outputs = network.output_names()
        if len(outputs) != 1:
            raise YinYangError(f"the Yin-Yang readout needs one output population, network has {list(outputs)}")
        output = outputs[0]
        edges = list(zip(network.edges, network.edge_keys()))
        into = [(e, k) for e, k in edges if e.target == output and e.source != output]
        if len(into) != 1:
            raise YinYangError(f"the Yin-Yang readout needs one projection onto '{output}', got {len(into)}")
        hidden, output_edge = into[0][0].source, into[0][1]
        feed = [k for e, k in edges if e.target == hidden and network.node(e.source).kind == "input"]
        if len(feed) != 1:
            raise YinYangError(f"the Yin-Yang readout needs one input projection onto '{hidden}', got {len(feed)}")
        return cls(hidden=hidden, output=output, input_edge=feed[0], output_edge=output_edge)


def _readout_of(exe: Any) -> Readout:
    """The :class:`Readout` of an executable's network (the defaults where it has none)."""
    network = getattr(exe, "network", None)
    return Readout() if network is None else Readout.of(network)


def build_network(
    config: YinYangConfig = YinYangConfig(),  # noqa: B008 (frozen, so shared safely)
) -> snncomp.Network:
    """The ``5 r -> hidden -> 3`` first-spike network (each neuron spikes at most once; ``r = input_repeat``)."""
    c = config
    net = snncomp.Network("yinyang")
    x = net.input("x", c.n_inputs)
    h = net.lif("h", c.hidden, tau_mem=c.tau_mem, tau_syn=c.tau_syn, max_spikes=1)
    o = net.lif("o", N_CLASSES, tau_mem=c.tau_mem, tau_syn=c.tau_syn, max_spikes=1)
    # Input weights large and spread (every hidden neuron should fire for part of the square);
    # output weights smaller and mostly excitatory so every output neuron spikes at the start.
    # The copies of a repeated input start equal, sharing its weight: the network then computes what
    # the unrepeated one does, and (same inputs, same gradients) trains like it.
    r = c.input_repeat
    w_in = snncomp.init.normal(1.0, 1.0, seed=2 * c.seed + 1)((N_INPUTS, c.hidden))
    net.connect(x, h, weight=np.repeat(w_in / r, r, axis=0))
    net.connect(h, o, init=snncomp.init.normal(0.4, 0.3, seed=2 * c.seed + 2))
    return net


# -- running the weights ---------------------------------------------------------------------------
class _WithParams:
    """An executable whose ``apply`` also returns the params, so the loss can see the weights.

    On the jax target, for weights meant for the chip: ``quantize`` runs the weights the chip would
    realise, ``round(scale * w) / scale``, passing gradients straight through (quantization-aware
    training), and ``noise`` (with a ``key``, i.e. in training) scales each neuron's excitatory and
    inhibitory input by ``1 + noise * N(0, 1)``, drawn afresh per step: the chip's per-neuron
    synaptic gain and threshold/leak offsets act so, and a network trained under them deploys with a
    smaller loss. The bss2-mock target brings its own quantization and mismatch.
    """

    def __init__(self, exe: Any, quantize: float | None = None, noise: float = 0.0):
        self.exe = exe
        self.params = exe.params
        self.scale = quantize
        self.noise = noise
        # A target that draws trial-to-trial noise (bss2-mock) gets the key, so every step and
        # every evaluation is a new trial rather than one draw frozen into the compiled function.
        from ...train import _takes_key

        self.keyed = _takes_key(exe)

    def apply(self, params: Any, inputs: Any, key: Any = None) -> tuple[Any, Any]:
        run_params = params if self.scale is None else fake_quantize(params, self.scale)
        if key is not None and self.noise > 0:
            run_params = _gain_noise(run_params, key, self.noise)
        if self.keyed and key is not None:
            return self.exe.apply(run_params, inputs, key=key), params
        return self.exe.apply(run_params, inputs), params

    def run_with_health(self, params: Any, inputs: Any, key: Any = None) -> tuple[Any, Any]:
        """``(recording, health)`` where the target reports the chip's health (``bss2-mock``), else ``health=None``."""
        run = getattr(self.exe, "run_with_health", None)
        if run is None:
            return self.apply(params, inputs, key)[0], None
        run_params = params if self.scale is None else fake_quantize(params, self.scale)
        if key is not None and self.noise > 0:
            run_params = _gain_noise(run_params, key, self.noise)
        return run(inputs, run_params, key=key) if self.keyed and key is not None else run(inputs, run_params)


def _gain_noise(params: Any, key: Any, std: float) -> Any:
    """Each post-synaptic neuron's positive and negative weights scaled by its own ``1 + std * N(0, 1)``."""
    import jax
    import jax.numpy as jnp

    from ...runtime import with_groups

    weight = {}
    for i, (k, w) in enumerate(sorted(params["weight"].items())):
        exc, inh = jax.random.normal(jax.random.fold_in(key, i), (2, w.shape[-1]), w.dtype)
        weight[k] = w * jnp.where(w > 0, 1 + std * exc, 1 + std * inh)
    return with_groups(params, weight=weight)


def _software_quantization(exe: Any, config: YinYangConfig) -> float | None:
    """The scale to fake-quantize with: chip-ready weights on a software target (the chip quantizes itself)."""
    return config.weight_scale if getattr(exe, "target", None) == "jax" else None


def fake_quantize(params: Any, scale: float) -> Any:
    """Weights rounded to the chip's steps ``1 / scale`` in value, identity in gradient (straight through)."""
    import jax
    import jax.numpy as jnp

    from ...runtime import with_groups

    def q(w: Any) -> Any:
        x = w * scale
        return w + jax.lax.stop_gradient(jnp.sign(x) * jnp.floor(jnp.abs(x) + 0.5) / scale - w)  # halves away from 0

    return with_groups(params, weight=jax.tree.map(q, params["weight"]))


# -- targets ---------------------------------------------------------------------------------------
def compile_for(
    net: snncomp.Network,
    target: str,
    config: YinYangConfig,
    mock: str = "realistic",
    log: Callable[[str], None] | None = None,
) -> Any:
    """Compile for ``"jax"`` or ``"bss2-mock"`` (with the ``mock`` preset ``ideal``/``realistic``).

    On a preset with fixed-pattern noise and ``config.calibrate``, the emulated chip's per-neuron
    synaptic gain is calibrated first (``cached_calibration``: measured once, then loaded).
    """
    if target == "jax":
        return snncomp.compile(net, target="jax", t_max=config.t_max)
    if target != "bss2-mock":
        raise YinYangError(f"unknown target {target!r}; use 'jax' or 'bss2-mock'")
    if mock not in ("ideal", "realistic"):
        raise YinYangError(f"unknown mock preset {mock!r}; use 'ideal' or 'realistic'")
    try:
        from ...targets.bss2.mock import MockConfig, cached_calibration, circuits_of

        preset = MockConfig.ideal() if mock == "ideal" else MockConfig.realistic()
        exe = snncomp.compile(net, target="bss2-mock", t_max=config.t_max, mock=preset)
        if not (config.calibrate and preset.has_fpn):
            return exe
        # Calibrate the circuits this placement uses (placement is deterministic, so compiling again
        # with the calibration lands on the same circuits).
        try:
            calibration = cached_calibration(
                preset,
                exe.chip_seed,
                log=log,
                tau_mem=config.tau_mem,
                tau_syn=config.tau_syn,
                circuits=circuits_of(exe.lowered),
            )
        except TargetError as exc:
            raise YinYangError(
                f"calibrating the emulated chip failed ({exc}); run without it with --no-calibration "
                "(YinYangConfig(calibrate=False))"
            ) from None
        return snncomp.compile(net, target="bss2-mock", t_max=config.t_max, mock=preset, calibration=calibration)
    except (ImportError, TargetError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise YinYangError(f"target 'bss2-mock' is not available: {first}") from None


def bss2_available() -> bool:
    """Whether ``bss2-mock`` compiles here (the emulator package is installed and registered)."""
    try:
        small = YinYangConfig(hidden=4, calibrate=False)
        compile_for(build_network(small), "bss2-mock", small)
    except SnnCompError:
        return False
    return True
