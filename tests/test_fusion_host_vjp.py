"""An elementwise op's backward as one compiled pass on the CPU (gpugrad.fusion.host_vjp): the
same gradients as the NumPy rule (bit for bit where the rule is arithmetic), taken only where it
applies (contiguous operands of one shape and dtype), and added into the engine's buffers."""

from __future__ import annotations

import warnings
from typing import Any
from unittest import mock

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import gpugrad as gg
from gpugrad.backends import lowerings
from gpugrad.backends import numpy_backend as nb
from gpugrad.fusion import host, host_vjp
from gpugrad.ops.elementwise import OPS
from tests.fusion_programs import PARAMS

RNG = np.random.default_rng(11)

# (op, params, exact): exact where the rule is arithmetic (the C loop runs NumPy's operations in
# NumPy's order); transcendental rules (erf, exp, pow) agree to a few ulp
CASES = [("relu", {}, True), ("sigmoid", {}, True), ("tanh", {}, True), ("multiply", {}, True),
         ("divide", {}, True), ("maximum", {}, True), ("leaky_relu", {"negative_slope": 0.1}, True),
         ("softplus", {"beta": 2.0, "threshold": 10.0}, False), ("gelu", {}, False), ("pow", {}, False)]


@pytest.fixture
def compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled backward for every array size (the suite's bar is raised in conftest)."""
    assert host.available(), "these tests need the host C++ compiler (g++), as CI has"
    monkeypatch.setattr(host_vjp, "MIN_ELEMENTS", 0)


def _operands(op: Any, shape: tuple, dt: Any, params: dict) -> tuple[list, Any, Any]:
    args = [RNG.normal(size=shape).astype(dt) for _ in op.inputs]
    for a in args:
        a.flat[:: 7] = 0  # ReLU's and maximum's ties, divide's poles
    with np.errstate(all="ignore"):
        out = nb.ew_forward(op, np.dtype(dt), args, params)
    g = RNG.normal(size=shape).astype(dt)
    return args, out, g


def _reference(op: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
    with np.errstate(all="ignore"):
        return nb.ew_vjp(op, g, args, out, params, needs)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("name,params,exact", CASES)
def test_compiled_backward_matches_the_numpy_rule(compiled: None, name: str, params: dict, exact: bool,
                                                  dt: Any) -> None:
    op = OPS[name]
    args, out, g = _operands(op, (37, 53), dt, params)
    needs = tuple(True for _ in op.inputs)
    with np.errstate(all="ignore"):
        got = host_vjp.vjp_acc(op, g, args, out, params, needs, None)
    assert got is not NotImplemented, f"{name}: the compiled pass declined"
    grads, fresh = got
    want = _reference(op, g, args, out, params, needs)
    for gk, wk in zip(grads, want):
        assert gk.dtype == dt and gk.flags.c_contiguous
        if exact:
            np.testing.assert_array_equal(gk, wk)
        else:
            # (to a few ulp of the rule's O(1) terms: GELU's two terms cancel where x < -4)
            tol = 1e-6 if dt == np.float32 else 1e-14
            np.testing.assert_allclose(gk, wk, rtol=10 * tol, atol=tol, equal_nan=True)
    assert fresh == (True,) * len(needs)


def test_a_gradient_is_added_into_the_engines_buffer(compiled: None) -> None:
    op = OPS["multiply"]
    args, out, g = _operands(op, (64, 65), np.float64, {})
    acc = [RNG.normal(size=(64, 65)), None]
    before = acc[0].copy()
    grads, _ = host_vjp.vjp_acc(op, g, args, out, {}, (True, True), acc)
    want = _reference(op, g, args, out, {}, (True, True))
    assert grads[0] is acc[0]  # (the engine sees the gradient is its buffer, already added)
    np.testing.assert_array_equal(acc[0], before + want[0])
    np.testing.assert_array_equal(grads[1], want[1])


def test_a_number_operand_is_read_from_the_scalar_table(compiled: None) -> None:
    op = OPS["pow"]
    x = RNG.uniform(0.5, 2.0, size=(40, 41))
    g = RNG.normal(size=x.shape)
    out = x ** 3.0
    for b in (3.0, 3, np.float64(3.0), np.asarray(3.0)):
        grads, _ = host_vjp.vjp_acc(op, g, (x, b), out, {}, (True, False), None)
        np.testing.assert_allclose(grads[0], g * 3.0 * x ** 2, rtol=1e-13)
        assert grads[1] is None


def test_what_it_declines_runs_as_the_numpy_rule(compiled: None, monkeypatch: pytest.MonkeyPatch) -> None:
    relu, mul = OPS["relu"], OPS["multiply"]
    x = RNG.normal(size=(30, 40))
    out = np.maximum(x, 0)
    g = RNG.normal(size=(30, 40))
    assert host_vjp.vjp_acc(relu, g, (x,), out, {}, (True,), None) is not NotImplemented
    gt = RNG.normal(size=(40, 30)).T  # not C-contiguous
    assert host_vjp.vjp_acc(relu, gt, (x,), out, {}, (True,), None) is NotImplemented
    assert host_vjp.vjp_acc(relu, g.astype(np.float16), (x,), out, {}, (True,), None) is NotImplemented
    b = RNG.normal(size=40)  # broadcast along the rows
    assert host_vjp.vjp_acc(mul, g, (x, b), x * b, {}, (True, True), None) is NotImplemented
    # one pass either way (g * b): NumPy's multiply is as fast as a compiled call
    assert host_vjp.vjp_acc(mul, g, (x, x + 1), x, {}, (True, False), None) is NotImplemented
    monkeypatch.setattr(host_vjp, "MIN_ELEMENTS", 1 << 20)
    assert host_vjp.vjp_acc(relu, g, (x,), out, {}, (True,), None) is NotImplemented
    monkeypatch.setattr(host_vjp, "MIN_ELEMENTS", 0)
    monkeypatch.setattr(host.Settings, "enabled", False)  # GPUGRAD_FUSION_CC=0: no compiled code
    assert host_vjp.vjp_acc(relu, g, (x,), out, {}, (True,), None) is NotImplemented


def _backward(f: Any, x0: np.ndarray) -> np.ndarray:
    x = gg.tensor(x0, requires_grad=True)
    with gg.no_fusion():  # op by op: each op's own backward
        f(x).backward()
    return x.grad.numpy()


def test_the_engine_takes_it_and_gets_the_numpy_rules_gradients(compiled: None,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    taken: list[str] = []

    def counting(op: Any, *args: Any) -> Any:
        got = host_vjp.vjp_acc(op, *args)
        if got is not NotImplemented:
            taken.append(op.name)
        return got

    def f(x: gg.Tensor) -> gg.Tensor:  # x reaches the loss three ways: the later ones add into a buffer
        return (gg.sigmoid(x) * gg.relu(x) + gg.tanh(x) * 2.0).sum()

    x0 = RNG.normal(size=(50, 70)).astype(np.float32)
    monkeypatch.setitem(lowerings.CPU, lowerings.EW_VJP_ACC, counting)
    got = _backward(f, x0)
    assert {"sigmoid", "relu", "tanh"} <= set(taken)
    monkeypatch.delitem(lowerings.CPU, lowerings.EW_VJP_ACC)
    want = _backward(f, x0)
    np.testing.assert_array_equal(got, want)


@given(shape=st.lists(st.integers(0, 9), min_size=0, max_size=3).map(tuple),
       name=st.sampled_from(["relu", "sigmoid", "multiply", "leaky_relu"]),
       dt=st.sampled_from([np.float32, np.float64]))
def test_any_shape_gives_the_numpy_rules_bits(shape: tuple, name: str, dt: Any) -> None:
    op = OPS[name]
    params = dict(PARAMS.get(name, {}))
    args, out, g = _operands(op, shape, dt, params)
    needs = tuple(True for _ in op.inputs)
    with mock.patch.object(host_vjp, "MIN_ELEMENTS", 0):  # (hypothesis: no function-scoped fixture)
        got = host_vjp.vjp_acc(op, g, args, out, params, needs, None)
    if np.ndim(g) == 0:
        return  # a 0-d gradient may take either path
    assert got is not NotImplemented
    for gk, wk in zip(got[0], _reference(op, g, args, out, params, needs)):
        np.testing.assert_array_equal(gk, wk)


@pytest.mark.parametrize("name", ["relu", "sigmoid"])
def test_an_owned_gradient_is_written_over(compiled: None, name: str) -> None:
    op = OPS[name]
    args, out, g = _operands(op, (48, 50), np.float32, {})
    want = _reference(op, g.copy(), args, out, {}, (True,))
    grads, fresh = host_vjp.vjp_acc(op, g, args, out, {}, (True,), None, True)
    assert grads[0] is g and fresh == (True,)  # (the engine owned g: now the input's gradient)
    np.testing.assert_array_equal(g, want[0])
    g2 = RNG.normal(size=(48, 50)).astype(np.float32)
    kept = g2.copy()
    grads, _ = host_vjp.vjp_acc(op, g2, args, out, {}, (True,), None, False)
    assert grads[0] is not g2
    np.testing.assert_array_equal(g2, kept)  # not owned: left as it was


@pytest.mark.parametrize("name", ["i0", "i1", "j0", "j1", "y0", "y1", "jn", "yn"])
def test_bessel_rules_stay_numpys(compiled: None, name: str) -> None:
    # the host's Bessel functions differ from scipy.special's in the tails: those rules run as NumPy's
    op = OPS[name]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # (scipy's yn truncating the random orders)
        args, out, g = _operands(op, (40, 40), np.float64, {})
    needs = tuple(k == len(op.inputs) - 1 for k in range(len(op.inputs)))  # (x's gradient; jn's n has none)
    assert host_vjp.vjp_acc(op, g, args, out, {}, needs, None) is NotImplemented


_CHAIN_SCRIPT = """
import numpy as np, gpugrad as gg
from gpugrad.fusion import host, kernels
from gpugrad.scipy import special as S
kernels.Settings.cpu_min_elements = kernels.Settings.cpu_min_elements_cheap = 0
host.Settings.compile_after = 1
x = gg.tensor(np.array([1.0, 800.0, 1e30, -np.inf, np.nan]), requires_grad=True)
(S.i0(x) * S.i1(x)).sum().backward()                   # compiled: libstdc++'s cyl_bessel_i throws past 713
print("i0", S.i0(gg.tensor([1e30, -1e30])).numpy().tolist())
y = gg.tensor(np.array([0.5, 2.0]), requires_grad=True)
(S.jn(3e9, y) * 2.0 + S.yn(-3e9, y)).sum().backward()  # compiled: an order past int's range
print("jn", y.grad.numpy().tolist())
"""


def test_a_compiled_bessel_chain_neither_aborts_nor_hangs(tmp_path: Any) -> None:
    import subprocess
    import sys

    env = {**__import__("os").environ, "GPUGRAD_FUSION_CACHE": str(tmp_path)}
    res = subprocess.run([sys.executable, "-c", _CHAIN_SCRIPT], capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "i0 [inf, inf]" in res.stdout and "jn [" in res.stdout


@pytest.mark.parametrize("name", ["relu", "gelu"])
def test_on_threads_it_gives_one_threads_gradients(compiled: None, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    from gpugrad.fusion import numpy_eval

    op = OPS[name]
    args, out, g = _operands(op, (301, 7), np.float32, {})
    with np.errstate(all="ignore"):
        one = host_vjp.vjp_acc(op, g, args, out, {}, (True,), None)[0][0]
        monkeypatch.setattr(numpy_eval.Settings, "threads", 2)
        monkeypatch.setattr(host, "PARALLEL_MIN", 0)  # (read per call: set after the plan was made)
        monkeypatch.setattr(host, "PARALLEL_MIN_CHEAP", 0)
        sliced: list = []
        real = host.run
        monkeypatch.setattr(host, "run", lambda *a: sliced.append(a[4:]) or real(*a))
        two = host_vjp.vjp_acc(op, g, args, out, {}, (True,), None)[0][0]
    assert sliced == [(2, 0)]
    if name == "relu":
        np.testing.assert_array_equal(two, one)
    else:  # (the elements a slice leaves over the vector width take the scalar libm function)
        np.testing.assert_allclose(two, one, rtol=1e-5, atol=1e-6)
