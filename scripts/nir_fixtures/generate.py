"""Build tiny networks in other SNN libraries, export them to NIR, record the library's own simulation.

Run in a venv holding the libraries (see requirements.txt; Spyx needs its own jax venv):

    python scripts/nir_fixtures/generate.py [--only snntorch,spyx,...] [--out tests/fixtures/nir]

For each library that imports, writes ``<lib>_<name>.nir`` (the library's own NIR export) and
``<lib>_<name>.npz`` with ``input`` ([steps, n_in] bool spike raster, one row per time step),
``dt`` (the step in seconds), ``output`` ([steps, n_out] bool, the library's output spikes) and,
where there is one, ``hidden``. A library that cannot be imported is skipped with a message.
Everything is seeded; weights are drawn so that the layers fire without saturating.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import numpy as np

N_IN, N_HID, N_OUT, STEPS = 4, 6, 3, 400
P_SPIKE = 0.08


def raster(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((STEPS, N_IN)) < P_SPIKE


def weights(seed: int, scale1: float, scale2: float, bias: float = 0.05):
    """[out, in] weights and biases; a bias settles v at about bias / (1 - beta) (and / (1 - alpha)),
    which must stay below threshold for a neuron with a synaptic current (snncomp rejects tonic firing there)."""
    rng = np.random.default_rng(seed)
    w1 = rng.uniform(0.0, 1.0, (N_HID, N_IN)) * scale1
    w2 = rng.uniform(-0.3, 1.0, (N_OUT, N_HID)) * scale2
    b1 = rng.uniform(-bias, bias, N_HID)
    b2 = rng.uniform(-bias, bias, N_OUT)
    return w1, b1, w2, b2


def save(out: Path, lib: str, name: str, graph, inp, dt, output, hidden=None, **extra) -> None:
    import nir

    path = out / f"{lib}_{name}.nir"
    nir.write(path, graph)
    repack(path)
    arrays = {"input": inp.astype(bool), "dt": np.float64(dt), "output": np.asarray(output).astype(bool)}
    if hidden is not None:
        arrays["hidden"] = np.asarray(hidden).astype(bool)
    arrays.update(extra)
    np.savez_compressed(out / f"{lib}_{name}.npz", **arrays)
    print(
        f"{lib}_{name}: {int(arrays['output'].sum())} output spikes, "
        f"{int(arrays['hidden'].sum()) if hidden is not None else '-'} hidden; {path.stat().st_size} B"
    )


def repack(path: Path) -> None:
    """Rewrite an HDF5 file without chunking or compression: nir.write's chunks cost ~2 kB per array."""
    import h5py

    def copy(a, b):
        for k, v in a.attrs.items():
            b.attrs[k] = v
        for k, v in a.items():
            if isinstance(v, h5py.Dataset):
                d = b.create_dataset(k, data=v[()], dtype=v.dtype)
                for ak, av in v.attrs.items():
                    d.attrs[ak] = av
            else:
                copy(v, b.create_group(k))

    tmp = path.with_suffix(".tmp")
    with h5py.File(path, "r") as f, h5py.File(tmp, "w", libver="latest") as g:
        copy(f, g)
    tmp.replace(path)


# ---------------------------------------------------------------------------------------------- snnTorch
def gen_snntorch(out: Path) -> None:
    import snntorch as snn
    import torch
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)
    inp = raster(0)
    x = torch.tensor(inp, dtype=torch.float32)

    def build(cell, scale1, scale2, seed, bias):
        w1, b1, w2, b2 = weights(seed, scale1, scale2, bias)
        fc1, fc2 = torch.nn.Linear(N_IN, N_HID), torch.nn.Linear(N_HID, N_OUT)
        with torch.no_grad():
            fc1.weight[:] = torch.tensor(w1)
            fc1.bias[:] = torch.tensor(b1)
            fc2.weight[:] = torch.tensor(w2)
            fc2.bias[:] = torch.tensor(b2)
        l1, l2 = cell(N_HID), cell(N_OUT)
        return torch.nn.Sequential(fc1, l1, fc2, l2), (fc1, l1, fc2, l2)

    # Reset to zero without delay: the reset NIR's LIF describes (snnTorch's default subtracts the threshold).
    # Per-neuron beta/alpha/threshold: with scalars the export's shapes do not type-check in nir 1.0.8.
    kw = {"reset_mechanism": "zero", "reset_delay": False, "init_hidden": True}

    def full(n, value):
        return torch.full((n,), value)

    for name, cell, s1, s2, bias in (
        ("leaky", lambda n: snn.Leaky(beta=full(n, 0.9), threshold=full(n, 1.0), **kw), 0.9, 0.9, 0.05),
        (
            "synaptic",
            lambda n: snn.Synaptic(alpha=full(n, 0.8), beta=full(n, 0.9), threshold=full(n, 1.0), **kw),
            0.2,
            0.15,
            0.0025,
        ),
    ):
        seq, (fc1, l1, fc2, l2) = build(cell, s1, s2, 1, bias)
        for m in (l1, l2):
            m.output = False
        hid, outs = [], []
        with torch.no_grad():
            from snntorch import utils as snn_utils

            snn_utils.reset(seq)
            for t in range(STEPS):
                s1_ = l1(fc1(x[t : t + 1]))
                s2_ = l2(fc2(s1_))
                hid.append(s1_[0].numpy())
                outs.append(s2_[0].numpy())
        graph = export_to_nir(seq, x[:1], ignore_dims=[0])
        save(out, "snntorch", name, graph, inp, 1e-4, np.array(outs), np.array(hid))


