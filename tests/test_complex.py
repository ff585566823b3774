"""Complex numbers (issue 10, API.md "Complex numbers"): complex64/complex128 through elementwise
ops, reductions, matmul, einsum, real/imag/conj/angle/abs and the FFT, with HIPS autograd's (and
JAX's) convention: the gradient of a real function f of z = x + iy is df/dx - 1j df/dy, the
conjugate of PyTorch's. Every rule is also checked to be the transpose of its tangent map under
Re(sum(a * b)), which is what that convention means."""

from __future__ import annotations

import numpy as onp
import pytest

import gpugrad as gg
import gpugrad.numpy as np

RNG = onp.random.default_rng(11)


def crandn(*shape: int) -> onp.ndarray:
    return RNG.normal(size=shape) + 1j * RNG.normal(size=shape)


W3 = crandn(3)
W23 = crandn(2, 3)

# name -> (our function of complex z (shape (2, 3)), torch's, input domain shift)
UNARY = {
    "exp": (np.exp, "exp"), "sin": (np.sin, "sin"), "cos": (np.cos, "cos"), "tanh": (np.tanh, "tanh"),
    "log": (np.log, "log"), "sqrt": (np.sqrt, "sqrt"), "square": (np.square, "square"),
    "reciprocal": (np.reciprocal, "reciprocal"), "sinh": (np.sinh, "sinh"), "cosh": (np.cosh, "cosh"),
    "expm1": (np.expm1, "expm1"), "log1p": (np.log1p, "log1p"), "tan": (np.tan, "tan"),
    "abs": (np.abs, "abs"), "angle": (np.angle, "angle"), "real": (np.real, "real"), "imag": (np.imag, "imag"),
    "conj": (np.conj, "conj"), "negative": (np.negative, "neg"),
}


def _loss(out, w, lib):  # noqa: ANN001, ANN202
    """A real loss of a (complex or real) result: Re(sum(out * w))."""
    return lib.sum(lib.real(out * w))


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_gradients_are_the_conjugate_of_torchs(name: str) -> None:
    torch = pytest.importorskip("torch")
    ours, theirs = UNARY[name]
    z = crandn(2, 3) + 0.3
    g = gg.grad(lambda v: _loss(ours(v), W23, np))(z)
    zt = torch.tensor(z, requires_grad=True)
    _loss(getattr(torch, theirs)(zt), torch.tensor(W23), torch).backward()
    assert g.dtype == onp.complex128
    onp.testing.assert_allclose(g, onp.conj(zt.grad.resolve_conj().numpy()), rtol=1e-10, atol=1e-12)


BINARY = {
    "mul": (lambda a, b: a * b), "div": (lambda a, b: a / b), "add": (lambda a, b: a + b),
    "sub": (lambda a, b: a - b), "pow_real": (lambda a, b: a**2.5 * b), "pow_complex": (lambda a, b: a**b),
    "matmul": (lambda a, b: a @ b.T),
}


@pytest.mark.parametrize("name", ["mul", "div", "add", "sub", "pow_real", "pow_complex", "matmul"])
def test_binary_gradients_are_the_conjugate_of_torchs(name: str) -> None:
    torch = pytest.importorskip("torch")
    fn = BINARY[name]
    a, b = crandn(2, 3) + 1.0, crandn(2, 3) * 0.5
    out_shape = onp.shape(fn(a, b))
    w = crandn(*out_shape)
    ga, gb = gg.grad(lambda x, y: _loss(fn(x, y), w, np), (0, 1))(a, b)
    at, bt = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    _loss(fn(at, bt), torch.tensor(w), torch).backward()
    onp.testing.assert_allclose(ga, onp.conj(at.grad.resolve_conj().numpy()), rtol=1e-10)
    onp.testing.assert_allclose(gb, onp.conj(bt.grad.resolve_conj().numpy()), rtol=1e-10)


