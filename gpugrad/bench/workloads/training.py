"""Training steps: forward, backward and an SGD update, for three models.

* ``mlp``: 64-256-256-10, batch 256 and 784-1024-1024-10, batch 512: ReLU
  layers, cross-entropy. The gpugrad side is written with ops (``x @ W + b``, ``gg.relu``,
  ``gg.nn.functional.cross_entropy``) and a plain SGD update under ``gg.no_grad()``; PyTorch
  uses ``F.cross_entropy`` and ``torch.optim.SGD``.
* ``cnn``: two 3x3 convolutions (padding 1) with ReLU and 2x2 max pooling, then a linear
  layer; needs ``gpugrad.nn.functional`` (conv2d, max_pool2d, linear, cross_entropy) and
  ``gpugrad.optim.SGD``.
* ``transformer``: a pre-LayerNorm GPT block stack (token + position embeddings, causal
  self-attention, GELU(tanh) MLP, final LayerNorm, linear head, cross-entropy over every
  token); needs ``gpugrad.nn.functional`` (embedding, layer_norm, linear,
  scaled_dot_product_attention, gelu, cross_entropy) and ``gpugrad.optim.SGD``.

The gpugrad and PyTorch versions of the cnn and transformer are one function called with each
library's ``nn.functional``; JAX and HIPS autograd share a NumPy-style version; the hand-written
NumPy version has its own backward (``_hand.py``) and, in float64, is the reference.
Parameters use PyTorch's layouts (Linear weight (out, in), Conv2d weight (out, in, k, k)).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gpugrad.bench.core import Case, Workload, register
from gpugrad.bench.patterns import TrainSpec, train_builders
from gpugrad.bench.workloads import _hand as H
from gpugrad.bench.workloads._common import NO_CONV, needs

LR = 0.01

# ---------------------------------------------------------------------------------------------
# MLP


def _mlp_cases(settings: Any) -> list[Case]:
    configs = [(256, (64, 256, 256, 10))]
    if settings.gpu or not settings.quick:
        configs.append((512, (784, 1024, 1024, 10)))
    if settings.gpu and settings.quick:
        configs = configs[1:]
    out = []
    for batch, dims in configs:
        mm = sum(a * b for a, b in zip(dims[:-1], dims[1:]))
        out.append(Case("mlp", f"{'-'.join(map(str, dims))} batch={batch} f32", {"batch": batch, "dims": dims},
                        size=batch * mm, flops=6.0 * batch * mm, dtype="float32", series="mlp",
                        size_label="batch x weights"))
    return out


def _mlp_shared(case: Case, rng: np.random.Generator) -> dict[str, np.ndarray]:
    dims = case.params["dims"]
    p = {}
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:]), 1):
        p[f"W{i}"] = (rng.standard_normal((a, b)) * math.sqrt(2.0 / a)).astype(np.float32)
        p[f"b{i}"] = (rng.standard_normal(b) * 0.01).astype(np.float32)
    return p


def _mlp_inputs(case: Case, rng: np.random.Generator, k: int) -> dict[str, np.ndarray]:
    batch, dims = case.params["batch"], case.params["dims"]
    return {"x": rng.standard_normal((batch, dims[0]), dtype=np.float32),
            "y": rng.integers(0, dims[-1], size=batch, dtype=np.int64),
            "rows": np.arange(batch, dtype=np.int64)}


def _mlp_spec(case: Case) -> TrainSpec:
    layers = len(case.params["dims"]) - 1

    def gg_loss(P: dict, B: dict) -> Any:
        import gpugrad as gg

        h = B["x"]
        for i in range(1, layers):
            h = gg.relu(h @ P[f"W{i}"] + P[f"b{i}"])
        logits = h @ P[f"W{layers}"] + P[f"b{layers}"]
        return gg.nn.functional.cross_entropy(logits, B["y"])

    def torch_loss(P: dict, B: dict) -> Any:
        import torch
        import torch.nn.functional as F

        h = B["x"]
        for i in range(1, layers):
            h = torch.relu(h @ P[f"W{i}"] + P[f"b{i}"])
        return F.cross_entropy(h @ P[f"W{layers}"] + P[f"b{layers}"], B["y"])

    def np_like_loss(np_: Any) -> Any:
        def loss(P: dict, B: dict) -> Any:
            h = B["x"]
            for i in range(1, layers):
                h = np_.maximum(np_.dot(h, P[f"W{i}"]) + P[f"b{i}"], 0.0)
            logits = np_.dot(h, P[f"W{layers}"]) + P[f"b{layers}"]
            m = np_.max(logits, axis=1, keepdims=True)
            logp = logits - m - np_.log(np_.sum(np_.exp(logits - m), axis=1, keepdims=True))
            return -np_.mean(logp[B["rows"], B["y"]])

        return loss

    def jax_loss(P: dict, B: dict) -> Any:
        import jax
        import jax.numpy as jnp

        h = B["x"]
        for i in range(1, layers):
            h = jax.nn.relu(h @ P[f"W{i}"] + P[f"b{i}"])
        logp = jax.nn.log_softmax(h @ P[f"W{layers}"] + P[f"b{layers}"], axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, B["y"][:, None], axis=1))

    def ag_loss(P: dict, B: dict) -> Any:
        import autograd.numpy as anp

        return np_like_loss(anp)(P, B)

    def np_step(xp: Any, P: dict, B: dict) -> tuple[Any, dict]:
        acts = [B["x"]]
        pre = []
        for i in range(1, layers):
            z = acts[-1] @ P[f"W{i}"] + P[f"b{i}"]
            pre.append(z)
            acts.append(xp.maximum(z, 0))
        logits = acts[-1] @ P[f"W{layers}"] + P[f"b{layers}"]
        loss, d = H.cross_entropy(xp, logits, B["y"])
        grads = {}
        for i in range(layers, 0, -1):
            a = acts[i - 1]
            grads[f"W{i}"] = a.T @ d
            grads[f"b{i}"] = d.sum(axis=0)
            if i > 1:
                d = (d @ P[f"W{i}"].T) * (pre[i - 2] > 0)
        return loss, grads

    return TrainSpec(lr=LR, gg=gg_loss, torch=torch_loss, jax=jax_loss, autograd=ag_loss, numpy=np_step,
                     gg_optimizer="manual")


register(Workload("mlp", "training", "MLP training step (fwd + bwd + SGD)", _mlp_cases, _mlp_inputs,
                  train_builders(_mlp_spec), shared=_mlp_shared))

# ---------------------------------------------------------------------------------------------
# CNN


def _cnn_cases(settings: Any) -> list[Case]:
    if settings.gpu:
        cfg = {"batch": 64 if settings.quick else 128, "cin": 3, "hw": 32, "c1": 32, "c2": 64, "classes": 10}
    else:
        cfg = {"batch": 16 if settings.quick else 32, "cin": 1, "hw": 28, "c1": 8, "c2": 16, "classes": 10}
    b, cin, hw, c1, c2, k = cfg["batch"], cfg["cin"], cfg["hw"], cfg["c1"], cfg["c2"], cfg["classes"]
    flat = c2 * (hw // 4) ** 2
    fwd = 2 * b * (c1 * hw * hw * cin * 9 + c2 * (hw // 2) ** 2 * c1 * 9 + flat * k)
    label = f"{cin}x{hw}x{hw} conv{c1}-conv{c2}-fc{k} batch={b} f32"
    return [Case("cnn", label, cfg, size=b, flops=3.0 * fwd, dtype="float32", series="cnn",
                 size_label="batch")]


def _cnn_shared(case: Case, rng: np.random.Generator) -> dict[str, np.ndarray]:
    c = case.params
    flat = c["c2"] * (c["hw"] // 4) ** 2

    def he(shape: tuple, fan_in: int) -> np.ndarray:
        return (rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)).astype(np.float32)

    return {"conv1_w": he((c["c1"], c["cin"], 3, 3), c["cin"] * 9),
            "conv1_b": (rng.standard_normal(c["c1"]) * 0.01).astype(np.float32),
            "conv2_w": he((c["c2"], c["c1"], 3, 3), c["c1"] * 9),
            "conv2_b": (rng.standard_normal(c["c2"]) * 0.01).astype(np.float32),
            "fc_w": he((c["classes"], flat), flat),
            "fc_b": (rng.standard_normal(c["classes"]) * 0.01).astype(np.float32)}


def _cnn_inputs(case: Case, rng: np.random.Generator, k: int) -> dict[str, np.ndarray]:
    c = case.params
    return {"x": rng.standard_normal((c["batch"], c["cin"], c["hw"], c["hw"]), dtype=np.float32),
            "y": rng.integers(0, c["classes"], size=c["batch"], dtype=np.int64)}


def cnn_loss(F: Any, P: dict, B: dict) -> Any:
    """The CNN's loss with a PyTorch-style ``nn.functional`` (torch's or gpugrad's)."""
    h = F.max_pool2d(F.relu(F.conv2d(B["x"], P["conv1_w"], P["conv1_b"], padding=1)), 2)
    h = F.max_pool2d(F.relu(F.conv2d(h, P["conv2_w"], P["conv2_b"], padding=1)), 2)
    h = h.reshape(h.shape[0], -1)
    return F.cross_entropy(F.linear(h, P["fc_w"], P["fc_b"]), B["y"])


