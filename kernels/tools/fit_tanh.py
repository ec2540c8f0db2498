"""Fit the rational tanh of kernels/rnn.c: tanh(x) ~ x * P(x^2) / Q(x^2) on |x| <= 9, Q(0) = 1.

    python3 kernels/tools/fit_tanh.py

Prints P's and Q's coefficients (lowest power first) as C literals, and the fit's largest relative error in
float64. The kernel's float32 evaluation adds its own rounding (a few ulp; tests/test_codegen_rnn.py checks
the result against float64 tanh). Beyond |x| = 9, tanh(x) rounds to +-1 in float32, so the kernel clamps x there.

Method: minimax in relative error by Lawson's iteration on the linearized problem
P(s) - g(s) Q(s) = 0, g(s) = tanh(sqrt(s)) / sqrt(s): a weighted least-squares solve per round, each point's
weight scaled by its last error, so the largest errors level out. Powers of s / 81 keep the matrix
well-conditioned; the coefficients are rescaled to powers of s at the end. Needs only NumPy.
"""
import numpy as np

LIMIT, P_TERMS, Q_TERMS, ROUNDS = 9.0, 7, 4, 400


def fit():
    x = np.unique(np.cos(np.linspace(0, np.pi, 20000)) * LIMIT / 2 + LIMIT / 2)  # dense near both ends
    x = x[x > 1e-6]
    t, g = (x / LIMIT) ** 2, np.tanh(x) / x
    weight, q_last = np.full(x.size, 1.0 / x.size), np.ones(x.size)
    for _ in range(ROUNDS):
        powers = np.vander(t, max(P_TERMS, Q_TERMS), increasing=True)
        a = np.hstack([powers[:, :P_TERMS], -g[:, None] * powers[:, 1:Q_TERMS]])  # Q's constant term is 1
        row = np.sqrt(weight) / (g * q_last)  # relative error of the linearized residual
        c = np.linalg.lstsq(a * row[:, None], g * row, rcond=None)[0]
        p, q = powers[:, :P_TERMS] @ c[:P_TERMS], 1.0 + powers[:, 1:Q_TERMS] @ c[P_TERMS:]
        err = (p / q - g) / g
        q_last, weight = q, weight * np.abs(err)
        weight /= weight.sum()
    scale = LIMIT ** (-2.0 * np.arange(max(P_TERMS, Q_TERMS)))
    return c[:P_TERMS] * scale[:P_TERMS], np.r_[1.0, c[P_TERMS:] * scale[1:Q_TERMS]], np.abs(err).max()


if __name__ == "__main__":
    p, q, worst = fit()
    print("P:", ", ".join("%.9ef" % v for v in p))
    print("Q:", ", ".join("%.9ef" % v for v in q))
    print("largest relative error (float64): %.2e" % worst)
