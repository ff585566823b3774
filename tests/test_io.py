"""gg.save / gg.load: round trips, interoperability with the safetensors tools other frameworks
use, rejection of truncated/corrupt/hostile files without running anything, atomic writes, and
bit-identical resumption of training from a checkpoint."""

from __future__ import annotations

import json
import math
import os
import pickle
from collections import OrderedDict

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.nn.functional as F
from gpugrad import nn, optim
from gpugrad.optim import lr_scheduler

RNG = np.random.default_rng(11)


def test_round_trip_of_nested_structure(tmp_path):
    shared = gg.tensor(RNG.standard_normal((2, 3)).astype(np.float32), requires_grad=True)
    obj = {
        "tensors": [shared, shared, gg.tensor(np.arange(5, dtype=np.int64)), gg.zeros(0, 3)],
        "arrays": (np.float16(1.5), np.arange(6, dtype=np.uint8).reshape(2, 3), np.array(True), np.array(2.5)),
        3: {"nested": {"deep": [None, True, False, 7, -1.25, "text", math.inf, -math.inf, math.nan]}},
        None: "none-key",
        2.5: "float-key",
        "param": nn.Parameter(gg.ones(2, dtype=gg.float64)),
        "ordered": OrderedDict([("b", 1), ("a", 2)]),
        "big": 2 ** 70,
    }
    path = tmp_path / "obj.safetensors"
    gg.save(obj, path)
    back = gg.load(path)
    assert list(back) == ["tensors", "arrays", 3, None, 2.5, "param", "ordered", "big"]
    t0, t1, ints, empty = back["tensors"]
    assert t0 is t1  # one entry, loaded as one object (tied weights stay tied)
    assert isinstance(t0, gg.Tensor) and t0.requires_grad and t0.dtype == np.float32
    np.testing.assert_array_equal(t0.numpy(), shared.numpy())
    assert ints.dtype == np.int64 and empty.shape == (0, 3)
    h, u8, b, d = back["arrays"]
    assert isinstance(back["arrays"], tuple) and type(h) is np.float16 and h == 1.5
    assert u8.dtype == np.uint8 and isinstance(u8, np.ndarray) and b.dtype == np.bool_ and b.shape == ()
    deep = back[3]["nested"]["deep"]
    assert deep[:7] == [None, True, False, 7, -1.25, "text", math.inf] and deep[7] == -math.inf
    assert math.isnan(deep[8]) and type(deep[3]) is int
    assert back[None] == "none-key" and back[2.5] == "float-key" and back["big"] == 2 ** 70
    assert isinstance(back["param"], nn.Parameter) and back["param"].dtype == np.float64
    assert list(back["ordered"]) == ["b", "a"]


def test_model_and_optimizer_state_round_trip(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))
    opt = optim.Adam(model.parameters(), lr=0.01)
    F.cross_entropy(model(gg.randn(4, 1, 4, 4)), gg.tensor([0, 1, 2, 0])).backward()
    opt.step()
    gg.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 1}, tmp_path / "c.safetensors")
    ck = gg.load(tmp_path / "c.safetensors")
    assert ck["epoch"] == 1
    assert ck["model"]["1.num_batches_tracked"].dtype == np.int64
    model2 = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))
    model2.load_state_dict(ck["model"])
    for (k, a), b in zip(model.state_dict().items(), model2.state_dict().values()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)
    opt2 = optim.Adam(model2.parameters())
    opt2.load_state_dict(ck["optimizer"])
    assert opt2.param_groups[0]["lr"] == 0.01 and opt2.param_groups[0]["betas"] == (0.9, 0.999)
    assert opt2.state[id(next(model2.parameters()))]["step"] == 1


def test_files_open_in_other_frameworks_tools(tmp_path):
    torch = pytest.importorskip("torch")
    import safetensors.numpy
    import safetensors.torch

    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    path = tmp_path / "model.safetensors"
    gg.save(model.state_dict(), path)
    raw = safetensors.numpy.load_file(str(path))
    assert set(raw) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    theirs.load_state_dict(safetensors.torch.load_file(str(path)))
    x = RNG.standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_allclose(theirs(torch.tensor(x)).detach().numpy(), model(gg.tensor(x)).numpy(), rtol=1e-6)


def test_loads_safetensors_written_by_torch(tmp_path):
    torch = pytest.importorskip("torch")
    import safetensors.torch

    tensors = {"w": torch.randn(3, 2), "i": torch.arange(4), "h": torch.randn(2).half(),
               "bf": torch.tensor([1.5, -2.0, 3.25], dtype=torch.bfloat16)}
    path = tmp_path / "torch.safetensors"
    safetensors.torch.save_file(tensors, str(path))
    back = gg.load(path)
    assert set(back) == set(tensors)
    for k in ("w", "i", "h"):
        np.testing.assert_array_equal(back[k].numpy(), tensors[k].numpy())
    assert back["bf"].dtype == np.float32  # bfloat16 has no NumPy dtype: widened exactly
    np.testing.assert_array_equal(back["bf"].numpy(), [1.5, -2.0, 3.25])


