"""The NAND gate of fig. 1.3: one perceptron with weights -2, -2 and bias 3 (eq. 1.5).

A perceptron outputs 1 if w·x + b > 0 and 0 otherwise. With w = (-2, -2) and b = 3 only the
input (1, 1) gives w·x + b = -1 <= 0, so the perceptron computes NOT(A AND B).

Run: python examples/nand_perceptron.py
"""

import numpy as np

from tinygrad_nn.perceptron import nand_gate, truth_table

gate = nand_gate()
print(f"weights {gate.weight.tolist()}, bias {gate.bias.item()}")
print(" A  B   w·x + b   output   !(A&B)")
for (a, b), output in truth_table(gate):
    z = gate.weight @ np.array([a, b]) + gate.bias
    expected = int(not (a and b))
    assert output == expected, (a, b, output)
    print(f" {a}  {b}   {z:+5.0f}      {output}        {expected}")
print("The perceptron computes NAND.")
