"""The PyTorch-style layers of tinygrad_nn.nn: Conv2d, pooling, batch norm, GELU/SiLU/ELU,
PyTorch's default initialisation, buffers and the module tree's repr.

Values are checked against formulas written here (and against PyTorch when it is installed:
`torch = pytest.importorskip("torch")` inside the test); gradients by central differences in
float64 (`gradcheck`); a jitted training step with batch norm against eager, bit for bit.
"""

import math

import numpy as np
import pytest

from tinygrad_nn import Tensor, costs, gradcheck, nn, optim
from tinygrad_nn.jit import jit

# --- PyTorch's default initialisation --------------------------------------------------------


def test_linear_and_conv2d_default_to_pytorchs_uniform_init():
    layer, conv = nn.Linear(64, 32, rng=0), nn.Conv2d(3, 8, 3, rng=0)
    assert layer.init == conv.init == nn.DEFAULT_INIT == "pytorch"
    for module, fan_in in ((layer, 64), (conv, 3 * 3 * 3)):  # conv: c_in · kh · kw
        bound = 1 / math.sqrt(fan_in)
        for p in (module.weight, module.bias):
            assert np.abs(p.data).max() <= bound
        # Filled to the bound, not narrower (2,048 and 216 draws: all within 0.9 b has
        # probability 0.9^216 < 1e-9).
        assert np.abs(module.weight.data).max() > 0.9 * bound


def test_pytorch_init_draws_weights_then_biases_uniformly_from_one_generator():
    """Bit for bit: U(-b, b) of the weight's shape, then of the bias's, b = 1/√fan_in."""
    rng = np.random.default_rng(5)
    bound = 1 / math.sqrt(2 * 3 * 5)
    weight, bias = rng.uniform(-bound, bound, (4, 2, 3, 5)), rng.uniform(-bound, bound, 4)
    conv = nn.Conv2d(2, 4, (3, 5), rng=5)
    np.testing.assert_array_equal(conv.weight.data, weight)
    np.testing.assert_array_equal(conv.bias.data, bias)
    np.testing.assert_array_equal(nn.init_weights((4, 2, 3, 5), "pytorch", rng=5), weight)


def test_pytorch_init_has_the_spread_of_its_uniform_law():
    """U(-b, b) has variance b²/3 and no draw beyond b; 200,000 draws pin the variance to
    within 5 relative standard deviations (the sample variance of a uniform law has relative
    sd √(4/5 / N) ≈ 0.002)."""
    n_out, n_in = 500, 400
    w = nn.init_weights((n_out, n_in), "pytorch", rng=np.random.default_rng(3))
    bound = 1 / math.sqrt(n_in)
    assert np.abs(w).max() <= bound
    assert abs(w.var() / (bound**2 / 3) - 1) < 5 * math.sqrt(0.8 / w.size)
    assert abs(w.mean()) < 5 * bound / math.sqrt(3 * w.size)
    # Uniform, not normal: a quarter of the draws lie in each quarter of [-b, b].
    counts, _ = np.histogram(w, bins=4, range=(-bound, bound))
    assert np.all(np.abs(counts / w.size - 0.25) < 0.01)


@pytest.mark.parametrize(("scheme", "std"), [
    ("he", math.sqrt(2 / (3 * 9))),              # N(0, 2/fan_in), fan_in = 3·3·3
    ("xavier", math.sqrt(2 / (3 * 9 + 64 * 9))),  # fan_out = c_out·kh·kw, as torch's
])
def test_conv2d_normal_schemes_use_pytorchs_fans(scheme, std):
    conv = nn.Conv2d(3, 64, 3, init=scheme, rng=1)
    draws = np.random.default_rng(1).standard_normal((64, 3, 3, 3))
    np.testing.assert_allclose(conv.weight.data, draws * std, rtol=1e-15)
    np.testing.assert_array_equal(conv.bias.data, np.zeros(64))


def test_the_tutorials_network_keeps_its_unit_normal_weights():
    from tinygrad_nn import Network

    net = Network([64, 30, 10], seed=0)
    rng = np.random.default_rng(0)
    for layer in net.layers:  # weights then biases, layer by layer, from N(0, 1)
        np.testing.assert_array_equal(layer.weight.data, rng.standard_normal(layer.weight.shape))
        np.testing.assert_array_equal(layer.bias.data, rng.standard_normal(layer.bias.shape))


def test_linear_without_bias():
    layer = nn.Linear(3, 2, rng=0, bias=False)
    assert layer.bias is None and len(layer.parameters()) == 1
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(layer(x).data, x @ layer.weight.data.T, rtol=1e-15)
    assert repr(layer) == "Linear(n_in=3, n_out=2, init='pytorch', bias=False)"


