"""Execution targets: ``jax_event`` (the event-driven JAX simulator) and ``bss2`` (BrainScaleS-2)."""