# ---------------------------------------------------------------------------------------------- Norse
def gen_norse(out: Path) -> None:
    import norse.torch as nt
    import torch
    from norse.torch.functional.lif import LIFParameters
    from norse.torch.functional.lif_box import LIFBoxParameters
    from norse.torch.utils.export_nir import to_nir

    torch.manual_seed(0)
    inp = raster(0)
    x = torch.tensor(inp, dtype=torch.float32)
    dt = 1e-3  # Norse's default step, and to_nir's default dt

    def full(n, value):
        return torch.full((n,), float(value))

    # LIFCell (-> CubaLIF): tau_mem 10 ms, tau_syn 5 ms (Norse's defaults); LIFBoxCell (-> LIF): tau 10 ms.
    # Per-neuron parameters: nir 1.0.8 does not type-check the export's 0-d ones.
    cells = {
        "lif": (
            lambda n: nt.LIFCell(
                LIFParameters(
                    tau_syn_inv=full(n, 200),
                    tau_mem_inv=full(n, 100),
                    v_th=full(n, 1),
                    v_leak=full(n, 0),
                    v_reset=full(n, 0),
                ),
                dt=dt,
            ),
            2.5,
            1.5,
            0.05,
        ),
        "lifbox": (
            lambda n: nt.LIFBoxCell(
                LIFBoxParameters(tau_mem_inv=full(n, 100), v_th=full(n, 1), v_leak=full(n, 0)), dt=dt
            ),
            8.0,
            10.0,
            0.3,
        ),
    }
    for name, (cell, s1, s2, bias) in cells.items():
        w1, b1, w2, b2 = weights(2, s1, s2, bias)
        fc1, fc2 = torch.nn.Linear(N_IN, N_HID), torch.nn.Linear(N_HID, N_OUT)
        with torch.no_grad():
            fc1.weight[:] = torch.tensor(w1)
            fc1.bias[:] = torch.tensor(b1)
            fc2.weight[:] = torch.tensor(w2)
            fc2.bias[:] = torch.tensor(b2)
        l1, l2 = cell(N_HID), cell(N_OUT)
        seq = nt.SequentialState(fc1, l1, fc2, l2)
        hid, outs = [], []
        st1 = st2 = None
        with torch.no_grad():
            for t in range(STEPS):
                z1, st1 = l1(fc1(x[t : t + 1]), st1)
                z2, st2 = l2(fc2(z1), st2)
                hid.append(z1[0].numpy())
                outs.append(z2[0].numpy())
        graph = to_nir(seq, x[:1], dt=dt)
        save(out, "norse", name, graph, inp, dt, np.array(outs), np.array(hid))


# ---------------------------------------------------------------------------------------------- Rockpool
def gen_rockpool(out: Path) -> None:
    import torch
    from rockpool.nn.combinators import Sequential
    from rockpool.nn.modules import LIFTorch, LinearTorch
    from rockpool.nn.modules.torch.nir import to_nir

    torch.manual_seed(0)
    inp = raster(0)
    x = torch.tensor(inp, dtype=torch.float32)[None]  # [batch, time, channels]
    dt = 1e-3

    # LIFTorch (-> CubaLIF), tau_mem 10 ms, tau_syn 5 ms. Rockpool always resets by subtracting the
    # threshold and by default emits up to 2^16 spikes per step; max_spikes_per_dt=1 keeps one.
    # LinearTorch biases become Affine biases (the neuron's own `bias` would be dropped by the exporter).
    def lif(n):
        return LIFTorch(n, tau_mem=0.01, tau_syn=0.005, threshold=1.0, max_spikes_per_dt=1, dt=dt)

    w1, b1, w2, b2 = weights(3, 0.25, 0.15, 0.005)
    fc1, fc2 = LinearTorch((N_IN, N_HID), has_bias=True), LinearTorch((N_HID, N_OUT), has_bias=True)
    fc1.weight, fc1.bias = torch.tensor(w1.T, dtype=torch.float32), torch.tensor(b1, dtype=torch.float32)
    fc2.weight, fc2.bias = torch.tensor(w2.T, dtype=torch.float32), torch.tensor(b2, dtype=torch.float32)
    net = Sequential(fc1, lif(N_HID), fc2, lif(N_OUT))
    with torch.no_grad():
        outs, _, rec = net(x, record=True)
    hid = rec["1_LIFTorch_output"][0].numpy()
    graph = to_nir(net)
    save(out, "rockpool", "lif", graph, inp, dt, outs[0].numpy(), hid)


