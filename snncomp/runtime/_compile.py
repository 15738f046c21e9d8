"""``compile`` (dispatch through the target table) and the registry shims ``register_target``, ``targets``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import TargetError
from ..ir import Network
from ._executable import Executable

TargetFactory = Callable[..., Executable]


def register_target(name: str, factory: TargetFactory) -> None:
    """Make ``snncomp.compile(net, target=name, **options)`` call ``factory(network, **options)``.

    Shorthand for ``snncomp.targets.register(Target(name, compile=factory))``; a target that also
    brings a pipeline, checks or commands registers a full :class:`snncomp.targets.Target`.
    """
    from ..targets import Target, register

    register(Target(name=name, compile=factory))


def targets() -> list[str]:
    """Names of the targets known here (``snncomp.targets.names()``), usable or not."""
    from ..targets import names

    return names()


def compile(network: Any, target: str = "jax", **options: Any) -> Executable:  # noqa: A001 - the contract's name
    """Compile ``network`` (an ``snncomp.ir.Network`` or a DSL ``snncomp.Network``) for ``target``.

    ``target="jax"`` options: ``t_max`` (window in seconds, overridable per
    run), ``dtype`` (default float32, or float64 when ``jax_enable_x64`` is on),
    ``spikes_per_neuron`` (buffer bound for populations with unbounded
    ``max_spikes``), ``strategy`` (``"auto"`` or ``"event-queue"``, which forces
    the event loop everywhere), ``adjoint`` (``"eventprop"``, the default, or
    ``"autodiff"``: plain JAX autodiff through layer-parallel stages, the reference), ``early_stop``
    (population names: a sample's run ends once every neuron of them has spiked; for losses of first
    spike times only, see ``docs/performance.md``).

    ``target="bss2-mock"`` places and routes the network on BrainScaleS-2 and runs it on the emulator
    (same ``params``/``run``/``apply``/``report``; ``run`` is differentiable, hardware in the loop).
    Options: ``t_max``, ``dtype``, ``spikes_per_neuron`` as above, ``mock`` (a ``MockConfig``:
    ``MockConfig.ideal()``, the default, or ``.realistic()``), ``chip_seed``, ``trial_seed``, ``chip``,
    ``step``, ``verify_each``, and any bss2 pass option by name (``signs``, ``saturate``, ``scale``,
    ``strategy``, ``speedup``, ...); see :func:`snncomp.targets.bss2.mock.compile_mock`.
    ``target="bss2"`` (the real chip) is not available here and says so.
    """
    network = as_network(network)
    from ..targets import get

    plugin = get(target)
    if plugin.compile is None:
        raise TargetError(plugin.unavailable or f"target {target!r} cannot compile here")
    return plugin.compile(network, **options)


def as_network(network: Any) -> Network:
    """The IR network of ``network``: an :class:`~snncomp.ir.Network`, or a DSL builder's ``build()``."""
    from ..dsl import Network as Builder

    if isinstance(network, Builder):
        network = network.build()
    if not isinstance(network, Network):
        raise TargetError(
            f"compile() takes an snncomp.ir.Network (or an snncomp.Network builder), got {type(network).__name__}"
        )
    return network
