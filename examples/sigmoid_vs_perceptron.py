"""Why sigmoid neurons can learn and perceptrons cannot (sec. 1.3, eqs. 1.5-1.8).

A small change Δw, Δb of a neuron's weights and bias flips a perceptron whose w·x + b is near
0 from 1 to 0, but moves a sigmoid neuron's output σ(w·x + b) only a little, and by an amount
calculus predicts (eq. 1.8):  Δo ≈ Σ_j ∂o/∂w_j Δw_j + ∂o/∂b Δb.
The partial derivatives come from the autograd. The prediction's error shrinks like the
square of the step: halving every Δ cuts it by about 4.

Run: python examples/sigmoid_vs_perceptron.py
"""

import numpy as np

from tinygrad_nn import no_grad
from tinygrad_nn.nn import Linear, Sequential, Sigmoid
from tinygrad_nn.perceptron import Perceptron

x = np.array([0.7, 0.2, 0.9])
w, b = np.array([[0.5, -1.0, 0.1]]), np.array([-0.22])  # one neuron: w·x + b = 0.02
dw, db = np.array([[-0.03, 0.0, -0.01]]), np.array([-0.005])  # a small change


def sigmoid_neuron(w, b):
    layer = Linear(3, 1)
    layer.weight.data[...], layer.bias.data[...] = w, b
    return Sequential(layer, Sigmoid()), layer  # o = σ(w·x + b), eq. 1.7


neuron, layer = sigmoid_neuron(w, b)
o = neuron(x)
o.sum().backward()  # ∂o/∂w_j and ∂o/∂b, by reverse-mode autodiff
print(f"w·x + b = {(w @ x + b).item():+.3f}")
before, after = Perceptron(w, b)(x).item(), Perceptron(w + dw, b + db)(x).item()
print(f"perceptron output: {before:.0f} -> {after:.0f}  (flipped by the small change)")

print("\n  step    actual Δo      eq. 1.8's Δo   error      error ratio")
previous = None
for k in range(6):
    s = 0.5 ** k
    with no_grad():
        moved, _ = sigmoid_neuron(w + s * dw, b + s * db)
        actual = (moved(x) - o).item()
    predicted = np.sum(layer.weight.grad.data * s * dw) + np.sum(layer.bias.grad.data * s * db)
    error = abs(actual - predicted)
    ratio = "" if previous is None else f"{previous / error:.2f}"
    print(f"  {s:<7.4g} {actual:+.3e}     {predicted:+.3e}     {error:.2e}   {ratio}")
    previous = error
print("\nThe sigmoid neuron moves by less than 0.01; eq. 1.8 predicts the move, and halving")
print("the step cuts the prediction's error by about 4: it is second order in the step.")
