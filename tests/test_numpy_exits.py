"""Gradients never vanish silently (issue 10, API.md "Functional transforms").

* NumPy's protocols: an implicit exit of a value being differentiated (``np.asarray(t)``,
  ``np.array(t)``, a NumPy/SciPy function gpugrad.numpy lacks, ``a[:2] = t``, ``a += t``) raises
  GraphError naming the way out; explicit exits (``.numpy()`` as a copy, ``.item()``, ``float()``,
  ``int()``, ``bool()``, ``.tolist()``, ``.detach()``) give constants; NumPy's own functions and
  ufuncs that gpugrad.numpy provides stay differentiable.
* A walk over the whole ``gpugrad.numpy`` namespace (and ``linalg``, ``fft``): every exported name
  is classified, and each callable is shown to be differentiable (its gradient checked against
  finite differences in float64, its value against NumPy's), a function of booleans/integers, or
  to refuse a differentiated input.
"""

from __future__ import annotations

import types

import numpy as onp
import pytest

import gpugrad as gg
import gpugrad.numpy as np

RNG = onp.random.default_rng(7)


def _away(n: int = 4) -> onp.ndarray:
    return RNG.choice([-1.0, 1.0], n) * RNG.uniform(0.3, 1.8, n)


INPUTS = {
    "v": lambda: _away(),
    "p": lambda: RNG.uniform(0.5, 2.0, 4),
    "u": lambda: RNG.uniform(-0.8, 0.8, 4),
    "g": lambda: RNG.uniform(1.2, 3.0, 4),
    "m": lambda: RNG.normal(size=(3, 3)),
    "s": lambda: (lambda a: a @ a.T + 3 * onp.eye(3))(RNG.normal(size=(3, 3))),
    "a": lambda: RNG.normal(size=(2, 3)),
    "t": lambda: RNG.normal(size=(2, 3, 4)),
    "c": lambda: RNG.normal(size=4) + 1j * RNG.normal(size=4),
}

C4 = onp.array([0.5, -1.0, 2.0, 1.5])

