"""`einsum`: one primitive for every contraction, its derivative rules, its fast paths (NumPy's
C loop for small operands, one batched matmul or `np.einsum(optimize=True)` for large ones) and
the parser that makes its `spec` canonical.
"""

import functools
import math
import string

import numpy as np

from chainrule import ops
from chainrule.core import PerArg, Primitive, ShapeError, Tracer, bind
from chainrule.ops.linalg_common import _real_dtype


# --- einsum -----------------------------------------------------------------------------------
# One primitive for every contraction. Its parameter `spec` is canonical: explicit output, no
# ellipsis, operands of exactly the sizes the letters say (the wrapper broadcasts size-1 axes).
# Einsum is linear in each operand, so the JVP in operand i is the same einsum with the tangent
# in slot i, and the VJP is the einsum of g with the other operands, producing operand i's
# letters. Two cases need care in the VJP: a letter only in operand i was summed away, so its
# cotangent is broadcast (an extra `ones(n)` operand carrying that letter); a letter repeated
# within operand i ('ii->i') selects a diagonal, so its cotangent lives on that diagonal (each
# repeat gets a fresh letter tied to the first by an `eye(n)` operand).

EINSUM_SMALL = 2000   # total operand size up to which NumPy's plain C loop is used


def _einsum_impl(*operands, spec):
    big = len(operands) > 2 or sum(getattr(o, 'size', 1) for o in operands) > EINSUM_SMALL
    if not big:
        return np.einsum(spec, *operands)     # tiny: NumPy's direct C loop is fastest
    if len(operands) == 2:
        out = _einsum_as_matmul(spec, *operands)
        if out is not None:
            return out
    # optimize=True finds a contraction order and uses BLAS (tensordot)
    return np.einsum(spec, *operands, optimize=True)


@functools.lru_cache(maxsize=512)
def _matmul_plan(spec):
    """How to run a two-operand contraction as one batched matmul, or None (a repeated letter
    within an operand). Letters are batch (both operands and the output), contracted (both
    operands only), or free (one operand and the output); a letter in one operand only is
    summed out first."""
    lhs, out = spec.split('->')
    a, b = lhs.split(',')
    if len(set(a)) != len(a) or len(set(b)) != len(b) or len(set(out)) != len(out):
        return None
    batch = [c for c in out if c in a and c in b]
    contr = [c for c in a if c in b and c not in out]
    left = [c for c in a if c not in b and c in out]
    right = [c for c in b if c not in a and c in out]
    sum_a = tuple(i for i, c in enumerate(a) if c not in b and c not in out)
    sum_b = tuple(i for i, c in enumerate(b) if c not in a and c not in out)
    a_kept = [c for c in a if c in b or c in out]
    b_kept = [c for c in b if c in a or c in out]
    perm_a = tuple(a_kept.index(c) for c in batch + left + contr)
    perm_b = tuple(b_kept.index(c) for c in batch + contr + right)
    res = batch + left + right
    perm_out = tuple(res.index(c) for c in out)
    return sum_a, sum_b, perm_a, perm_b, perm_out, len(batch), len(left), len(contr)


def _einsum_as_matmul(spec, a, b):
    plan = _matmul_plan(spec)
    if plan is None:
        return None
    sum_a, sum_b, perm_a, perm_b, perm_out, nb, nl, nc = plan
    a, b = np.asarray(a), np.asarray(b)
    if sum_a:
        a = a.sum(axis=sum_a)
    if sum_b:
        b = b.sum(axis=sum_b)
    a = a.transpose(perm_a)
    b = b.transpose(perm_b)
    bs, ls, cs = a.shape[:nb], a.shape[nb:nb + nl], a.shape[nb + nl:]
    rs = b.shape[nb + nc:]
    if b.shape[:nb + nc] != bs + cs:
        return None          # a size-1 axis broadcast against a letter: leave it to NumPy
    # a: (batch, L, K) @ b: (batch, K, R), each group of letters merged into one axis
    k = math.prod(cs)
    m = a.reshape(bs + (math.prod(ls), k))
    n = b.reshape(bs + (k, math.prod(rs)))
    res = np.matmul(m, n).reshape(bs + ls + rs)
    return res.transpose(perm_out) if perm_out != tuple(range(len(perm_out))) else res


def _einsum_vjp(i, g, ans, *operands, spec):
    lhs, out = spec.split('->')
    subs = lhs.split(',')
    target = subs[i]
    others = [j for j in range(len(subs)) if j != i]
    present = set(out).union(*[subs[j] for j in others])
    fresh = iter(c for c in string.ascii_letters if c not in spec)
    shape = ops.shape_of(operands[i])
    rdt = _real_dtype(g)
    new_target, extra_subs, extra_ops, seen = [], [], [], set()
    for c, n in zip(target, shape):
        if c in seen:
            f = next(fresh)
            new_target.append(f)
            extra_subs.append(c + f)
            extra_ops.append(np.eye(n, dtype=rdt))
            continue
        seen.add(c)
        new_target.append(c)
        if c not in present and target.count(c) == 1:
            extra_subs.append(c)
            extra_ops.append(np.ones(n, dtype=rdt))
    vjp_spec = ','.join([out] + [subs[j] for j in others] + extra_subs) + '->' + \
        ''.join(new_target)
    return bind(einsum_p, g, *[operands[j] for j in others], *extra_ops, spec=vjp_spec)


