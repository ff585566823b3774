"""Every error of API.md's Errors section, with a message that names what it should."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.errors import InplaceError, ShapeError
from gpugrad.tensor import make_tensor


def test_error_hierarchy() -> None:
    for cls in (gg.ShapeError, gg.DeviceError, gg.DTypeError, gg.GraphError, gg.InplaceError, gg.GradcheckError,
                gg.AnomalyError):
        assert issubclass(cls, gg.GpugradError)
    assert issubclass(gg.ShapeError, ValueError) and issubclass(gg.DTypeError, TypeError)


def test_shape_error_names_op_and_both_shapes() -> None:
    a, b = gg.ones(2, 3), gg.ones(4)
    with pytest.raises(gg.ShapeError) as info:
        a + b
    msg = str(info.value)
    assert "add" in msg and "(2, 3)" in msg and "(4,)" in msg
    with pytest.raises(gg.ShapeError, match=r"matmul.*\(2, 3\).*\(4, 5\)"):
        gg.ones(2, 3) @ gg.ones(4, 5)
    with pytest.raises(gg.ShapeError, match=r"reshape.*\(2, 3\).*\(4,\)"):
        gg.ones(2, 3).reshape(4)
    with pytest.raises(gg.ShapeError, match=r"concatenate"):
        gg.concatenate([gg.ones(2, 3), gg.ones(2, 4)], axis=0)
    with pytest.raises(gg.ShapeError, match="axis 3 is out of bounds"):
        gg.sum(gg.ones(2, 3), axis=3)
    with pytest.raises(gg.ShapeError, match="getitem"):
        gg.ones(3)[5]


def test_device_error_when_cupy_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` fail
    with pytest.raises(gg.DeviceError) as info:
        gg.zeros(3, device="cuda")
    msg = str(info.value)
    assert "CuPy is not installed" in msg and "pip install" in msg
    assert gg.cuda.is_available() is False and gg.cuda.device_count() == 0


def test_device_error_when_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    fake = types.ModuleType("cupy")

    class _Runtime:
        @staticmethod
        def getDeviceCount() -> int:  # noqa: N802 (CUDA's name)
            raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")

    fake.cuda = types.SimpleNamespace(runtime=_Runtime)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    with pytest.raises(gg.DeviceError, match="no GPU is usable"):
        gg.tensor([1.0], device="cuda:0")


def test_bad_device_string() -> None:
    with pytest.raises(gg.DeviceError, match="unknown device"):
        gg.zeros(2, device="tpu")


def test_mixed_devices_name_both() -> None:
    a = gg.ones(3)
    fake_gpu = make_tensor(np.ones(3, np.float32), "cuda:0")  # only its device string matters here
    with pytest.raises(gg.DeviceError) as info:
        a + fake_gpu
    assert "cpu" in str(info.value) and "cuda:0" in str(info.value) and "add" in str(info.value)


def test_dtype_errors() -> None:
    with pytest.raises(gg.DTypeError, match="floating-point"):
        gg.tensor([1, 2, 3], requires_grad=True)
    with pytest.raises(gg.DTypeError, match="not supported"):
        gg.tensor(np.array(["a", "b"]))
    with pytest.raises(gg.DTypeError, match="not a dtype|not supported"):
        gg.zeros(3, dtype="datetime64[s]")
    assert gg.zeros(3, dtype="complex64").dtype == np.complex64  # complex tensors are supported
    with pytest.raises(gg.DTypeError, match="integer"):
        gg.ones(3)[gg.tensor([0.5])]


def test_graph_errors() -> None:
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(gg.GraphError, match="shape \\(2,\\)"):
        (x * 2).backward()
    with pytest.raises(gg.GraphError, match="does not require grad"):
        gg.ones(2).sum().backward()
    y = (x.exp()).sum()
    y.backward()
    with pytest.raises(gg.GraphError, match="exp.*second time.*retain_graph"):
        y.backward()


def test_inplace_change_of_saved_tensor_is_detected_and_named() -> None:
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    a = x * 2
    b = a * a  # saves a
    a += 1
    with pytest.raises(gg.InplaceError, match="multiply.*modified in place"):
        b.sum().backward()
    y = x.exp()  # saves its output
    y += 1
    with pytest.raises(gg.InplaceError, match="exp.*output was modified"):
        y.sum().backward()


def test_inplace_on_leaf_requiring_grad_is_refused() -> None:
    w = gg.tensor([1.0], requires_grad=True)
    with pytest.raises(gg.InplaceError, match="leaf tensor"):
        w += 1
    assert w.item() == 1.0  # state unchanged
    with gg.no_grad():
        w -= 0.5
    assert w.item() == 0.5 and w.version == 1


def test_gradcheck_error_names_input_and_worst_element() -> None:
    def wrong(x):  # noqa: ANN001, ANN202
        h = x * 1.0
        if h.requires_grad:  # not during the finite-difference evaluations (no_grad)
            h.register_hook(lambda g: g * 2)  # a deliberately wrong gradient
        return (h ** 2).sum()

    x = gg.tensor([1.0, 2.0, 3.0], dtype=gg.float64, requires_grad=True)
    with pytest.raises(gg.GradcheckError) as info:
        gg.gradcheck(wrong, (x,))
    msg = str(info.value)
    assert "input 0" in msg and "input element (2,)" in msg and "analytic" in msg and "numeric" in msg


def test_detect_anomaly_names_the_op() -> None:
    x = gg.tensor([1.0, -1.0], requires_grad=True)
    with gg.detect_anomaly(), np.errstate(invalid="ignore"):  # NumPy warns too, as np.log(-1) does
        with pytest.raises(gg.AnomalyError, match="log produced NaN or Inf in forward"):
            gg.log(x)
    z = gg.tensor([0.0, 4.0], requires_grad=True)
    with gg.detect_anomaly():
        y = gg.sqrt(z).sum()  # finite forward, infinite derivative at 0
        with pytest.raises(gg.AnomalyError, match="sqrt backward produced NaN or Inf") as info:
            y.backward()
    assert "test_errors.py" in str(info.value)  # where the forward op was called
    # outside the block nothing is checked (NumPy's own warning is all there is)
    with np.errstate(invalid="ignore"):
        assert np.isnan(gg.log(x).numpy()[1])


def test_bad_arguments_get_clear_errors() -> None:
    with pytest.raises(TypeError, match="takes 1 operand"):
        gg.exp(gg.ones(2), gg.ones(2))
    with pytest.raises(gg.GpugradError, match="gelu: approximate"):
        gg.gelu(gg.ones(2), approximate="fast")
    with pytest.raises(gg.GpugradError, match="clip"):
        gg.clip(gg.ones(2))
    with pytest.raises(gg.GpugradError, match="item"):
        gg.ones(3).item()


def test_an_unrecorded_in_place_update_of_a_read_only_array_says_so_and_writes_nothing() -> None:
    arr = np.arange(4.0)
    arr.flags.writeable = False
    x = gg.tensor(np.zeros(4))
    x.data = arr  # a tensor over memory it may not write (as a view of a read-only buffer)
    with gg.no_grad(), pytest.raises(InplaceError, match="subtract_"):
        x -= 1.0
    np.testing.assert_array_equal(arr, [0.0, 1.0, 2.0, 3.0])
    assert x._version == [0]
    with gg.no_grad(), pytest.raises(ShapeError, match="does not broadcast"):
        gg.tensor(np.zeros(4)).__isub__(gg.tensor(np.ones(3)))