# ---- hostile and broken files ------------------------------------------------------------------


@pytest.fixture
def good_file(tmp_path):
    path = tmp_path / "good.safetensors"
    gg.save({"w": gg.randn(4, 4), "b": gg.zeros(4), "step": 3}, path)
    return path


def test_truncated_files_raise_checkpoint_error(good_file, tmp_path):
    data = good_file.read_bytes()
    header_len = int.from_bytes(data[:8], "little")
    for cut in (0, 3, 8, 20, 8 + header_len // 2, 8 + header_len, 8 + header_len + 5, len(data) - 1):
        bad = tmp_path / f"cut{cut}.safetensors"
        bad.write_bytes(data[:cut])
        with pytest.raises(gg.CheckpointError, match="not a valid checkpoint"):
            gg.load(bad)


def test_random_bytes_and_pickles_are_rejected_without_running_anything(tmp_path):
    bad = tmp_path / "random.bin"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(gg.CheckpointError):
        gg.load(bad)
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"model": Exploit()}))
    with pytest.raises(gg.CheckpointError):
        gg.load(evil)
    assert not marker.exists()
    with pytest.raises(gg.CheckpointError, match="cannot read"):
        gg.load(tmp_path / "missing.safetensors")


def _craft(header: dict, body: bytes = b"", raw_header: bytes | None = None) -> bytes:
    h = raw_header if raw_header is not None else json.dumps(header).encode()
    return len(h).to_bytes(8, "little") + h + body


