"""A small CNN training step (conv-BN-ReLU-pool-linear) under `tinygrad_nn.jit`.

The capture records every primitive of the step (the convolution's im2col and product, the
batch statistics and the running estimates written in place, the pool's first-maximum
masks, the optimizer's updates); a replay must give the eager step's numbers to the last
bit, call after call, and allocate (almost) nothing.
"""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest

from tinygrad_nn import Tensor, costs, ops, optim
from tinygrad_nn import functional as F
from tinygrad_nn.jit import describe, jit


class SmallCNN:
    """conv3x3(c)-BN-ReLU-maxpool2-linear, parameters as plain Tensors (the modules are
    nn.py's; this file tests the functional primitives they are built on)."""

    def __init__(self, seed: int, channels: int = 4, size: int = 8, classes: int = 3,
                 dtype: type = np.float32) -> None:
        rng = np.random.default_rng(seed)
        features = channels * (size // 2) ** 2

        def param(*shape: int, scale: float = 0.3) -> Tensor:
            return Tensor(rng.uniform(-scale, scale, shape).astype(dtype), requires_grad=True)

        self.w, self.b = param(channels, 1, 3, 3), param(channels)
        self.gamma = Tensor(np.ones(channels, dtype), requires_grad=True)
        self.beta = Tensor(np.zeros(channels, dtype), requires_grad=True)
        self.fc_w, self.fc_b = param(classes, features), param(classes)
        self.running_mean = np.zeros(channels, dtype)
        self.running_var = np.ones(channels, dtype)

    def parameters(self) -> list[Tensor]:
        return [self.w, self.b, self.gamma, self.beta, self.fc_w, self.fc_b]

    def __call__(self, x: Tensor, training: bool = True) -> Tensor:
        h = F.conv2d(x, self.w, self.b, padding=1)
        h = F.batch_norm(h, self.running_mean, self.running_var, self.gamma, self.beta,
                         training=training)
        h = F.max_pool2d(ops.relu(h), 2)
        return ops.linear(F.flatten(h, 1), self.fc_w, self.fc_b)


def make_step(model: SmallCNN, opt: optim.Optimizer):
    def step(x, labels):
        opt.zero_grad()
        cost = costs.cross_entropy(model(Tensor(x)), labels)
        cost.backward()
        opt.step()
        return cost
    return step


OPTIMIZERS = {
    "sgd_momentum": lambda params: optim.SGD(params, lr=0.05, momentum=0.9),
    "adam": lambda params: optim.Adam(params, lr=0.01),
}


def batches(seed: int, n: int, count: int, size: int = 8, dtype: type = np.float32):
    """`count` different batches; every other one with a constant background (max-pool ties)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(count):
        x = rng.random((n, 1, size, size)).astype(dtype)
        if k % 2:
            x[:, :, :, : size // 2] = 0.25  # exact ties in every left-half window
        out.append((x, rng.integers(0, 3, n)))
    return out


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cnn_step_replays_bit_for_bit(optimizer, dtype):
    """Six calls on different batches: the jitted twin's parameters, running estimates and
    costs equal the eager twin's exactly after every call (capture, check, four replays)."""
    eager, compiled = SmallCNN(0, dtype=dtype), SmallCNN(0, dtype=dtype)
    eager_step = make_step(eager, OPTIMIZERS[optimizer](eager.parameters()))
    jit_step = jit(make_step(compiled, OPTIMIZERS[optimizer](compiled.parameters())))
    for k, (x, labels) in enumerate(batches(1, 6, 6, dtype=dtype)):
        a, b = eager_step(x, labels), jit_step(x, labels)
        assert a.data.tobytes() == b.data.tobytes(), f"cost differs at call {k}"
        for p, q in zip(eager.parameters(), compiled.parameters()):
            assert p.data.tobytes() == q.data.tobytes(), f"parameter differs at call {k}"
        assert eager.running_mean.tobytes() == compiled.running_mean.tobytes()
        assert eager.running_var.tobytes() == compiled.running_var.tobytes()
    assert jit_step.captures == 1
    assert not np.array_equal(compiled.running_mean, 0)  # the replays did update them


def test_cnn_eval_forward_replays_bit_for_bit():
    """Eval mode (running estimates) under jit: the same outputs as eager, every call."""
    model = SmallCNN(2)
    step = make_step(model, optim.SGD(model.parameters(), lr=0.1))
    for x, labels in batches(3, 5, 3):
        step(x, labels)
    forward = jit(lambda x: model(Tensor(x), training=False))
    for x, _ in batches(4, 5, 4):
        assert forward(x).data.tobytes() == model(Tensor(x), training=False).data.tobytes()


def test_cnn_replay_allocates_little():
    """Replays of the CNN step raise the traced memory by less than one conv activation
    (every primitive writes into the plan's buffers; the flatten of channels-last memory
    and the cost's few temporaries are what remains), while eager steps allocate many."""
    n, channels, size = 32, 8, 16
    activation = n * channels * size * size * 4  # one float32 conv output
    model = SmallCNN(5, channels=channels, size=size)
    step = jit(make_step(model, optim.Adam(model.parameters(), lr=1e-3)))
    data = batches(6, n, 4, size=size)
    for x, labels in data * 2:  # capture, check, warm-up replays
        step(x, labels)
    plan = next(iter(step.plans.values()))
    assert plan.allocating <= 3, describe(plan)
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for x, labels in data * 3:
            step(x, labels)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - before < activation, (peak - before, activation)