def _cnn_spec(case: Case) -> TrainSpec:
    def gg_loss(P: dict, B: dict) -> Any:
        import gpugrad.nn.functional as F

        return cnn_loss(F, P, B)

    def torch_loss(P: dict, B: dict) -> Any:
        import torch.nn.functional as F

        return cnn_loss(F, P, B)

    def jax_loss(P: dict, B: dict) -> Any:
        import jax
        import jax.numpy as jnp

        def conv(x: Any, w: Any, b: Any) -> Any:
            y = jax.lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NCHW", "OIHW", "NCHW"))
            return y + b[None, :, None, None]

        def pool(x: Any) -> Any:
            n, c, h, w = x.shape
            return x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))

        h = pool(jax.nn.relu(conv(B["x"], P["conv1_w"], P["conv1_b"])))
        h = pool(jax.nn.relu(conv(h, P["conv2_w"], P["conv2_b"])))
        logits = h.reshape(h.shape[0], -1) @ P["fc_w"].T + P["fc_b"]
        logp = jax.nn.log_softmax(logits, axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, B["y"][:, None], axis=1))

    def np_step(xp: Any, P: dict, B: dict) -> tuple[Any, dict]:
        z1, cols1 = H.conv2d(xp, B["x"], P["conv1_w"], P["conv1_b"], 1)
        a1 = xp.maximum(z1, 0)
        p1, m1 = H.maxpool2(xp, a1)
        z2, cols2 = H.conv2d(xp, p1, P["conv2_w"], P["conv2_b"], 1)
        a2 = xp.maximum(z2, 0)
        p2, m2 = H.maxpool2(xp, a2)
        flat = p2.reshape(p2.shape[0], -1)
        logits = flat @ P["fc_w"].T + P["fc_b"]
        loss, d = H.cross_entropy(xp, logits, B["y"])
        g = {"fc_w": d.T @ flat, "fc_b": d.sum(axis=0)}
        dp2 = (d @ P["fc_w"]).reshape(p2.shape)
        dz2 = H.maxpool2_backward(xp, dp2, m2) * (z2 > 0)
        dp1, g["conv2_w"], g["conv2_b"] = H.conv2d_backward(xp, dz2, cols2, P["conv2_w"], 1)
        dz1 = H.maxpool2_backward(xp, dp1, m1) * (z1 > 0)
        _, g["conv1_w"], g["conv1_b"] = H.conv2d_backward(xp, dz1, cols1, P["conv1_w"], 1, need_x=False)
        return loss, g

    return TrainSpec(lr=LR, gg=gg_loss, torch=torch_loss, jax=jax_loss, numpy=np_step, gg_optimizer="optim",
                     skip={"autograd": NO_CONV})