# name -> (input kind, call). Each call's result (a tensor, or a list/tuple of them) must carry the
# gradient; its value is compared with NumPy's own function on the same NumPy input.
DIFFERENTIABLE = {
    "abs": ("v", lambda x: np.abs(x)), "absolute": ("v", lambda x: np.absolute(x)),
    "fabs": ("v", lambda x: np.fabs(x)), "add": ("v", lambda x: np.add(x, C4)),
    "angle": ("c", lambda z: np.angle(z)), "append": ("v", lambda x: np.append(x, [1.0, 2.0])),
    "arccos": ("u", lambda x: np.arccos(x)), "arcsin": ("u", lambda x: np.arcsin(x)),
    "arctanh": ("u", lambda x: np.arctanh(x)), "arccosh": ("g", lambda x: np.arccosh(x)),
    "arcsinh": ("v", lambda x: np.arcsinh(x)), "arctan": ("v", lambda x: np.arctan(x)),
    "arctan2": ("v", lambda x: np.arctan2(x, C4 + 3)), "around": ("v", lambda x: np.around(x, 1) * x),
    "round": ("v", lambda x: np.round(x) + x), "array": ("v", lambda x: np.array([[x[0], 2 * x[1]], [3.0, x[2]]])),
    "asarray": ("v", lambda x: np.asarray(x)), "asanyarray": ("v", lambda x: np.asanyarray(x)),
    "ascontiguousarray": ("v", lambda x: np.ascontiguousarray(x)),
    "atleast_1d": ("v", lambda x: np.atleast_1d(x)), "atleast_2d": ("v", lambda x: np.atleast_2d(x)),
    "atleast_3d": ("v", lambda x: np.atleast_3d(x)),
    "average": ("a", lambda x: np.average(x, axis=1, weights=[1.0, 2.0, 3.0])),
    "broadcast_arrays": ("v", lambda x: np.broadcast_arrays(x, onp.ones((2, 4)))[0]),
    "broadcast_to": ("v", lambda x: np.broadcast_to(x, (2, 4))),
    "c_": ("v", lambda x: np.c_[x, x * 2]), "r_": ("v", lambda x: np.r_[x, 1.0:3.0, 7.0]),
    "cbrt": ("p", lambda x: np.cbrt(x)), "ceil": ("v", lambda x: np.ceil(x) + x),
    "floor": ("v", lambda x: np.floor(x) + x), "rint": ("v", lambda x: np.rint(x) + x),
    "trunc": ("v", lambda x: np.trunc(x) + x), "clip": ("v", lambda x: np.clip(x, -0.9, 0.9)),
    "column_stack": ("v", lambda x: np.column_stack([x, x**2])),
    "concatenate": ("v", lambda x: np.concatenate([x, x**2])),
    "conj": ("c", lambda z: np.conj(z) * z[0]), "conjugate": ("c", lambda z: np.conjugate(z) * z[1]),
    "convolve": ("v", lambda x: np.convolve(x, [1.0, 2.0, -3.0])),
    "correlate": ("v", lambda x: np.correlate(x, [1.0, 2.0, -3.0], "full")),
    "copy": ("v", lambda x: np.copy(x)), "cos": ("v", lambda x: np.cos(x)), "cosh": ("v", lambda x: np.cosh(x)),
    "sin": ("v", lambda x: np.sin(x)), "sinh": ("v", lambda x: np.sinh(x)), "tan": ("u", lambda x: np.tan(x)),
    "tanh": ("v", lambda x: np.tanh(x)), "exp": ("v", lambda x: np.exp(x)), "exp2": ("v", lambda x: np.exp2(x)),
    "expm1": ("v", lambda x: np.expm1(x)), "sqrt": ("p", lambda x: np.sqrt(x)), "log": ("p", lambda x: np.log(x)),
    "log10": ("p", lambda x: np.log10(x)), "log1p": ("p", lambda x: np.log1p(x)), "log2": ("p", lambda x: np.log2(x)),
    "logaddexp": ("v", lambda x: np.logaddexp(x, C4)), "logaddexp2": ("v", lambda x: np.logaddexp2(x, C4)),
    "cross": ("a", lambda x: np.cross(x, [1.0, 2.0, 3.0])),
    "cumprod": ("v", lambda x: np.cumprod(x)), "cumsum": ("a", lambda x: np.cumsum(x, axis=1)),
    "deg2rad": ("v", lambda x: np.deg2rad(x)), "radians": ("v", lambda x: np.radians(x)),
    "rad2deg": ("v", lambda x: np.rad2deg(x)), "degrees": ("v", lambda x: np.degrees(x)),
    "diag": ("m", lambda x: np.diag(x, 1)), "diagonal": ("t", lambda x: np.diagonal(x, 0, 1, 2)),
    "trace": ("m", lambda x: np.trace(x)), "tril": ("m", lambda x: np.tril(x)), "triu": ("m", lambda x: np.triu(x, 1)),
    "diff": ("v", lambda x: np.diff(x, 2)), "divide": ("v", lambda x: np.divide(x, 2.0 + x**2)),
    "true_divide": ("v", lambda x: np.true_divide(C4, 2.0 + x**2)),
    "dot": ("m", lambda x: np.dot(x, x)), "einsum": ("m", lambda x: np.einsum("ij,jk->ik", x, x)),
    "inner": ("a", lambda x: np.inner(x, x)), "outer": ("v", lambda x: np.outer(x, C4)),
    "kron": ("a", lambda x: np.kron(x, onp.array([[1.0, 2.0], [3.0, 4.0]]))),
    "matmul": ("a", lambda x: np.matmul(x, x.T if isinstance(x, onp.ndarray) else x.T)),
    "tensordot": ("t", lambda x: np.tensordot(x, x, axes=([1, 2], [1, 2]))),
    "vdot": ("c", lambda z: np.vdot(z, z[::-1] * 2)),
    "dsplit": ("t", lambda x: np.dsplit(x, 2)[1]), "hsplit": ("a", lambda x: np.hsplit(x, 3)[1]),
    "vsplit": ("m", lambda x: np.vsplit(x, 3)[2]), "split": ("v", lambda x: np.split(x, 2)[1]),
    "array_split": ("v", lambda x: np.array_split(x, 3)[0]),
    "dstack": ("a", lambda x: np.dstack([x, x**2])), "hstack": ("a", lambda x: np.hstack([x, x**2])),
    "vstack": ("a", lambda x: np.vstack([x, x**2])), "row_stack": ("a", lambda x: np.vstack([x, 2 * x])),
    "stack": ("a", lambda x: np.stack([x, x**2], axis=1)),
    "expand_dims": ("a", lambda x: np.expand_dims(x, 1)), "squeeze": ("a", lambda x: np.squeeze(x[None])),
    "ravel": ("a", lambda x: np.ravel(x)), "reshape": ("a", lambda x: np.reshape(x, (3, 2))),
    "transpose": ("t", lambda x: np.transpose(x, (1, 2, 0))), "swapaxes": ("t", lambda x: np.swapaxes(x, 0, 2)),
    "moveaxis": ("t", lambda x: np.moveaxis(x, 0, -1)), "rollaxis": ("t", lambda x: np.rollaxis(x, 2)),
    "flip": ("a", lambda x: np.flip(x, 1)), "fliplr": ("a", lambda x: np.fliplr(x)),
    "flipud": ("a", lambda x: np.flipud(x)), "rot90": ("a", lambda x: np.rot90(x)),
    "roll": ("a", lambda x: np.roll(x, 1, axis=1)), "repeat": ("v", lambda x: np.repeat(x, [1, 0, 2, 1])),
    "tile": ("v", lambda x: np.tile(x, (2, 1))), "pad": ("a", lambda x: np.pad(x, ((1, 0), (0, 2)))),
    "fmax": ("v", lambda x: np.fmax(x, C4 * 0.7)), "fmin": ("v", lambda x: np.fmin(x, C4 * 0.7)),
    "maximum": ("v", lambda x: np.maximum(x, C4 * 0.7)), "minimum": ("v", lambda x: np.minimum(x, C4 * 0.7)),
    "full": ("v", lambda x: np.full((2, 2), x[0])), "gradient": ("m", lambda x: np.gradient(x)),
    "hypot": ("v", lambda x: np.hypot(x, 1.5)), "imag": ("c", lambda z: np.imag(z**2)),
    "real": ("c", lambda z: np.real(z**2)), "real_if_close": ("c", lambda z: np.real_if_close(z)),
    "interp": ("u", lambda x: np.interp(x, [-1.0, 0.1, 1.0], [0.0, 1.0, 5.0])),
    "linspace": ("v", lambda x: np.linspace(x[0], x[1], 5)), "logspace": ("u", lambda x: np.logspace(x[0], x[1], 4)),
    "make_diagonal": ("a", lambda x: np.make_diagonal(x)),
    "max": ("v", lambda x: np.max(x)), "min": ("v", lambda x: np.min(x)), "amax": ("a", lambda x: np.amax(x, 1)),
    "amin": ("a", lambda x: np.amin(x, 0)), "mean": ("a", lambda x: np.mean(x, 1)),
    "median": ("a", lambda x: np.median(x, axis=1)), "nanmean": ("v", lambda x: np.nanmean(x)),
    "nansum": ("a", lambda x: np.nansum(x, 0)), "prod": ("v", lambda x: np.prod(x)), "ptp": ("v", lambda x: np.ptp(x)),
    "std": ("a", lambda x: np.std(x, 1, ddof=1)), "var": ("a", lambda x: np.var(x, 0)),
    "sum": ("a", lambda x: np.sum(x, 1, keepdims=True)),
    "meshgrid": ("v", lambda x: np.meshgrid(x, x[:2] * 3)[0]),
    "mod": ("p", lambda x: np.mod(x, 10.0)), "remainder": ("p", lambda x: np.remainder(x * 3, 10.0)),
    "floor_divide": ("p", lambda x: np.floor_divide(x, 10.0) + x),
    "multiply": ("v", lambda x: np.multiply(x, x)), "negative": ("v", lambda x: np.negative(x)),
    "positive": ("v", lambda x: np.positive(x)), "power": ("p", lambda x: np.power(x, C4)),
    "reciprocal": ("p", lambda x: np.reciprocal(x)), "square": ("v", lambda x: np.square(x)),
    "subtract": ("v", lambda x: np.subtract(C4, x)), "sign": ("v", lambda x: np.sign(x) * x),
    "sinc": ("v", lambda x: np.sinc(x)), "nan_to_num": ("v", lambda x: np.nan_to_num(x)),
    "partition": ("v", lambda x: np.partition(x, 2)),
    "select": ("v", lambda x: np.select([x > 0.5, x <= 0.5], [x, x**2], 1.0)),
    "sort": ("a", lambda x: np.sort(x, axis=1)), "take": ("v", lambda x: np.take(x, [0, 2, 2])),
    "take_along_axis": ("a", lambda x: np.take_along_axis(x, onp.array([[0, 2], [1, 1]]), 1)),
    "where": ("v", lambda x: np.where(x > 0, x, x**2)),
}

