"""Multi-host data-parallel training, for real: two processes on the loopback interface.

The script is docs/scaling.md's own ``train_multihost.py`` block (so the documentation shows exactly
what runs here). It runs three times at once, as a new process each, with one CPU device per process:
as ranks 0 and 1 of a two-process ``jax.distributed`` cluster on ``127.0.0.1`` (JAX's gloo CPU
collectives), where ``fit`` shards every batch over both processes' devices, and once alone
(``WORLD_SIZE=1``: one device, no sharding). The final parameters and losses of the two runs agree up to
float reassociation of the gradient sum.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from snncomp.train import load_checkpoint

DOC = Path(__file__).resolve().parent.parent / "docs" / "scaling.md"
TIMEOUT_S = 240  # per run; a normal run takes ~20 s on 2 CPU cores


def doc_script() -> str:
    """The python block of docs/scaling.md that calls ``jax.distributed.initialize``."""
    blocks = re.findall(r"^```python\n(.*?)^```$", DOC.read_text(encoding="utf-8"), re.S | re.M)
    found = [b for b in blocks if "jax.distributed.initialize(" in b]
    assert len(found) == 1, f"{DOC}: expected one python block calling jax.distributed.initialize"
    return found[0]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_collectives_available() -> bool:
    from jax._src.lib import _jax

    return hasattr(_jax, "make_gloo_tcp_collectives")


def launch(directory: Path, rank: int, world: int, port: int) -> subprocess.Popen:
    directory.mkdir()
    (directory / "train_multihost.py").write_text(doc_script(), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "grpc_proxy")}
    flags = re.sub(r"--xla_force_host_platform_device_count=\S+", "", env.get("XLA_FLAGS", "")).strip()
    env.update(
        COORDINATOR=f"127.0.0.1:{port}",
        WORLD_SIZE=str(world),
        RANK=str(rank),
        JAX_PLATFORMS="cpu",
        JAX_NUM_CPU_DEVICES="1",
        XLA_FLAGS=flags,
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    return subprocess.Popen(
        [sys.executable, "train_multihost.py"],
        cwd=directory,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(procs: dict[str, subprocess.Popen]) -> dict[str, str]:
    """Wait for every process (killing all of them past the deadline); their output by name."""
    deadline = time.monotonic() + TIMEOUT_S
    outputs = {}
    try:
        for name, proc in procs.items():
            try:
                outputs[name] = proc.communicate(timeout=max(deadline - time.monotonic(), 1))[0]
            except subprocess.TimeoutExpired:
                pytest.fail(f"{name} did not finish within {TIMEOUT_S} s")
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return outputs


def test_two_processes_train_like_one(tmp_path: Path) -> None:
    if not cpu_collectives_available():
        pytest.skip("this jaxlib has no gloo CPU collectives: multi-process CPU training is impossible here")
    port = free_port()
    procs = {
        "rank 0": launch(tmp_path / "rank0", 0, 2, port),
        "rank 1": launch(tmp_path / "rank1", 1, 2, port),
        "single": launch(tmp_path / "single", 0, 1, free_port()),
    }
    outputs = finish(procs)
    for name, proc in procs.items():
        assert proc.returncode == 0, f"{name} failed:\n{outputs[name][-6000:]}"
    assert not (tmp_path / "rank1" / "params.npz").exists()  # only process 0 writes

    like = {"weight": {"x->o": np.zeros((3, 2), np.float32)}}
    multi, _, multi_meta = load_checkpoint(tmp_path / "rank0" / "params.npz", like)
    single, _, single_meta = load_checkpoint(tmp_path / "single" / "params.npz", like)
    assert (multi_meta["devices"], single_meta["devices"]) == (2, 1)
    w_multi, w_single = np.asarray(multi["weight"]["x->o"]), np.asarray(single["weight"]["x->o"])
    assert not np.allclose(w_single, 1.5), "training did not move the weights: the comparison would be empty"
    np.testing.assert_allclose(w_multi, w_single, rtol=1e-5, atol=1e-7)
    for key in ("train_loss", "eval_loss"):
        np.testing.assert_allclose(
            [r[key] for r in multi_meta["records"]], [r[key] for r in single_meta["records"]], rtol=1e-5
        )
