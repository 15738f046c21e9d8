"""The command line never fails silently or with a traceback (issue #16).

Every user error is one line ``snncomp CMD: error: ...`` on stderr and exit code 2 (a report of
several problems adds indented lines below it); an unexpected exception is an ``internal error``
with exit code 1; ``--debug`` shows the traceback. Target names match exactly, and a near miss
gets a "did you mean" hint. The CLI runs in-process (``snncomp.cli.main``) except where the
traceback itself is tested.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snncomp import passes
from snncomp.cli import main
from snncomp.errors import IRError, PipelineError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

# A network small enough that `run` compiles and simulates it in about a second.
TINY_NET: dict[str, Any] = {
    "ir_version": 1,
    "name": "tiny",
    "nodes": [
        {"kind": "input", "name": "x", "size": 2},
        {"kind": "lif", "name": "h", "size": 2, "tau_mem": 0.01, "tau_syn": 0.005, "max_spikes": 2},
    ],
    "edges": [
        {
            "source": "x",
            "target": "h",
            "weight": {"dtype": "float64", "shape": [2, 2], "data": [1.0, 0.5, -0.5, 2.0]},
        }
    ],
}
TINY_INPUTS: dict[str, Any] = {"x": {"times": [0.001, 0.002, 0.004], "neurons": [0, 1, 0]}}


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``snncomp ARGV`` in-process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_user_error(rc: int, err: str, command: str) -> None:
    """Exit 2, one ``snncomp COMMAND: error:`` line (further lines indented), no traceback."""
    assert rc == 2, err
    assert err.startswith(f"snncomp {command}: error: "), err
    assert "Traceback" not in err and "internal error" not in err, err
    lines = err.rstrip("\n").split("\n")
    assert all(line.startswith(" ") for line in lines[1:]), err


def assert_clean(rc: int, err: str, command: str) -> None:
    """Success, or a user error reported as one line: never an internal error."""
    assert rc in (0, 2), err
    if rc == 2:
        assert_user_error(rc, err, command)


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY_NET))
    return path


def write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value))
    return path


# -- (4) exact target names -----------------------------------------------------------------------


@pytest.mark.parametrize(("target", "hint"), [("bss2x", "bss2"), ("bss2-mok", "bss2-mock"), ("jaxx", "jax")])
def test_pipeline_near_miss_is_an_error_with_a_hint(target: str, hint: str) -> None:
    with pytest.raises(PipelineError, match=f"no pipeline for target '{target}'.*did you mean '{hint}'\\?"):
        passes.pipeline(target)


@pytest.mark.parametrize("target", ["bss2x", "bss2_", "bss2mock", "BSS2", "jax ", ""])
def test_pipeline_names_match_exactly(target: str) -> None:
    with pytest.raises(PipelineError, match="known targets: bss2, bss2-mock, jax"):
        passes.pipeline(target)


def test_pipeline_exact_names() -> None:
    assert str(passes.pipeline("jax")) == "verify,infer-shapes,canonicalize,analyze-structure,schedule"
    bss2 = str(passes.pipeline("bss2"))
    assert "place" in bss2 and "route" in bss2
    assert str(passes.pipeline("bss2-mock")) == bss2  # the emulator compiles as the chip does
    with pytest.raises(PipelineError, match="target must be a string"):
        passes.pipeline(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(("target", "hint"), [("bss2x", "bss2"), ("jaxx", "jax")])
def test_compile_unknown_target_is_an_error(capsys: pytest.CaptureFixture[str], target: str, hint: str) -> None:
    rc, out, err = cli(capsys, "compile", EXAMPLES / "yinyang.json", "--target", target, "-q")
    assert_user_error(rc, err, "compile")
    assert f"no pipeline for target '{target}'" in err and f"did you mean '{hint}'?" in err
    assert out == ""


def test_compile_checks_the_target_with_explicit_passes(capsys: pytest.CaptureFixture[str]) -> None:
    rc, _out, err = cli(capsys, "compile", EXAMPLES / "yinyang.json", "--passes", "verify", "--target", "bss2x")
    assert_user_error(rc, err, "compile")
    assert "did you mean 'bss2'?" in err


def test_compile_spikes_per_neuron_with_explicit_passes_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    # It used to be ignored silently: --passes replaces the pipeline the option applies to.
    rc, _out, err = cli(capsys, "compile", EXAMPLES / "yinyang.json", "--passes", "verify", "--spikes-per-neuron", "3")
    assert_user_error(rc, err, "compile")
    assert "schedule{spikes_per_neuron=3}" in err


def test_compile_bss2_mock_target_runs_the_bss2_pipeline(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = cli(capsys, "compile", EXAMPLES / "yinyang.json", "--target", "bss2-mock", "-q")
    assert rc == 0, err
    assert "BrainScaleS-2 resources" in out


# -- (5) errors of the commands -------------------------------------------------------------------


def test_run_non_numeric_time(capsys: pytest.CaptureFixture[str], tiny: Path, tmp_path: Path) -> None:
    inputs = write_json(tmp_path / "inputs.json", {"x": {"times": [0.001, "abc"], "neurons": [0, 1]}})
    rc, out, err = cli(capsys, "run", tiny, "--inputs", inputs, "--t-max", "0.01")
    assert_user_error(rc, err, "run")
    assert f"{inputs}: x: times[1]: expected a number (a spike time in seconds), got 'abc'" in err
    assert out == ""


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"times": [[0.001, "abc"]], "neurons": [[0, 1]]}, "x: times[0][1]: expected a number"),
        ({"times": 5, "neurons": 1}, "x: times: expected a list"),
        ({"times": [None], "neurons": [0]}, "x: times[0]: expected a number (a spike time in seconds), got null"),
        ({"times": [True], "neurons": [0]}, "x: times[0]: expected a number (a spike time in seconds), got true"),
        ({"times": [0.001], "neurons": [1.5]}, "x: neurons[0]: expected an integer (a neuron index), got 1.5"),
        ({"times": [0.001], "neurons": ["0"]}, "x: neurons[0]: expected an integer (a neuron index), got '0'"),
        ({"times": [0.001], "neurons": [10**30]}, "x: neurons[0]: neuron index"),
        ({"times": [10**400], "neurons": [0]}, "x: times[0]: 1000"),
        # Ragged and mixed batches used to be flattened or padded silently.
        ({"times": [[0.001], [0.002]], "neurons": [0, 1]}, "x: neurons[0]: expected a list (a batch"),
        ({"times": [[0.001], 0.002], "neurons": [[0], 1]}, "x: times[1]: expected a list (a batch"),
        ({"times": [[[0.001]]], "neurons": [[[0]]]}, "x: times[0][0]: expected a number"),
        ({"times": [[0.001]], "neurons": [[0], [1]]}, "x: 1 samples of times but 2 of neurons"),
        ({"times": [[0.001, 0.002]], "neurons": [[0]]}, "x: sample 0: 2 spike times but 1 neuron indices"),
        ({"times": [0.001]}, "x: expected exactly 'times' and 'neurons': missing 'neurons'"),
        ({"times": [0.001], "neurons": [0], "weights": [1]}, "x: expected exactly 'times' and 'neurons': unknown"),
        ([0.001], "x: expected an object with 'times' and 'neurons', got a list"),
    ],
)
def test_run_malformed_inputs_name_the_field(
    capsys: pytest.CaptureFixture[str], tiny: Path, tmp_path: Path, entry: Any, message: str
) -> None:
    inputs = write_json(tmp_path / "inputs.json", {"x": entry})
    rc, _out, err = cli(capsys, "run", tiny, "--inputs", inputs, "--t-max", "0.01")
    assert_user_error(rc, err, "run")
    assert f"{inputs}: {message}" in err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "expected an object mapping input names"),
        ('{"x": ', "not JSON"),
        (b"\xff\xfe{", "not UTF-8"),
        ("[" * 100_000, "nested too deeply"),
    ],
)
def test_run_inputs_file_not_an_object(
    capsys: pytest.CaptureFixture[str], tiny: Path, tmp_path: Path, text: str | bytes, message: str
) -> None:
    inputs = tmp_path / "inputs.json"
    inputs.write_bytes(text if isinstance(text, bytes) else text.encode())
    rc, _out, err = cli(capsys, "run", tiny, "--inputs", inputs, "--t-max", "0.01")
    assert_user_error(rc, err, "run")
    assert message in err


def test_user_errors_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = write_json(tmp_path / "bad.json", {**TINY_NET, "nodes": [{**TINY_NET["nodes"][1], "tau_mem": 0.0}]})
    rc, _out, err = cli(capsys, "validate", bad)
    assert_user_error(rc, err, "validate")
    assert "tau_mem: must be > 0" in err
    rc, _out, err = cli(capsys, "compile", tmp_path / "missing.json")
    assert_user_error(rc, err, "compile")
    assert "cannot read file" in err


def test_unwritable_output_is_a_user_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc, _out, err = cli(capsys, "schema", "-o", tmp_path / "no-such-dir" / "schema.json")
    assert_user_error(rc, err, "schema")
    assert err == f"snncomp schema: error: {tmp_path / 'no-such-dir' / 'schema.json'}: No such file or directory\n"


def test_debug_raises_in_process(tmp_path: Path) -> None:
    bad = write_json(tmp_path / "bad.json", [1, 2])
    with pytest.raises(IRError):
        main(["--debug", "validate", str(bad)])


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    """The console script for real: one line without ``--debug``, the traceback with it."""
    net = write_json(tmp_path / "tiny.json", TINY_NET)
    inputs = write_json(tmp_path / "inputs.json", {"x": {"times": ["abc"], "neurons": [0]}})
    cmd = [sys.executable, "-m", "snncomp"]
    args = ["run", str(net), "--inputs", str(inputs), "--t-max", "0.01"]
    r = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 2 and r.stderr.startswith("snncomp run: error: ") and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1, r.stderr
    r = subprocess.run([*cmd, "--debug", *args], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 1 and "Traceback" in r.stderr and "InputError" in r.stderr


@pytest.mark.parametrize(
    ("exc", "code", "expected"),
    [
        (ValueError("bad value\nsecond line"), 2, "snncomp validate: error: ValueError: bad value (run with --debug"),
        (TypeError("wrong type"), 2, "snncomp validate: error: TypeError: wrong type (run with --debug"),
        (KeyError("key"), 2, "snncomp validate: error: KeyError: 'key' (run with --debug"),
        (OSError("disk on fire"), 2, "snncomp validate: error: OSError: disk on fire (run with --debug"),
        (RuntimeError("oops"), 1, "snncomp validate: internal error: RuntimeError: oops (a bug in snncomp"),
        (AttributeError("x"), 1, "snncomp validate: internal error: AttributeError: x (a bug in snncomp"),
    ],
)
def test_safety_net(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    exc: Exception,
    code: int,
    expected: str,
) -> None:
    """Exceptions a command lets through: exit 2 for the kinds bad input raises, 1 (a bug) for others."""

    def fail(args: Any) -> int:
        raise exc

    monkeypatch.setattr("snncomp.cli._ir._cmd_validate", fail)
    rc, _out, err = cli(capsys, "validate", tmp_path / "any.json")
    assert rc == code and err.startswith(expected) and "Traceback" not in err, err
    lines = err.rstrip("\n").split("\n")
    assert all(line.startswith("  ") for line in lines[1:]), err
    with pytest.raises(type(exc)):
        main(["--debug", "validate", str(tmp_path / "any.json")])


def test_bss2_map_pipeline_without_placement(capsys: pytest.CaptureFixture[str]) -> None:
    rc, _out, err = cli(capsys, "bss2-map", EXAMPLES / "yinyang.json", "--pipeline", "verify")
    assert_user_error(rc, err, "bss2-map")
    assert "the pipeline made no hardware configuration" in err


def test_bss2_map_first_fit(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = cli(capsys, "bss2-map", EXAMPLES / "yinyang.json", "--first-fit")
    assert rc == 0, err
    assert "[place] first-fit" in out
    # --first-fit used to be dropped silently where the pipeline spelled place with options.
    text = "verify,infer-shapes,canonicalize,analyze-structure,map-parameters,split-sign,quantize"
    text += ",place{max_circuits_per_neuron=4},route"
    rc, out, err = cli(capsys, "bss2-map", EXAMPLES / "yinyang.json", "--first-fit", "--pipeline", text)
    assert rc == 0 and "[place] first-fit" in out, err
    rc, _out, err = cli(capsys, "bss2-map", EXAMPLES / "yinyang.json", "--first-fit", "--pipeline", "verify")
    assert_user_error(rc, err, "bss2-map")
    assert "--first-fit" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["inspect", "net.json", "--spikes-per-neuron=-1"], "expected a positive integer, got '-1'"),
        (["compile", "net.json", "--spikes-per-neuron", "0"], "expected a positive integer, got '0'"),
        (["run", "n.json", "--inputs", "i.json", "--t-max", "1", "--spikes-per-neuron", "0"], "a positive integer"),
        (["bss2-calibrate", "--rounds", "0"], "expected a positive integer, got '0'"),
        (["bss2-calibrate", "--repeats=-1"], "expected a positive integer, got '-1'"),
        (["bss2-calibrate", "--tau-mem=-0.01"], "expected a finite time > 0 in seconds, got '-0.01'"),
        (["bss2-calibrate", "--tau-syn", "nan"], "expected a finite time > 0 in seconds, got 'nan'"),
        (["train", "yinyang", "--hidden", "abc"], "expected a positive integer, got 'abc'"),
        (["train", "yinyang", "--pretrain-epochs=-1"], "expected an integer >= 0, got '-1'"),
        (["train", "yinyang", "--average-epochs=-2"], "expected an integer >= 0, got '-2'"),
        (["train", "yinyang", "--learning-rate=-1e-3"], "expected a learning rate (a finite number > 0)"),
        (["train", "yinyang", "--finetune-learning-rate", "inf"], "expected a learning rate (a finite number > 0)"),
        (["demo", "--hil-epochs=-1"], "expected an integer >= 0, got '-1'"),
    ],
)
def test_bad_option_values_are_usage_errors(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, argv: list[str], message: str
) -> None:
    """Values that used to be accepted (and ignored, or failed late) are refused by the parser."""

    def never(args: Any) -> int:
        raise AssertionError("the command ran")

    for target in (
        "snncomp.cli._ir._cmd_inspect",
        "snncomp.cli._ir._cmd_compile",
        "snncomp.cli._run._cmd_run",
        "snncomp.targets.bss2._cli._cmd_bss2_calibrate",
        "snncomp.cli._train._cmd_train",
        "snncomp.cli._train._cmd_demo",
    ):
        monkeypatch.setattr(target, never)
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"snncomp {' '.join(argv[:2]) if argv[0] == 'train' else argv[0]}: error: argument" in err
    assert message in err


# -- random malformed input -----------------------------------------------------------------------

# The budget is the profile's (tests/conftest.py: 25 examples in "ci", more in "thorough").
FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths to every part of a JSON document (only the first few items of a long list)."""
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value[:3]):
            out += _paths(item, (*prefix, i))
    return out


