"""gpugrad.numpy.linalg and gpugrad.numpy.fft (issue 10, item 3): values equal to NumPy's,
gradients against finite differences in float64 (gg.gradcheck) and against PyTorch where it has
the op (eigh/svd/qr/eig through losses that do not depend on the vectors' sign or phase),
batched inputs, and FFT lengths/axes/norms drawn by hypothesis."""

from __future__ import annotations

import numpy as onp
import pytest
from hypothesis import given
from hypothesis import strategies as st

import gpugrad as gg
import gpugrad.numpy as np

RNG = onp.random.default_rng(5)


def spd(*batch: int, n: int = 3) -> onp.ndarray:
    a = RNG.normal(size=batch + (n, n))
    return a @ onp.swapaxes(a, -1, -2) + n * onp.eye(n)


# name -> (input, our loss, torch's loss)
CASES = {
    "inv": (spd(2), lambda a: np.sum(np.linalg.inv(a) ** 2), lambda t, a: (t.linalg.inv(a) ** 2).sum()),
    "det": (RNG.normal(size=(2, 3, 3)), lambda a: np.sum(np.linalg.det(a)), lambda t, a: t.linalg.det(a).sum()),
    "slogdet": (spd(), lambda a: np.linalg.slogdet(a)[1], lambda t, a: t.linalg.slogdet(a)[1]),
    "solve": (spd(2), lambda a: np.sum(np.linalg.solve(a, onp.ones((2, 3, 1))) ** 3),
              lambda t, a: (t.linalg.solve(a, t.ones(2, 3, 1, dtype=t.float64)) ** 3).sum()),
    "cholesky": (spd(2), lambda a: np.sum(np.linalg.cholesky(a) ** 3), lambda t, a: (t.linalg.cholesky(a) ** 3).sum()),
    "eigh": (spd(2), lambda a: (lambda w, v: np.sum(w**2) + np.sum((v * v) ** 2))(*np.linalg.eigh(a)),
             lambda t, a: (lambda r: (r[0] ** 2).sum() + ((r[1] * r[1]) ** 2).sum())(t.linalg.eigh(a))),
    "eigvalsh": (spd(), lambda a: np.sum(np.linalg.eigvalsh(a, "U") ** 3),
                 lambda t, a: (t.linalg.eigvalsh(a, "U") ** 3).sum()),
    "svd": (RNG.normal(size=(2, 4, 3)),
            lambda a: (lambda u, s, vh: np.sum(s**3) + np.sum((u * u) ** 2) + np.sum((vh * vh) ** 3))(
                *np.linalg.svd(a, full_matrices=False)),
            lambda t, a: (lambda r: (r[1] ** 3).sum() + ((r[0] * r[0]) ** 2).sum() + ((r[2] * r[2]) ** 3).sum())(
                t.linalg.svd(a, full_matrices=False))),
    "svd_wide": (RNG.normal(size=(3, 5)), lambda a: np.sum(np.linalg.svd(a, compute_uv=False) ** 2),
                 lambda t, a: (t.linalg.svdvals(a) ** 2).sum()),
    "qr": (RNG.normal(size=(5, 3)), lambda a: (lambda q, r: np.sum(q**3) + np.sum(r**3))(*np.linalg.qr(a)),
           lambda t, a: (lambda r: (r[0] ** 3).sum() + (r[1] ** 3).sum())(t.linalg.qr(a))),
    "qr_wide": (RNG.normal(size=(3, 5)), lambda a: (lambda q, r: np.sum(q**3) + np.sum(r**3))(*np.linalg.qr(a)),
                lambda t, a: (lambda r: (r[0] ** 3).sum() + (r[1] ** 3).sum())(t.linalg.qr(a))),
    "pinv": (RNG.normal(size=(4, 3)), lambda a: np.sum(np.linalg.pinv(a) ** 3),
             lambda t, a: (t.linalg.pinv(a) ** 3).sum()),
    "matrix_power": (RNG.normal(size=(3, 3)) * 0.5, lambda a: np.sum(np.linalg.matrix_power(a, 5)),
                     lambda t, a: t.linalg.matrix_power(a, 5).sum()),
    "matrix_power_neg": (spd(), lambda a: np.sum(np.linalg.matrix_power(a, -2)),
                         lambda t, a: t.linalg.matrix_power(a, -2).sum()),
    "lstsq": (RNG.normal(size=(5, 3)), lambda a: np.sum(np.linalg.lstsq(a, onp.arange(5.0), rcond=None)[0] ** 2),
              lambda t, a: (t.linalg.lstsq(a, t.arange(5.0, dtype=t.float64)[:, None]).solution ** 2).sum()),
    "norm_nuc": (RNG.normal(size=(4, 3)), lambda a: np.linalg.norm(a, "nuc"),
                 lambda t, a: t.linalg.matrix_norm(a, "nuc")),
    "norm_2": (RNG.normal(size=(4, 3)), lambda a: np.linalg.norm(a, 2), lambda t, a: t.linalg.matrix_norm(a, 2)),
    "norm_-2": (RNG.normal(size=(3, 3)), lambda a: np.linalg.norm(a, -2),
                lambda t, a: t.linalg.matrix_norm(a, -2)),
    "norm_p3": (RNG.normal(size=5), lambda a: np.linalg.norm(a, 3), lambda t, a: t.linalg.vector_norm(a, 3)),
    "eig": (RNG.normal(size=(4, 4)),
            lambda a: (lambda w, v: np.sum(np.abs(w) ** 2) + np.sum(np.abs(v) ** 3))(*np.linalg.eig(a)),
            lambda t, a: (lambda r: (r[0].abs() ** 2).sum() + (r[1].abs() ** 3).sum())(t.linalg.eig(a))),
    "fft": (RNG.normal(size=(3, 6)), lambda a: np.sum(np.abs(np.fft.fft(a, 8)) ** 2),
            lambda t, a: (t.fft.fft(a, 8).abs() ** 2).sum()),
    "rfftn": (RNG.normal(size=(3, 5)), lambda a: np.sum(np.abs(np.fft.rfftn(a)) ** 3),
              lambda t, a: (t.fft.rfftn(a).abs() ** 3).sum()),
    "irfft": (RNG.normal(size=(3, 5)), lambda a: np.sum(np.fft.irfft(np.fft.rfft(a) * 1j + a[:, :3], 7) ** 3),
              lambda t, a: (t.fft.irfft(t.fft.rfft(a) * 1j + a[:, :3], 7) ** 3).sum()),
    "ifft2": (RNG.normal(size=(4, 3)), lambda a: np.sum(np.real(np.fft.ifft2(a, norm="ortho")) ** 3),
              lambda t, a: (t.fft.ifft2(a, norm="ortho").real ** 3).sum()),
}