register(Workload("cnn", "training", "CNN training step (fwd + bwd + SGD)", _cnn_cases, _cnn_inputs,
                  train_builders(_cnn_spec), shared=_cnn_shared,
                  needs=needs("gpugrad.nn.functional.conv2d", "gpugrad.nn.functional.max_pool2d",
                              "gpugrad.nn.functional.linear", "gpugrad.nn.functional.relu",
                              "gpugrad.nn.functional.cross_entropy", "gpugrad.optim.SGD")))

# ---------------------------------------------------------------------------------------------
# small transformer


def _tf_cases(settings: Any) -> list[Case]:
    if settings.gpu:
        cfg = {"batch": 16, "T": 128, "D": 256, "H": 4, "L": 2, "V": 1024}
    elif settings.quick:
        cfg = {"batch": 4, "T": 16, "D": 32, "H": 2, "L": 1, "V": 64}
    else:
        cfg = {"batch": 8, "T": 32, "D": 64, "H": 4, "L": 2, "V": 128}
    b, t, d, nl, v = cfg["batch"], cfg["T"], cfg["D"], cfg["L"], cfg["V"]
    n = b * t
    fwd = nl * (24 * n * d * d + 4 * b * t * t * d) + 2 * n * d * v
    label = f"L={nl} D={d} H={cfg['H']} T={t} V={v} batch={b} f32"
    return [Case("transformer", label, cfg, size=n, flops=3.0 * fwd, dtype="float32",
                 series="transformer", size_label="tokens")]