LINALG = {
    "norm": ("m", lambda x: np.linalg.norm(x, "nuc")), "inv": ("s", lambda x: np.linalg.inv(x)),
    "det": ("m", lambda x: np.linalg.det(x)), "slogdet": ("s", lambda x: np.linalg.slogdet(x)[1]),
    "solve": ("s", lambda x: np.linalg.solve(x, C4[:3])), "cholesky": ("s", lambda x: np.linalg.cholesky(x)),
    "eigh": ("s", lambda x: (lambda w, v: (w, v * v))(*np.linalg.eigh(x))),
    "eigvalsh": ("s", lambda x: np.linalg.eigvalsh(x)),
    "eig": ("s", lambda x: (lambda w, v: (w, np.abs(v)))(*np.linalg.eig(x))),
    "svd": ("a", lambda x: (lambda u, s, vh: (u * u, s, vh * vh))(*np.linalg.svd(x, full_matrices=False))),
    "qr": ("a", lambda x: np.linalg.qr(x.T)), "pinv": ("a", lambda x: np.linalg.pinv(x)),
    "matrix_power": ("m", lambda x: np.linalg.matrix_power(x, 3)),
    "lstsq": ("a", lambda x: np.linalg.lstsq(x.T, C4[:3], rcond=None)[0]),
}

