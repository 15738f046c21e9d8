"""The Yin-Yang training loss and accuracy, reading the network by a :class:`~.model.Readout`'s names."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .config import N_CLASSES, YinYangConfig
from .model import Readout


def loss_fn(
    config: YinYangConfig = YinYangConfig(),  # noqa: B008 (frozen, so shared safely)
    readout: Readout | None = None,
) -> Callable[[Any, Any], Any]:
    """The training loss of ``(recording, params)`` and labels.

    TTFS cross-entropy plus a small term pulling the label neuron early. A neuron that does not
    spike has no gradient, so once the label neuron is silent for a sample nothing in those terms
    can wake it: the *rescue* term then raises the weights from the hidden neurons that did fire
    onto the label neuron (without it training collapses into silent outputs within a few epochs),
    and a hidden neuron silent on the whole batch gets its input weights raised. The rescue terms
    are 0 in value (only their gradients act), so the loss reads as cross-entropy + regularizer.
    ``readout`` names the output and hidden populations and the edges into them (default: those of
    :func:`~.model.build_network`; :meth:`Readout.of` reads them from a network).
    """
    import jax
    import jax.numpy as jnp

    c = config
    names = readout if readout is not None else Readout()

    value_terms = _value_terms(c)

    def loss(out: Any, labels: Any) -> Any:
        rec, params = out
        t = rec.spikes[names.output].to_first_spike_times(N_CLASSES)
        value = value_terms(t, labels)
        if c.rescue_weight:
            t_label = jnp.take_along_axis(t, labels[:, None], axis=-1)[:, 0]
            silent = (~jnp.isfinite(t_label)).astype(t.dtype)
            fired = jnp.isfinite(rec.spikes[names.hidden].to_first_spike_times(c.hidden)).astype(t.dtype)
            w_out = params["weight"][names.output_edge]
            # ``w - stop_gradient(w)`` is 0 in value but has w's gradient: the rescue steers the update
            # without showing up in the reported loss.
            w_label = (w_out - jax.lax.stop_gradient(w_out)).T[labels]  # [batch, hidden]
            value = value - c.rescue_weight * jnp.mean(silent * jnp.sum(fired * w_label, axis=-1))
        if c.hidden_rescue_weight:
            # The same for hidden neurons silent on a whole batch: raise their input weights.
            fired = jnp.isfinite(rec.spikes[names.hidden].to_first_spike_times(c.hidden)).astype(t.dtype)
            dead = (~jnp.any(fired > 0, axis=0)).astype(t.dtype)
            w_in = params["weight"][names.input_edge]
            w_in = w_in - jax.lax.stop_gradient(w_in)
            value = value - c.hidden_rescue_weight * jnp.mean(dead * jnp.sum(w_in, axis=0))
        return value

    return loss


def _value_terms(c: YinYangConfig) -> Callable[[Any, Any], Any]:
    """The loss's value as a batch mean over samples (the rescue terms add gradient only)."""
    from ... import losses

    def value(t: Any, labels: Any) -> Any:
        ce = losses.ttfs_cross_entropy(t, labels, tau=c.ce_tau, t_max=c.t_max)
        return ce + c.reg_weight * losses.spike_time_regularizer(t, labels, tau=c.t_max, t_max=c.t_max)

    return value


def accuracy_fn(out: Any, labels: Any, readout: Readout | None = None) -> Any:
    """Fraction of samples whose earliest output spike is the label's (no spike: wrong).

    The output population is ``readout.output`` (default ``"o"``, :func:`~.model.build_network`'s).
    """
    from ... import losses

    output = readout.output if readout is not None else Readout().output
    rec = out[0] if isinstance(out, tuple) else out
    return losses.first_spike_accuracy(rec.spikes[output].to_first_spike_times(N_CLASSES), labels)
