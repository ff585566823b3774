"""``gpugrad.optim``: optimisers (PyTorch's names, hyper-parameters and defaults), gradient
clipping and learning-rate schedules.

    opt = optim.AdamW(model.parameters(), lr=3e-4)
    sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=1000)
    loss.backward(); optim.clip_grad_norm_(model.parameters(), 1.0); opt.step(); opt.zero_grad(); sched.step()
"""

from gpugrad.optim import lr_scheduler
from gpugrad.optim.optimizer import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop, clip_grad_norm_

__all__ = ["Optimizer", "SGD", "RMSprop", "Adam", "AdamW", "Adagrad", "clip_grad_norm_", "lr_scheduler"]