FFT = {
    "fft": ("v", lambda x: np.fft.fft(x)), "ifft": ("c", lambda z: np.fft.ifft(z, 6)),
    "rfft": ("v", lambda x: np.fft.rfft(x)), "irfft": ("c", lambda z: np.fft.irfft(z, 5)),
    "fft2": ("a", lambda x: np.fft.fft2(x)), "ifft2": ("a", lambda x: np.fft.ifft2(x, norm="ortho")),
    "rfft2": ("a", lambda x: np.fft.rfft2(x)), "irfft2": ("m", lambda x: np.fft.irfft2(x)),
    "fftn": ("t", lambda x: np.fft.fftn(x, axes=(0, 2))), "ifftn": ("t", lambda x: np.fft.ifftn(x, norm="forward")),
    "rfftn": ("t", lambda x: np.fft.rfftn(x)), "irfftn": ("t", lambda x: np.fft.irfftn(x, s=(2, 3, 5), axes=(0, 1, 2))),
    "fftshift": ("a", lambda x: np.fft.fftshift(x)), "ifftshift": ("t", lambda x: np.fft.ifftshift(x, axes=1)),
}

# Functions of booleans and integers computed from values: no float result to carry a gradient
# (their derivative is 0 wherever it exists), so they accept a differentiated input.
PIECEWISE_CONSTANT = {
    "equal", "not_equal", "less", "less_equal", "greater", "greater_equal", "logical_and", "logical_or",
    "logical_xor", "logical_not", "isnan", "isfinite", "isinf", "iscomplex", "isreal", "argmax", "argmin",
    "all", "any", "allclose", "isclose", "array_equal",
}
# Read no values at all: shapes, dtypes, new constant arrays of a given shape.
NO_VALUES = {"shape", "ndim", "size", "iscomplexobj", "isrealobj", "result_type", "zeros", "ones", "empty",
             "arange", "eye", "identity", "indices", "tri", "zeros_like", "ones_like", "empty_like", "full_like"}
