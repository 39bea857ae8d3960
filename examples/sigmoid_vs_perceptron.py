"""Why sigmoid neurons can learn and perceptrons cannot (sec. 1.3, eqs. 1.5-1.8).

A small change Δw, Δb of a neuron's weights and bias flips a perceptron whose w·x + b is near
0 from 1 to 0, but moves a sigmoid neuron's output σ(w·x + b) only a little, and by an amount
calculus predicts (eq. 1.8):  Δo ≈ Σ_j ∂o/∂w_j Δw_j + ∂o/∂b Δb, with the partial derivatives
from the autograd. Here o depends on z = w·x + b alone, so the prediction's error is Taylor's
remainder, e(s) = ½σ''(z)(sΔz)² + ⅙σ'''(z)(sΔz)³ + ... for the step scaled by s. Where the s²
term dominates, halving the step cuts the error by 4. At z = 0.02, next to σ's inflection
point (σ''(0) = 0), the s² term is so small that the s³ term, of the opposite sign, is 0.6 of
it: the ratios only climb towards 4 as the steps shrink. At z = 1.02 they are 4 at once.

Run: python examples/sigmoid_vs_perceptron.py
"""

import numpy as np

from tinygrad_nn import no_grad
from tinygrad_nn.nn import Linear, Sequential, Sigmoid
from tinygrad_nn.perceptron import Perceptron

x = np.array([0.7, 0.2, 0.9])
w, b = np.array([[0.5, -1.0, 0.1]]), np.array([-0.22])  # one neuron: w·x + b = 0.02
dw, db = np.array([[-0.03, 0.0, -0.01]]), np.array([-0.005])  # a small change: Δz = -0.035


def sigmoid_neuron(w, b):
    layer = Linear(3, 1)
    layer.weight.data[...], layer.bias.data[...] = w, b
    return Sequential(layer, Sigmoid()), layer  # o = σ(w·x + b), eq. 1.7


print(f"w·x + b = {(w @ x + b).item():+.3f}")
before, after = Perceptron(w, b)(x).item(), Perceptron(w + dw, b + db)(x).item()
print(f"perceptron output: {before:.0f} -> {after:.0f}  (flipped by the small change)")

for bias in (b, b + 1.0):  # at z = 0.02, then one unit away from the inflection point
    neuron, layer = sigmoid_neuron(w, bias)
    o = neuron(x)
    o.sum().backward()  # ∂o/∂w_j and ∂o/∂b, by reverse-mode autodiff
    z, dz, s1 = (w @ x + bias).item(), (dw @ x + db).item(), o.item()
    d1 = s1 * (1 - s1)  # σ', then σ'' and σ''' of the Taylor remainder
    d2, d3 = d1 * (1 - 2 * s1), d1 * (1 - 6 * s1 + 6 * s1 ** 2)
    print(f"\nsigmoid neuron at z = {z:.2f}: ½σ''(z)Δz² = {d2 * dz ** 2 / 2:+.2e}, "
          f"⅙σ'''(z)Δz³ = {d3 * dz ** 3 / 6:+.2e}")
    print("  step    actual Δo      eq. 1.8's Δo   error      error ratio")
    previous = None
    for k in range(6):
        s = 0.5 ** k
        with no_grad():
            actual = (sigmoid_neuron(w + s * dw, bias + s * db)[0](x) - o).item()
        predicted = np.sum(layer.weight.grad.data * s * dw) + layer.bias.grad.item() * s * db[0]
        error = abs(actual - predicted)
        ratio = "" if previous is None else f"{previous / error:.2f}"
        print(f"  {s:<7.4g} {actual:+.3e}     {predicted:+.3e}     {error:.2e}   {ratio}")
        previous = error
print("\nThe sigmoid neuron moves by less than 0.01 and eq. 1.8 predicts the move. Its error is")
print("second order in the step: the ratio tends to 4, at once where σ'' is not near 0.")
