"""``ops.einsum``, lowered to the ops graphc already compiles and differentiates: each pair of operands is
transposed and reshaped so that their contraction is one (batched) matmul, as NumPy's tensordot does.

Letters kept in the output and in both operands are matmul's batch axes, letters in both but not kept are
its inner axis, the others its rows and columns; a letter in one operand only and nowhere later is summed
first. Operands are contracted left to right. The symbolic batch (an unknown size) can only lie on a
tensor's first axis, so its letter is kept first, and the few layouts that would move it elsewhere are refused.
"""
from __future__ import annotations

import math
import string

from . import ops
from .tracing import emit


def _parse(subscripts, shapes):
    """Each operand's letters, the output's letters and every letter's size (None: unknown)."""
    if not isinstance(subscripts, str):
        raise TypeError(f"einsum: subscripts must be a string such as 'ij,jk->ik', received {subscripts!r}")
    text = subscripts.replace(" ", "")
    lhs, arrow, out = text.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise ValueError(f"einsum '{subscripts}': {len(terms)} operand subscripts for {len(shapes)} operands")
    spare = [c for c in string.ascii_letters if c not in text]
    ell_rank = max([len(s) - len(t) + 3 for t, s in zip(terms, shapes) if "..." in t] or [0])
    ellipsis = "".join(spare[:ell_rank])
    terms = [t.replace("...", ellipsis[ell_rank - (len(s) - len(t) + 3):]) for t, s in zip(terms, shapes)]
    if not arrow:  # NumPy's implicit output: the ellipsis, then the letters used once, in alphabetical order
        out = ellipsis + "".join(sorted(c for c in set("".join(terms)) if "".join(terms).count(c) == 1
                                        and c not in ellipsis))
    out = out.replace("...", ellipsis)
    sizes = {}
    for term, shape in zip(terms, shapes):
        if len(term) != len(shape) or not all(c.isalpha() for c in term):
            raise ValueError(f"einsum '{subscripts}': subscripts {term!r} do not fit an operand of shape "
                             f"{tuple(shape)}")
        if len(set(term)) != len(term):
            raise ValueError(f"einsum '{subscripts}': a letter repeated within one operand (a diagonal) is not "
                             "supported")
        for c, d in zip(term, shape):
            if sizes.get(c) is not None and d is not None and sizes[c] != d:
                raise ValueError(f"einsum '{subscripts}': letter {c!r} has size {sizes[c]} and {d} in the operands "
                                 f"(shapes {[tuple(s) for s in shapes]})")
            sizes[c] = d if sizes.get(c) is None else sizes[c]
    if len(set(out)) != len(out) or any(c not in sizes for c in out):
        raise ValueError(f"einsum '{subscripts}': output subscripts {out!r} must be distinct letters of the inputs")
    return terms, out, sizes


def _sum_out(x, term, needed):
    axes = [i for i, c in enumerate(term) if c not in needed]
    return (ops.sum(x, axis=axes), "".join(c for c in term if c in needed)) if axes else (x, term)


def _arrange(x, term, order, shape, sizes):
    """x with its letters in ``order``, reshaped to ``shape`` (products of sizes; -1 for the unknown one)."""
    perm = [term.index(c) for c in order]
    if perm != sorted(perm):
        x = ops.transpose(x, perm)
    return x if shape == tuple(sizes[c] if sizes[c] is not None else -1 for c in order) else ops.reshape(x, shape)


def _prod(letters, sizes):
    return -1 if any(sizes[c] is None for c in letters) else math.prod(sizes[c] for c in letters)


def _contract(a, ta, b, tb, keep, sizes, unknown, subscripts):
    """a (letters ta) times b (letters tb), summing the shared letters not in ``keep``: (result, its letters)."""
    a, ta = _sum_out(a, ta, set(tb) | keep)
    b, tb = _sum_out(b, tb, set(ta) | keep)
    if unknown and unknown in tb and unknown not in ta:
        a, ta, b, tb = b, tb, a, ta  # (so that the unknown letter is a's)
    batch = [c for c in ta if c in tb and c in keep]
    inner = [c for c in ta if c in tb and c not in keep]
    rows, cols = [c for c in ta if c not in tb], [c for c in tb if c not in ta]
    for group in (batch, rows, inner):  # the unknown letter first in its group, so first in every operand
        group.sort(key=lambda c: c != unknown)
    home = next((name for name, g in (("batch", batch), ("rows", rows), ("inner", inner)) if unknown in g), None)
    if home == "rows" and batch:  # b gets a size-1 axis for it, so it becomes a (broadcast) batch letter
        b, tb = ops.expand_dims(b, 0), unknown + tb
        batch, rows, home = [unknown] + batch, rows[1:], "batch"
    if home == "inner" and batch:
        raise ValueError(f"einsum '{subscripts}': the unknown (batch) axis can be summed only when no other letter "
                         "is a batch letter of the product; give that axis a known size")
    lead = tuple(sizes[c] if sizes[c] is not None else -1 for c in batch)
    m, k, n = _prod(rows, sizes), _prod(inner, sizes), _prod(cols, sizes)
    if home == "inner":  # (K, M) and (K, N): the unknown letter stays first; the product reads a transposed
        a = _arrange(a, ta, inner + rows, (k, m), sizes)
        out = emit("matmul", a, _arrange(b, tb, inner + cols, (k, n), sizes), transpose_a=True)
    else:
        out = ops.matmul(_arrange(a, ta, batch + rows + inner, lead + (m, k), sizes),
                         _arrange(b, tb, batch + inner + cols, lead + (k, n), sizes))
    letters = batch + rows + cols
    shape = tuple(sizes[c] if sizes[c] is not None else -1 for c in letters)
    return (out if tuple(out.shape) == tuple(sizes[c] for c in letters) else ops.reshape(out, shape)), \
        "".join(letters)


def einsum(subscripts, *operands):
    """Keras's ``ops.einsum`` (NumPy's notation: ``'bij,bjk->bik'``, ``'...ij,jk'``, implicit outputs);
    repeated letters within one operand (diagonals) are not supported."""
    if not operands:
        raise ValueError(f"einsum '{subscripts}': needs at least one operand")
    terms, out, sizes = _parse(subscripts, [tuple(x.shape) for x in operands])
    unknown = next((c for c, d in sizes.items() if d is None), "")  # ("": no letter)
    if sum(d is None for d in sizes.values()) > 1:
        raise ValueError(f"einsum '{subscripts}': at most one axis of unknown size (the batch) is supported")
    if unknown and unknown in out and out[0] != unknown:
        raise ValueError(f"einsum '{subscripts}': the unknown (batch) axis {unknown!r} must come first in the "
                         "output")
    x, term = _sum_out(operands[0], terms[0], set(out).union(*terms[1:]))
    for i in range(1, len(operands)):
        x, term = _contract(x, term, operands[i], terms[i], set(out).union(*terms[i + 1:]), sizes, unknown,
                            subscripts)
    x, term = _sum_out(x, term, set(out))
    return x if term == out else ops.transpose(x, [term.index(c) for c in out])
