"""Spike-based per-neuron calibration of the synaptic gain (``calibrate_gain``, ``GainCalibration``).

The chip's standard calibration (calix) leaves a per-neuron spread of synaptic input strength and of
the threshold distance (``MockConfig.realistic``: 5 % gain, 2 + 2 LSB of threshold and leak). For a
first-spike network both act as a per-neuron scaling of the input weights, separately for excitatory
and inhibitory synapses: a neuron crosses threshold when ``sum g w k(t) >= theta``. This module
measures ``g / theta`` of every neuron circuit from spikes alone -- the only thing the emulator
records, as an experiment on the real chip would -- and trims each circuit's excitatory and
inhibitory synaptic-input strength to the design value. On the chip the trims would be the
per-neuron CapMem biases of the synaptic inputs that calix also sets (``BSS2_SPEC.md`` §2.5); here
they multiply the emulated circuit's gain.

The experiment: one population on every circuit, driven at ``t = 0`` by binary-weighted input
channels (6-bit weights ``1, 2, ..., 32`` plus channels at the full 63), so that each sample of a
batch delivers a different integer total weight ``S`` to every neuron. A neuron fires in exactly the
samples whose ``S`` reaches its critical drive; counting the silent samples (with repeats, so the
trial-to-trial threshold noise dithers the count below one step) gives that critical drive. The
inhibitory strength is measured the same way against a fixed excitatory drive of twice the design
critical drive. Both are compared with the same experiment on a chip without mismatch or noise (the
design), so the stagger of the input channels and the timestamp quantization cancel; the design's
circuits are dithered by known gain factors so that its critical drive is known below a scan step
(otherwise its rounding would be a gain error shared by every trim).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from ....errors import TargetError
from ..chip import ChipSpec
from ._calibration_data import _FPN, GainCalibration, chip_fingerprint, circuits_of
from ._config import MockConfig

__all__ = ["GainCalibration", "cached_calibration", "calibrate_gain", "chip_fingerprint", "circuits_of"]

_BINARY = (1, 2, 4, 8, 16, 32)  # 6-bit weights that sum to any integer below 64
_STAGGER_TICKS = 2  # one event per bus and FPGA cycle: spread the channels so none waits or is dropped
_DITHER = 0.03  # design gains scaled by 1 -/+ 3 %: several scan steps, inside every scan's range
_DITHER_SAMPLES = 64  # at least this many dithered design neurons (more passes on few circuits)


def _channels(total_max: int) -> np.ndarray:
    """6-bit channel weights able to express every integer drive in ``0 .. total_max``."""
    full = max(0, int(np.ceil((total_max - sum(_BINARY)) / 63)))
    return np.array([*_BINARY, *([63] * full)], np.int64)


def _decompose(totals: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``bool[samples, channels]``: which channels spike so that their weights sum to each total."""
    n_full = len(weights) - len(_BINARY)
    full = np.minimum(totals // 63, n_full)
    rest = totals - 63 * full
    on = np.zeros((len(totals), len(weights)), bool)
    for k, w in enumerate(_BINARY):
        on[:, k] = (rest & w) != 0
    for k in range(n_full):
        on[:, len(_BINARY) + k] = full > k
    if not np.array_equal(on @ weights, totals):
        bad = totals[on @ weights != totals]
        raise TargetError(
            f"gain calibration: drive level(s) {bad[:4].tolist()} exceed the channels' total {weights.sum()}"
        )
    return on


class _Experiment:
    """The calibration network compiled on one emulated chip, run with per-circuit trims."""

    def __init__(
        self,
        mock: MockConfig,
        chip_seed: int,
        trial_seed: int,
        chip: ChipSpec,
        tau_mem: float,
        tau_syn: float,
        circuits: tuple[int, ...] | None,
    ):
        from ....dsl import Network as Builder
        from ._executable import compile_mock

        self.chip = chip
        total = self.chip.hemispheres * self.chip.columns
        self.n = total if circuits is None else len(circuits)
        # Drives up to 9 and 10 full synapses: the design neuron of the default parameters needs
        # about 233 (3.7 synapses), and the scans reach 2x that (exc) and 2.3x (inh).
        self.we = _channels(63 * 9)
        self.wi = _channels(63 * 10)
        # Pinned, one neuron per circuit: the trims belong to circuits, so the placer must not choose.
        where = list(range(total)) if circuits is None else list(circuits)
        net = Builder("gain-calibration", metadata={"bss2.placement": {"n": {"circuits": where}}})
        e = net.input("e", len(self.we))
        i = net.input("i", len(self.wi))
        pop = net.lif("n", self.n, tau_mem=tau_mem, tau_syn=tau_syn, max_spikes=1)
        self.scale = self.chip.default_weight_scale
        net.connect(e, pop, weight=np.repeat(self.we[:, None] / self.scale, self.n, axis=1))
        net.connect(i, pop, weight=np.repeat(-self.wi[:, None] / self.scale, self.n, axis=1))
        # The critical neuron crosses at the PSP peak (under one tau_mem); 3 tau_mem leave margin.
        self.t_max = 3 * tau_mem
        self.exe = compile_mock(
            net, t_max=self.t_max, mock=mock, chip_seed=chip_seed, trial_seed=trial_seed, chip=self.chip
        )
        cfg = self.exe.lowered
        ids = cfg.populations["n"].neurons
        self.where = np.array([(cfg.neurons[k].hemisphere, cfg.neurons[k].column) for k in ids], np.int64)
        if any(cfg.neurons[k].width != 1 for k in ids):
            wide = next(k for k in ids if cfg.neurons[k].width != 1)
            raise TargetError(
                f"gain calibration needs one circuit per neuron; the placement gave neuron {cfg.neurons[wide].index} "
                f"{cfg.neurons[wide].width} circuits"
            )
        self.tick_model = self.chip.timestamp * cfg.speedup
        self._trimmed: tuple[bytes, Any] | None = None  # the last trims' executable: scans reuse it

    def fired(self, exc: np.ndarray, inh: np.ndarray, trims: np.ndarray | None) -> np.ndarray:
        """``bool[samples, circuits]``: which neuron fired for each sample's (exc, inh) drive."""
        import snncomp

        from ._executable import MockExecutable

        on_e = _decompose(exc, self.we)
        on_i = _decompose(inh, self.wi)
        n_e = len(self.we)
        # Excitatory and inhibitory channels interleave, so both kinds arrive over the same short span.
        slot_e = 2 * np.arange(n_e)
        slot_i = 2 * np.arange(len(self.wi)) + 1
        t_e = np.where(on_e, slot_e * _STAGGER_TICKS * self.tick_model, np.inf)
        t_i = np.where(on_i, slot_i * _STAGGER_TICKS * self.tick_model, np.inf)
        exe: MockExecutable = self.exe
        if trims is not None:
            key = trims.tobytes()
            if self._trimmed is None or self._trimmed[0] != key:
                self._trimmed = (key, exe._with_trims(trims))
            exe = self._trimmed[1]
        rec = exe.run(
            {"e": snncomp.Spikes.from_first_spike_times(t_e), "i": snncomp.Spikes.from_first_spike_times(t_i)},
            on_overflow="raise",
        )
        first = np.asarray(rec.spikes["n"].to_first_spike_times(self.n))
        return np.isfinite(first)


def _critical(fired: np.ndarray, levels: np.ndarray, repeats: int, rising: bool) -> np.ndarray:
    """The drive at which each neuron starts (``rising``) or stops firing, from a scan with repeats.

    ``levels`` must be evenly spaced (``_scan``): the count of silent (rising) or firing (falling)
    levels is then an unbiased estimate of the crossing, in units of the spacing, even when noise
    makes the response non-monotonic near it.
    """
    step = np.diff(levels)
    if step.size == 0 or np.any(step != step[0]):
        raise TargetError(f"gain calibration: scan levels must be evenly spaced, got {levels[:6]} ...")
    f = fired.reshape(repeats, len(levels), -1).mean(axis=0)
    count = (1.0 - f).sum(axis=0) if rising else f.sum(axis=0)
    return levels[0] - 0.5 * float(step[0]) + float(step[0]) * count


def _scan(lo: float, hi: float, points: int) -> np.ndarray:
    """About ``points`` evenly spaced integer drives covering ``[lo, hi]`` (whole 6-bit units)."""
    step = max(1, round((hi - lo) / max(points - 1, 1)))
    start = int(np.floor(lo))
    return np.arange(start, int(np.ceil(hi)) + step, step, dtype=np.int64)


def calibrate_gain(
    mock: MockConfig,
    chip_seed: int = 0,
    *,
    trial_seed: int = 1_000_003,
    chip: ChipSpec | None = None,
    rounds: int = 2,
    repeats: int = 2,
    step: float = 0.002,
    tau_mem: float = 10e-3,
    tau_syn: float = 5e-3,
    circuits: Sequence[int] | None = None,
) -> GainCalibration:
    """Measure ``g / theta`` of every neuron circuit of an emulated chip from spikes and trim it to design.

    ``mock`` and ``chip_seed`` name the chip (its fixed-pattern noise); the measurement runs on it
    with its trial-to-trial noise (``trial_seed``), ``repeats`` times per drive level. Each of
    ``rounds`` rounds measures with the trims so far and corrects them; trims are rounded to
    ``step`` (the resolution of the per-neuron bias; an assumption, ``docs/bss2.md``) and kept in
    ``[0.5, 2]``. ``tau_mem``/``tau_syn`` (model seconds) should be the network's. ``circuits`` (ids
    ``hemisphere * columns + column``; default every circuit) limits the measurement to those a network
    uses (:func:`circuits_of`), the others keep trim 1. Returns the trims and the residual spread
    measured in the last round; pass it as ``compile(..., calibration=)``.
    """
    if rounds < 1 or repeats < 1:
        raise TargetError(f"calibrate_gain: rounds and repeats must be >= 1, got {rounds}, {repeats}")
    if not 0 < step < 0.1:
        raise TargetError(f"calibrate_gain: step must lie in (0, 0.1), got {step}")
    chip_spec = chip if chip is not None else ChipSpec()
    total = chip_spec.hemispheres * chip_spec.columns
    chosen: tuple[int, ...] | None = None
    if circuits is not None:
        chosen = tuple(sorted({int(c) for c in circuits}))
        if not chosen or chosen[0] < 0 or chosen[-1] >= total:
            raise TargetError(f"calibrate_gain: circuits must be ids in 0..{total - 1}, got {list(circuits)[:8]}")
    design = mock.model_copy(update={**{f: 0.0 for f in _FPN}, "threshold_noise": 0.0, "jitter": 0.0})
    ref = _Experiment(design, chip_seed, trial_seed, chip_spec, tau_mem, tau_syn, chosen)
    real = _Experiment(mock, chip_seed, trial_seed, chip_spec, tau_mem, tau_syn, chosen)
    shape = (chip_spec.hemispheres, chip_spec.columns)

    # Design critical drives: exc alone, then inh against twice that exc drive.
    coarse = np.arange(0, int(ref.we.sum()) // 2, 3)
    s_nom = float(np.median(_critical(ref.fired(coarse, 0 * coarse, None), coarse, 1, True)))
    if not 8 <= s_nom <= coarse[-1] - 4:
        raise TargetError(
            f"gain calibration: the design neuron (tau_mem={tau_mem}, tau_syn={tau_syn}) needs a drive of {s_nom:g} "
            f"6-bit units, outside what the experiment can scan (8 .. {coarse[-1] - 4})"
        )
    e_fix = round(2 * s_nom)
    # The first excitatory scan spans the uncalibrated spread; once the excitatory gain is trimmed,
    # every neuron's critical drive lies near the design's and the scans narrow (finer steps).
    wide_e = _scan(0.7 * s_nom, 1.45 * s_nom, 80)
    narrow_e = _scan(0.88 * s_nom, 1.14 * s_nom, 48)
    lv_i = _scan(0.65 * s_nom, 1.45 * s_nom, 96)
    h_idx, c_idx = real.where[:, 0], real.where[:, 1]

    def grid(per_neuron: np.ndarray) -> np.ndarray:
        out = np.ones(shape)  # circuits not measured: trim 1, deviation 0
        out[h_idx, c_idx] = per_neuron
        return out

    def design_critical(exc: np.ndarray, inh: np.ndarray, levels: np.ndarray, side: int) -> float:
        """The design neuron's critical drive on one side (0 exc, rising; 1 inh, falling), below a scan step.

        Every design circuit is the same, so a plain scan gives its critical drive only to the scan step,
        and that error would enter every trim alike: a chip-wide gain error, to which first-spike
        networks are most sensitive (0.5 % costs seed 0's network ~3 points). Scaling each circuit's
        gain by a known factor ``f`` spreads the critical drives ``S / f`` over several steps; the mean
        of ``f`` times the measured drive is then exact to a small fraction of a step.
        """
        n = len(h_idx)
        passes = -(-_DITHER_SAMPLES // n)
        factors = 1.0 + _DITHER * np.linspace(-1.0, 1.0, n * passes).reshape(n, passes).T
        found = []
        for f in factors:
            trims = np.ones((2, *shape))
            trims[side] = grid(f)
            found.append(f * _critical(ref.fired(exc, inh, trims), levels, 1, side == 0))
        return float(np.mean(found))

    s_ref = design_critical(wide_e, 0 * wide_e, wide_e, 0)
    i_ref = design_critical(np.full_like(lv_i, e_fix), lv_i, lv_i, 1)
    u_ref = (e_fix / s_ref - 1.0) / i_ref

    def scan(exc: np.ndarray, inh: np.ndarray, levels: np.ndarray, trims: np.ndarray, name: str) -> np.ndarray:
        rising = not inh.any()
        fired = real.fired(np.tile(exc, repeats), np.tile(inh, repeats), trims)
        # A neuron that fires at every level (or at none) has its critical drive outside the scan.
        # fired is [levels, neurons], so both are boolean rows (numpy's stubs also allow a scalar).
        always, never = cast(np.ndarray, fired.all(axis=0)), ~fired.any(axis=0)
        stuck = always | never
        if stuck.any():
            k = int(np.argmax(stuck))
            h, c = real.where[k]
            how = "fired at every" if always[k] else "fired at no"
            raise TargetError(
                f"gain calibration: circuit (hemisphere {h}, column {c}) {how} {name} drive level scanned "
                f"({levels[0]}..{levels[-1]} 6-bit units; {int(stuck.sum())} circuit(s) so); its mismatch is "
                "beyond what this calibration can measure"
            )
        return _critical(fired, levels, repeats, rising)

    def measure_exc(trims: np.ndarray, levels: np.ndarray) -> np.ndarray:
        """Relative ``g_exc / theta`` per neuron: a stronger neuron needs less drive."""
        return s_ref / scan(levels, 0 * levels, levels, trims, "excitatory")

    def measure_inh(trims: np.ndarray, rel_exc: np.ndarray) -> np.ndarray:
        """Relative ``g_inh / theta`` per neuron, given its (trimmed) relative excitatory strength."""
        s = s_ref / rel_exc
        i = scan(np.full_like(lv_i, e_fix), lv_i, lv_i, trims, "inhibitory")
        return (e_fix / s - 1.0) / i / u_ref

    def quantized(t: np.ndarray) -> np.ndarray:
        return np.clip(np.round(t / step) * step, 0.5, 2.0)

    trims = np.ones((2, *shape))
    before_e = before_i = None
    for r in range(rounds):
        re = measure_exc(trims, wide_e if r == 0 else narrow_e)
        old_e = trims[0][h_idx, c_idx]
        new_e = quantized(old_e / re)
        trims[0] = grid(new_e)
        if r == 0:
            # The inhibitory estimate leans on the excitatory one (twice its relative error), so
            # measure the freshly trimmed excitatory strength again, in the fine scan.
            re_after = measure_exc(trims, narrow_e)
        else:
            re_after = re * new_e / old_e  # the gain is linear in the trim
        ri = measure_inh(trims, re_after)
        trims[1] = grid(quantized(trims[1][h_idx, c_idx] / ri))
        if before_e is None:
            before_e, before_i = re, ri
    res_e = measure_exc(trims, narrow_e)
    res_i = measure_inh(trims, res_e)
    assert before_e is not None and before_i is not None
    measured = np.zeros(shape, bool)
    measured[h_idx, c_idx] = True
    return GainCalibration(
        chip_seed=int(chip_seed),
        fpn=tuple((f, float(getattr(mock, f))) for f in _FPN),
        exc=trims[0],
        inh=trims[1],
        measured=measured,
        residual_exc=grid(res_e) - 1.0,
        residual_inh=grid(res_i) - 1.0,
        before_exc=grid(before_e) - 1.0,
        before_inh=grid(before_i) - 1.0,
        step=float(step),
        rounds=int(rounds),
        tau_mem=float(tau_mem),
        tau_syn=float(tau_syn),
        fingerprint=chip_fingerprint(mock, chip_seed, chip_spec),
    )


def cached_calibration(
    mock: MockConfig,
    chip_seed: int = 0,
    *,
    cache_dir: str | Path | None = None,
    log: Callable[[str], None] | None = None,
    **options: Any,
) -> GainCalibration:
    """:func:`calibrate_gain`, stored on disk and reused while the chip and the options are the same.

    Like the chip's nightly calibration: measured once, loaded by every later experiment. The file
    lives in ``cache_dir`` (default ``$SNNCOMP_CACHE`` or ``~/.cache/snncomp``), named by a hash of
    the mock configuration, ``chip_seed``, the chip and ``options``. ``log`` (a callable) is told when
    a calibration is measured rather than loaded.
    """
    import hashlib
    import os

    chip = options.get("chip") or ChipSpec()
    key = json.dumps(
        {
            "version": 3,  # bump when the measurement changes: older files are then not loaded
            "mock": mock.model_dump(),
            "chip_seed": int(chip_seed),
            "chip": chip.model_dump(),
            "options": {k: v for k, v in sorted(options.items()) if k != "chip"},
        },
        sort_keys=True,
        default=str,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    root = Path(cache_dir or os.environ.get("SNNCOMP_CACHE") or Path.home() / ".cache" / "snncomp")
    path = root / f"bss2-mock-gain-calibration-{digest}.json"
    if path.exists():
        try:
            return GainCalibration.load(path)
        except (OSError, ValueError, KeyError, TypeError):
            pass  # unreadable (e.g. an interrupted write): measure again
    if log is not None:
        log(f"calibrating the emulated chip's per-neuron synaptic gain (chip_seed={chip_seed}; once, then cached)")
    cal = calibrate_gain(mock, chip_seed, **options)
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        cal.save(tmp)
        tmp.replace(path)
    except OSError:
        pass  # a read-only home still gets a calibration, just not a cached one
    return cal