@st.composite
def corrupted(draw: st.DrawFn, doc: Any) -> Any:
    """``doc`` with one to three random changes: a part replaced, deleted, or a field added."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc)))
        if not path:
            return draw(json_values)
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(json_values)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(json_values)
        else:
            parent.insert(path[-1], draw(json_values))
    return doc


@st.composite
def renumbered(draw: st.DrawFn, doc: Any) -> Any:
    """``doc`` with one number replaced by another (NaN, infinities, huge, negative, a float index)."""
    doc = copy.deepcopy(doc)
    numbers = [
        p for p in _paths(doc) if p and isinstance(_get(doc, p), (int, float)) and not isinstance(_get(doc, p), bool)
    ]
    if numbers:
        path = draw(st.sampled_from(numbers))
        _get(doc, path[:-1])[path[-1]] = draw(st.floats() | st.integers() | st.integers(-2, 3))
    return doc


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def malformed_json(doc: Any) -> st.SearchStrategy[bytes]:
    """Malformed versions of the JSON document ``doc``, as file contents."""
    text = json.dumps(doc, indent=1)
    return st.one_of(
        json_values.map(lambda v: json.dumps(v).encode()),
        st.text(max_size=40).map(str.encode),
        st.binary(max_size=40),
        st.integers(0, len(text) - 1).map(lambda k: text[:k].encode()),
        corrupted(doc).map(lambda v: json.dumps(v).encode()),
        renumbered(doc).map(lambda v: json.dumps(v).encode()),
    )


def load_example(name: str) -> Any:
    return json.loads((EXAMPLES / name).read_text())


@FUZZ
@given(data=st.data())
def test_fuzz_validate_and_compile(capsys: pytest.CaptureFixture[str], tmp_path: Path, data: st.DataObject) -> None:
    doc = data.draw(st.sampled_from([TINY_NET, load_example("yinyang.json"), load_example("recurrent.json")]))
    path = tmp_path / "net.json"
    path.write_bytes(data.draw(malformed_json(doc)))
    for command in ("validate", "compile"):
        rc, _out, err = cli(capsys, command, path, *(["-q"] if command == "compile" else []))
        assert_clean(rc, err, command)


@FUZZ
@given(data=st.data())
def test_fuzz_run(capsys: pytest.CaptureFixture[str], tmp_path: Path, data: st.DataObject) -> None:
    net, inputs = tmp_path / "net.json", tmp_path / "inputs.json"
    net.write_text(json.dumps(TINY_NET))
    inputs.write_text(json.dumps(TINY_INPUTS))
    path, doc = data.draw(st.sampled_from([(net, TINY_NET), (inputs, TINY_INPUTS), (inputs, TINY_INPUTS)]))
    path.write_bytes(data.draw(malformed_json(doc)))
    rc, _out, err = cli(capsys, "run", net, "--inputs", inputs, "--t-max", "0.01")
    assert_clean(rc, err, "run")


@FUZZ
@given(data=st.data())
def test_fuzz_bss2_map(capsys: pytest.CaptureFixture[str], tmp_path: Path, data: st.DataObject) -> None:
    path = tmp_path / "net.json"
    path.write_bytes(data.draw(malformed_json(load_example("yinyang.json"))))
    rc, _out, err = cli(capsys, "bss2-map", path)
    assert_clean(rc, err, "bss2-map")


@pytest.fixture(scope="module")
def nir_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``examples/recurrent.json`` exported as NIR (HDF5)."""
    pytest.importorskip("nir")
    path = tmp_path_factory.mktemp("nir") / "recurrent.nir"
    assert main(["export-nir", str(EXAMPLES / "recurrent.json"), "-o", str(path)]) == 0
    return path