REDUCTIONS = {
    "sum": (lambda z: np.sum(z, 0), lambda t, z: t.sum(z, 0)),
    "mean": (lambda z: np.mean(z, 1), lambda t, z: t.mean(z, 1)),
    "prod": (lambda z: np.prod(z, 1), lambda t, z: t.prod(z, 1)),
    "var": (lambda z: np.var(z, 1), lambda t, z: t.var(z, 1, unbiased=False)),
    "std": (lambda z: np.std(z), lambda t, z: t.std(z, unbiased=False)),
    "norm": (lambda z: np.linalg.norm(z, axis=1), lambda t, z: t.linalg.vector_norm(z, dim=1)),
    "fro": (lambda z: np.linalg.norm(z), lambda t, z: t.linalg.norm(z)),
    "cumsum": (lambda z: np.cumsum(z, 1), lambda t, z: t.cumsum(z, 1)),
    "cumprod": (lambda z: np.cumprod(z, 1), lambda t, z: t.cumprod(z, 1)),
    "einsum": (lambda z: np.einsum("ij,j->i", z, W3), lambda t, z: t.einsum("ij,j->i", z, t.tensor(W3))),
    "vdot": (lambda z: np.vdot(z, W23), lambda t, z: t.vdot(z.reshape(-1), t.tensor(W23).reshape(-1))),
    "fft": (lambda z: np.fft.fft(z, 5, axis=0), lambda t, z: t.fft.fft(z, 5, dim=0)),
    "ifft2": (lambda z: np.fft.ifft2(z, norm="ortho"), lambda t, z: t.fft.ifft2(z, norm="ortho")),
    "irfft": (lambda z: np.fft.irfft(z, 6), lambda t, z: t.fft.irfft(z, 6)),
    "irfftn": (lambda z: np.fft.irfftn(z, (3, 3), (0, 1)), lambda t, z: t.fft.irfftn(z, (3, 3), (0, 1))),
}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reductions_products_and_transforms_of_complex_match_torch(name: str) -> None:
    torch = pytest.importorskip("torch")
    ours, theirs = REDUCTIONS[name]
    z = crandn(2, 3) + 0.5
    value = ours(z)
    w = crandn(*onp.shape(value))
    zt = torch.tensor(z, requires_grad=True)
    tv = theirs(torch, zt)
    onp.testing.assert_allclose(onp.asarray(value), tv.detach().resolve_conj().numpy(), rtol=1e-10, atol=1e-12)
    g = gg.grad(lambda v: _loss(ours(v), w, np))(z)
    _loss(tv, torch.tensor(w), torch).backward()
    onp.testing.assert_allclose(g, onp.conj(zt.grad.resolve_conj().numpy()), rtol=1e-9, atol=1e-12)


TANGENT_RULES = [
    lambda z: np.exp(z) * np.conj(z), lambda z: np.abs(z) ** 3, lambda z: np.angle(z) + np.real(z) * np.imag(z),
    lambda z: np.fft.fft2(z), lambda z: np.fft.irfft(z), lambda z: np.fft.rfft(np.real(z), axis=0),
    lambda z: np.sum(z * z, 0) / np.prod(z, 0), lambda z: np.var(z, 0) + np.std(z),
    lambda z: z @ np.conj(z).T, lambda z: np.linalg.norm(z, axis=0), lambda z: np.cumprod(z, 1),
]


@pytest.mark.parametrize("k", range(len(TANGENT_RULES)))
def test_every_vjp_is_the_transpose_of_its_jvp(k: int) -> None:
    f = TANGENT_RULES[k]
    z = crandn(3, 4) + 0.5
    t = crandn(3, 4)
    out, tangent = gg.jvp(f, (z,), (t,))
    g = crandn(*onp.shape(out)) if onp.iscomplexobj(out) else RNG.normal(size=onp.shape(out))
    (cot,) = gg.vjp(f, z)[1](g)
    lhs = onp.sum(onp.real(g * tangent))
    rhs = onp.sum(onp.real(cot * t))
    onp.testing.assert_allclose(lhs, rhs, rtol=1e-10)
    assert gg.gradcheck(lambda v: np.real(f(v) * g), (z,))


def test_complex_inputs_are_never_cast_to_real() -> None:
    z = onp.array([1 + 2j, 3 - 1j])
    v, g = gg.value_and_grad(lambda u: np.real(np.sum(u * u)))(z)
    assert v == 5.0
    onp.testing.assert_array_equal(g, 2 * z)  # holomorphic: the derivative 2z
    with pytest.raises(gg.DTypeError, match="complex"):  # a complex output has no gradient (use holomorphic_grad)
        gg.grad(lambda u: np.sum(u * u))(z)
    with pytest.raises(gg.DTypeError, match="complex cotangent"):
        gg.vjp(lambda x: x * 2, onp.ones(2))[1](onp.ones(2) * 1j)
    with pytest.raises(gg.DTypeError, match="complex tangent"):
        gg.jvp(lambda x: x * 2, (onp.ones(2),), (onp.ones(2) * 1j,))
    assert gg.tensor(z).dtype == onp.complex128 and gg.tensor([1 + 1j]).dtype == onp.complex64
    assert gg.grad(lambda x: np.real(x * (1 + 2j)))(1.0) == 1.0  # real input: a real gradient
    assert isinstance(gg.grad(lambda u: np.abs(u))(3 + 4j), complex)


def test_holomorphic_grad() -> None:
    assert gg.holomorphic_grad(lambda z: z**3)(1 + 2j) == pytest.approx(3 * (1 + 2j) ** 2)
    onp.testing.assert_allclose(gg.holomorphic_grad(lambda z: np.sum(np.exp(z)))(onp.array([1j, 2.0 + 0j])),
                                onp.exp([1j, 2.0]))
    with pytest.warns(UserWarning, match="not complex"):
        assert gg.holomorphic_grad(lambda z: z * (1.0 + 0.2j))(1.0) == 1.0


def test_complex64_stays_single_precision() -> None:
    z = gg.tensor(crandn(4).astype(onp.complex64), requires_grad=True)
    out = np.sum(np.abs(np.fft.fft(np.exp(z) * 2.0)))
    assert out.dtype == onp.float32
    out.backward()
    assert z.grad.dtype == onp.complex64