# --- Conv2d and pooling ---------------------------------------------------------------------


def direct_conv2d(x, w, b, stride, padding):
    """The definition, one output value at a time (independent of the library)."""
    (sh, sw), (ph, pw) = stride, padding
    x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    n, _, h, wd = x.shape
    c_out, _, kh, kw = w.shape
    out = np.zeros((n, c_out, (h - kh) // sh + 1, (wd - kw) // sw + 1))
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            patch = x[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
            out[:, :, i, j] = np.einsum("nchw,ochw->no", patch, w)
    return out + (0 if b is None else b[None, :, None, None])


@pytest.mark.parametrize(("kernel", "stride", "padding", "bias"), [
    (3, 1, 1, True), ((2, 3), (2, 1), (1, 0), True), (1, 1, 0, False), ((5, 4), 2, 2, True),
])
def test_conv2d_module_values_shapes_and_gradients(kernel, stride, padding, bias):
    conv = nn.Conv2d(2, 3, kernel, stride=stride, padding=padding, bias=bias, rng=0)
    x = np.random.default_rng(1).standard_normal((2, 2, 7, 6))
    out = conv(x)
    expected = direct_conv2d(x, conv.weight.data, None if conv.bias is None else conv.bias.data,
                             conv.stride, conv.padding)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.data, expected, rtol=1e-12, atol=1e-12)
    params = [Tensor(x, requires_grad=True), *conv.parameters()]

    def f(*args):
        conv.weight, *rest = args[1:]
        conv.bias = rest[0] if rest else None
        return (conv(args[0]) ** 2).sum()

    assert gradcheck(f, *params)


def test_conv2d_against_pytorch():
    torch = pytest.importorskip("torch")
    conv = nn.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=1, rng=0)
    x = np.random.default_rng(2).standard_normal((2, 3, 9, 8))
    ref = torch.nn.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=1).double()
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(conv.weight.data))
        ref.bias.copy_(torch.from_numpy(conv.bias.data))
    np.testing.assert_allclose(conv(x).data, ref(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-12, atol=1e-13)
    assert repr(conv) == repr(ref)  # PyTorch's repr, to the character


def test_pooling_modules():
    x = np.arange(2 * 3 * 6 * 6, dtype=float).reshape(2, 3, 6, 6)
    pool = nn.MaxPool2d(2)
    assert pool.stride == (2, 2) and repr(pool) == "MaxPool2d(kernel_size=2, stride=2, padding=0)"
    np.testing.assert_array_equal(pool(x).data, x.reshape(2, 3, 3, 2, 3, 2).max(axis=(3, 5)))
    avg = nn.AvgPool2d(3, stride=(3, 2), padding=1)
    assert repr(avg) == "AvgPool2d(kernel_size=3, stride=(3, 2), padding=1)"
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))  # zeros count: count_include_pad
    expected = np.stack([np.stack([padded[:, :, i:i + 3, j:j + 3].mean(axis=(2, 3))
                                   for j in range(0, 6, 2)], -1) for i in range(0, 6, 3)], -2)
    np.testing.assert_allclose(avg(x).data, expected, rtol=1e-15)
    assert gradcheck(lambda t: (avg(t) ** 2).sum(), Tensor(x / 100, requires_grad=True))
    with pytest.raises(ValueError, match="at most half"):
        nn.MaxPool2d(2, padding=2)


def test_max_pool_sends_a_tie_to_the_first_maximum_of_the_window():
    x = Tensor(np.ones((1, 1, 2, 2)), requires_grad=True)
    nn.MaxPool2d(2)(x).sum().backward()
    np.testing.assert_array_equal(x.grad.data[0, 0], [[1.0, 0.0], [0.0, 0.0]])


def test_modules_refuse_bad_arguments():
    for make, match in [(lambda: nn.Conv2d(0, 2, 3), "in_channels"),
                        (lambda: nn.Conv2d(1, 2, (3, 0)), "kernel_size"),
                        (lambda: nn.Conv2d(1, 2, 3, padding=-1), "padding"),
                        (lambda: nn.Conv2d(1, 2, 3, init="uniform"), "init"),
                        (lambda: nn.BatchNorm2d(4, eps=0), "eps"),
                        (lambda: nn.BatchNorm2d(4, momentum=None), "momentum")]:
        with pytest.raises(ValueError, match=match):
            make()
    with pytest.raises(ValueError, match=r"4-D input with 3 channels"):
        nn.BatchNorm2d(3)(np.ones((2, 3)))


