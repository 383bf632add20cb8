"""Vectorisable sine, cosine, exp and log for the numba backend's fused loops.

What it lets you do: nothing to call. `jit(f, backend='numba')` writes runs of elementwise
equations as numba loops (`chainrule.jit.blocked`); a call of `math.sin` or `math.exp` in such a
loop is a scalar libm call per element (numba here has no SVML), which keeps LLVM from
vectorising the whole loop. The functions here compute the same values with only arithmetic,
comparisons and selects, so LLVM inlines them and turns the loop into AVX-512/AVX2 code.

Accuracy (measured against NumPy, which calls libm for float64 sine/cosine, and against mpmath;
`tests/test_jit_vecmath.py`, the table in docs/getting-started/jit.md): float64 `sin`, `cos`
within 1 ulp of NumPy for |x| <= `TRIG_LIMIT`, `exp` and `log` within 1 ulp of NumPy over the
whole range (subnormals included); each below 1 ulp of the exact value. The float32 versions
are the float64 ones rounded once (below 1 ulp of the exact value; NumPy's own float32 loops are
up to 1.9 ulps off for exp and 3.1 for log, so up to 2 and 4 ulps from ours). Outside
`TRIG_LIMIT`, and for inf and NaN, sine and cosine are not computed here: a loop that calls
them reports such an argument and its caller runs the tile again with libm (`math.sin`), so
huge arguments keep libm's exact Payne-Hanek reduction and special values are NumPy's bit for
bit. `exp` and `log` handle NaN, +-inf, zeros, overflow and underflow themselves, as NumPy does.

How:
- sine/cosine: `q = round(x * 2/pi)` (a 1.5 * 2^52 shifter gives both the rounded value and
  its integer bits), then Cody-Waite reduction with pi/2 in three parts, `x - q*P1` by one fused
  multiply-add (exact: both terms are multiples of 2^-53 and the difference is below 1) and
  `q*P2` as an exact product pair, giving the reduced argument as head + tail to ~2^-100; then
  fdlibm's minimax polynomials on [-pi/4, pi/4] (degree 13 sine, degree 14 cosine, with the
  tail correction and the cosine's `1 - z/2` split that keep them below one ulp); the quadrant
  `q mod 4` selects and negates.
- exp: `n = round(x / ln 2)`, `r = x - n*ln2 = hi - lo` (hi by one exact fused multiply-add),
  `exp(r) = 1 + r + r^2 * P(r)` with P the Taylor series to r^13 (truncation < 2^-57 on
  |r| <= ln2/2), the sum ordered so its only large rounding is the last one, then scaled by 2^n
  as two exact powers of two (one rounding, also into the subnormal range).
- log: x = 2^k * m with m in [sqrt(1/2), sqrt(2)) from the bits (subnormals scaled by 2^54
  first), then fdlibm's e_log.c: with f = m - 1 and s = f/(2+f),
  log(x) = k*ln2_hi - ((f^2/2 - (s*(f^2/2 + R(s^2)) + k*ln2_lo)) - f), R a degree-14 minimax.

The fused multiply-add and the bit casts are LLVM intrinsics (`numba.extending.intrinsic`);
without `fastmath` LLVM neither contracts nor reassociates the rest, so each value is the same
scalar or vector, on every CPU (one without FMA instructions computes `llvm.fma` exactly too,
by a slower library call).
"""

import math

import numba
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

__all__ = []

# |x| up to which sine and cosine are computed here (beyond it, and for inf/NaN, libm's).
# The reduction is exact to far beyond it (the shifter allows |x| < 2^51 * pi/2); this is
# where the tests check it, near multiples of pi/2 included.
TRIG_LIMIT = 2.0 ** 28


@intrinsic
def fma(typingctx, a, b, c):
    """a * b + c with one rounding (LLVM's `llvm.fma`)."""
    if not (isinstance(a, types.Float) and a == b == c):
        return None

    def codegen(context, builder, sig, args):
        t = args[0].type
        fn = builder.module.declare_intrinsic('llvm.fma', [t], ir.FunctionType(t, [t, t, t]))
        return builder.call(fn, args)
    return a(a, a, a), codegen


@intrinsic
def f64_bits(typingctx, x):
    """The bits of float64 `x` as an int64."""
    if x != types.float64:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen


@intrinsic
def bits_f64(typingctx, n):
    """The float64 whose bits are int64 `n`."""
    if not isinstance(n, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        v = context.cast(builder, args[0], sig.args[0], types.int64)
        return builder.bitcast(v, ir.DoubleType())
    return types.float64(n), codegen


_SHIFTER = 6755399441055744.0         # 1.5 * 2^52: x + it rounds x to an integer in its low bits
_SHIFTER_BITS = 0x4338000000000000
_TWO_OVER_PI = 0.6366197723675814
_PIO2_1 = 1.5707963267948966          # pi/2 = _PIO2_1 + _PIO2_2 + _PIO2_3 to 2^-159
_PIO2_2 = 6.123233995736766e-17
_PIO2_3 = -1.4973849048591698e-33
# fdlibm's k_sin.c / k_cos.c minimax coefficients on [-pi/4, pi/4]
_S1, _S2, _S3 = -1.66666666666666324348e-01, 8.33333333332248946124e-03, -1.98412698298579493134e-04
_S4, _S5, _S6 = 2.75573137070700676789e-06, -2.50507602534068634195e-08, 1.58969099521155010221e-10
_C1, _C2, _C3 = 4.16666666666666019037e-02, -1.38888888888741095749e-03, 2.48015872894767294178e-05
_C4, _C5, _C6 = -2.75573143513906633035e-07, 2.08757232129817482790e-09, -1.13596475577881948265e-11

# not `inline='always'`: LLVM inlines these calls by itself (and vectorises the loop the same),
# while inlining them in numba's IR made the W4 kernel compile 3.6x slower (15 s against 4 s)
_jit = numba.njit(error_model='numpy', cache=False)


@_jit
def _reduce(x):
    """(head, tail, quadrant): x = q*pi/2 + head + tail, quadrant = q mod 4, for |x| <=
    TRIG_LIMIT."""
    t = x * _TWO_OVER_PI + _SHIFTER
    q = t - _SHIFTER
    r1 = fma(-q, _PIO2_1, x)                  # exact
    wh = q * _PIO2_2
    wl = fma(q, _PIO2_2, -wh)                 # q*P2 = wh + wl exactly
    r = r1 - wh
    bb = r - r1                               # two-sum: r1 - wh = r + e exactly
    e = (r1 - (r - bb)) + (-wh - bb)
    return r, (e - wl) - q * _PIO2_3, f64_bits(t) & 3


@_jit
def _ksin(x, y):
    """sin(x + y) for |x| <= pi/4, |y| tiny (fdlibm's kernel)."""
    z = x * x
    v = z * x
    r = fma(z, fma(z, fma(z, fma(z, _S6, _S5), _S4), _S3), _S2)
    return x - ((z * (0.5 * y - v * r) - y) - v * _S1)


@_jit
def _kcos(x, y):
    """cos(x + y) for |x| <= pi/4, |y| tiny (fdlibm's kernel)."""
    z = x * x
    r = z * fma(z, fma(z, fma(z, fma(z, fma(z, _C6, _C5), _C4), _C3), _C2), _C1)
    hz = 0.5 * z
    w = 1.0 - hz
    return w + (((1.0 - w) - hz) + (z * r - x * y))


@_jit
def sin64(x):
    """sin(x) for finite |x| <= TRIG_LIMIT (others: see the module docstring)."""
    r, y, n = _reduce(x)
    v = _kcos(r, y) if n & 1 else _ksin(r, y)
    return -v if n & 2 else v


@_jit
def cos64(x):
    """cos(x) for finite |x| <= TRIG_LIMIT (others: see the module docstring)."""
    r, y, n = _reduce(x)
    v = _ksin(r, y) if n & 1 else _kcos(r, y)
    return -v if (n + 1) & 2 else v


@_jit
def trig_ok(x):
    """Whether sin64/cos64 compute x (finite, |x| <= TRIG_LIMIT)."""
    return abs(x) <= TRIG_LIMIT


_INV_LN2 = 1.4426950408889634
_LN2_HI = 0.6931471805599453
_LN2_LO = 2.3190468138462996e-17
# 1/k! for k = 2..13
_E2, _E3, _E4, _E5 = 0.5, 1.0 / 6, 1.0 / 24, 1.0 / 120
_E6, _E7, _E8, _E9 = 1.0 / 720, 1.0 / 5040, 1.0 / 40320, 1.0 / 362880
_E10, _E11, _E12, _E13 = 1.0 / 3628800, 1.0 / 39916800, 1.0 / 479001600, 1.0 / 6227020800


@_jit
def exp64(x):
    """exp(x) for every float64 x (NaN, infinities, overflow and underflow as NumPy)."""
    xc = x if (x > -746.0) and (x < 710.0) else 0.0
    t = xc * _INV_LN2 + _SHIFTER
    q = t - _SHIFTER
    n = f64_bits(t) - _SHIFTER_BITS
    hi = fma(-q, _LN2_HI, xc)                 # exact
    lo = q * _LN2_LO
    r = hi - lo
    p = fma(r, _E13, _E12)
    p = fma(r, p, _E11)
    p = fma(r, p, _E10)
    p = fma(r, p, _E9)
    p = fma(r, p, _E8)
    p = fma(r, p, _E7)
    p = fma(r, p, _E6)
    p = fma(r, p, _E5)
    p = fma(r, p, _E4)
    p = fma(r, p, _E3)
    p = fma(r, p, _E2)
    # 1 + r + r^2 P(r) with 1 + hi exactly as s + t (hi is exact, |hi| < 1): one rounding of
    # size one half ulp in the final sum, the others far below it
    s = 1.0 + hi
    t = (1.0 - s) + hi
    e = s + fma(r * r, p, t - lo)
    n1 = n >> 1
    e = e * bits_f64((n1 + 1023) << 52) * bits_f64((n - n1 + 1023) << 52)
    if x != x:
        return x
    if x >= 710.0:
        return math.inf
    if x <= -746.0:
        return 0.0
    return e


_LG1, _LG2, _LG3 = 6.666666666666735130e-01, 3.999999999940941908e-01, 2.857142874366239149e-01
_LG4, _LG5, _LG6 = 2.222219843214978396e-01, 1.818357216161805012e-01, 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01
_LN2_HI_LOG = 6.93147180369123816490e-01       # 32 bits: k * it is exact for |k| < 2^21
_LN2_LO_LOG = 1.90821492927058770002e-10
_SQRT_HALF_BITS = 0x3FE6A09E667F3BCD           # the bits of sqrt(1/2)
_MANT = 0x000FFFFFFFFFFFFF


@_jit
def log64(x):
    """log(x) for every float64 x (0, negatives, subnormals, inf and NaN as NumPy)."""
    tiny = x < 2.2250738585072014e-308
    xs = x * 18014398509481984.0 if tiny else x        # subnormals scaled by 2^54
    # x = 2^k * m with m in [sqrt(1/2), sqrt(2)): shift the bits so the exponent field of
    # sqrt(1/2) becomes 1023's, read k there, then put the mantissa back above sqrt(1/2)
    ix = f64_bits(xs) + (0x3FF0000000000000 - _SQRT_HALF_BITS)
    k = (ix >> 52) - 1023 - (54 if tiny else 0)
    m = bits_f64((ix & _MANT) + _SQRT_HALF_BITS)
    f = m - 1.0
    # fdlibm's e_log.c: log(1+f) = f - hfsq + s*(hfsq+R), s = f/(2+f), R a minimax in s^2
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * fma(w, fma(w, _LG6, _LG4), _LG2)
    t2 = z * fma(w, fma(w, fma(w, _LG7, _LG5), _LG3), _LG1)
    r = t2 + t1
    hfsq = 0.5 * f * f
    dk = np.float64(k)
    v = dk * _LN2_HI_LOG - ((hfsq - (s * (hfsq + r) + dk * _LN2_LO_LOG)) - f)
    if x != x:
        return x
    if x < 0.0:
        return math.nan
    if x == 0.0:
        return -math.inf
    if x == math.inf:
        return x
    return v


@_jit
def sin32(x):
    return np.float32(sin64(np.float64(x)))


@_jit
def cos32(x):
    return np.float32(cos64(np.float64(x)))


@_jit
def exp32(x):
    return np.float32(exp64(np.float64(x)))


@_jit
def log32(x):
    return np.float32(log64(np.float64(x)))