def _tf_shared(case: Case, rng: np.random.Generator) -> dict[str, np.ndarray]:
    c = case.params
    d, v, t = c["D"], c["V"], c["T"]

    def w(*shape: int, scale: float = 0.02) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    p = {"tok": w(v, d), "pos": w(t, d)}
    for i in range(c["L"]):
        p |= {f"l{i}.ln1_w": 1 + w(d, scale=0.1), f"l{i}.ln1_b": w(d), f"l{i}.qkv_w": w(3 * d, d),
              f"l{i}.qkv_b": w(3 * d), f"l{i}.proj_w": w(d, d), f"l{i}.proj_b": w(d),
              f"l{i}.ln2_w": 1 + w(d, scale=0.1), f"l{i}.ln2_b": w(d), f"l{i}.fc1_w": w(4 * d, d),
              f"l{i}.fc1_b": w(4 * d), f"l{i}.fc2_w": w(d, 4 * d), f"l{i}.fc2_b": w(d)}
    p |= {"lnf_w": 1 + w(d, scale=0.1), "lnf_b": w(d), "head_w": w(v, d), "head_b": w(v)}
    return p


def _tf_inputs(case: Case, rng: np.random.Generator, k: int) -> dict[str, np.ndarray]:
    c = case.params
    return {"idx": rng.integers(0, c["V"], size=(c["batch"], c["T"]), dtype=np.int64),
            "y": rng.integers(0, c["V"], size=c["batch"] * c["T"], dtype=np.int64)}


def transformer_loss(F: Any, P: dict, B: dict, cfg: dict) -> Any:
    """The transformer's loss with a PyTorch-style ``nn.functional`` (torch's or gpugrad's)."""
    b, t, d, nh = cfg["batch"], cfg["T"], cfg["D"], cfg["H"]
    hd = d // nh
    x = F.embedding(B["idx"], P["tok"]) + P["pos"]
    for i in range(cfg["L"]):
        p = f"l{i}."
        h = F.layer_norm(x, (d,), P[p + "ln1_w"], P[p + "ln1_b"], 1e-5)
        qkv = F.linear(h, P[p + "qkv_w"], P[p + "qkv_b"])
        q, k, v = (qkv[:, :, j * d:(j + 1) * d].reshape(b, t, nh, hd).permute(0, 2, 1, 3) for j in range(3))
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + F.linear(o.permute(0, 2, 1, 3).reshape(b, t, d), P[p + "proj_w"], P[p + "proj_b"])
        h = F.layer_norm(x, (d,), P[p + "ln2_w"], P[p + "ln2_b"], 1e-5)
        x = x + F.linear(F.gelu(F.linear(h, P[p + "fc1_w"], P[p + "fc1_b"]), approximate="tanh"),
                         P[p + "fc2_w"], P[p + "fc2_b"])
    x = F.layer_norm(x, (d,), P["lnf_w"], P["lnf_b"], 1e-5)
    logits = F.linear(x, P["head_w"], P["head_b"])
    return F.cross_entropy(logits.reshape(b * t, cfg["V"]), B["y"])


