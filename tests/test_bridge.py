"""tinygrad_nn.bridge: a model moves to torch.nn.Sequential and back, with the same outputs.

Optional: runs when torch is importable (never a dependency of tinygrad_nn).
"""

import numpy as np
import pytest

from tinygrad_nn import bridge, costs, datasets, nn, optim
from tinygrad_nn.training import fit

torch = pytest.importorskip("torch")


def cnn(seed):
    rng = np.random.default_rng(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, rng=rng), nn.BatchNorm2d(4), nn.GELU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False, rng=rng), nn.SiLU(),
        nn.AvgPool2d(2, padding=1), nn.Flatten(), nn.Linear(6 * 2 * 2, 8, rng=rng),
        nn.BatchNorm1d(8), nn.ELU(0.5), nn.Dropout(0.3, rng), nn.LeakyReLU(0.1),
        nn.Linear(8, 3, rng=rng), nn.Tanh(), nn.Sigmoid(), nn.Softmax())


def test_a_model_and_its_torch_copy_give_the_same_outputs_and_come_back_exactly():
    model = cnn(0)
    x = np.random.default_rng(1).normal(size=(5, 1, 8, 8))
    model(x)  # one training-mode call: batch norm's running estimates move off 0 and 1
    model.eval()
    torch_model = bridge.to_torch(model)
    assert not torch_model.training
    theirs = torch_model(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(model(x).data, theirs, rtol=1e-12, atol=1e-14)
    other = cnn(7)  # other weights, the same layers
    bridge.from_torch(torch_model, other)
    for (name, a), b in zip(model.state_dict().items(), other.state_dict().values()):
        assert np.array_equal(a, b), name


def test_nothing_is_shared_between_the_two():
    model = cnn(0)
    torch_model = bridge.to_torch(model)
    before = model.state_dict()
    with torch.no_grad():
        torch_model[0].weight.add_(1.0)
    assert all(np.array_equal(a, b) for a, b in zip(before.values(), model.state_dict().values()))
    bridge.from_torch(torch_model, model)
    brought = model[0].weight.data.copy()
    with torch.no_grad():
        torch_model[0].weight.add_(1.0)
    np.testing.assert_array_equal(model[0].weight.data, brought)


def test_a_layer_without_an_equivalent_is_named():
    class Square(nn.Module):
        def forward(self, x):
            return x * x

    with pytest.raises(TypeError, match="no PyTorch equivalent known for Square"):
        bridge.to_torch(nn.Sequential(nn.Linear(2, 2, rng=0), Square()))


def test_a_model_trained_here_predicts_the_same_in_torch():
    train, validation, _ = datasets.load_digits()
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Linear(64, 32, rng=rng), nn.BatchNorm1d(32), nn.ReLU(),
                          nn.Linear(32, 10, rng=rng))
    fit(model, costs.cross_entropy, optim.Adam(model.parameters(), lr=0.01), train, 3, 32,
        seed=0, verbose=False)
    model.eval()
    theirs = bridge.to_torch(model)(torch.from_numpy(validation.X)).detach().numpy()
    np.testing.assert_allclose(model(validation.X).data, theirs, rtol=1e-12, atol=1e-13)
