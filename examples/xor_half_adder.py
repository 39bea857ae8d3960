"""XOR and the half adder built from NAND perceptrons only (sec. 1.2).

NAND is universal, and one perceptron computes NAND (fig. 1.3), so networks of perceptrons
compute any logical function. XOR takes four NANDs: n = NAND(a, b), then
NAND(NAND(a, n), NAND(b, n)). A half adder adds two bits: sum = a XOR b and
carry = a AND b = NAND(n, n), a fifth NAND.

Run: python examples/xor_half_adder.py
"""

from functools import partial

from tinygrad_nn.perceptron import half_adder, nand_gate, truth_table, xor

print(" a  b   a XOR b")
for (a, b), out in truth_table(xor):
    assert out == a ^ b
    print(f" {a}  {b}      {out}")

print("\n a  b   sum  carry   (a + b = 2·carry + sum)")
for (a, b), (total, carry) in truth_table(half_adder):
    assert 2 * carry + total == a + b
    print(f" {a}  {b}    {total}     {carry}")

# Sec. 1.4.1: multiplying every weight and bias by c > 0 changes no output.
for c in (0.001, 0.5, 7.0, 1e6):
    scaled_adder = partial(half_adder, gate=nand_gate().scaled(c))
    assert truth_table(scaled_adder) == truth_table(half_adder), c
print("\nScaling every weight and bias by c > 0 leaves the half adder unchanged.")