# ---------------------------------------------------------------------------------------------- Sinabs
def gen_sinabs(out: Path) -> None:
    import sinabs.layers as sl
    import torch
    from sinabs.activation import MembraneReset, SingleSpike
    from sinabs.nir import to_nir

    torch.manual_seed(0)
    inp = raster(0)
    x = torch.tensor(inp, dtype=torch.float32)[None]  # [batch, time, channels]
    dt = 1e-3  # Sinabs counts time in steps; this is the step snncomp's convention assumes by default

    # One spike per step and reset to zero (Sinabs defaults to MultiSpike and subtractive reset).
    kw = {"spike_fn": SingleSpike, "reset_fn": MembraneReset()}
    cells = {
        # LIF (-> NIR LIF, tau in steps): v = alpha v + (1 - alpha) x, alpha = exp(-1 / tau_mem).
        "lif": (
            lambda n: sl.LIF(tau_mem=torch.full((n,), 10.0), spike_threshold=torch.full((n,), 1.0), **kw),
            8.0,
            10.0,
            0.3,
        ),
        # IAF (-> NIR IF): v += x.
        "iaf": (lambda n: sl.IAF(spike_threshold=torch.full((n,), 1.0), **kw), 0.9, 0.9, 0.01),
    }
    for name, (cell, s1, s2, bias) in cells.items():
        w1, b1, w2, b2 = weights(4, s1, s2, bias)
        fc1, fc2 = torch.nn.Linear(N_IN, N_HID), torch.nn.Linear(N_HID, N_OUT)
        with torch.no_grad():
            fc1.weight[:] = torch.tensor(w1)
            fc1.bias[:] = torch.tensor(b1)
            fc2.weight[:] = torch.tensor(w2)
            fc2.bias[:] = torch.tensor(b2)
        l1, l2 = cell(N_HID), cell(N_OUT)
        seq = torch.nn.Sequential(fc1, l1, fc2, l2)
        with torch.no_grad():
            hid = l1(fc1(x))
            outs = l2(fc2(hid))
            graph = to_nir(seq, x[:, :1])
        save(out, "sinabs", name, graph, inp, dt, outs[0].numpy(), hid[0].numpy())


# ---------------------------------------------------------------------------------------------- Spyx
def gen_spyx(out: Path) -> None:
    import jax.numpy as jnp
    from flax import nnx
    from spyx import nn as snn
    from spyx.nir import to_nir

    inp = raster(0)
    x = jnp.asarray(inp, dtype=jnp.float32)
    dt = 1.0  # spyx.nir.to_nir's default: time constants counted in steps

    # Spyx tests V of the previous step (its spike output lags one step) and always resets by
    # subtracting the threshold; to_nir writes tau = dt / (1 - beta).
    cells = {
        "lif": (lambda n: snn.LIF((n,), beta=0.9, threshold=1.0, rngs=nnx.Rngs(0)), 0.9, 0.9, 0.05),
        "cubalif": (
            lambda n: snn.CuBaLIF((n,), alpha=0.8, beta=0.9, threshold=1.0, rngs=nnx.Rngs(0)),
            0.2,
            0.15,
            0.0025,
        ),
    }
    for name, (cell, s1, s2, bias) in cells.items():
        w1, b1, w2, b2 = weights(5, s1, s2, bias)
        fc1 = nnx.Linear(N_IN, N_HID, rngs=nnx.Rngs(0))
        fc2 = nnx.Linear(N_HID, N_OUT, rngs=nnx.Rngs(0))
        fc1.kernel[...], fc1.bias[...] = jnp.asarray(w1.T, jnp.float32), jnp.asarray(b1, jnp.float32)
        fc2.kernel[...], fc2.bias[...] = jnp.asarray(w2.T, jnp.float32), jnp.asarray(b2, jnp.float32)
        l1, l2 = cell(N_HID), cell(N_OUT)
        v1, v2 = l1.initial_state(1)[0], l2.initial_state(1)[0]
        hid, outs = [], []
        for t in range(STEPS):
            z1, v1 = l1(fc1(x[t]), v1)
            z2, v2 = l2(fc2(z1), v2)
            hid.append(np.asarray(z1))
            outs.append(np.asarray(z2))
        shapes = {"input": np.array([N_IN])}, {"output": np.array([N_OUT])}
        graph = to_nir(nnx.Sequential(fc1, l1, fc2, l2), *shapes, dt=dt)
        save(out, "spyx", name, graph, inp, dt, np.array(outs), np.array(hid))


LIBS = {"snntorch": gen_snntorch, "norse": gen_norse, "rockpool": gen_rockpool, "sinabs": gen_sinabs, "spyx": gen_spyx}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(LIBS), help="comma-separated libraries")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "nir"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for lib in args.only.split(","):
        try:
            importlib.import_module(lib)
        except ImportError as exc:
            print(f"{lib}: skipped ({exc})", file=sys.stderr)
            continue
        LIBS[lib](out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
