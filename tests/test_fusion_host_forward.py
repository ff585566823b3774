"""An elementwise op's forward as one compiled pass on the CPU (gpugrad.fusion.host_forward):
NumPy's values (bit for bit where the op is arithmetic), taken only for the ops NumPy is slow at
and only where it applies (contiguous operands of one shape and the result's dtype, or numbers),
and through the public API with fusion on and off."""

from __future__ import annotations

from typing import Any
from unittest import mock

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import gpugrad as gg
from gpugrad.backends import lowerings
from gpugrad.backends import numpy_backend as nb
from gpugrad.fusion import host, host_forward
from gpugrad.ops.elementwise import OPS
from tests.fusion_programs import PARAMS

RNG = np.random.default_rng(5)

# (op, params, exact): exact where the op is arithmetic (the C loop runs NumPy's operations in
# NumPy's order); transcendental ones (erf, exp, log, tanh) agree to a few ulp
CASES = [("relu", {}, True), ("leaky_relu", {"negative_slope": 0.1}, True), ("clip", {}, True),
         ("gelu", {}, False), ("gelu_tanh", {}, False), ("silu", {}, False),
         ("softplus", {"beta": 2.0, "threshold": 10.0}, False), ("logaddexp", {}, False), ("logit", {}, False)]
SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, -1e-30, 88.0, -88.0, 1e30]