def _tf_np_like(np_: Any, P: dict, B: dict, cfg: dict, log_softmax: Any = None) -> Any:
    """The same model in NumPy-style code (JAX and HIPS autograd)."""
    b, t, d, nh = cfg["batch"], cfg["T"], cfg["D"], cfg["H"]
    hd = d // nh
    mask = np.tril(np.ones((t, t), dtype=bool))

    def ln(x: Any, w: Any, bias: Any) -> Any:
        mu = np_.mean(x, axis=-1, keepdims=True)
        xc = x - mu
        return xc / np_.sqrt(np_.mean(xc * xc, axis=-1, keepdims=True) + 1e-5) * w + bias

    def lin(x: Any, w: Any, bias: Any) -> Any:
        return np_.dot(x, w.T) + bias

    def softmax(s: Any) -> Any:
        e = np_.exp(s - np_.max(s, axis=-1, keepdims=True))
        return e / np_.sum(e, axis=-1, keepdims=True)

    x = P["tok"][B["idx"]] + P["pos"]
    for i in range(cfg["L"]):
        p = f"l{i}."
        h = ln(x, P[p + "ln1_w"], P[p + "ln1_b"])
        qkv = lin(h, P[p + "qkv_w"], P[p + "qkv_b"])
        q, k, v = (np_.transpose(np_.reshape(qkv[:, :, j * d:(j + 1) * d], (b, t, nh, hd)), (0, 2, 1, 3))
                   for j in range(3))
        s = np_.matmul(q, np_.transpose(k, (0, 1, 3, 2))) / math.sqrt(hd)
        att = softmax(np_.where(mask, s, -1e9))
        o = np_.reshape(np_.transpose(np_.matmul(att, v), (0, 2, 1, 3)), (b, t, d))
        x = x + lin(o, P[p + "proj_w"], P[p + "proj_b"])
        h = ln(x, P[p + "ln2_w"], P[p + "ln2_b"])
        u = lin(h, P[p + "fc1_w"], P[p + "fc1_b"])
        u = 0.5 * u * (1 + np_.tanh(H.GELU_C * (u + 0.044715 * u * u * u)))
        x = x + lin(u, P[p + "fc2_w"], P[p + "fc2_b"])
    x = ln(x, P["lnf_w"], P["lnf_b"])
    logits = np_.reshape(lin(x, P["head_w"], P["head_b"]), (b * t, cfg["V"]))
    m = np_.max(logits, axis=1, keepdims=True)
    logp = logits - m - np_.log(np_.sum(np_.exp(logits - m), axis=1, keepdims=True))
    return -np_.mean(logp[np.arange(b * t), B["y"]])


