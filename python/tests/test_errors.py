"""Bad specs raise SpecError with the CLI's diagnostics; bad inputs raise ValueError with the
CLI's message, or TypeError for a Python value of the wrong type."""

from __future__ import annotations

import json

import numpy as np
import pytest

import diffc
from conftest import REPO, SPECS, cli_error, load, run_cli

BAD = sorted((REPO / "tests" / "bad").glob("*.diff"))


@pytest.mark.parametrize("path", [BAD[0], BAD[len(BAD) // 2], BAD[-1]], ids=lambda p: p.name)
def test_spec_error_is_the_cli_diagnostic(cli, path):
    r = run_cli(cli, "check", str(path))
    assert r.returncode == 1
    with pytest.raises(diffc.SpecError) as err:
        diffc.load(str(path))
    assert isinstance(err.value, ValueError)
    assert str(err.value) == r.stderr
    js = [json.loads(line) for line in run_cli(cli, "--message-format", "json", "check", str(path)).stdout.splitlines()]
    ours = err.value.diagnostics
    assert len(ours) == len(js) > 0
    for d, j in zip(ours, js):
        primary = next(s for s in j["spans"] if s["is_primary"])
        assert (d.severity, d.code, d.message) == (j["severity"], j["code"], j["message"])
        assert (d.line, d.column, d.end_line, d.end_column) == (
            primary["line_start"], primary["column_start"], primary["line_end"], primary["column_end"])
    assert any(d.severity == "error" for d in ours)


def test_loads_names_the_source_in_diagnostics():
    with pytest.raises(diffc.SpecError) as err:
        diffc.loads("process p {\n  dim d\n  field x : real[q]\n}\n", name="inline.diff")
    assert "inline.diff:3:" in str(err.value)
    d = err.value.diagnostics[0]
    assert (d.line, d.severity) == (3, "error") and d.code.startswith("E")


def test_process_choice():
    with pytest.raises(ValueError, match="several processes; pick one with process=… \\(ddpm_linear, ddpm_cosine, ddpm_cfg\\)"):
        diffc.load(SPECS / "ddpm.diff")
    with pytest.raises(ValueError, match="no process `nope` \\(the file has: ddpm_linear, ddpm_cosine, ddpm_cfg\\)"):
        diffc.load(SPECS / "ddpm.diff", process="nope")
    with pytest.raises(FileNotFoundError):
        diffc.load(SPECS / "missing.diff")


DDPM = ("ddpm.diff", "ddpm_linear")


def _x(*shape):
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize(
    "case,entry,arrays,sets",
    [
        ("nan", "forward", {"x_0": np.array([[0.0, np.nan]], dtype=np.float32)}, {"t": 3}),
        ("inf", "log_q", {"x_0": _x(2, 2), "x_t": np.full((2, 2), np.inf, np.float32)}, {"t": 3}),
        ("time below", "forward", {"x_0": _x(2, 2)}, {"t": 0}),
        ("time above", "forward", {"x_0": _x(2, 2)}, {"t": 1001}),
        ("time between", "forward", {"x_0": _x(2, 2)}, {"t": 2.5}),
        ("shapes", "log_q", {"x_0": _x(2, 3), "x_t": _x(2, 4)}, {"t": 3}),
        ("batches", "log_q", {"x_0": _x(2, 3), "x_t": _x(3, 3)}, {"t": 3}),
        ("draw shape", "forward", {"x_0": _x(2, 3), "eps": _x(2, 2)}, {"t": 3}),
        ("unknown name", "forward", {"x_0": _x(2, 3), "y": _x(2, 3)}, {"t": 3}),
        ("unknown entry", "backward", {"x_0": _x(2, 3)}, {"t": 3}),
    ],
)
def test_bad_input_is_the_cli_message(cli, tmp_path, case, entry, arrays, sets):
    proc = load(*DDPM)
    with pytest.raises(ValueError) as err:
        proc.call(entry, {**arrays, **sets})
    assert str(err.value) == cli_error(cli, tmp_path, *DDPM, ["--entry", entry], arrays, sets)


def test_bad_class_is_the_cli_message(cli, tmp_path):
    proc = load("digress.diff", "digress")
    X = np.array([[0, 1, 7]], dtype=np.int64)
    E = np.zeros((1, 3, 3), dtype=np.int64)
    with pytest.raises(ValueError) as err:
        proc.forward(X_0=X, E_0=E, t=3)
    assert str(err.value) == cli_error(cli, tmp_path, "digress.diff", "digress",
                                       ["--entry", "forward"], {"X_0": X, "E_0": E}, {"t": 3})


def test_missing_input_names_it(cli, tmp_path):
    proc = load(*DDPM)
    with pytest.raises(ValueError) as err:
        proc.call("log_q", {"x_0": _x(2, 2), "t": 3})
    assert str(err.value) == "`log_q` needs `x_t`"
    assert cli_error(cli, tmp_path, *DDPM, ["--entry", "log_q"], {"x_0": _x(2, 2)}, {"t": 3}).startswith(str(err.value))


@pytest.mark.parametrize(
    "value,message",
    [
        (np.zeros((2, 2)), "`x_0` must be float32, not float64"),
        (np.zeros((2, 2), dtype=np.int64), "`x_0` must be float32, not int64"),
        ([[0.0, 1.0]], "`x_0` must be a numpy array or a CPU torch.Tensor of float32, not list"),
        ("x", "`x_0` must be a numpy array or a CPU torch.Tensor of float32, not str"),
    ],
)
def test_wrong_types_raise_type_error(value, message):
    with pytest.raises(TypeError, match=message.replace("(", "\\(").replace(")", "\\)")):
        load(*DDPM).forward(x_0=value, t=3)


def test_other_type_errors():
    proc = load(*DDPM)
    with pytest.raises(TypeError, match="`t` is a time: give a number or an array of numbers, not str"):
        proc.forward(x_0=_x(2, 2), t="3")
    with pytest.raises(TypeError, match="give the seed as seed="):
        proc.call("forward", {"x_0": _x(2, 2), "t": 3, "seed": 1})
    digress = load("digress.diff", "digress")
    with pytest.raises(TypeError, match="`X_0` holds classes: it must be an integer array, not float32"):
        digress.forward(X_0=np.zeros((1, 3), np.float32), E_0=np.zeros((1, 3, 3), np.int64), t=3)
    with pytest.raises(TypeError, match="`node` must be a bool array, not int64"):
        digress.forward(X_0=np.zeros((1, 3), np.int64), E_0=np.zeros((1, 3, 3), np.int64), t=3,
                        node=np.ones((1, 3), np.int64))


def test_option_errors():
    proc = load(*DDPM)
    with pytest.raises(ValueError, match="unknown backend `tpu`: expected interp, cpu or gpu"):
        proc.forward(x_0=_x(2, 2), t=3, backend="tpu")
    with pytest.raises(ValueError, match="`q` is not a dimension of `ddpm_linear`"):
        proc.forward(x_0=_x(2, 2), t=3, sizes={"q": 2})
    with pytest.raises(ValueError, match="`ddpm_linear` has no mask `node` \\(its masks: none\\)"):
        proc.forward(x_0=_x(2, 2), t=3, masks={"node": np.ones((2, 2), bool)})
    with pytest.raises(ValueError, match="`t` has shape \\[2, 1\\]: give one time, or one per sample"):
        proc.forward(x_0=_x(2, 2), t=np.ones((2, 1), np.float32))
    s = proc.sampler("ddim", steps=10)
    with pytest.raises(ValueError, match="`t` = 950.0 is not one of this sampler's timesteps"):
        s.step(_x(2, 2), 950, _x(2, 2))
    with pytest.raises(ValueError, match="no sampler `heun`"):
        proc.sampler("heun")
    message = ("sampler `ddim` has no parameter `gamma` \\(its parameters: steps, eta\\) "
               "and `ddpm_linear` no param `gamma` \\(its params: none\\)")
    with pytest.raises(ValueError, match=message):
        proc.sampler("ddim", gamma=1.0)
    with pytest.raises(ValueError, match=message):
        proc.sample("ddim", lambda x, t: x, count=2, sizes={"d": 2}, gamma=1.0)


def test_non_contiguous_float32_is_copied_in_order():
    proc = load(*DDPM)
    base = _x(4, 6)
    view = base[:, ::2]
    assert not view.flags.c_contiguous
    a = proc.forward(x_0=view, t=10, seed=1)
    b = proc.forward(x_0=np.ascontiguousarray(view), t=10, seed=1)
    assert np.array_equal(a["x_t"], b["x_t"])



def test_a_marked_approximation_is_kept_but_not_issued(tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = diffc.load(str(SPECS / "digress.diff"))
    assert [d.code for d in p.diagnostics] == ["W0002", "W0002"]
    # Another warning beside it is issued, with every diagnostic rendered.
    text = (SPECS / "digress.diff").read_text().replace(
        "process digress {", "process digress {\n  schedule unused(t) = 1", 1
    )
    with pytest.warns(diffc.SpecWarning, match="W0001"):
        diffc.loads(text)


def test_a_symmetric_field_refuses_an_asymmetric_value():
    p = diffc.load(str(SPECS / "digress.diff"))
    x = np.zeros((1, 3), np.int64)
    e = np.zeros((1, 3, 3), np.int64)
    e[0, 0, 1], e[0, 1, 0] = 1, 2
    for backend in ["interp", "cpu"]:
        with pytest.raises(ValueError, match=r"input `E_0` is a symmetric field, but holds 1 at \[0, 0, 1\]"):
            p.forward(X_0=x, E_0=e, t=3, backend=backend)
    e[0, 1, 0] = 1
    out = p.forward(X_0=x, E_0=e, t=3)
    assert (out["E_t"][0] == out["E_t"][0].T).all()
