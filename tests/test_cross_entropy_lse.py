"""Cross-entropy from the rows' log-sum-exp: the forward keeps lse for the backward; the
gradient it gives equals the one recomputed from softmax (create_graph) and finite differences."""

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.ops.nn import ROW_LSE
from tests.numeric import fd_grad


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_the_kept_log_sum_exp_gives_the_recomputed_gradient(smoothing: float, weighted: bool, reduction: str) -> None:
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((7, 5)) * 3
    labels = np.array([0, 4, 2, -100, 1, 3, 4])  # one ignored row
    w = gg.tensor(rng.random(5) + 0.5) if weighted else None

    def loss_of(x):
        out = gg.nn.functional.cross_entropy(x, gg.tensor(labels), weight=w, label_smoothing=smoothing,
                                             reduction=reduction)
        return out if reduction != "none" else (out * gg.tensor(np.arange(1.0, 8.0))).sum()

    x = gg.tensor(logits, requires_grad=True)
    loss = loss_of(x)
    node = loss.grad_fn if reduction != "none" else None
    if node is not None:
        assert ROW_LSE in node.params  # the forward kept it
    loss.backward()
    fast = x.grad.numpy()
    x2 = gg.tensor(logits, requires_grad=True)
    (g,) = gg.autograd.grad(loss_of(x2), [x2], create_graph=True)  # softmax recomputed, on the tape
    np.testing.assert_allclose(fast, g.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(fast, fd_grad(lambda a: loss_of(gg.tensor(a)).item(), logits), rtol=1e-6, atol=1e-8)
    if node is not None:
        assert ROW_LSE not in node.params  # and the backward took it (the loss keeps no logits-sized array)


def test_the_loss_matches_log_softmax_with_extreme_logits() -> None:
    logits = np.array([[1000.0, 0.0, -1000.0], [-np.inf, 0.0, 1.0], [5.0, 5.0, 5.0]])
    labels = np.array([0, 2, 1])
    got = gg.nn.functional.cross_entropy(gg.tensor(logits), gg.tensor(labels), reduction="none").numpy()
    shifted = logits - logits.max(-1, keepdims=True)
    lsm = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    np.testing.assert_allclose(got, -lsm[np.arange(3), labels], rtol=1e-12)


@pytest.mark.parametrize("row", [[np.inf, 0.0, 1.0], [-np.inf, -np.inf, -np.inf], [np.nan, 0.0, 1.0],
                                 [1.0, np.inf, np.inf]])
def test_a_mean_over_a_non_finite_row_is_the_mean_of_the_rows(row: list) -> None:
    # the mean's fast path shifts by the row max as it is and falls back to _shift's rule when the
    # loss is not finite: the same value as the per-row losses (which always take _shift's rule)
    logits = np.array([[1.0, 2.0, 3.0], row, [0.5, -0.5, 0.0]])
    labels = gg.tensor(np.array([0, 1, 2]))
    with np.errstate(all="ignore"):  # (log(0), inf - inf: NumPy's warnings, as the rule always gave)
        rows = gg.nn.functional.cross_entropy(gg.tensor(logits), labels, reduction="none").numpy()
        mean = gg.nn.functional.cross_entropy(gg.tensor(logits), labels).item()
    np.testing.assert_equal(mean, rows.mean())
    assert not np.isfinite(mean)


@pytest.mark.parametrize(("dtype", "offset", "tol"), [(np.float32, 3000.0, 1e-6), (np.float16, 60.0, 4e-3)])
def test_a_common_offset_of_the_logits_changes_nothing(dtype: type, offset: float, tol: float) -> None:
    # the rows are shifted by their max before anything else: the gradient's rows still sum to 0
    rng = np.random.default_rng(4)
    base = rng.standard_normal((64, 10))
    labels = gg.tensor(rng.integers(0, 10, 64))
    x = gg.tensor((base + offset).astype(dtype), requires_grad=True)
    loss = gg.nn.functional.cross_entropy(x, labels, reduction="sum")
    loss.backward()
    assert np.abs(x.grad.numpy().astype(np.float64).sum(-1)).max() < tol
    ref = gg.nn.functional.cross_entropy(gg.tensor(base), labels, reduction="sum").item()
    np.testing.assert_allclose(float(loss.item()), ref, rtol=50 * tol)


def test_float16_label_smoothing_over_many_classes_stays_finite() -> None:
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((4, 4000)) + 20
    labels = np.array([1, 2, 3, 4])
    got = gg.nn.functional.cross_entropy(gg.tensor(logits.astype(np.float16)), gg.tensor(labels),
                                         label_smoothing=0.1, reduction="none").numpy()
    want = gg.nn.functional.cross_entropy(gg.tensor(logits), gg.tensor(labels), label_smoothing=0.1,
                                          reduction="none").numpy()
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=2e-3)