ONE_TRIANGLE = {"cholesky", "eigh", "eigvalsh"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradient_matches_torch_and_finite_differences(name: str) -> None:
    torch = pytest.importorskip("torch")
    a, ours, theirs = CASES[name]
    at = torch.tensor(a, requires_grad=True)
    value = theirs(torch, at)
    onp.testing.assert_allclose(float(ours(a)), value.item(), rtol=1e-9)
    value.backward()
    g = gg.grad(ours)(a)
    if name in ONE_TRIANGLE:  # PyTorch returns the symmetric gradient; ours reads one triangle, as LAPACK
        g = (g + onp.swapaxes(g, -1, -2)) / 2
    onp.testing.assert_allclose(g, at.grad.numpy(), rtol=1e-7, atol=1e-9)
    assert gg.gradcheck(ours, (a,), atol=1e-5, rtol=1e-4)


def test_values_equal_numpys_and_results_are_numpys_named_tuples() -> None:
    a = spd(2)
    for name in ("eigh", "svd", "qr", "slogdet", "eig"):
        want = getattr(onp.linalg, name)(a)
        got = getattr(np.linalg, name)(gg.tensor(a))
        assert type(got).__name__ == type(want).__name__
        for g, w in zip(got, want):
            onp.testing.assert_allclose(g.numpy(), w, rtol=1e-10, atol=1e-12)
    assert onp.linalg.eigh(a) is not None and type(np.linalg.eigh(a)).__name__ == "EighResult"  # NumPy in: NumPy's


def test_cholesky_and_eigh_read_one_triangle_as_lapack() -> None:
    a = spd(n=4)
    upper_noise = onp.triu(RNG.normal(size=(4, 4)), 1)
    for fn in (np.linalg.cholesky, np.linalg.eigvalsh):
        onp.testing.assert_allclose(onp.asarray(fn(a + upper_noise)), onp.asarray(fn(a)), rtol=1e-12)
        g = gg.grad(lambda m, f=fn: np.sum(f(m) ** 3))(a)
        assert onp.all(onp.triu(g, 1) == 0)  # the upper triangle is never read
        assert gg.gradcheck(lambda m, f=fn: f(m) ** 3, (a + upper_noise,))
    g = gg.grad(lambda m: np.sum(np.linalg.eigh(m, "U")[0] ** 3))(a)
    assert onp.all(onp.tril(g, -1) == 0)


def test_complex_decompositions() -> None:
    a = RNG.normal(size=(3, 3)) + 1j * RNG.normal(size=(3, 3))
    h = a @ a.conj().T + 3 * onp.eye(3)
    assert gg.gradcheck(lambda m: np.abs(np.linalg.eigh(m)[1]) + np.linalg.eigh(m)[0], (h,))
    assert gg.gradcheck(lambda m: np.linalg.cholesky(m), (h,))
    assert gg.gradcheck(lambda m: np.linalg.svd(m, compute_uv=False), (a,))
    assert gg.gradcheck(lambda m: np.abs(np.linalg.svd(m)[0]), (a,))
    assert gg.gradcheck(lambda m: np.abs(np.linalg.qr(m)[1]), (a,))
    assert gg.gradcheck(lambda m: np.linalg.pinv(m), (a[:, :2],))
    assert gg.gradcheck(lambda m: np.linalg.norm(m, "nuc"), (a,))


def test_full_svd_of_a_non_square_matrix_is_refused_when_differentiated() -> None:
    a = RNG.normal(size=(4, 3))
    u, s, vh = np.linalg.svd(gg.tensor(a))  # constant: NumPy's full result
    assert u.shape == (4, 4)
    with pytest.raises(gg.GpugradError, match="full_matrices=False"):
        gg.grad(lambda m: np.sum(np.linalg.svd(m)[1]))(a)


def test_linalg_jvp_equals_vjp_transpose() -> None:
    a = RNG.normal(size=(4, 3))
    for f in (lambda m: np.linalg.pinv(m), lambda m: np.linalg.qr(m)[0], lambda m: np.linalg.svd(m, False)[1]):
        t = RNG.normal(size=a.shape)
        out, tan = gg.jvp(f, (a,), (t,))
        g = RNG.normal(size=onp.shape(out))
        (cot,) = gg.vjp(f, a)[1](g)
        onp.testing.assert_allclose(onp.sum(g * tan), onp.sum(cot * t), rtol=1e-9)


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3),
       kind=st.sampled_from(["fft", "ifft", "rfft", "irfft"]), norm=st.sampled_from([None, "ortho", "forward"]),
       data=st.data())
def test_fftn_lengths_axes_and_norms_match_numpy(shape: list, kind: str, norm: object, data: st.DataObject) -> None:
    nd = len(shape)
    axes = data.draw(st.lists(st.integers(-nd, nd - 1), min_size=1, max_size=nd, unique_by=lambda a: a % nd))
    s = data.draw(st.none() | st.lists(st.integers(1, 5), min_size=len(axes), max_size=len(axes)))
    rng = onp.random.default_rng(len(shape))
    x = rng.normal(size=shape)
    if kind in ("fft", "ifft", "irfft"):
        x = x + 1j * rng.normal(size=shape)
    if kind == "irfft" and s is None and shape[axes[-1]] < 2:
        s = [2] * len(axes)
    fn = getattr(onp.fft, kind + "n")
    want = fn(x, s=s, axes=axes, norm=norm)
    got = getattr(np.fft, kind + "n")(gg.tensor(x), s=s, axes=axes, norm=norm)
    onp.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)
    assert gg.gradcheck(lambda v: getattr(np.fft, kind + "n")(v, s=s, axes=axes, norm=norm), (x,))