def _einsum_jvp(i, t, ans, *operands, spec):
    args = list(operands)
    args[i] = t
    return bind(einsum_p, *args, spec=spec)


def _einsum_batch(args, dims, *, spec):
    # a batched operand gets a fresh letter for its leading batch axis; so does the output
    b = next(c for c in string.ascii_letters if c not in spec)
    lhs, out = spec.split('->')
    subs = [b + s if d is not None else s for s, d in zip(lhs.split(','), dims)]
    return bind(einsum_p, *args, spec=','.join(subs) + '->' + b + out), 0


einsum_p = Primitive('einsum', _einsum_impl, vjp=PerArg(_einsum_vjp), jvp=PerArg(_einsum_jvp),
                     batch=_einsum_batch)


def _einsum_error(subscripts, shapes, why):
    return ShapeError(f'einsum: subscripts {subscripts!r} do not fit operand shapes '
                      f'{list(shapes)}: {why}')


@functools.lru_cache(maxsize=512)
def einsum_spec(subscripts, shapes):
    """Parse `subscripts` for operands of `shapes` (a tuple of shape tuples) into a canonical
    spec. Cached: a training loop parses each contraction once.

    Returns:
        (spec, sizes): `spec` with an explicit output, ellipses replaced by letters; `sizes`
        maps each letter to its size (after broadcasting size-1 axes).
    """
    s = subscripts.replace(' ', '')
    lhs, arrow, out = s.partition('->')
    subs = lhs.split(',')
    if len(subs) != len(shapes):
        raise _einsum_error(subscripts, shapes, f'{len(subs)} operand subscripts for '
                            f'{len(shapes)} operands')
    for part in subs + [out]:
        bad = set(part.replace('...', '')) - set(string.ascii_letters)
        if bad or part.count('...') > 1 or part.replace('...', '').count('.'):
            raise _einsum_error(subscripts, shapes, f'invalid subscript {part!r} (use letters '
                                'and at most one ellipsis)')
    free = [c for c in string.ascii_letters if c not in s]
    n_ell = 0
    for sub, shp in zip(subs, shapes):
        named = len(sub.replace('...', ''))
        if '...' in sub:
            if named > len(shp):
                raise _einsum_error(subscripts, shapes, f'{sub!r} names {named} axes of an '
                                    f'operand with {len(shp)}')
            n_ell = max(n_ell, len(shp) - named)
        elif named != len(shp):
            raise _einsum_error(subscripts, shapes, f'{sub!r} names {named} axes of an operand '
                                f'with {len(shp)}')
    ell = ''.join(free[:n_ell])
    canon = []
    for sub, shp in zip(subs, shapes):
        k = len(shp) - len(sub.replace('...', ''))
        canon.append(sub.replace('...', ell[n_ell - k:] if k else ''))
    if arrow:
        if '...' in out:
            out = out.replace('...', ell)
        elif n_ell:
            raise _einsum_error(subscripts, shapes, "the output needs '...' for the broadcast "
                                'axes')
        if len(set(out)) != len(out):
            raise _einsum_error(subscripts, shapes, f'output {out!r} repeats a letter')
        missing = set(out) - set(''.join(canon))
        if missing:
            raise _einsum_error(subscripts, shapes, f'output letters {sorted(missing)} appear in '
                                'no operand')
    else:
        # implicit output: the broadcast axes, then the letters used once, alphabetically
        letters = lhs.replace('...', '').replace(',', '')
        out = ell + ''.join(sorted(c for c in set(letters) if letters.count(c) == 1))
    sizes = {}
    for sub, shp in zip(canon, shapes):
        for c, d in zip(sub, shp):
            d = int(d)
            old = sizes.get(c)
            if old is None or old == 1:
                sizes[c] = d
            elif d != 1 and d != old:
                raise _einsum_error(subscripts, shapes, f'letter {c!r} has sizes {old} and {d}')
    return ','.join(canon) + '->' + out, sizes


def einsum(subscripts, *operands):
    """`np.einsum(subscripts, *operands)`: explicit or implicit output, ellipsis broadcasting,
    repeated letters (diagonals, traces), any number of operands; differentiable to any order.

    Args:
        subscripts: NumPy's subscript string, e.g. 'ij,jk->ik', '...ii->...i', 'ii'.
        *operands: arrays, numbers or tracers.

    Returns:
        The contraction, as NumPy computes it.
    """
    shapes = tuple(ops.shape_of(o) for o in operands)
    spec, sizes = einsum_spec(subscripts, shapes)
    if not any(isinstance(o, Tracer) for o in operands):
        return _einsum_impl(*operands, spec=spec)
    subs = spec.split('->')[0].split(',')
    dt = np.result_type(*[ops.dtype_of(o) for o in operands])
    if dt.kind not in 'fc':
        dt = np.result_type(dt, np.float64) if dt.kind != 'b' else np.dtype(np.float64)
    args = []
    for o, sub, shp in zip(operands, subs, shapes):
        if isinstance(o, Tracer):
            o = ops.astype(o, dt)
        else:
            o = np.asarray(o, dt)
        full = tuple(sizes[c] for c in sub)
        if full != shp:
            o = ops.broadcast_to(o, full) if isinstance(o, Tracer) else np.broadcast_to(o, full)
        args.append(o)
    return bind(einsum_p, *args, spec=spec)