@pytest.mark.parametrize("ignore_index", [-100, 2, 5, 7])
def test_rows_whose_label_is_ignore_index_are_ignored_whatever_its_value(ignore_index: int) -> None:
    # labels all within the classes: the call knows that no row is ignored only when
    # ignore_index is not a class; a class index (2) still has its rows ignored
    rng = np.random.default_rng(11)
    logits = rng.standard_normal((6, 5))
    labels = np.array([0, 2, 4, 2, 1, 3])
    x = gg.tensor(logits, requires_grad=True)
    loss = gg.nn.functional.cross_entropy(x, gg.tensor(labels), ignore_index=ignore_index)
    loss.backward()
    keep = labels != ignore_index
    lsm = logits - logits.max(1, keepdims=True)
    lsm = lsm - np.log(np.exp(lsm).sum(1, keepdims=True))
    want = -lsm[np.arange(6), labels][keep].mean()
    np.testing.assert_allclose(loss.item(), want, rtol=1e-12)
    p = np.exp(lsm)
    p[np.arange(6), labels] -= 1
    np.testing.assert_allclose(x.grad.numpy(), p * keep[:, None] / keep.sum(), rtol=1e-12, atol=1e-15)
    assert loss.grad_fn.params["none_ignored"] is (ignore_index not in range(5))


def test_every_row_ignored_gives_nan_silently_and_a_zero_gradient() -> None:
    import warnings

    x = gg.tensor(np.ones((3, 4)), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = gg.nn.functional.cross_entropy(x, gg.tensor(np.array([1, 1, 1])), ignore_index=1)
        loss.backward()
    assert np.isnan(loss.item())
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros((3, 4)))


def test_a_fractional_ignore_index_is_the_integer_labels_are_compared_with() -> None:
    logits = np.random.default_rng(2).standard_normal((4, 3))
    labels = gg.tensor(np.array([0, 1, 2, 1]))
    got = gg.nn.functional.cross_entropy(gg.tensor(logits), labels, ignore_index=-0.5).item()
    want = gg.nn.functional.cross_entropy(gg.tensor(logits), labels, ignore_index=0).item()  # int(-0.5) == 0
    assert got == want


def test_a_float16_mean_over_more_rows_than_float16_counts_divides_under_the_loss_errstate() -> None:
    # the row count is inf in float16 there; the mean's division stays inside its own errstate,
    # so a caller's invalid="raise" does not stop it (as before the errstate-free branch)
    x = gg.tensor(np.zeros((70000, 3), np.float16))
    with np.errstate(invalid="raise", over="ignore"):
        gg.nn.functional.cross_entropy(x, gg.tensor(np.zeros(70000, np.int64)))