@pytest.fixture
def compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled forward for every array size (the suite's bar is raised in conftest)."""
    assert host.available(), "these tests need the host C++ compiler (g++), as CI has"
    monkeypatch.setattr(host_forward, "MIN_ELEMENTS", 0)


def _inputs(op: Any, shape: tuple, dt: Any) -> list:
    args = []
    for _ in op.inputs:
        a = (RNG.uniform(0.01, 0.99, size=shape) if op.name == "logit" else RNG.normal(size=shape) * 3).astype(dt)
        a.flat[:len(SPECIAL)] = np.asarray(SPECIAL, dtype=dt)[:a.size]  # NaN, infinities, signed zeros
        a.flat[len(SPECIAL)::7] = 0  # ReLU's and maximum's ties
        args.append(a)
    return args


def _numpy(op: Any, dt: Any, args: list, params: dict) -> Any:
    fn = nb.forward_function(op, np.dtype(dt))
    with np.errstate(all="ignore"):
        return getattr(fn, "__wrapped__", fn)(*args, *params.values())


def _check(got: Any, want: Any, exact: bool, dt: Any) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape
    if exact:
        np.testing.assert_array_equal(got, want)
        assert np.array_equal(np.signbit(got), np.signbit(want))  # -0.0 stays -0.0, NaN stays NaN
    else:
        tol = 1e-6 if dt == np.float32 else 1e-14
        np.testing.assert_allclose(got, want, rtol=10 * tol, atol=tol, equal_nan=True)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("name,params,exact", CASES)
def test_compiled_forward_matches_numpy(compiled: None, name: str, params: dict, exact: bool, dt: Any) -> None:
    op = OPS[name]
    args = _inputs(op, (37, 53), dt)
    with np.errstate(all="ignore"):
        got = host_forward.run(op, np.dtype(dt), (*args, *params.values()))
    assert got is not NotImplemented, f"{name}: the compiled pass declined"
    _check(got, _numpy(op, dt, args, params), exact, dt)


@pytest.mark.parametrize("name,scalars", [("maximum", (1, 0.25)), ("minimum", (0, -0.5)), ("clip", (1, 2))])
def test_a_number_operand_is_read_from_the_scalar_table(compiled: None, name: str, scalars: tuple) -> None:
    op = OPS[name]
    dt = np.dtype(np.float32)
    x = _inputs(op, (40, 41), dt)[0]
    for args in ((x, *scalars), (scalars[0], x, *scalars[1:])):
        args = args[:op.n_inputs]
        fn = nb.forward_function(op, dt)
        got = fn(*args)  # through the wrapper the backend runs
        assert got is not NotImplemented
        _check(got, _numpy(op, dt, list(args), {}), True, dt)
        assert host_forward.run(op, dt, args) is not NotImplemented


def test_which_ops_take_the_pass() -> None:
    when = {name: host_forward.worth_compiling(op) for name, op in OPS.items()}
    assert when["relu"] == "always"  # maximum(x, 0): NumPy's loop against a scalar is slow
    assert when["leaky_relu"] == when["gelu"] == when["silu"] == "always"  # several NumPy passes
    assert when["maximum"] == "scalar"  # against an array NumPy's SIMD loop is faster
    assert when["add"] is None and when["tanh"] is None and when["exp"] is None  # one fast ufunc
    assert when["greater"] is None  # booleans
    assert when["j0"] is None  # the host's Bessel functions are not scipy's


def test_what_it_declines_runs_as_numpy(compiled: None, monkeypatch: pytest.MonkeyPatch) -> None:
    relu, maximum = OPS["relu"], OPS["maximum"]
    f32 = np.dtype(np.float32)
    x = RNG.normal(size=(30, 40)).astype(np.float32)
    assert host_forward.run(relu, f32, (x,)) is not NotImplemented
    assert host_forward.run(relu, f32, (np.asfortranarray(x),)) is NotImplemented  # not C-contiguous
    assert host_forward.run(relu, f32, (x.astype(np.float64),)) is NotImplemented  # not the result's dtype
    assert host_forward.run(maximum, f32, (x, x[0])) is NotImplemented  # broadcast: NumPy's
    assert host_forward.run(maximum, f32, (x, True)) is NotImplemented  # a bool is not a number here
    assert host_forward.run(OPS["leaky_relu"], f32, (x, np.float32(0.1))) is NotImplemented  # parameter
    assert host_forward.run(relu, f32, (np.float32(2.0),)) is NotImplemented  # no array
    unaligned = np.frombuffer(b"\0" + x.tobytes(), dtype=np.float32, offset=1).reshape(x.shape)
    assert not unaligned.flags.aligned and host_forward.run(relu, f32, (unaligned,)) is NotImplemented
    relu16 = nb.forward_function(relu, np.dtype(np.float16))
    assert not hasattr(relu16, "__wrapped__")  # float16 stays NumPy's (computed in float32)
    fn = nb.forward_function(maximum, f32)
    calls: list = []
    monkeypatch.setattr(host_forward, "run", lambda *a: calls.append(a) or NotImplemented)
    np.testing.assert_array_equal(fn(x, x + 1), np.maximum(x, x + 1))
    assert not calls  # two arrays: maximum is not even tried
    monkeypatch.setattr(host_forward, "MIN_ELEMENTS", 1 << 20)
    np.testing.assert_array_equal(nb.forward_function(relu, f32)(x), np.maximum(x, 0))
    assert not calls  # below the bar: not tried
    monkeypatch.undo()
    monkeypatch.setattr(host_forward, "MIN_ELEMENTS", 0)
    monkeypatch.setattr(host.Settings, "vectorized", False)  # built without the vector math library:
    assert host_forward.run(OPS["gelu"], f32, (x,)) is NotImplemented  # scalar erf loses to NumPy's
    assert host_forward.run(relu, f32, (x,)) is not NotImplemented  # arithmetic still wins
    monkeypatch.setattr(host.Settings, "enabled", False)  # GPUGRAD_FUSION_CC=0: no compiled code
    assert host_forward.run(relu, f32, (x,)) is NotImplemented


def test_the_backend_takes_it_through_the_registry(compiled: None, monkeypatch: pytest.MonkeyPatch) -> None:
    relu = OPS["relu"]
    f32 = np.dtype(np.float32)
    assert hasattr(nb.forward_function(relu, f32), "__wrapped__")
    monkeypatch.delitem(lowerings.CPU, lowerings.EW_FORWARD)  # unregistered: the cached function goes too
    assert f32 not in relu.np_fwd
    assert not hasattr(nb.forward_function(relu, f32), "__wrapped__")
    monkeypatch.undo()
    assert hasattr(nb.forward_function(relu, f32), "__wrapped__")


def _step(f: Any, x0: np.ndarray, fusion: bool) -> tuple:
    x = gg.tensor(x0, requires_grad=True)
    if fusion:
        y = f(x)
        y.sum().backward()
    else:
        with gg.no_fusion():
            y = f(x)
            y.sum().backward()
    return y.numpy(), x.grad.numpy()


@pytest.mark.parametrize("fusion", [True, False])
def test_public_ops_give_numpys_values_and_gradients(compiled: None, monkeypatch: pytest.MonkeyPatch,
                                                     fusion: bool) -> None:
    taken: list[str] = []
    run = host_forward.run

    def counting(op: Any, *args: Any) -> Any:
        got = run(op, *args)
        if got is not NotImplemented:
            taken.append(op.name)
        return got

    monkeypatch.setattr(host_forward, "run", counting)

    def f(x: gg.Tensor) -> gg.Tensor:
        return gg.nn.functional.leaky_relu(gg.relu(x @ x.T - 1.0), 0.2)

    x0 = RNG.normal(size=(64, 64)).astype(np.float32)
    y, gx = _step(f, x0, fusion)
    assert {"relu", "leaky_relu"} <= set(taken)
    z = x0 @ x0.T - 1.0
    np.testing.assert_array_equal(y, np.maximum(z, 0))
    mask = (z > 0).astype(np.float32)
    np.testing.assert_allclose(gx, (mask + mask.T) @ x0, rtol=1e-5, atol=1e-5)


@given(shape=st.lists(st.integers(0, 9), min_size=1, max_size=3).map(tuple),
       name=st.sampled_from(["relu", "leaky_relu", "silu", "clip"]),
       dt=st.sampled_from([np.float32, np.float64]))
def test_any_shape_gives_numpys_values(shape: tuple, name: str, dt: Any) -> None:
    op = OPS[name]
    params = dict(PARAMS.get(name, {}))
    args = [RNG.normal(size=shape).astype(dt) for _ in op.inputs]
    with mock.patch.object(host_forward, "MIN_ELEMENTS", 0):  # (hypothesis: no function-scoped fixture)
        got = host_forward.run(op, np.dtype(dt), (*args, *params.values()))
    assert got is not NotImplemented
    _check(got, _numpy(op, dt, args, params), name != "silu", dt)


@pytest.mark.parametrize("name", ["relu", "gelu"])
def test_on_threads_it_gives_one_threads_values(compiled: None, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    from gpugrad.fusion import numpy_eval

    op = OPS[name]
    f32 = np.dtype(np.float32)
    x = _inputs(op, (301, 7), np.float32)[0]
    with np.errstate(all="ignore"):
        one = host_forward.run(op, f32, (x,))
        monkeypatch.setattr(numpy_eval.Settings, "threads", 2)
        monkeypatch.setattr(host, "PARALLEL_MIN", 0)
        monkeypatch.setattr(host, "PARALLEL_MIN_CHEAP", 0)
        sliced: list = []
        real = host.run
        monkeypatch.setattr(host, "run", lambda *a: sliced.append(a[4:]) or real(*a))
        two = host_forward.run(op, f32, (x,))
    assert sliced == [(2, 0)]  # (threads, the bar: 0 for both kinds of op here)
    # (a transcendental's last bits may differ: the elements a slice leaves over the vector
    # width take the scalar libm function, not the vector one)
    _check(two, one, name == "relu", np.float32)