def _h5_members(f: Any) -> list[str]:
    names: list[str] = []
    f.visit(names.append)
    return names


def damage_hdf5(path: Path, edits: list[tuple[int, Any]]) -> None:
    """Delete (value None) or replace the ``index``-th member (mod the count) of the HDF5 file."""
    import h5py

    with h5py.File(path, "r+") as f:
        for index, value in edits:
            names = _h5_members(f)
            if not names:
                return
            name = names[index % len(names)]
            del f[name]
            if value is not None:
                f[name] = value


h5_values = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-3, 3),
    st.text("abc", max_size=3),
    st.sampled_from(["CubaLIF", "Linear", "Input", "Delay"]),
    st.lists(st.floats(-2, 2), max_size=5),
    st.lists(st.lists(st.floats(-2, 2), min_size=2, max_size=2), max_size=3),
)


def test_import_nir_damaged_hdf5(capsys: pytest.CaptureFixture[str], nir_file: Path, tmp_path: Path) -> None:
    """h5py raises RuntimeError for some damaged files; it used to be an internal error."""
    data = nir_file.read_bytes()
    second = data.find(b"TREE", data.find(b"TREE") + 1)
    path = tmp_path / "damaged.nir"
    path.write_bytes(data[:second] + b"XXXX" + data[second + 4 :])
    rc, _out, err = cli(capsys, "import-nir", path, "-o", tmp_path / "out.json")
    assert_user_error(rc, err, "import-nir")
    assert f"{path}: cannot read NIR file: " in err


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("node/nodes/x->rec/weight", "garbage"),  # nir's parser: AttributeError
        ("node/nodes", 1.0),  # a group replaced by a number
        ("node/nodes/x/shape", [float("nan")]),  # int(nan) in the importer: ValueError
        ("node/nodes/x/shape", [2.5]),
    ],
)
def test_import_nir_wrong_contents(
    capsys: pytest.CaptureFixture[str], nir_file: Path, tmp_path: Path, member: str, value: Any
) -> None:
    import h5py

    path = tmp_path / "wrong.nir"
    path.write_bytes(nir_file.read_bytes())
    with h5py.File(path, "r+") as f:
        del f[member]
        f[member] = value
    rc, _out, err = cli(capsys, "import-nir", path, "-o", tmp_path / "out.json")
    assert_user_error(rc, err, "import-nir")
    assert "(run with --debug" not in err  # a message of the importer, not the safety net's