# --- batch norm ------------------------------------------------------------------------------


def test_batch_norm_training_uses_the_batch_and_updates_the_running_estimates():
    bn = nn.BatchNorm2d(3, momentum=0.2)
    rng = np.random.default_rng(0)
    mean, var = np.zeros(3), np.ones(3)
    for k in range(4):
        x = rng.standard_normal((4, 3, 5, 5)) * (k + 1) + k
        y = bn(x).data
        mu, sigma2 = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))  # biased, to normalise
        np.testing.assert_allclose(
            y, (x - mu[:, None, None]) / np.sqrt(sigma2[:, None, None] + 1e-5), atol=1e-12)
        n = 4 * 5 * 5  # the running variance is the unbiased one
        mean = 0.8 * mean + 0.2 * mu
        var = 0.8 * var + 0.2 * sigma2 * n / (n - 1)
        np.testing.assert_allclose(bn.running_mean.data, mean, rtol=1e-13)
        np.testing.assert_allclose(bn.running_var.data, var, rtol=1e-13)
    assert bn.num_batches_tracked.data == 4
    bn.weight.data[:] = [1.0, 2.0, 3.0]
    bn.bias.data[:] = [0.0, -1.0, 1.0]
    bn.eval()  # evaluation: the running estimates, and they stay as they are
    x = rng.standard_normal((2, 3, 5, 5))
    expected = ((x - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-5)
                * bn.weight.data[:, None, None] + bn.bias.data[:, None, None])
    np.testing.assert_allclose(bn(x).data, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(bn.running_mean.data, mean, rtol=1e-13)
    assert bn.num_batches_tracked.data == 4


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5)])
def test_batch_norm_1d_against_pytorch(shape):
    torch = pytest.importorskip("torch")
    bn, ref = nn.BatchNorm1d(3, momentum=0.3), torch.nn.BatchNorm1d(3, momentum=0.3).double()
    rng = np.random.default_rng(1)
    for _ in range(3):
        x = rng.standard_normal(shape) * 3 + 1
        np.testing.assert_allclose(bn(x).data, ref(torch.from_numpy(x)).detach().numpy(),
                                   atol=1e-12)
    for name, value in ref.state_dict().items():
        np.testing.assert_allclose(bn.state_dict()[name], value.numpy(), rtol=1e-13)
    bn.eval(), ref.eval()
    np.testing.assert_allclose(bn(x).data, ref(torch.from_numpy(x)).detach().numpy(), atol=1e-12)
    # PyTorch's repr goes on with its options this module does not have (affine=True, ...).
    assert repr(ref).startswith(repr(bn)[:-1] + ", ")


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_gradients(training):
    bn = nn.BatchNorm2d(2).train(training)
    rng = np.random.default_rng(4)
    bn.running_mean.data[:] = [0.5, -0.5]
    bn.running_var.data[:] = [2.0, 0.5]
    x = Tensor(rng.standard_normal((3, 2, 2, 3)), requires_grad=True)
    weight = Tensor([1.5, -0.5], requires_grad=True)
    bias = Tensor([0.1, 0.2], requires_grad=True)
    target = rng.standard_normal((3, 2, 2, 3))

    def f(x, w, b):
        bn.weight, bn.bias = w, b
        return (bn(x) * target).sum()  # not a plain sum: its gradient through x is 0

    assert gradcheck(f, x, weight, bias)


def test_buffers_are_saved_but_not_parameters():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, rng=0), nn.BatchNorm2d(2), nn.ReLU())
    assert [name for name, _ in model.named_parameters()] == [
        "0.weight", "0.bias", "1.weight", "1.bias"]
    assert [name for name, _ in model.named_buffers()] == [
        "1.running_mean", "1.running_var", "1.num_batches_tracked"]
    assert list(model.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias",
                                        "1.running_mean", "1.running_var",
                                        "1.num_batches_tracked"]
    model(np.random.default_rng(0).standard_normal((4, 1, 5, 5)))
    state = model.state_dict()
    other = nn.Sequential(nn.Conv2d(1, 2, 3, rng=1), nn.BatchNorm2d(2), nn.ReLU())
    other.load_state_dict(state)
    for name, array in other.state_dict().items():
        np.testing.assert_array_equal(array, state[name])
        assert array.dtype == state[name].dtype
    with pytest.raises(TypeError, match="does not require grad"):
        nn.Module().register_buffer("w", Tensor([1.0], requires_grad=True))


# --- activations ---------------------------------------------------------------------------


