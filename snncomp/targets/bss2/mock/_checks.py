"""Checks of the parameters a ``bss2-mock`` run is given: delays must be 0, biases the compiled ones.

BrainScaleS-2 has no programmable synaptic delay, and a bias is the neurons' leak potential, set at
compile time. Concrete parameters are checked on the host (:func:`check_delays`, :func:`check_biases`);
traced ones inside the program (:func:`delays_checked_in_jit`, :func:`biases_checked_in_jit`), with
the same complaint.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ....runtime import InputError, Params, checked_in_jit

__all__ = [
    "biases_checked_in_jit",
    "check_biases",
    "check_delays",
    "check_no_traces",
    "checked_in_jit_params",
    "delays_checked_in_jit",
]


def delays_checked_in_jit(delays: dict) -> dict:
    """Traced delays, raising at run time unless 0 (the message of :func:`check_delays`)."""
    return {
        key: checked_in_jit(
            d,
            lambda d: jnp.stack([jnp.any(d != 0)]),
            [
                f"params['delay']['{key}'] is not 0: BrainScaleS-2 has no programmable synaptic delay; keep "
                "delays at 0 on the bss2-mock target (checked inside jit: the parameters were traced)"
            ],
        )
        for key, d in delays.items()
    }


def biases_checked_in_jit(biases: dict, compiled: dict) -> dict:
    """Traced biases, raising at run time unless they are the ``compiled`` ones (see :func:`check_biases`)."""
    return {
        key: checked_in_jit(
            b,
            # (mypy can't infer a lambda with a default argument)
            lambda b, ref=compiled[key]: jnp.stack([jnp.any(b != ref.astype(b.dtype))]),  # type: ignore[misc]
            [
                f"params['bias']['{key}'] differs from the compiled bias: on bss2-mock a bias is the neurons' "
                "leak potential, set at compile time; compile the network with the new bias instead (checked "
                "inside jit: the parameters were traced)"
            ],
        )
        for key, b in biases.items()
    }


def check_biases(params: Params, compiled: dict) -> None:
    """Raise unless every bias in ``params`` equals the ``compiled`` one (``compiled``: the bias group)."""
    for key, b in params.get("bias", {}).items():
        ref = np.asarray(compiled[key])
        if not np.array_equal(np.asarray(b, ref.dtype), ref):
            raise InputError(
                f"params['bias']['{key}'] differs from the compiled bias {ref.tolist()}: on bss2-mock a bias "
                "is the neurons' leak potential, set at compile time; compile the network with the new bias "
                "(or leave the 'bias' group out of params)"
            )


def check_delays(params: Params) -> None:
    """Raise unless every delay in ``params`` is 0."""
    for key, d in params["delay"].items():
        if float(np.asarray(d)) != 0.0:
            raise InputError(
                f"params['delay']['{key}'] = {float(np.asarray(d))!r}: BrainScaleS-2 has no programmable "
                "synaptic delay; keep delays at 0 on the bss2-mock target"
            )


def checked_in_jit_params(params: Params, compiled: dict) -> Params:
    """Traced ``params`` (weights, delays, biases) whose delays and biases are checked inside the program
    (``compiled``: the compiled bias group)."""
    return params.replace(
        delay=delays_checked_in_jit(params["delay"]), bias=biases_checked_in_jit(params["bias"], compiled)
    )


def check_no_traces(trace_times: object, trace_populations: object) -> None:
    """Raise if membrane traces are asked for: the emulator records spikes only."""
    if trace_times is not None or trace_populations is not None:
        raise InputError(
            "the bss2-mock target records spikes only: membrane traces would need the CADC/MADC, which the "
            "emulator does not model; trace on target 'jax' (snncomp.compile(net, target='jax'))"
        )