@FUZZ
@given(data=st.data())
def test_fuzz_import_nir(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, nir_file: Path, data: st.DataObject
) -> None:
    original = nir_file.read_bytes()
    path = tmp_path / "net.nir"
    # Not random byte flips: one in a dataset's header can make h5py read (or inflate) gigabytes.
    kind = data.draw(st.sampled_from(["random", "truncated", "hdf5"]))
    if kind == "random":
        path.write_bytes(data.draw(st.binary(max_size=200)))
    elif kind == "truncated":
        path.write_bytes(original[: data.draw(st.integers(0, len(original) - 1))])
    else:
        path.write_bytes(original)
        damage_hdf5(path, data.draw(st.lists(st.tuples(st.integers(0, 200), h5_values), min_size=1, max_size=3)))
    rc, _out, err = cli(capsys, "import-nir", path, "-o", tmp_path / "out.json")
    assert_clean(rc, err, "import-nir")


def test_run_event_loop(capsys: pytest.CaptureFixture[str], tiny: Path, tmp_path: Path) -> None:
    drive = {"x": {"times": [0.001 + 2e-4 * k for k in range(12)], "neurons": [1] * 12}}  # h fires twice
    inputs = write_json(tmp_path / "inputs.json", drive)
    spikes = {}
    for loop in ("native", "vectorized"):
        out_file = tmp_path / f"{loop}.json"
        rc, _out, err = cli(
            capsys, "run", tiny, "--inputs", inputs, "--t-max", "0.01", "--event-loop", loop, "-o", out_file
        )
        assert rc == 0, err
        spikes[loop] = json.loads(out_file.read_text())["spikes"]["h"]
    assert spikes["native"]["neurons"] == spikes["vectorized"]["neurons"] and spikes["native"]["neurons"]
    assert max(abs(a - b) for a, b in zip(spikes["native"]["times"], spikes["vectorized"]["times"])) < 1e-8
    # tau_mem = 2.4 tau_syn needs the bracketed Newton solver, which the C loop does not have
    other = write_json(
        tmp_path / "ratio.json",
        {**TINY_NET, "nodes": [TINY_NET["nodes"][0], {**TINY_NET["nodes"][1], "tau_mem": 0.012}]},
    )
    rc, _out, err = cli(capsys, "run", other, "--inputs", inputs, "--t-max", "0.01", "--event-loop", "native")
    assert_user_error(rc, err, "run")
    assert "event_loop='native' cannot run the event-queue stage of h" in err