def _tf_np_step(xp: Any, P: dict, B: dict, cfg: dict) -> tuple[Any, dict]:
    b, t, d, nh, nl = cfg["batch"], cfg["T"], cfg["D"], cfg["H"], cfg["L"]
    hd = d // nh
    scale = 1.0 / math.sqrt(hd)
    mask = xp.asarray(np.tril(np.ones((t, t), dtype=bool)))
    idx = B["idx"]
    x = P["tok"][idx] + P["pos"]
    saved = []
    for i in range(nl):
        p = f"l{i}."
        h1, ln1 = H.layer_norm(xp, x, P[p + "ln1_w"], P[p + "ln1_b"])
        qkv = h1 @ P[p + "qkv_w"].T + P[p + "qkv_b"]
        q, k, v = (qkv[:, :, j * d:(j + 1) * d].reshape(b, t, nh, hd).transpose(0, 2, 1, 3) for j in range(3))
        s = (q @ k.transpose(0, 1, 3, 2)) * scale
        att = H.softmax_last(xp, xp.where(mask, s, -1e9))
        o = (att @ v).transpose(0, 2, 1, 3).reshape(b, t, d)
        x = x + o @ P[p + "proj_w"].T + P[p + "proj_b"]
        h2, ln2 = H.layer_norm(xp, x, P[p + "ln2_w"], P[p + "ln2_b"])
        u = h2 @ P[p + "fc1_w"].T + P[p + "fc1_b"]
        gu, dgu = H.gelu_tanh(xp, u)
        x = x + gu @ P[p + "fc2_w"].T + P[p + "fc2_b"]
        saved.append((h1, ln1, q, k, v, att, o, h2, ln2, gu, dgu))
    xf, lnf = H.layer_norm(xp, x, P["lnf_w"], P["lnf_b"])
    logits = (xf @ P["head_w"].T + P["head_b"]).reshape(b * t, cfg["V"])
    loss, dl = H.cross_entropy(xp, logits, B["y"])
    g: dict[str, Any] = {}
    xf2 = xf.reshape(b * t, d)
    g["head_w"] = dl.T @ xf2
    g["head_b"] = dl.sum(axis=0)
    dx, g["lnf_w"], g["lnf_b"] = H.layer_norm_backward(xp, (dl @ P["head_w"]).reshape(b, t, d), lnf)
    for i in range(nl - 1, -1, -1):
        p = f"l{i}."
        h1, ln1, q, k, v, att, o, h2, ln2, gu, dgu = saved[i]
        # MLP branch
        g[p + "fc2_w"] = dx.reshape(-1, d).T @ gu.reshape(-1, 4 * d)
        g[p + "fc2_b"] = dx.sum(axis=(0, 1))
        du = (dx @ P[p + "fc2_w"]) * dgu
        g[p + "fc1_w"] = du.reshape(-1, 4 * d).T @ h2.reshape(-1, d)
        g[p + "fc1_b"] = du.sum(axis=(0, 1))
        dh2, g[p + "ln2_w"], g[p + "ln2_b"] = H.layer_norm_backward(xp, du @ P[p + "fc1_w"], ln2)
        dx = dx + dh2
        # attention branch
        g[p + "proj_w"] = dx.reshape(-1, d).T @ o.reshape(-1, d)
        g[p + "proj_b"] = dx.sum(axis=(0, 1))
        do = (dx @ P[p + "proj_w"]).reshape(b, t, nh, hd).transpose(0, 2, 1, 3)
        datt = do @ v.transpose(0, 1, 3, 2)
        dv = att.transpose(0, 1, 3, 2) @ do
        ds = att * (datt - (datt * att).sum(axis=-1, keepdims=True)) * scale
        dq = ds @ k
        dk = ds.transpose(0, 1, 3, 2) @ q
        dqkv = xp.concatenate([a.transpose(0, 2, 1, 3).reshape(b, t, d) for a in (dq, dk, dv)], axis=-1)
        g[p + "qkv_w"] = dqkv.reshape(-1, 3 * d).T @ h1.reshape(-1, d)
        g[p + "qkv_b"] = dqkv.sum(axis=(0, 1))
        dh1, g[p + "ln1_w"], g[p + "ln1_b"] = H.layer_norm_backward(xp, dqkv @ P[p + "qkv_w"], ln1)
        dx = dx + dh1
    g["pos"] = dx.sum(axis=0)
    dtok = xp.zeros_like(P["tok"])
    from gpugrad.bench.workloads._common import add_at

    add_at(xp, dtok, idx.reshape(-1), dx.reshape(-1, d))
    g["tok"] = dtok
    return loss, g


def _tf_spec(case: Case) -> TrainSpec:
    cfg = dict(case.params)

    def gg_loss(P: dict, B: dict) -> Any:
        import gpugrad.nn.functional as F

        return transformer_loss(F, P, B, cfg)

    def torch_loss(P: dict, B: dict) -> Any:
        import torch.nn.functional as F

        return transformer_loss(F, P, B, cfg)

    def jax_loss(P: dict, B: dict) -> Any:
        import jax.numpy as jnp

        return _tf_np_like(jnp, P, B, cfg)

    def ag_loss(P: dict, B: dict) -> Any:
        import autograd.numpy as anp

        return _tf_np_like(anp, P, B, cfg)

    return TrainSpec(lr=LR, gg=gg_loss, torch=torch_loss, jax=jax_loss, autograd=ag_loss,
                     numpy=lambda xp, P, B: _tf_np_step(xp, P, B, cfg), gg_optimizer="optim")


register(Workload("transformer", "training", "small transformer training step (fwd + bwd + SGD)",
                  _tf_cases, _tf_inputs, train_builders(_tf_spec), shared=_tf_shared,
                  needs=needs("gpugrad.nn.functional.embedding", "gpugrad.nn.functional.layer_norm",
                              "gpugrad.nn.functional.linear", "gpugrad.nn.functional.scaled_dot_product_attention",
                              "gpugrad.nn.functional.gelu", "gpugrad.nn.functional.cross_entropy",
                              "gpugrad.optim.SGD")))
