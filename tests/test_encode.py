"""Latency encoder and first-spike decoder."""

from __future__ import annotations

import numpy as np
import pytest

import snncomp
from snncomp.encode import decode_first_spike, latency, latency_times
from snncomp.runtime import InputError


def test_latency_is_linear_in_the_value() -> None:
    t = latency_times([[0.0, 0.5, 1.0]], t_early=1e-3, t_late=9e-3)
    np.testing.assert_allclose(t, [[1e-3, 5e-3, 9e-3]])


def test_latency_spikes_are_sorted_per_sample_with_one_spike_per_channel() -> None:
    sp = latency(np.array([[1.0, 0.0], [0.25, 0.75]]), t_early=0.0, t_late=4e-3)
    assert sp.times.shape == (2, 2)
    np.testing.assert_array_equal(np.asarray(sp.neurons), [[1, 0], [0, 1]])
    np.testing.assert_allclose(np.asarray(sp.to_first_spike_times(2)), [[4e-3, 0.0], [1e-3, 3e-3]], atol=1e-9)


def test_duplicate_repeats_adjacent_channels_and_bias_is_last() -> None:
    t = latency_times([[0.0, 1.0]], t_early=1e-3, t_late=2e-3, duplicate=3, bias_time=0.0)
    np.testing.assert_allclose(t, [[1e-3, 1e-3, 1e-3, 2e-3, 2e-3, 2e-3, 0.0]])
    sp = latency([[0.0, 1.0]], t_early=1e-3, t_late=2e-3, duplicate=3, bias_time=0.0)
    assert sp.capacity == 7


def test_one_dimensional_values_are_one_feature() -> None:
    assert latency_times([0.0, 1.0], t_early=0.0, t_late=1.0).shape == (2, 1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"values": [[1.5]]},
        {"values": [[-0.1]]},
        {"values": [[np.nan]]},
        {"values": np.zeros((1, 1, 1))},
        {"t_early": 2.0, "t_late": 1.0},
        {"duplicate": 0},
        {"duplicate": True},
        {"bias_time": -1.0},
    ],
)
def test_latency_rejects_bad_arguments(kwargs: dict) -> None:
    args = {"values": [[0.5]], "t_early": 0.0, "t_late": 1.0, **kwargs}
    with pytest.raises(InputError):
        latency_times(args.pop("values"), **args)


def test_decode_first_spike_picks_the_earliest_and_flags_silence() -> None:
    first = np.array([[3.0, 1.0, 2.0], [np.inf, np.inf, np.inf], [0.5, np.inf, np.inf]], np.float32)
    sp = snncomp.Spikes.from_first_spike_times(first)
    np.testing.assert_array_equal(decode_first_spike(sp, 3), [1, -1, 0])
    with pytest.raises(InputError):
        decode_first_spike(sp, 0)
