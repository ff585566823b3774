"""Every name API.md promises exists (the contract users and tests rely on)."""

from __future__ import annotations

import gpugrad as gg

TOP = """Tensor tensor as_tensor zeros ones full zeros_like ones_like arange linspace eye rand randn randint
manual_seed no_grad enable_grad grad value_and_grad vjp jvp jacobian hessian gradcheck detect_anomaly save load
GpugradError ShapeError DeviceError DTypeError GraphError InplaceError GradcheckError
exp log log1p expm1 sqrt rsqrt square abs sign sin cos tan tanh sigmoid relu leaky_relu gelu silu softplus erf
clip maximum minimum where pow sum mean var std max min prod logsumexp norm argmax argmin reshape transpose
permute swapaxes expand_dims squeeze broadcast_to flatten concatenate stack split pad flip repeat tile matmul dot
outer einsum float16 float32 float64""".split()

TENSOR = """data grad requires_grad shape ndim size dtype device T is_leaf numpy backward detach item tolist to cpu
cuda astype requires_grad_ register_hook retain_grad""".split()

NN = """Module Parameter Linear Conv2d MaxPool2d AvgPool2d BatchNorm1d BatchNorm2d LayerNorm Embedding Dropout
Sequential ReLU Tanh Sigmoid GELU Flatten MultiHeadAttention""".split()

MODULE = "parameters named_parameters state_dict load_state_dict train eval to zero_grad".split()

FUNCTIONAL = """relu sigmoid tanh gelu softmax log_softmax linear conv2d max_pool2d avg_pool2d dropout layer_norm
batch_norm embedding cross_entropy binary_cross_entropy binary_cross_entropy_with_logits mse_loss l1_loss nll_loss
scaled_dot_product_attention""".split()

OPTIM = "SGD RMSprop Adam AdamW clip_grad_norm_".split()
SCHEDULERS = "StepLR CosineAnnealingLR LinearWarmup".split()
OPTIMIZER_METHODS = "step zero_grad state_dict load_state_dict".split()


def test_top_level_names() -> None:
    assert [n for n in TOP if not hasattr(gg, n)] == []
    assert [n for n in ("is_available", "device_count", "synchronize") if not hasattr(gg.cuda, n)] == []


def test_tensor_members() -> None:
    t = gg.ones(2, requires_grad=True)
    assert [n for n in TENSOR if not hasattr(t, n)] == []
    for name in ("exp", "sum", "reshape", "matmul", "tanh", "mean", "max", "clip", "flatten", "split"):
        assert callable(getattr(t, name))


def test_nn_optim_names() -> None:
    assert [n for n in NN if not hasattr(gg.nn, n)] == []
    assert [n for n in MODULE if not hasattr(gg.nn.Module, n)] == []
    assert [n for n in FUNCTIONAL if not hasattr(gg.nn.functional, n)] == []
    assert [n for n in OPTIM if not hasattr(gg.optim, n)] == []
    assert [n for n in SCHEDULERS if not hasattr(gg.optim.lr_scheduler, n)] == []
    opt = gg.optim.AdamW([gg.nn.Parameter(gg.ones(2))])
    assert [n for n in OPTIMIZER_METHODS if not callable(getattr(opt, n, None))] == []
    assert opt.param_groups[0]["weight_decay"] == 0.01  # PyTorch's AdamW default


def test_pytorch_user_names() -> None:
    """API.md's "PyTorch spellings", the torch.nn staples, Adagrad, the schedulers, utils.data."""
    import gpugrad.utils.data as data

    assert [n for n in "cat from_numpy inference_mode".split() if not hasattr(gg, n)] == []
    assert gg.ones(2, 3).numel() == 6
    nn_names = """CrossEntropyLoss MSELoss L1Loss NLLLoss BCELoss BCEWithLogitsLoss Softmax LogSoftmax LeakyReLU SiLU
    Softplus Identity ModuleList ModuleDict Conv1d MaxPool1d AvgPool1d AdaptiveAvgPool2d RNN LSTM GRU RNNCell LSTMCell
    GRUCell""".split()
    assert [n for n in nn_names if not hasattr(gg.nn, n)] == []
    assert callable(gg.nn.utils.clip_grad_norm_) and hasattr(gg.optim, "Adagrad")
    schedulers = "LambdaLR MultiStepLR ExponentialLR OneCycleLR ReduceLROnPlateau".split()
    assert [n for n in schedulers if not hasattr(gg.optim.lr_scheduler, n)] == []
    names = "Dataset TensorDataset DataLoader random_split DistributedSampler".split()
    assert [n for n in names if not hasattr(data, n)] == []
    assert callable(data.DistributedSampler(range(4)).set_epoch)