@pytest.mark.parametrize("payload,match", [
    (b"\xff" * 8 + b"{}", "claims"),                                            # header length 2**64-1
    (_craft({}, raw_header=b"{not json"), "not valid JSON"),
    (_craft({}, raw_header=b"\xff\xfe{}"), "not valid JSON"),
    (_craft({}, raw_header=b'{"a": 1, "a": 2}'), "duplicate"),
    (_craft({}, raw_header=b"[1, 2]"), "not a JSON object"),
    (_craft({"w": {"dtype": "F32", "shape": [2 ** 40], "data_offsets": [0, 2 ** 42]}}), "outside"),
    (_craft({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8), "needs 12 bytes"),
    (_craft({"w": {"dtype": "O", "shape": [1], "data_offsets": [0, 8]}}, b"\0" * 8), "unsupported dtype"),
    (_craft({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4), "invalid shape"),
    (_craft({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "x": 1}}, b"\0" * 4), "exactly"),
    (_craft({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
             "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4), "overlapping"),
    (_craft({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 12), "cover"),
    (_craft({"__metadata__": {"k": 1}}), "__metadata__"),
    (_craft({}, raw_header=b'{"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, NaN]}}'), "not valid JSON"),
])
def test_malformed_headers_are_rejected(tmp_path, payload, match):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(payload)
    with pytest.raises(gg.CheckpointError, match=match):
        gg.load(bad)


def _tamper(path, tmp_path, edit):
    """Rewrite the gpugrad structure metadata of a good file with ``edit(structure_text)``."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(str(path), framework="np") as f:
        meta = f.metadata()
        arrays = {k: f.get_tensor(k) for k in f.keys()}
    meta["gpugrad.structure"] = edit(meta["gpugrad.structure"])
    out = tmp_path / "tampered.safetensors"
    save_file(arrays, str(out), metadata=meta)
    return out


@pytest.mark.parametrize("edit,match", [
    (lambda s: s[:-3], "not valid JSON"),
    (lambda s: s.replace('"dtype":"float32"', '"dtype":"float64"', 1), "structure says"),
    (lambda s: s.replace('"$t":"w"', '"$t":"nope"'), "missing entry"),
    (lambda s: s.replace('"$t":"b"', '"$t":"w"'), "not referenced|structure says"),
    (lambda s: s.replace('{"$v":3}', '{"$eval":"__import__(\'os\')"}'), "invalid structure node"),
    (lambda s: s.replace('{"$v":3}', '{"$v":{"a":1}}'), "invalid plain value"),
    (lambda s: s.replace('"kind":"tensor"', '"kind":"pickle"', 1), "unknown array kind"),
    (lambda s: s.replace('{"$v":3}', "[" * 5000 + "]" * 5000), "nested|not valid JSON|invalid"),
    (lambda s: s.replace('{"$v":3}', '{"$float":"1e999"}'), "invalid float"),
])
def test_tampered_structure_is_rejected(good_file, tmp_path, edit, match):
    bad = _tamper(good_file, tmp_path, edit)
    with pytest.raises(gg.CheckpointError, match=match):
        gg.load(bad)


def test_wrong_format_version_is_rejected(good_file, tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(str(good_file), framework="np") as f:
        meta, arrays = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    save_file(arrays, str(tmp_path / "v2.safetensors"), metadata=dict(meta, **{"gpugrad.format": "gpugrad/99"}))
    with pytest.raises(gg.CheckpointError, match="unsupported gpugrad format"):
        gg.load(tmp_path / "v2.safetensors")


def test_save_rejects_what_it_cannot_store(tmp_path):
    with pytest.raises(gg.CheckpointError, match="state_dict"):
        gg.save({"model": nn.Linear(2, 2)}, tmp_path / "m.safetensors")
    with pytest.raises(gg.CheckpointError, match="keys"):
        gg.save({(1, 2): 3}, tmp_path / "k.safetensors")
    with pytest.raises(gg.CheckpointError, match="dtype"):
        gg.save({"c": np.zeros(2, complex)}, tmp_path / "c.safetensors")
    with pytest.raises(gg.CheckpointError, match="does not exist"):
        gg.save({}, tmp_path / "no" / "dir.safetensors")
    assert not list(tmp_path.iterdir())


# ---- atomicity ---------------------------------------------------------------------------------


def test_crash_during_write_leaves_old_file_intact(good_file, monkeypatch):
    import safetensors.numpy

    before = good_file.read_bytes()

    def crashing_save_file(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial garbage")
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(safetensors.numpy, "save_file", crashing_save_file)
    with pytest.raises(KeyboardInterrupt):
        gg.save({"w": gg.ones(100)}, good_file)
    assert good_file.read_bytes() == before
    assert sorted(p.name for p in good_file.parent.iterdir()) == [good_file.name]  # no temp file left
    assert gg.load(good_file)["step"] == 3


def test_crash_before_rename_leaves_old_file_intact(good_file, monkeypatch):
    before = good_file.read_bytes()

    def crash(src, dst):
        raise OSError("disk vanished")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="vanished"):
        gg.save({"w": gg.ones(100)}, good_file)
    monkeypatch.undo()
    assert good_file.read_bytes() == before
    assert sorted(p.name for p in good_file.parent.iterdir()) == [good_file.name]


def test_overwrite_is_complete_and_keeps_permissions(good_file):
    os.chmod(good_file, 0o640)
    gg.save({"new": gg.ones(3)}, str(good_file))
    assert list(gg.load(good_file)) == ["new"]
    assert (os.stat(good_file).st_mode & 0o777) == 0o640


def test_load_device_argument(good_file):
    back = gg.load(good_file, device="cpu")
    assert back["w"].device == "cpu"
    if not gg.cuda.is_available():
        with pytest.raises(gg.DeviceError):
            gg.load(good_file, device="cuda")


# ---- resuming training -------------------------------------------------------------------------


def _model():
    return nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))


def _train(model, opt, sched, batches):
    for x, y in batches:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        optim.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()


@pytest.mark.parametrize("opt_cls,kw", [(optim.AdamW, dict(lr=0.01)), (optim.SGD, dict(lr=0.1, momentum=0.9,
                                                                                       nesterov=True))])
def test_resume_from_checkpoint_is_bit_identical(tmp_path, opt_cls, kw):
    data = np.random.default_rng(0)
    batches = [(gg.tensor(data.standard_normal((8, 6)).astype(np.float32)), gg.tensor(data.integers(0, 3, 8)))
               for _ in range(10)]
    gg.manual_seed(0)
    model = _model()
    opt = opt_cls(model.parameters(), **kw)
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    _train(model, opt, sched, batches[:4])
    path = tmp_path / "ckpt.safetensors"
    gg.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
             "step": 4}, path)
    gg.manual_seed(123)  # the dropout stream of the continuation (the checkpoint does not hold RNG state)
    _train(model, opt, sched, batches[4:])

    ck = gg.load(path)
    gg.manual_seed(999)
    model2 = _model()  # fresh objects, different initial weights
    opt2 = opt_cls(model2.parameters(), **kw)
    sched2 = lr_scheduler.CosineAnnealingLR(opt2, T_max=10)
    model2.load_state_dict(ck["model"])
    opt2.load_state_dict(ck["optimizer"])
    sched2.load_state_dict(ck["scheduler"])
    assert ck["step"] == 4
    gg.manual_seed(123)
    _train(model2, opt2, sched2, batches[4:])
    for (k, a), b in zip(model.state_dict().items(), model2.state_dict().values()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)
    assert sched.get_last_lr() == sched2.get_last_lr()