def _half_case(rows: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(17)
    labels = rng.integers(0, 3, rows)
    labels[::7] = -100  # some rows ignored
    return rng.standard_normal((rows, 3)), labels


@pytest.mark.parametrize("ignore", [False, True])
def test_float16_mean_over_more_rows_than_float16_counts(ignore: bool) -> None:
    # 70,000 rows: past float16's largest value (65,504), so the row count, the sum of the rows'
    # losses and the gradient's denominator are float32 (as PyTorch and the CUDA kernels have them)
    logits, labels = _half_case(70_000)
    if not ignore:
        labels = np.abs(labels) % 3
    x = gg.tensor(logits.astype(np.float16), requires_grad=True)
    loss = gg.nn.functional.cross_entropy(x, gg.tensor(labels))
    loss.backward()
    x64 = gg.tensor(logits.astype(np.float16).astype(np.float64), requires_grad=True)
    want = gg.nn.functional.cross_entropy(x64, gg.tensor(labels))
    want.backward()
    assert loss.dtype == np.float16 and x.grad.dtype == np.float16
    np.testing.assert_allclose(loss.item(), want.item(), rtol=2e-3)
    g = x.grad.numpy().astype(np.float64)
    assert np.abs(g).max() > 1e-6  # not the zero gradient an inf count gave
    np.testing.assert_allclose(g, x64.grad.numpy(), rtol=0, atol=1e-7)


def test_float16_sum_is_summed_in_float32_and_past_its_range_is_inf_silently() -> None:
    import warnings

    logits, labels = _half_case(20_000)
    h = gg.tensor(logits.astype(np.float16))
    want = gg.nn.functional.cross_entropy(gg.tensor(logits.astype(np.float16).astype(np.float64)),
                                          gg.tensor(labels), reduction="sum").item()
    got = gg.nn.functional.cross_entropy(h, gg.tensor(labels), reduction="sum")
    assert got.dtype == np.float16
    np.testing.assert_allclose(got.item(), want, rtol=1e-3)  # (a float16 running sum is off by far more)
    big_logits, big_labels = _half_case(70_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        big = gg.nn.functional.cross_entropy(gg.tensor(big_logits.astype(np.float16)), gg.tensor(big_labels),
                                             reduction="sum")
    assert big.item() == np.inf


@pytest.mark.gpu
def test_float16_mean_over_many_rows_on_cuda_matches_the_cpu() -> None:
    logits, labels = _half_case(70_000)
    out = []
    for device in ("cpu", "cuda"):
        x = gg.tensor(logits.astype(np.float16), device=device, requires_grad=True)
        loss = gg.nn.functional.cross_entropy(x, gg.tensor(labels, device=device))
        loss.backward()
        out.append((loss.item(), x.grad.numpy().astype(np.float64)))
    (l_cpu, g_cpu), (l_gpu, g_gpu) = out
    assert np.isfinite(l_gpu) and np.abs(g_gpu).max() > 1e-6
    np.testing.assert_allclose(l_gpu, l_cpu, rtol=2e-3)
    np.testing.assert_allclose(g_gpu, g_cpu, rtol=0, atol=1e-7)


def _ce_value_and_grad(x: np.ndarray, labels: np.ndarray, device: str, **kw: object) -> tuple:
    t = gg.tensor(x, device=device, requires_grad=True)
    loss = gg.nn.functional.cross_entropy(t, gg.tensor(labels, device=device), **kw)
    loss.sum().backward()
    return loss.to("cpu").numpy(), t.grad.to("cpu").numpy()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("ignore", [False, True])
def test_one_hot_gradient_in_place_equals_softmax_minus_the_target(reduction: str, ignore: bool) -> None:
    # integer labels, no weight or smoothing: the rule subtracts 1 at each label of a fresh softmax
    rng = np.random.default_rng(4)
    x = rng.standard_normal((37, 6))
    labels = rng.integers(0, 6, 37)
    if ignore:
        labels[::5] = -100
    loss, g = _ce_value_and_grad(x, labels, "cpu", reduction=reduction)
    p = np.exp(x - x.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    keep = labels != -100
    q = np.zeros_like(p)
    q[np.arange(37)[keep], labels[keep]] = 1
    want = (p - q) * keep[:, None]
    if reduction == "mean":
        want /= keep.sum()
    np.testing.assert_allclose(g, want, rtol=1e-12, atol=1e-15)


@pytest.mark.gpu
@pytest.mark.parametrize("reduction", ["sum", "none"])
def test_cross_entropy_the_cuda_kernel_declines_runs_the_rule_on_cuda_arrays(reduction: str) -> None:
    # (the kernels take the mean without weights: these run the rule, in place on a CuPy array)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((33, 7)).astype(np.float32)
    labels = rng.integers(0, 7, 33)
    labels[3] = -100
    (l_cpu, g_cpu), (l_gpu, g_gpu) = (_ce_value_and_grad(x, labels, d, reduction=reduction) for d in ("cpu", "cuda"))
    np.testing.assert_allclose(l_gpu, l_cpu, rtol=1e-5)
    np.testing.assert_allclose(g_gpu, g_cpu, rtol=1e-5, atol=1e-7)
