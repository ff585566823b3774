"""``a @ b.T`` as one matmul (what a linear layer computes): gradients by finite differences,
forward mode, second order, and the weight gradient made in the weight's own layout (a new array
that becomes ``.grad`` as it is). Also matmul's (N-D) @ (2-D) gradient of b as one product."""

from __future__ import annotations

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.ops.linalg import matmul_transposed

SHAPES = [((5,), (3, 5)), ((4, 5), (3, 5)), ((2, 4, 5), (3, 5)), ((2, 1, 4, 5), (3, 5))]


@pytest.mark.parametrize("sa,sb", SHAPES)
def test_matmul_transposed_gradients(sa, sb) -> None:
    rng = np.random.default_rng(0)
    a = gg.tensor(rng.standard_normal(sa), requires_grad=True)
    b = gg.tensor(rng.standard_normal(sb), requires_grad=True)
    np.testing.assert_allclose(matmul_transposed(a, b).numpy(), a.numpy() @ b.numpy().T, rtol=1e-12)
    assert gg.gradcheck(lambda x, w: (matmul_transposed(x, w) ** 2).sum(), (a, b))
    # forward mode: the tangent of a @ b.T
    ta, tb = rng.standard_normal(sa), rng.standard_normal(sb)
    _, t = gg.jvp(matmul_transposed, (a.detach(), b.detach()), (gg.tensor(ta), gg.tensor(tb)))
    np.testing.assert_allclose(t.numpy(), ta @ b.numpy().T + a.numpy() @ tb.T, rtol=1e-10, atol=1e-12)
    # second order: the gradient is itself differentiated (create_graph through the rule)
    def grad_norm(x, w):
        return (gg.grad(lambda x_: (matmul_transposed(x_, w) ** 3).sum())(x) ** 2).sum()

    assert gg.gradcheck(grad_norm, (a, b))


def test_weight_gradient_becomes_grad_without_a_transposed_view() -> None:
    rng = np.random.default_rng(1)
    x = gg.tensor(rng.standard_normal((2, 4, 5)))
    w = gg.tensor(rng.standard_normal((3, 5)), requires_grad=True)
    gg.nn.functional.linear(x, w).sum().backward()
    assert w.grad.data.flags.c_contiguous and w.grad.data.base is None
    np.testing.assert_allclose(w.grad.numpy(), np.ones((8, 3)).T @ x.numpy().reshape(8, 5), rtol=1e-12)


def test_errors_name_the_shapes() -> None:
    with pytest.raises(gg.ShapeError, match="not aligned"):
        matmul_transposed(gg.ones((2, 4)), gg.ones((3, 5)))
    with pytest.raises(gg.ShapeError, match="2-D"):
        matmul_transposed(gg.ones((2, 4)), gg.ones((4,)))


def test_batched_matmul_weight_gradient_against_torch() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    a0, b0 = rng.standard_normal((3, 4, 6)), rng.standard_normal((6, 2))
    a, b = gg.tensor(a0, requires_grad=True), gg.tensor(b0, requires_grad=True)
    (gg.tanh(a @ b)).sum().backward()
    ta, tb = torch.tensor(a0, requires_grad=True), torch.tensor(b0, requires_grad=True)
    torch.tanh(ta @ tb).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(b.grad.numpy(), tb.grad.numpy(), rtol=1e-10)


@pytest.mark.parametrize("a_shape", [(8, 32, 64), (2, 3, 5, 64), (1, 1, 64), (4, 0, 64)])
@pytest.mark.parametrize("a_layout", ["C", "sliced"])
def test_the_cpu_backends_stack_times_a_transposed_matrix_is_numpys_product(a_shape: tuple, a_layout: str) -> None:
    # numpy_backend.matmul takes a C-contiguous stack times a non-contiguous matrix as one product
    from gpugrad.backends import numpy_backend as nb

    rng = np.random.default_rng(3)
    a = rng.normal(size=a_shape)
    if a_layout == "sliced":
        a = np.concatenate([a, a], axis=-1)[..., ::2]  # not C-contiguous: NumPy's own product
    w = rng.normal(size=(7, 64))
    got = nb.matmul(a, w.T)
    want = np.einsum("...k,nk->...n", a, w)
    assert got.shape == (*a_shape[:-1], 7)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(nb.matmul(a, np.ascontiguousarray(w.T)), np.matmul(a, np.ascontiguousarray(w.T)))
