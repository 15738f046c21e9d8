"""The BrainScaleS-2 emulator (target ``bss2-mock``): runs a ``HardwareConfig`` the way the chip would.

It reads nothing but the configuration and the input spikes, and shares no code with the JAX event
simulator, so agreement between the two is evidence about both. Modules: ``_config`` (``MockConfig``
and its presets), ``_routing`` (event delivery as configured), ``_neurons`` (analog parameters and
fixed-pattern noise), ``_dynamics`` (closed-form neuron evolution and the crossing search),
``_engine`` (the general run loop, bus rate limit, readout), ``_layered`` (the layer-parallel engine for
feed-forward single-spike configurations, the same physics in closed form per layer; its plan in
``_layered_plan``, its per-layer kernels in ``_layered_kernels``, its crossing search in
``_layered_crossing``), ``_partitioned`` (``PartitionedExecutable``, ``compile_partitioned``: a network
larger than one chip, run partition by partition), ``_weights``
(re-quantization of new weights into the existing routing), ``_executable`` (``MockExecutable``,
``compile_mock``: a thin class over ``_options`` (``MockOptions``), ``_placements`` (the placement
cache), ``_hil`` (the hardware-in-the-loop gradient through the jax target's lowering), ``_checks``
(delay and bias checks), ``_io`` (inputs and readout as arrays), ``_noise`` (trial noise and keys),
``_health`` (``MockHealth``) and ``_report`` (``MockReport``)), ``_calibrate`` (the spike-based
per-neuron gain calibration, ``calibrate_gain``).
"""

from ._calibrate import GainCalibration, cached_calibration, calibrate_gain, circuits_of
from ._config import MockConfig
from ._executable import MockExecutable, MockHealth, MockReport, compile_mock
from ._partitioned import PartitionedExecutable, PartitionedReport, compile_partitioned
from ._routing import EventTables, event_tables

__all__ = [
    "EventTables",
    "GainCalibration",
    "MockConfig",
    "MockExecutable",
    "MockHealth",
    "MockReport",
    "PartitionedExecutable",
    "PartitionedReport",
    "cached_calibration",
    "calibrate_gain",
    "circuits_of",
    "compile_mock",
    "compile_partitioned",
    "event_tables",
]