@pytest.mark.parametrize(("module", "formula"), [
    (nn.GELU(), lambda z: z * 0.5 * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))),
    (nn.SiLU(), lambda z: z / (1 + np.exp(-z))),
    (nn.ELU(), lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0)))),
    (nn.ELU(alpha=0.5), lambda z: np.where(z > 0, z, 0.5 * np.expm1(np.minimum(z, 0)))),
])
def test_new_activations_values_and_gradients(module, formula):
    z = np.linspace(-4, 4, 17) + 0.01  # (off the kink of ELU at 0)
    np.testing.assert_allclose(module(z).data, formula(z), rtol=1e-13, atol=1e-15)
    assert gradcheck(lambda t: (module(t) ** 2).sum(), Tensor(z, requires_grad=True))


def test_new_activations_against_pytorch():
    torch = pytest.importorskip("torch")
    z = np.linspace(-6, 6, 41)
    for ours, theirs in [(nn.GELU(), torch.nn.GELU()), (nn.SiLU(), torch.nn.SiLU()),
                         (nn.ELU(0.7), torch.nn.ELU(0.7))]:
        np.testing.assert_allclose(ours(z).data, theirs(torch.from_numpy(z)).numpy(),
                                   rtol=1e-13, atol=1e-15)


# --- the module tree's repr ------------------------------------------------------------------


def test_sequential_prints_its_layers_with_their_settings():
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.25),
                          nn.Linear(16 * 14 * 14, 10, init="he"))
    assert repr(model) == """Sequential(
  (0): Conv2d(1, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
  (1): BatchNorm2d(16, eps=1e-05, momentum=0.1)
  (2): ReLU()
  (3): MaxPool2d(kernel_size=2, stride=2, padding=0)
  (4): Flatten(start_axis=1)
  (5): Dropout(p=0.25)
  (6): Linear(n_in=3136, n_out=10, init='he')
)"""


def test_a_custom_module_prints_its_children_nested():
    class Block(nn.Module):
        def __init__(self):
            self.conv = nn.Conv2d(2, 2, 1, bias=False)
            self.act = nn.SiLU()

    class Net(nn.Module):
        def __init__(self):
            self.body = nn.Sequential(Block(), nn.AvgPool2d(2))
            self.heads = [nn.Linear(2, 1), nn.ELU()]
            self.scale = 2.0  # not a module: not shown

        def extra_repr(self):
            return "scale=2.0"

    assert repr(Net()) == """Net(
  scale=2.0
  (body): Sequential(
    (0): Block(
      (conv): Conv2d(2, 2, kernel_size=(1, 1), stride=(1, 1), padding=(0, 0), bias=False)
      (act): SiLU()
    )
    (1): AvgPool2d(kernel_size=2, stride=2, padding=0)
  )
  (heads.0): Linear(n_in=2, n_out=1, init='pytorch')
  (heads.1): ELU(alpha=1.0)
)"""
    assert repr(nn.Module()) == "Module()"


# --- a jitted training step with batch norm ----------------------------------------------------


def small_cnn(seed):
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, rng=seed), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 16, rng=seed + 1),
                         nn.BatchNorm1d(16), nn.GELU(), nn.Linear(16, 3, rng=seed + 2))


@pytest.mark.parametrize("make_optimizer", [lambda p: optim.Adam(p, lr=1e-2),
                                            lambda p: optim.RMSprop(p, lr=1e-3, momentum=0.9)])
def test_a_jitted_step_with_batch_norm_replays_eager_bit_for_bit(make_optimizer):
    models = small_cnn(0), small_cnn(0)
    opts = [make_optimizer(m.parameters()) for m in models]

    def step(model, opt, x, y):
        opt.zero_grad()
        cost = costs.cross_entropy(model(x), y)
        cost.backward()
        opt.step()
        return cost

    compiled = jit(lambda x, y: step(models[1], opts[1], x, y))
    rng = np.random.default_rng(0)
    for _ in range(6):  # a capture, the check, then replays: each on another batch
        x, y = rng.standard_normal((5, 1, 8, 8)), rng.integers(0, 3, 5)
        eager_cost = step(models[0], opts[0], x, y)
        assert compiled(x, y).item() == eager_cost.item()
        for (name, a), b in zip(models[0].state_dict().items(), models[1].state_dict().values()):
            np.testing.assert_array_equal(a, b, err_msg=name)  # running statistics too
    assert compiled.captures == 1
    assert models[1].state_dict()["1.num_batches_tracked"] == 6
    models[1].eval()  # evaluation after the jitted training steps: the running estimates
    x = rng.standard_normal((2, 1, 8, 8))
    np.testing.assert_array_equal(models[1](x).data, models[0].eval()(x).data)