# No gradient exists (indices, counts): a differentiated input is refused.
REFUSING = {"argsort", "argpartition", "nonzero", "flatnonzero", "argwhere", "count_nonzero", "unique",
            "searchsorted", "digitize", "bincount", "histogram"}
# NumPy's scalar types and classes: ``float64(t)`` is ``float(t)``, an explicit exit.
TYPES = {"bool_", "clongdouble", "complex128", "complex64", "float16", "float32", "float64", "int8", "int16",
         "int32", "int64", "longdouble", "uint8", "dtype", "finfo", "iinfo", "ndarray"}
CONSTANTS = {"pi", "e", "inf", "nan", "euler_gamma", "newaxis", "s_", "index_exp"}
MODULES = {"linalg", "fft", "random"}


def _public(module: object) -> set[str]:
    return {n for n in dir(module) if not n.startswith("_")}


def test_every_name_is_classified_and_no_stray_modules() -> None:
    names = _public(np)
    classified = (set(DIFFERENTIABLE) | PIECEWISE_CONSTANT | NO_VALUES | REFUSING | TYPES | CONSTANTS | MODULES)
    assert names - classified == set(), "new gpugrad.numpy names must be classified in this test"
    assert classified - names == set()
    for n in names:
        if isinstance(getattr(np, n), types.ModuleType):
            assert n in MODULES, f"gpugrad.numpy exports a stray module {n}"
    assert _public(np.linalg) - {"LinAlgError"} == set(LINALG)
    assert _public(np.fft) - {"fftfreq", "rfftfreq"} == set(FFT)


def _outputs(result: object) -> list:
    if isinstance(result, (list, tuple)):
        return [r for item in result for r in _outputs(item)]
    return [result]


def _check_differentiable(call, kind: str) -> None:  # noqa: ANN001
    x = INPUTS[kind]()
    want = call(x)  # NumPy's own function on the NumPy input
    traced = gg.tensor(x, requires_grad=True)
    got = call(traced)
    for g, w in zip(_outputs(got), _outputs(want)):
        assert isinstance(g, gg.Tensor) and g.requires_grad, "the result does not carry the gradient"
        onp.testing.assert_allclose(g.detach().numpy(), onp.asarray(w), rtol=1e-9, atol=1e-12)
    assert gg.gradcheck(lambda t: tuple(_outputs(call(t))), (x,), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", sorted(DIFFERENTIABLE))
def test_numpy_name_is_differentiable(name: str) -> None:
    _check_differentiable(DIFFERENTIABLE[name][1], DIFFERENTIABLE[name][0])


@pytest.mark.parametrize("name", sorted(LINALG))
def test_linalg_name_is_differentiable(name: str) -> None:
    _check_differentiable(LINALG[name][1], LINALG[name][0])


@pytest.mark.parametrize("name", sorted(FFT))
def test_fft_name_is_differentiable(name: str) -> None:
    _check_differentiable(FFT[name][1], FFT[name][0])


def _traced_vector() -> gg.Tensor:
    return gg.tensor([0.5, -1.0, 2.0, 2.0], dtype=gg.float64, requires_grad=True)


@pytest.mark.parametrize("name", sorted(PIECEWISE_CONSTANT))
def test_piecewise_constant_names_return_no_floats(name: str) -> None:
    x = _traced_vector()
    fn = getattr(np, name)
    two = name in {"equal", "not_equal", "less", "less_equal", "greater", "greater_equal", "logical_and",
                   "logical_or", "logical_xor", "allclose", "isclose", "array_equal"}
    out = fn(x, x * 0.5) if two else fn(x)
    value = out.numpy() if isinstance(out, gg.Tensor) else onp.asarray(out)
    assert value.dtype.kind in "biu"
    assert not (isinstance(out, gg.Tensor) and out.requires_grad)


@pytest.mark.parametrize("name", sorted(REFUSING))
def test_names_without_gradient_refuse_a_differentiated_input(name: str) -> None:
    fn = getattr(np, name)
    extra = {"searchsorted": (onp.array([0.0]),), "digitize": (onp.array([0.0, 1.0]),), "argpartition": (1,)}

    def call(x):  # noqa: ANN001, ANN202
        if name == "bincount":
            return fn(gg.tensor([0, 1, 1, 3]), weights=x)
        return fn(x, *extra.get(name, ()))

    with pytest.raises(gg.GraphError, match="has no gradient"):
        call(_traced_vector())
    call(gg.tensor([0.5, 1.0, 2.0, 2.0], dtype=gg.float64))  # not being differentiated: computed
    with pytest.raises(gg.GraphError):  # inside a transform too
        gg.grad(lambda v: (call(v), v.sum())[1])(onp.array([0.5, 1.0, 2.0, 2.0]))


@pytest.mark.parametrize("name", sorted(NO_VALUES))
def test_names_reading_no_values_give_constants(name: str) -> None:
    x = _traced_vector()
    fn = getattr(np, name)
    if name in {"zeros", "ones", "empty", "eye", "identity", "indices", "tri", "arange"}:
        out = fn(np.size(x)) if name != "indices" else fn((2, np.size(x)))
    elif name == "full_like":
        out = fn(x, 3.0)
    else:
        out = fn(x)
    assert not (isinstance(out, gg.Tensor) and out.requires_grad)


def test_type_names_convert_explicitly() -> None:
    x = gg.tensor(2.5, dtype=gg.float64, requires_grad=True)
    assert np.float64(x) == 2.5 and np.int64(x) == 2  # float(t), int(t): explicit exits
    for name in TYPES:
        assert isinstance(getattr(np, name), type)


# ---------------------------------------------------------------------------------------------
# the protocols


def test_array_conversion_of_a_traced_tensor_raises_and_names_the_way_out() -> None:
    t = gg.tensor([1.0, 2.0], requires_grad=True)
    for convert in (onp.asarray, onp.array, lambda v: onp.asarray(v, dtype=onp.float64)):
        with pytest.raises(gg.GraphError, match=r"\.detach\(\).*gpugrad\.numpy"):
            convert(t)
    a = onp.zeros(3)
    with pytest.raises(gg.GraphError):
        a[:2] = t
    with pytest.raises(gg.GraphError, match="a = a \\+ t"):
        a[:2] += t
    a[0] = t[0]  # one element: NumPy calls float(t), an explicit exit
    assert a[0] == 1.0
    onp.testing.assert_array_equal(onp.asarray(t.detach()), [1.0, 2.0])  # not differentiated: a copy
    onp.testing.assert_array_equal(onp.asarray(t, dtype=onp.int64), [1, 2])  # integers carry no gradient


def test_numpy_and_scipy_functions_on_traced_values() -> None:
    import scipy.linalg
    import scipy.special

    def via_numpy(x):  # noqa: ANN001, ANN202 (NumPy's functions: dispatched to gpugrad.numpy; operators defer)
        return onp.sum(np.exp(x) * onp.arange(3.0)) + onp.linalg.norm(x) + (onp.ones(3) * x).sum()

    x = onp.array([0.1, 0.2, 0.3])
    want = onp.exp(x) * onp.arange(3.0) + x / onp.linalg.norm(x) + 1.0
    onp.testing.assert_allclose(gg.grad(via_numpy)(x), want, rtol=1e-12)
    with pytest.raises(gg.GraphError, match="ufunc such as np.exp"):  # a NumPy ufunc converts its input
        gg.grad(lambda v: onp.sum(onp.exp(v)))(x)
    assert type(onp.exp(gg.tensor(x))) is onp.ndarray  # a tensor not being differentiated: plain NumPy
    with pytest.raises(gg.GraphError, match="SciPy function"):  # a SciPy ufunc converts its input
        gg.grad(lambda v: scipy.special.gammaln(v).sum())(x)
    with pytest.raises(gg.GraphError):
        gg.grad(lambda v: scipy.linalg.expm(v.reshape(3, 1) * v.reshape(1, 3)).sum())(x)
    with pytest.raises(gg.GraphError):  # forward mode too: a value carrying a tangent
        gg.jvp(lambda v: gg.tensor(onp.asarray(v)), (x,), (x,))
    with pytest.raises(gg.GraphError):
        gg.grad(lambda v: onp.sum([v, 2 * v]))(x)  # plain NumPy on a list: np.array of it


def test_array_ufunc_with_out_into_numpy_is_refused_or_computed() -> None:
    a = onp.zeros(3)
    a += gg.tensor([1.0, 2.0, 3.0])  # a plain tensor: computed (was "does not support ufuncs")
    onp.testing.assert_array_equal(a, [1.0, 2.0, 3.0])
    with pytest.raises(gg.GraphError, match="a \\+= t"):
        onp.add(a, gg.tensor([1.0, 2.0, 3.0], requires_grad=True), out=a)


def test_explicit_exits_give_constants() -> None:
    def f(x):  # noqa: ANN001, ANN202
        assert float(x[0]) == 1.0 and int(x[1]) == 2 and bool(x[0] > 0) and x[0].item() == 1.0
        assert x.tolist() == [1.0, 2.0]
        c = x.numpy()
        c[:] = 100.0  # a copy: the tensor is untouched
        return (x * x).sum() + x.detach().sum() + float(c[0])

    onp.testing.assert_allclose(gg.grad(f)(onp.array([1.0, 2.0])), [2.0, 4.0])


def test_numpy_returns_a_copy_that_cannot_corrupt_the_gradient() -> None:
    x = gg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * x
    a = y.numpy()
    a[:] = 0.0
    z = (y * x).sum()  # y is saved for the backward of this product
    z.backward()
    onp.testing.assert_allclose(x.grad.numpy(), 3 * onp.array([1.0, 4.0, 9.0]))
    assert not onp.shares_memory(x.numpy(), x.data)


def test_sequences_holding_tensors_stay_differentiable() -> None:
    assert gg.grad(lambda x: np.sum([x, 2 * x]))(1.0) == 3.0
    assert gg.grad(lambda x: np.mean([x, 2 * x]))(1.0) == 1.5
    h = 1e-6
    fd = (onp.std([1 + h, 2 + 2 * h, 0.0]) - onp.std([1 - h, 2 - 2 * h, 0.0])) / (2 * h)
    onp.testing.assert_allclose(gg.grad(lambda x: np.std([x, 2 * x, 0.0]))(1.0), fd, rtol=1e-6)
    assert gg.grad(lambda x: np.linalg.norm([x, 0.0]))(-2.0) == -1.0
    assert gg.grad(lambda x: np.sum(np.array([[x, x], [0.5, 0.5]])))(1.0) == 2.0
    assert gg.grad(lambda x: np.sum(np.array([[x, 1.0], [0.5, 0.5]])))(1.0) == 1.0
    assert gg.grad(lambda x: np.sum(np.linspace(x, 3.0, 5)))(1.0) == 2.5
    assert gg.grad(lambda x: np.dot([x, 1.0], [3.0, x]))(2.0) == 4.0
