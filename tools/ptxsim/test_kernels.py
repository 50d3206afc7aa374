"""Checks the hand-written PTX kernels in kernels/*.ptx against Python references by running them in the
PTX interpreter sim.py (no GPU needed). Standard library only.

Usage: python3 tools/ptxsim/test_kernels.py [family ...]   (from any directory; default: all families)
Families: unary binary reduce softmax copy gather optim matmul spline sos conv2d conv_transpose2d made coupling
softclip lu inv_conv1x1 image_affine squeeze pad2d planted (bugs planted in copies of the new families' PTX, which
their tests must catch) tiled (the families again with every launch folded over x, y and z as on a device with tiny
grid limits, and bugs planted in the block numbering).
Prints one line per case, then a final `N passed, M failed` line; exits non-zero if any case failed.
"""
import contextlib
import io
import math
import random
import struct
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
KDIR = HERE.parents[1] / 'kernels'
sys.dont_write_bytecode = True
sys.path.insert(0, str(HERE))
from sim import Machine, parse, SimError  # noqa: E402

random.seed(1)
PASSED = []
FAIL = []


def kernel(name):
    return parse(KDIR / name)


def pk(fmt, *v):
    return struct.pack('<' + fmt, *v)


def relerr(out, ref):
    num = 0.0
    den = 0.0
    for o, r in zip(out, ref):
        if (r != r) or math.isinf(r):
            if not ((o != o and r != r) or o == r):
                return math.inf
            continue
        num += (o - r) ** 2
        den += r * r
    if den == 0:
        return math.sqrt(num)
    return math.sqrt(num / den)


def check(name, out, ref, tol=1e-5):
    e = relerr(out, ref)
    ok = e < tol
    print('%-50s relerr %.3g %s' % (name, e, 'ok' if ok else 'FAIL'))
    if ok:
        PASSED.append(name)
    else:
        FAIL.append(name)
        for i, (o, r) in enumerate(zip(out, ref)):
            if not (abs(o - r) <= 1e-4 * abs(r) + 1e-6 or (o != o and r != r) or o == r):
                print('   first mismatch at', i, o, r)
                break


def rnd(n, lo=-3, hi=3):
    return [struct.unpack('<f', struct.pack('<f', random.uniform(lo, hi)))[0] for _ in range(n)]


# Grids as the host folds them (src/backend/mod.rs, fold_grid): every kernel numbers its blocks linearly,
# b = (ctaid.z nctaid.y + ctaid.y) nctaid.x + ctaid.x, so the host spreads a launch's blocks over x, then y,
# then z within the device's limits, and blocks numbered past the end of the op do nothing.
CUDA_LIMITS = (2 ** 31 - 1, 65535, 65535)
# Set by the `tiled` family: every launch without explicit limits is folded as on a device that allows only
# a handful of blocks per dimension (the smallest L >= 2 with L^3 >= blocks), so the blocks spread over x, y
# and z with spare blocks at the end, as launches past 65,535 blocks per dimension are on a real GPU.
TIGHT = [False]


def fold(blocks, limits=None):
    b = max(1, blocks)
    if limits is None:
        L = 2
        while L ** 3 < b:
            L += 1
        limits = (L, L, L) if TIGHT[0] else CUDA_LIMITS
    lx, ly, lz = limits
    gx = min(b, lx)
    rows = -(-b // gx)
    gy = min(rows, ly)
    gz = -(-rows // gy)
    assert gz <= lz, 'launch of %d blocks does not fit %s' % (blocks, limits)
    return (gx, gy, gz)


def grid1d(n, cap=None):
    """A 1-D launch over n elements in blocks of 256 (x and y capped at `cap` when given, the rest along z)."""
    return fold((n + 255) // 256, (cap, cap, CUDA_LIMITS[2]) if cap else None)


def tiles(n, t=64):
    return (n + t - 1) // t


def sentinel_ok(name, buf, n):
    tail = buf[n:]
    if any(v != 12345.0 for v in tail):
        print('%-50s wrote past n FAIL' % name)
        FAIL.append(name + ' tail')


# ------------------------------------------------------------------ unary
def sig(x):
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def test_unary():
    E = kernel('unary.ptx')
    fw = {0: math.exp, 1: math.log, 2: math.tanh, 3: sig,
          4: lambda x: max(x, 0) + math.log1p(math.exp(-abs(x))), 5: lambda x: max(x, 0.0),
          6: lambda x: x if x > 0 else 0.1 * x, 7: lambda x: x * x, 8: math.sqrt, 9: lambda x: 1.5 * x - 0.25}
    bw = {0: lambda x, y: y, 1: lambda x, y: 1 / x, 2: lambda x, y: 1 - y * y, 3: lambda x, y: y * (1 - y),
          4: lambda x, y: sig(x), 5: lambda x, y: 1.0 if x > 0 else 0.0, 6: lambda x, y: 1.0 if x > 0 else 0.1,
          7: lambda x, y: 2 * x, 8: lambda x, y: 0.5 / y, 9: lambda x, y: 1.5}
    n = 300
    for op in range(10):
        xs = rnd(n, 0.05, 3) if op in (1, 8) else rnd(n)
        if op in (2, 3, 4):
            xs[:4] = [40.0, -40.0, 100.0, -100.0]
        m = Machine()
        xa = m.alloc(xs)
        ya = m.alloc([12345.0] * (n + 5))
        prm = pk('IIff', n, op, 0.1 if op == 6 else 1.5, -0.25)
        m.launch(E['unary_fwd'], grid1d(n, 1), (256, 1, 1), prm, [xa, ya])
        y = m.read(ya, n + 5)
        sentinel_ok('unary_fwd', y, n)
        ref = [fw[op](x) for x in xs]
        check('unary_fwd op %d' % op, y[:n], ref)
        gs = rnd(n)
        ga = m.alloc(gs)
        ya2 = m.alloc([struct.unpack('<f', struct.pack('<f', r))[0] for r in ref])
        dxa = m.alloc([12345.0] * (n + 5))
        m.launch(E['unary_bwd'], (1, 2, 1), (256, 1, 1), prm, [xa, ya2, ga, dxa])
        dx = m.read(dxa, n + 5)
        sentinel_ok('unary_bwd', dx, n)
        check('unary_bwd op %d' % op, dx[:n], [g * bw[op](x, y) for g, x, y in zip(gs, xs, ref)])


# ------------------------------------------------------------------ binary
def test_binary():
    E = kernel('binary.ptx')
    fns = [lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b, lambda a, b: a / b,
           lambda a, b: 1.0 if a == b else 0.0, max, min]
    cases = [([3, 4, 5], [3, 4, 5], [3, 4, 5]), ([3, 4, 5], [1, 4, 1], [3, 1, 5]), ([7, 45], [7, 1], [1, 45]),
             ([], [], []), ([2, 1, 3, 2, 2, 1, 3, 2], [2, 1, 3, 2, 2, 1, 3, 2], [1, 1, 3, 1, 2, 1, 1, 2])]
    for shape, sa, sb in cases:
        rank = len(shape)
        n = 1
        for s in shape:
            n *= s

        def strides(sh):
            st = [0] * len(sh)
            acc = 1
            for d in range(len(sh) - 1, -1, -1):
                st[d] = 0 if sh[d] == 1 and shape[d] != 1 else acc
                acc *= sh[d]
            return st, acc
        ast, na = strides(sa)
        bst, nb = strides(sb)
        for op in range(7):
            A = rnd(na)
            B = rnd(nb) if op != 4 else [A[0]] * nb
            if op == 3:
                B = [b if abs(b) > 0.1 else 1.0 for b in B]
            m = Machine()
            aa, ba, oa = m.alloc(A), m.alloc(B), m.alloc([12345.0] * (n + 3))
            pad = lambda v: v + [0] * (8 - len(v))
            prm = pk('IIII', n, op, rank, 0) + pk('8I', *pad(shape)) + pk('8I', *pad(ast)) + pk('8I', *pad(bst))
            assert len(prm) == 112
            m.launch(E['binary_fwd'], grid1d(n), (256, 1, 1), prm, [aa, ba, oa])
            out = m.read(oa, n + 3)
            sentinel_ok('binary', out, n)
            ref = []
            for i in range(n):
                rem, ia, ib = i, 0, 0
                for d in range(rank - 1, -1, -1):
                    c = rem % shape[d]
                    rem //= shape[d]
                    ia += c * ast[d]
                    ib += c * bst[d]
                ref.append(fns[op](A[ia], B[ib]))
            check('binary %s op %d' % (shape, op), out[:n], ref)


def test_broadcast_to():
    """op 7 (copy a): out = a broadcast to the output shape, b unused. Launched as broadcast_to does it
    (b = the same buffer and strides as a), and once with a separate NaN-filled b to show b's values are ignored."""
    E = kernel('binary.ptx')
    # (a shape right-aligned against out shape, out shape); the [1, 5] -> [7, 5] case has a strides [0, 1]
    cases = [([1, 5], [7, 5]), ([3, 1], [3, 4]), ([1], [2, 3, 4]), ([], [4, 3]), ([2, 1, 3], [4, 2, 5, 3]),
             ([1, 300], [3, 300]), ([5], [5]), ([], [])]
    for ash, shape in cases:
        rank = len(shape)
        apad = [1] * (rank - len(ash)) + ash
        ast, acc = [0] * rank, 1
        for d in range(rank - 1, -1, -1):
            ast[d] = 0 if apad[d] == 1 and shape[d] != 1 else acc
            acc *= apad[d]
        na = acc
        n = 1
        for x in shape:
            n *= x
        if ash == [1, 5]:
            assert ast == [0, 1]
        A = rnd(na)
        ref = []
        for i in range(n):
            rem, ia = i, 0
            for d in range(rank - 1, -1, -1):
                ia += (rem % shape[d]) * ast[d]
                rem //= shape[d]
            ref.append(A[ia])
        pad = lambda v: v + [0] * (8 - len(v))
        prm = pk('IIII', n, 7, rank, 0) + pk('8I', *pad(shape)) + pk('8I', *pad(ast)) + pk('8I', *pad(ast))
        for separate_b in (False, True):
            m = Machine()
            aa = m.alloc(A)
            ba = m.alloc([math.nan] * na) if separate_b else aa
            oa = m.alloc([12345.0] * (n + 3))
            m.launch(E['binary_fwd'], grid1d(n, 2), (256, 1, 1), prm, [aa, ba, oa])
            out = m.read(oa, n + 3)
            sentinel_ok('broadcast_to', out, n)
            if m.read(aa, na) != A:
                print('%-50s modified its input FAIL' % 'broadcast_to')
                FAIL.append('broadcast_to input')
            check('binary op 7 copy a %s -> %s%s' % (ash, shape, ' (NaN b)' if separate_b else ''),
                  out[:n], ref, 1e-12)


# ------------------------------------------------------------------ reduce / softmax
def lse(v):
    if not v:
        return -math.inf
    mx = max(v)
    if mx == -math.inf:
        return -math.inf
    return mx + math.log(sum(math.exp(x - mx) for x in v))


RED = [sum, lambda v: sum(v) / len(v) if v else math.nan, lambda v: max(v) if v else -math.inf, lse]


def test_reduce(reverse):
    E = kernel('reduce.ptx')
    for n in (0, 1, 255, 300, 700):
        outer = 5
        for op in range(4):
            xs = rnd(outer * n)
            if n >= 1 and op >= 2:
                for j in range(n):
                    xs[j] = -math.inf  # row 0 all -inf
            m = Machine()
            xa, ya = m.alloc(xs), m.alloc([12345.0] * (outer + 2))
            m.launch(E['reduce_rows'], fold(outer, (2, 2, 2)), (256, 1, 1), pk('IIII', outer, n, 1, op), [xa, ya],
                     reverse)
            y = m.read(ya, outer + 2)
            sentinel_ok('reduce_rows', y, outer)
            ref = [RED[op](xs[o * n:(o + 1) * n]) for o in range(outer)]
            check('reduce_rows n=%d op %d rev=%d' % (n, op, reverse), y[:outer], ref)
    for outer, n, inner in ((3, 7, 5), (2, 0, 3), (4, 33, 70)):
        for op in range(4):
            xs = rnd(outer * n * inner)
            if n and op >= 2:
                for j in range(n):
                    xs[j * inner] = -math.inf
            m = Machine()
            tot = outer * inner
            xa, ya = m.alloc(xs), m.alloc([12345.0] * (tot + 2))
            m.launch(E['reduce_cols'], grid1d(tot, 1), (256, 1, 1), pk('IIII', outer, n, inner, op), [xa, ya])
            y = m.read(ya, tot + 2)
            sentinel_ok('reduce_cols', y, tot)
            ref = [RED[op]([xs[(o * n + j) * inner + r] for j in range(n)]) for o in range(outer) for r in range(inner)]
            check('reduce_cols %s op %d' % ((outer, n, inner), op), y[:tot], ref)


def softmax(v):
    mx = max(v)
    e = [math.exp(x - mx) for x in v]
    s = sum(e)
    return [x / s for x in e]


def test_softmax(reverse):
    E = kernel('softmax.ptx')
    for n in (1, 200, 600):
        outer = 3
        xs = rnd(outer * n, -10, 10)
        m = Machine()
        xa, ya = m.alloc(xs), m.alloc([12345.0] * (outer * n + 2))
        m.launch(E['softmax_rows'], fold(outer, (1, 1, 3)), (256, 1, 1), pk('IIII', outer, n, 1, 0), [xa, ya], reverse)
        y = m.read(ya, outer * n + 2)
        sentinel_ok('softmax_rows', y, outer * n)
        ref = sum((softmax(xs[o * n:(o + 1) * n]) for o in range(outer)), [])
        check('softmax_rows n=%d rev=%d' % (n, reverse), y[:outer * n], ref)
    for outer, n, inner in ((3, 7, 5), (2, 40, 130)):
        xs = rnd(outer * n * inner, -10, 10)
        m = Machine()
        tot = outer * n * inner
        xa, ya = m.alloc(xs), m.alloc([12345.0] * (tot + 2))
        m.launch(E['softmax_cols'], grid1d(outer * inner, 1), (256, 1, 1), pk('IIII', outer, n, inner, 0),
                 [xa, ya])
        y = m.read(ya, tot + 2)
        sentinel_ok('softmax_cols', y, tot)
        ref = [0.0] * tot
        for o in range(outer):
            for r in range(inner):
                sm = softmax([xs[(o * n + j) * inner + r] for j in range(n)])
                for j in range(n):
                    ref[(o * n + j) * inner + r] = sm[j]
        check('softmax_cols %s' % ((outer, n, inner),), y[:tot], ref)


# ------------------------------------------------------------------ matmul
def test_matmul(cases, reverse=False, block=(16, 16, 1), E=None):
    E = E or kernel('matmul.ptx')
    for (m_, n_, k_, batch, ta, tb, bca, bcb) in cases:
        A = rnd((1 if bca else batch) * m_ * k_)
        B = rnd((1 if bcb else batch) * n_ * k_)
        mach = Machine()
        aa, ba = mach.alloc(A), mach.alloc(B)
        ca = mach.alloc([12345.0] * (batch * m_ * n_ + 3))
        prm = pk('8I', m_, n_, k_, batch, ta, tb, 0 if bca else m_ * k_, 0 if bcb else n_ * k_)
        t0 = time.time()
        mach.launch(E['matmul'], fold(tiles(n_) * tiles(m_) * batch), block, prm, [aa, ba, ca], reverse)
        C = mach.read(ca, batch * m_ * n_ + 3)
        sentinel_ok('matmul', C, batch * m_ * n_)
        ref = []
        for b in range(batch):
            ao = 0 if bca else b * m_ * k_
            bo = 0 if bcb else b * n_ * k_
            for i in range(m_):
                for j in range(n_):
                    s = 0.0
                    for l in range(k_):
                        av = A[ao + (l * m_ + i if ta else i * k_ + l)]
                        bv = B[bo + (j * k_ + l if tb else l * n_ + j)]
                        s += av * bv
                    ref.append(s)
        check('matmul m%d n%d k%d b%d ta%d tb%d bc%d%d (%.1fs)' % (m_, n_, k_, batch, ta, tb, bca, bcb,
                                                                time.time() - t0), C[:batch * m_ * n_], ref)


# ------------------------------------------------------------------ copy
def test_copy(reverse):
    E = kernel('copy.ptx')
    outer, inner, src_n, dst_n, src_off, dst_off, ln = 3, 5, 7, 9, 2, 4, 3
    S = rnd(outer * src_n * inner)
    D0 = rnd(outer * dst_n * inner)
    m = Machine()
    sa, da = m.alloc(S), m.alloc(D0)
    total = outer * ln * inner
    m.launch(E['slice_copy'], grid1d(total), (256, 1, 1),
             pk('8I', outer, inner, src_n, dst_n, src_off, dst_off, ln, total), [sa, da])
    D = m.read(da, len(D0))
    ref = list(D0)
    for o in range(outer):
        for j in range(ln):
            for r in range(inner):
                ref[(o * dst_n + dst_off + j) * inner + r] = S[(o * src_n + src_off + j) * inner + r]
    check('slice_copy', D, ref, 1e-12)
    for batch, rows, cols, blk in ((2, 20, 37, (16, 16, 1)), (1, 16, 16, (256, 1, 1)), (3, 1, 5, (16, 16, 1))):
        S = rnd(batch * rows * cols)
        m = Machine()
        sa, da = m.alloc(S), m.alloc([12345.0] * (len(S) + 2))
        m.launch(E['transpose'], fold(tiles(cols, 16) * tiles(rows, 16) * batch), blk,
                 pk('4I', batch, rows, cols, 0), [sa, da], reverse)
        D = m.read(da, len(S) + 2)
        sentinel_ok('transpose', D, len(S))
        ref = [S[b * rows * cols + r * cols + c] for b in range(batch) for c in range(cols) for r in range(rows)]
        check('transpose %s rev=%d' % ((batch, rows, cols), reverse), D[:len(S)], ref, 1e-12)
    m = Machine()
    da = m.alloc([12345.0] * 600)
    m.launch(E['fill'], grid1d(597), (256, 1, 1), pk('IfII', 597, 2.5, 0, 0), [da])
    D = m.read(da, 600)
    sentinel_ok('fill', D, 597)
    check('fill', D[:597], [2.5] * 597, 1e-12)


# ------------------------------------------------------------------ gather
def test_gather():
    E = kernel('gather.ptx')
    outer, src_n, idx_n, inner = 3, 6, 8, 5
    S = rnd(outer * src_n * inner)
    idx = [random.randrange(src_n) for _ in range(idx_n)]
    idx[1] = idx[0]
    m = Machine()
    sa, ia, da = m.alloc(S), m.alloc(idx, 'I'), m.alloc([12345.0] * (outer * idx_n * inner + 2))
    tot = outer * idx_n * inner
    m.launch(E['gather'], grid1d(tot), (256, 1, 1), pk('4I', outer, src_n, idx_n, inner), [sa, ia, da])
    D = m.read(da, tot + 2)
    sentinel_ok('gather', D, tot)
    ref = [S[(o * src_n + idx[j]) * inner + r] for o in range(outer) for j in range(idx_n) for r in range(inner)]
    check('gather', D[:tot], ref, 1e-12)
    G = rnd(tot)
    m = Machine()
    ga, ia, da = m.alloc(G), m.alloc(idx, 'I'), m.alloc([0.0] * (outer * src_n * inner))
    m.launch(E['scatter_add'], grid1d(tot), (256, 1, 1), pk('4I', outer, src_n, idx_n, inner), [ga, ia, da])
    D = m.read(da, outer * src_n * inner)
    ref = [0.0] * (outer * src_n * inner)
    for o in range(outer):
        for j in range(idx_n):
            for r in range(inner):
                ref[(o * src_n + idx[j]) * inner + r] += G[(o * idx_n + j) * inner + r]
    check('scatter_add', D, ref)


# ------------------------------------------------------------------ optim
def test_optim(E=None, n=300):
    E = E or kernel('optim.ptx')
    for use_v in (0, 1):
        for dec in (0, 1):
            P, G, M = rnd(n), rnd(n), rnd(n)
            V = rnd(n, 0, 3)
            lr, b1, b2, eps, wd, bc1, bc2, sc = 1e-2, 0.9, 0.999, 1e-8, 0.01, 0.1, 0.002, 0.7
            m = Machine()
            bufs = [m.alloc(x) for x in (P, G, M, V)] + [m.alloc([12345.0] * (n + 1)) for _ in range(3)]
            prm = pk('Iffffffff', n, lr, b1, b2, eps, wd, bc1, bc2, sc) + pk('III', use_v, dec, 0)
            assert len(prm) == 48
            m.launch(E['adam_step'], grid1d(n), (256, 1, 1), prm, bufs)
            po, mo, vo = (m.read(b, n + 1) for b in bufs[4:])
            rp, rm, rv = [], [], []
            for p, g, mm, v in zip(P, G, M, V):
                gg = g + (0 if dec else wd * p)
                m2 = b1 * mm + (1 - b1) * gg
                v2 = b2 * v + (1 - b2) * gg * gg
                pp = p * (1 - lr * wd) if dec else p
                st = (m2 / bc1) / (math.sqrt(v2 / bc2) + eps) if use_v else m2 / bc1
                rp.append(pp - lr * sc * st)
                rm.append(m2)
                rv.append(v2)
            for nm, o in (('p', po), ('m', mo), ('v', vo)):
                sentinel_ok('adam ' + nm, o, n)
            check('adam use_v=%d dec=%d p' % (use_v, dec), po[:n], rp)
            check('adam use_v=%d dec=%d m' % (use_v, dec), mo[:n], rm)
            check('adam use_v=%d dec=%d v' % (use_v, dec), vo[:n], rv)


# ------------------------------------------------------------------ spline
# Rational-quadratic spline (kernels/README.md, "spline"), references in f64 written from the README's maths.
# Two values are taken from the kernels' f32 world: the knots, which the README fixes as f32 values accumulated in a
# given order (sp_knots_f32 recomputes them so, exp as the simulator's ex2: 2^(f32(t log2 e)) rounded; the bin is
# picked from them), and the forward's xi = (x - X_k) / W_k, rounded to f32 as every f32 backend must. Everything
# else is f64. This is needed, not cosmetic: with minimum-size bins (W = 6e-3 next to knots near +-3 whose f32 ulp
# is 2.4e-7) the spline moves by ~1e-4 relative between the f32 and the f64 knots, and one ulp below a knot
# (1 - xi ~ 1e-6) the f32 rounding of xi (6e-8) moves ld by up to 1e-4 when s / d_{k+1} ~ 1e4; both are far above
# what the kernel's own arithmetic contributes. The f64 backward is checked against central differences of the f64
# forward (f64 knots, unrounded xi) before it is used.
SP_LOG2E = struct.unpack('<f', struct.pack('<I', 0x3FB8AA3B))[0]
SP_INV_LIM = (1e-5, 2e-5)   # largest predicted f32 error (of x, of ld) of the README's inverse root still checked


def f32r(x):
    return struct.unpack('<f', struct.pack('<f', x))[0]


def f32_step(x, d):
    """The f32 neighbour of the f32 value x towards +inf (d = 1) or -inf (d = -1); x itself for d = 0."""
    if x == 0 and d:
        return d * 1.4e-45
    b = struct.unpack('<i', struct.pack('<f', x))[0]
    b += d if x > 0 else -d
    return struct.unpack('<f', struct.pack('<i', b))[0]


def sp_knots_f32(raw, B, mn):
    """Knots X_0 .. X_K as the kernels compute them in f32 (README order and rounding; B and mn f32 values)."""
    K = len(raw)
    m = max(raw)
    e = []
    for u in raw:
        v = f32r(2.0 ** f32r(f32r(u - m) * SP_LOG2E))
        e.append(0.0 if v < 1.1754943508222875e-38 else v)      # ex2.approx.ftz
    s = 0.0
    for v in e:
        s = f32r(s + v)
    scale = f32r(1.0 - f32r(mn * K))
    two_b = f32r(B + B)
    acc, knots = 0.0, [-B]
    for v in e:
        acc = f32r(acc + f32r(mn + f32r(scale * f32r(v / s))))
        knots.append(f32r(-B + f32r(two_b * acc)))
    knots[K] = B
    return knots


def sp_bin(knots, v):
    """The largest k < K with knots[k] <= v (scanning from the left while the knots stay <= v)."""
    k = 0
    for j in range(1, len(knots) - 1):
        if knots[j] <= v:
            k = j
        else:
            break
    return k


def sp_softplus(r):
    return max(r, 0.0) + math.log1p(math.exp(-abs(r)))


def sp_setup(th, cfg, exact=False):
    """softmax(u), knots X, softmax(v), knots Y, derivatives d[0..K]: f64, but the knots are the f32 ones unless
    exact (the f64 knots of the README's formula, for the finite differences)."""
    K, B, mw, mh, md = cfg
    out = []
    for raw, mn in ((th[:K], mw), (th[K:2 * K], mh)):
        hat = softmax(raw)
        kn, c = [-B], 0.0
        for j in range(K - 1):
            c += mn + (1 - mn * K) * hat[j]
            kn.append(-B + 2 * B * c)
        kn.append(B)
        out += [hat, kn if exact else sp_knots_f32(raw, B, mn)]
    d = [1.0] + [md + sp_softplus(r) for r in th[2 * K:]] + [1.0]
    return out[0], out[1], out[2], out[3], d


def sp_xi(x, X, k, exact):
    """xi of x in bin k: f64, or as the kernels compute it in f32 (f32 knots, f32 x)."""
    if exact:
        return (x - X[k]) / (X[k + 1] - X[k])
    return f32r(f32r(x - X[k]) / f32r(X[k + 1] - X[k]))


def sp_eval(X, Y, d, k, xi):
    """(y, ld, N, D, M) at xi in bin k."""
    W, H = X[k + 1] - X[k], Y[k + 1] - Y[k]
    s, d0, d1 = H / W, d[k], d[k + 1]
    q = xi * (1 - xi)
    N = s * xi * xi + d0 * q
    D = s + (d0 + d1 - 2 * s) * q
    M = d1 * xi * xi + 2 * s * q + d0 * (1 - xi) ** 2
    return Y[k] + H * N / D, 2 * math.log(s) + math.log(M) - 2 * math.log(D), N, D, M


def sp_fwd(x, th, cfg, k=None, exact=False):
    """Forward (y, ld). k: the bin, held fixed even outside [-B, B] (for the differences); default the kernels'.
    exact: f64 knots and xi (else the f32 ones, see above)."""
    K, B = cfg[0], cfg[1]
    if k is None:
        if not (-B <= x <= B):
            return x, 0.0
        k = sp_bin(sp_knots_f32(th[:K], B, cfg[2]), x)
    _, X, _, Y, d = sp_setup(th, cfg, exact)
    y, ld, _, _, _ = sp_eval(X, Y, d, k, sp_xi(x, X, k, exact))
    return y, ld


def sp_inv(y, th, cfg):
    """Inverse (x, ld) by bisection of the forward inside the bin (independent of the README's quadratic)."""
    K, B = cfg[0], cfg[1]
    if not (-B <= y <= B):
        return y, 0.0
    _, X, _, Y, d = sp_setup(th, cfg)
    k = sp_bin(Y, y)
    lo, hi = 0.0, 1.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if sp_eval(X, Y, d, k, mid)[0] < y:
            lo = mid
        else:
            hi = mid
    xi = 0.5 * (lo + hi)
    return X[k] + xi * (X[k + 1] - X[k]), -sp_eval(X, Y, d, k, xi)[1]


def sp_inv_err(y, th, cfg):
    """Predicted error (of x, of ld) of the README's inverse evaluated in f32 at y: first-order propagation of the
    f32 rounding (eps = 6e-8 relative) of s, c2, a, b, c and b^2 - 4ac through xi = 2c / (-b - sqrt(b^2 - 4ac)).
    Near xi = 1 the README's a = H (s - d0) + t c2 and b = H d0 - t c2 cancel when d0 >> s or d1 (they tend to
    H (d1 - s) and H (2s - d1)), b^2 - 4ac cancels towards H^2 d1^2 when s >> d1, and -b - sqrt(.) cancels when
    b < 0; one ulp below a knot this reaches 6e-4 in x and 1 in ld with this test's large parameters. x errs by
    W dxi, ld by |d ld / d xi| dxi.
    (The CPU reference evaluates the same formula in f32.)"""
    K, B = cfg[0], cfg[1]
    if not (-B <= y <= B):
        return 0.0, 0.0
    _, X, _, Y, d = sp_setup(th, cfg)
    k = sp_bin(Y, y)
    W, H = X[k + 1] - X[k], Y[k + 1] - Y[k]
    s, d0, d1 = H / W, d[k], d[k + 1]
    t = y - Y[k]
    c2 = d0 + d1 - 2 * s
    a, b, c = H * (s - d0) + t * c2, H * d0 - t * c2, -s * t
    R = math.sqrt(max(b * b - 4 * a * c, 0.0))
    den = -b - R
    if R == 0 or den == 0:
        return math.inf, math.inf
    eps = 6e-8
    dc2 = eps * (d0 + d1 + 4 * s)
    da = eps * (H * (s + abs(s - d0)) + 2 * abs(t * c2) + abs(a)) + abs(t) * dc2
    db = eps * (2 * H * d0 + 2 * abs(t * c2) + abs(b)) + abs(t) * dc2
    dc = 2 * eps * abs(c)
    dR = eps * (2 * b * b + 8 * abs(a * c)) / (2 * R)
    xi = 2 * c / den
    g = 2 * c / (den * den)            # -d xi / d den
    dxi = (abs(g) * (abs(2 * c / R) * da + abs(1 + b / R) * db + dR) + abs(2 / den - g * 2 * a / R) * dc +
           eps * abs(xi))
    _, _, _, D, M = sp_eval(X, Y, d, k, xi)
    ld_xi = 2 * (d1 * xi + s * (1 - 2 * xi) - d0 * (1 - xi)) / M - 2 * c2 * (1 - 2 * xi) / D
    return W * dxi + eps * abs(X[k] + xi * W), abs(ld_xi) * dxi


def sp_bwd(x, th, gy, gld, cfg, k=None, exact=False):
    """(gx, gtheta) of L = gy y + gld ld by the README's chain rule, partials by the quotient rule."""
    K, B, mw, mh, md = cfg
    P = 3 * K - 1
    if k is None:
        if not (-B <= x <= B):
            return gy, [0.0] * P
        k = sp_bin(sp_knots_f32(th[:K], B, mw), x)
    wh, X, hh, Y, d = sp_setup(th, cfg, exact)
    W, H = X[k + 1] - X[k], Y[k + 1] - Y[k]
    s, d0, d1 = H / W, d[k], d[k + 1]
    xi = sp_xi(x, X, k, exact)
    q, qp = xi * (1 - xi), 1 - 2 * xi
    _, _, N, D, M = sp_eval(X, Y, d, k, xi)
    # partials of N, D, M in (xi, s, d0, d1)
    Nz = [2 * s * xi + d0 * qp, xi * xi, q, 0.0]
    Dz = [(d0 + d1 - 2 * s) * qp, 1 - 2 * q, q, q]
    Mz = [2 * d1 * xi + 2 * s * qp - 2 * d0 * (1 - xi), 2 * q, (1 - xi) ** 2, xi * xi]
    G = []
    for z in range(4):
        y_z = H * (Nz[z] * D - N * Dz[z]) / (D * D)
        ld_z = (2 / s if z == 1 else 0.0) + Mz[z] / M - 2 * Dz[z] / D
        G.append(gy * y_z + gld * ld_z)
    g_xi, g_s, g_d0, g_d1 = G
    gx = g_xi / W
    GX, GW = -g_xi / W, -(g_xi * xi + g_s * s) / W
    GY, GH = gy, gy * N / D + g_s / W
    gth = []
    for hat, mn, gk, gw in ((wh, mw, GX, GW), (hh, mh, GY, GH)):
        gh = [2 * B * (1 - mn * K) * (gk if j < k else gw if j == k else 0.0) for j in range(K)]
        dot = sum(a * b for a, b in zip(hat, gh))
        gth += [hat[j] * (gh[j] - dot) for j in range(K)]
    gr = [0.0] * (K - 1)
    if k >= 1:
        gr[k - 1] = g_d0 * sig(th[2 * K + k - 1])
    if k + 1 <= K - 1:
        gr[k] = g_d1 * sig(th[2 * K + k])
    return gx, gth + gr


def sp_fd_check(name, xs, th, gys, glds, cfg, idx):
    """The f64 backward (f64 knots and bin) against central differences of the f64 forward, bin held fixed.
    Minimum-size bins with slopes ~1e3 make the forward vary on scales of 1e-6 near the knots (and leave the region
    M > 0 a few 1e-7 beyond them), while the f64 knot differences W, H lose digits to cancellation (~1e-13 relative in
    L), so no single step fits every element: each difference is Richardson-extrapolated, (4 D(h/2) - D(h)) / 3,
    for h = 1e-2 min(W, H), 1e-3 min(W, H), ..., and the value is taken where two consecutive steps agree best.
    That is good to ~1e-7 relative, but only to ~1e-5 for the steepest elements (gradients up to 1e8), hence the
    tolerance of 1e-4 (an error in the backward's maths shows as O(1))."""
    K, B = cfg[0], cfg[1]
    P = 3 * K - 1
    num, ana = [], []
    for i in idx:
        x, t = xs[i], th[i * P:(i + 1) * P]
        _, X, _, Y, _ = sp_setup(t, cfg, exact=True)
        k = sp_bin(X, x)                  # the f64 knots' bin: xi in [0, 1] (M, D > 0)
        h0 = 1e-2 * min(X[k + 1] - X[k], Y[k + 1] - Y[k])

        def L(xv, tv):
            y, ld = sp_fwd(xv, tv, cfg, k, exact=True)
            return gys[i] * y + glds[i] * ld

        def diff(f):
            scale, h, rs = abs(f(0)) + 1, h0, []
            for _ in range(8):
                try:
                    a, b = f(h) - f(-h), f(h / 2) - f(-h / 2)
                    # Richardson, kept only where the differences of L stand well above its rounding noise
                    rs.append((4 * b / h - a / (2 * h)) / 3 if abs(b) >= 1e-11 * scale else None)
                except ValueError:            # log of M or D <= 0: the step left the region
                    rs.append(None)
                h /= 10
            pairs = [(abs(r1 - r2), r1) for r1, r2 in zip(rs, rs[1:]) if r1 is not None and r2 is not None]
            return min(pairs)[1] if pairs else 0.0       # L never moved: a zero derivative
        gx, gt = sp_bwd(x, t, gys[i], glds[i], cfg, k, exact=True)
        ana += [gx] + gt
        num.append(diff(lambda h: L(x + h, t)))
        for j in range(P):
            num.append(diff(lambda h: L(x, t[:j] + [t[j] + h] + t[j + 1:])))
    check(name, ana, num, 1e-4)


def sp_check(name, out, ref, groups, stride=1):
    """check() separately per group of elements (stride values each): the large-parameter elements have
    gradients up to 1e5, which would hide the errors of all the others in one relative norm."""
    for label, idx in groups:
        check('%s (%s)' % (name, label), [out[i * stride + j] for i in idx for j in range(stride)],
              [ref[i * stride + j] for i in idx for j in range(stride)])


def test_spline():
    E = kernel('spline.ptx')
    B, mw, mh, md = 3.0, f32r(1e-3), f32r(1e-3), f32r(1e-3)      # the values the kernel receives
    # (n, K, grid cap): odd n, so the last block is partial; cap 1 launches 300 elements on a (1, 1, 2) grid
    for n, K, cap in ((37, 3, None), (300, 10, 1), (41, 2, None)):
        cfg = (K, B, mw, mh, md)
        P = 3 * K - 1
        th = [f32r(random.gauss(0, 1.5)) for _ in range(n * P)]
        large = list(range(0, n, 7))      # large raw parameters: minimum-size bins, slopes from 1e-6 to 1e6
        for i in large:
            for j in range(P):
                th[i * P + j] = f32r(random.gauss(0, 8))
        for i in (9, 12):                 # saturated softmaxes and softplus
            th[i * P:(i + 1) * P] = [30.0 if j % 3 == i % 2 else -30.0 for j in range(P)]
        large = sorted(set(large) | {9, 12})
        groups = (('N(0, 1.5) params', [i for i in range(n) if i not in large]), ('large params', large))
        xs = rnd(n, -3.5, 3.5)
        xs[:6] = [-3.0, 3.0, f32_step(3.0, 1), f32_step(-3.0, -1), f32_step(3.0, -1), f32_step(-3.0, 1)]
        xs[6], xs[7], xs[n - 1] = 0.0, 3.5, math.nan      # NaN: outside too (identity, ld = 0)
        at_knot = set(range(8, n, 3))
        for i in at_knot:                 # just below, on, just above an inner knot
            kn = sp_knots_f32(th[i * P:i * P + K], B, mw)
            xs[i] = f32_step(kn[1 + (i // 9) % (K - 1)], (i // 3) % 3 - 1)
        gys, glds = rnd(n, -2, 2), rnd(n, -2, 2)
        inside = [i for i in range(n) if -B <= xs[i] <= B]
        outside = [i for i in range(n) if i not in inside]
        # the first 16 elements inside [-B, B] and every large-parameter one
        sp_fd_check('spline f64 backward vs differences K=%d' % K, xs, th, gys, glds, cfg,
                    sorted(set(inside[:16]) | (set(inside) & set(large))))

        grid = grid1d(n, cap)
        prm = lambda inv: pk('IIIIffff', n, K, inv, 0, B, mw, mh, md)
        m = Machine()
        xa, ta = m.alloc(xs), m.alloc(th)

        def run_fwd(inp, inv):
            oa = m.alloc([math.nan] * (2 * n) + [12345.0] * 3)      # poisoned, and sentinels past the end
            m.launch(E['spline_fwd'], grid, (256, 1, 1), prm(inv), [m.alloc(inp), ta, oa])
            out = m.read(oa, 2 * n + 3)
            sentinel_ok('spline_fwd inverse=%d' % inv, out, 2 * n)
            return out[:n], out[n:2 * n]

        # forward
        ys, lds = run_fwd(xs, 0)
        ref = [sp_fwd(x, th[i * P:(i + 1) * P], cfg) for i, x in enumerate(xs)]
        sp_check('spline_fwd n=%d K=%d y' % (n, K), ys, [r[0] for r in ref], groups)
        sp_check('spline_fwd n=%d K=%d ld' % (n, K), lds, [r[1] for r in ref], groups)
        if any(pk('f', ys[i]) != pk('f', xs[i]) or lds[i] != 0.0 for i in outside):
            print('%-50s identity outside [-B, B] not exact FAIL' % 'spline_fwd')
            FAIL.append('spline_fwd outside')

        # inverse of the kernel's own forward output, where that is well conditioned: x(y) multiplies the f32
        # rounding of y by dx/dy (up to 1e6 here), and ld(x) that by |d ld / dx| (up to 1e6 next to the knots of
        # minimum-size bins), so only elements with dy/dx >= 1e-2, |d ld / dx| <= 100 dy/dx and a README root
        # predicted good enough (sp_inv_err within SP_INV_LIM) take part, and
        # no x beside a knot (y may round into the next bin, where ld has another slope).
        xr, ldr = run_fwd(ys, 1)
        tame = [i for i in range(n) if i not in at_knot and ref[i][1] >= math.log(1e-2) and
                abs(sp_bwd(xs[i], th[i * P:(i + 1) * P], 0.0, 1.0, cfg)[0]) <= 100 * math.exp(ref[i][1]) and
                all(e <= lim for e, lim in zip(sp_inv_err(ys[i], th[i * P:(i + 1) * P], cfg), SP_INV_LIM))]
        check('spline inverse(forward(x)) = x n=%d K=%d (%d el.)' % (n, K, len(tame)),
              [xr[i] for i in tame], [xs[i] for i in tame])
        check('spline inverse ld = -forward ld n=%d K=%d' % (n, K), [ldr[i] for i in tame], [-lds[i] for i in tame])

        # inverse on inputs of its own (on and beside the Y knots, +-B, outside) against the bisection reference;
        # x and ld where sp_inv_err predicts the README's root to be good enough for them (SP_INV_LIM).
        yin = rnd(n, -3.5, 3.5)
        yin[:4] = [-3.0, 3.0, f32_step(3.0, 1), f32_step(-3.0, -1)]
        for i in range(4, n, 3):
            kn = sp_knots_f32(th[i * P + K:i * P + 2 * K], B, mh)
            yin[i] = f32_step(kn[1 + (i // 9) % (K - 1)], (i // 3) % 3 - 1)
        xi_, ldi = run_fwd(yin, 1)
        ref = [sp_inv(y, th[i * P:(i + 1) * P], cfg) for i, y in enumerate(yin)]
        err = [sp_inv_err(y, th[i * P:(i + 1) * P], cfg) for i, y in enumerate(yin)]
        for q, name in ((0, 'x'), (1, 'ld')):
            sub = [(label, [i for i in idx if err[i][q] <= SP_INV_LIM[q]]) for label, idx in groups]
            sp_check('spline inverse n=%d K=%d %s (%d ill-cond. out)' % (n, K, name, n - sum(len(v) for _, v in sub)),
                     xi_ if q == 0 else ldi, [r[q] for r in ref], sub)

        # backward
        ga = m.alloc(gys + glds)
        gxa = m.alloc([math.nan] * n + [12345.0] * 3)
        gta = m.alloc([math.nan] * (n * P) + [12345.0] * 3)
        m.launch(E['spline_bwd'], grid, (256, 1, 1), prm(0), [xa, ta, ga, gxa, gta])
        gx = m.read(gxa, n + 3)
        gt = m.read(gta, n * P + 3)
        sentinel_ok('spline_bwd gx', gx, n)
        sentinel_ok('spline_bwd gtheta', gt, n * P)
        ref = [sp_bwd(x, th[i * P:(i + 1) * P], gys[i], glds[i], cfg) for i, x in enumerate(xs)]
        sp_check('spline_bwd n=%d K=%d gx' % (n, K), gx[:n], [r[0] for r in ref], groups)
        rt = sum((r[1] for r in ref), [])
        sp_check('spline_bwd n=%d K=%d gtheta' % (n, K), gt[:n * P], rt, groups, P)
        zeros = [i * P + j for i in outside for j in range(P)] + \
                [i * P + j for i in inside for j in range(2 * K, P) if rt[i * P + j] == 0.0]
        if any(gt[j] != 0.0 for j in zeros) or any(gx[i] != gys[i] for i in outside):
            print('%-50s exact zeros / gx = gy outside FAIL' % 'spline_bwd')
            FAIL.append('spline_bwd zeros')


# ------------------------------------------------------------------ sos
# Sum-of-squares polynomial transform (kernels/README.md, "sos"), references in f64 written from the README's maths
# (x and theta are the f32 values the kernel receives). A local generator keeps the data the same whether the family
# runs alone or after the others. The f64 backward is checked against differences of the f64 forward first.
# Besides the f64 comparisons, y and the inverse's x must equal bit for bit an f32 emulation of the README's loop
# order (sos_f32), which is what lets the CPU, WGSL and CUDA backends agree to rounding. Two details the README leaves
# open are fixed there as in kernels/sos.ptx: c is added once after the double sum (acc starts at 0), and Horner's
# p z + a is a rounded multiply then a rounded add (no fma).
SOS_BOUND, SOS_ITERS = 11.0, 40


def sos_split(th, K, r):
    return [th[k * (r + 1):(k + 1) * (r + 1)] for k in range(K)], th[K * (r + 1)]


def sos_terms(x, a):
    """The terms a[k][l] a[k][m] x^(l+m+1) / (l+m+1) of f - c, in the README's loop order."""
    return [al * am * x ** (l + m + 1) / (l + m + 1) for ak in a for l, al in enumerate(ak) for m, am in enumerate(ak)]


def sos_p(x, ak):
    """(p_k(x), p_k'(x))."""
    return (sum(al * x ** l for l, al in enumerate(ak)),
            sum(l * al * x ** (l - 1) for l, al in enumerate(ak) if l))


def sos_fwd_ref(x, th, K, r):
    """(f(x), log f'(x))."""
    a, c = sos_split(th, K, r)
    return c + sum(sos_terms(x, a)), math.log(sum(sos_p(x, ak)[0] ** 2 for ak in a))


def sos_inv_ref(y, th, K, r):
    """(x, -log f'(x)) with f(x) = y on [-bound, bound] by f64 bisection to full resolution (ends when beyond)."""
    lo, hi = -SOS_BOUND, SOS_BOUND
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if sos_fwd_ref(mid, th, K, r)[0] < y:
            lo = mid
        else:
            hi = mid
    x = 0.5 * (lo + hi)
    return x, -sos_fwd_ref(x, th, K, r)[1]


def sos_f32(z, th, K, r):
    """(f(z), f'(z)) in f32 exactly as the README orders them (every operation rounded to f32 as IEEE does): the
    kernels must match this bit for bit, which pins the loop order that all backends share."""
    a, c = sos_split(th, K, r)
    acc = 0.0
    for ak in a:
        xl1 = z
        for l in range(r + 1):
            pw = xl1
            for m in range(r + 1):
                acc = f32r(acc + f32r(f32r(f32r(ak[l] * ak[m]) * pw) / (l + m + 1)))
                pw = f32r(pw * z)
            xl1 = f32r(xl1 * z)
    fp = 0.0
    for ak in a:
        p = ak[r]
        for l in range(r - 1, -1, -1):
            p = f32r(f32r(p * z) + ak[l])
        fp = f32r(fp + f32r(p * p))
    return f32r(c + acc), fp


def sos_inv_f32(y, th, K, r):
    """The README's bisection in f32 (x only)."""
    lo, hi = -SOS_BOUND, SOS_BOUND
    for _ in range(SOS_ITERS):
        mid = f32r(0.5 * f32r(lo + hi))
        if sos_f32(mid, th, K, r)[0] < y:
            lo = mid
        else:
            hi = mid
    return f32r(0.5 * f32r(lo + hi))


def sos_exact(name, out, ref):
    bad = [i for i, (o, q) in enumerate(zip(out, ref)) if pk('f', o) != pk('f', q)]
    print('%-50s %d of %d differ %s' % (name, len(bad), len(ref), 'FAIL' if bad else 'ok'))
    (FAIL if bad else PASSED).append(name)


def sos_bwd_ref(x, th, gy, gld, K, r):
    """(gx, gtheta) of L = gy f(x) + gld log f'(x), by the README's formulas."""
    a, c = sos_split(th, K, r)
    pp = [sos_p(x, ak) for ak in a]
    fp = sum(p * p for p, _ in pp)
    gx = gy * fp + gld * sum(2 * p * dp for p, dp in pp) / fp
    gt = []
    for ak, (p, _) in zip(a, pp):
        for l in range(r + 1):
            gt.append(gy * 2 * sum(am * x ** (l + m + 1) / (l + m + 1) for m, am in enumerate(ak)) +
                      gld * 2 * p * x ** l / fp)
    return gx, gt + [gy]


def sos_fd_check(name, xs, th, gys, glds, K, r):
    """The f64 backward against Richardson-extrapolated central differences of L = gy f + gld ld (steps h, h / 2
    with h = 1e-4: truncation ~h^4 and rounding ~1e-16 |L| / h, both far below the 1e-8 tolerance, while an error
    in the backward's maths shows as O(1))."""
    P = K * (r + 1) + 1
    num, ana = [], []
    for i, x in enumerate(xs):
        t = th[i * P:(i + 1) * P]

        def L(xv, tv):
            y, ld = sos_fwd_ref(xv, tv, K, r)
            return gys[i] * y + glds[i] * ld

        def diff(f, h=1e-4):
            return (4 * (f(h / 2) - f(-h / 2)) / h - (f(h) - f(-h)) / (2 * h)) / 3
        gx, gt = sos_bwd_ref(x, t, gys[i], glds[i], K, r)
        ana += [gx] + gt
        num.append(diff(lambda h: L(x + h, t)))
        for j in range(P):
            num.append(diff(lambda h: L(x, t[:j] + [t[j] + h] + t[j + 1:])))
    check(name, ana, num, 1e-8)


def sos_worst(name, out, ref, stride=1):
    """The worst error of one element (stride values) relative to max(its own norm, 1), printed under the norm-wise
    check() (informational: it shows that no small element hides behind the large ones; values that cross zero, y
    and ld, are compared in absolute terms there)."""
    w = 0.0
    for i in range(0, len(ref), stride):
        o, q = out[i:i + stride], ref[i:i + stride]
        w = max(w, math.sqrt(sum((a - b) ** 2 for a, b in zip(o, q)) / max(sum(b * b for b in q), 1.0)))
    print('%-50s   worst element %.3g' % (name, w))


def test_sos():
    E = kernel('sos.ptx')
    rng = random.Random(2019)

    def f32s(vals):
        return [f32r(v) for v in vals]
    # (n, K, r, grid cap): the default (K, r) = (3, 4) on n = 37 (odd, one partial block) and (2, 2) on n = 300
    # launched on a (1, 1, 2) grid (the second block partial). (Each inverse thread evaluates f iters = 40 times: the
    # simulator needs ~15 s for an n = 300 inverse with (3, 4), so that combination is left out.)
    for n, K, r, cap in ((37, 3, 4, None), (300, 2, 2, 1)):
        P = K * (r + 1) + 1
        th = []
        for _ in range(n):
            th += f32s([rng.gauss(0, 0.5) for _ in range(P - 1)] + [rng.gauss(0, 1)])
        xs = f32s([rng.uniform(-3, 3) for _ in range(n)])
        xs[:3] = [0.0, -3.0, 3.0]
        gys, glds = f32s([rng.uniform(-2, 2) for _ in range(n)]), f32s([rng.uniform(-2, 2) for _ in range(n)])
        sos_fd_check('sos f64 backward vs differences K=%d r=%d (37 el.)' % (K, r), xs[:37], th, gys, glds, K, r)
        grid = grid1d(n, cap)
        tag = 'n=%d K=%d r=%d' % (n, K, r)
        prm = lambda inv: pk('IIIIfIII', n, K, r, inv, SOS_BOUND, SOS_ITERS, 0, 0)
        m = Machine()
        ta = m.alloc(th)

        def run_fwd(inp, inv):
            oa = m.alloc([math.nan] * (2 * n) + [12345.0] * 3)      # poisoned, and sentinels past the end
            m.launch(E['sos_fwd'], grid, (256, 1, 1), prm(inv), [m.alloc(inp), ta, oa])
            out = m.read(oa, 2 * n + 3)
            sentinel_ok('sos_fwd inverse=%d' % inv, out, 2 * n)
            return out[:n], out[n:2 * n]

        # forward
        ys, lds = run_fwd(xs, 0)
        ref = [sos_fwd_ref(x, th[i * P:(i + 1) * P], K, r) for i, x in enumerate(xs)]
        check('sos_fwd %s y' % tag, ys, [q[0] for q in ref])
        sos_worst('sos_fwd %s y' % tag, ys, [q[0] for q in ref])
        check('sos_fwd %s ld' % tag, lds, [q[1] for q in ref])
        sos_worst('sos_fwd %s ld' % tag, lds, [q[1] for q in ref])
        sos_exact('sos_fwd %s y bit-exact (README f32 order)' % tag, ys,
                  [sos_f32(x, th[i * P:(i + 1) * P], K, r)[0] for i, x in enumerate(xs)])

        # inverse of the kernel's own forward output (inputs ys[j] = +-1e20 beyond f(+-bound) clamp to the ends)
        yin = list(ys)
        yin[3], yin[4] = 1e20, -1e20
        xr, ldr = run_fwd(yin, 1)
        xref = list(xs)
        xref[3], xref[4] = SOS_BOUND, -SOS_BOUND
        # Tolerance 1e-5 norm-wise: the bisection's own resolution 2 bound / 2^iters = 22 / 2^40 = 2e-11 is far below
        # f32, whose bracket stops at adjacent floats (x to half an ulp, <= 6e-8 relative); beyond that x errs by
        # the f32 rounding of f (the stored y, and the kernel's f(mid): a few ulps of the larger terms a a x^(l+m+1) /
        # (l+m+1), up to ~1e3 for (3, 4) at |x| = 3) divided by f'(x). Measured: 5e-8 .. 2.4e-7 norm-wise, worst
        # element 7e-6 absolute (f' = 0.22 at x = -2.87, f ~ 10, 1.5 ulp); a wrong f or bracket moves x by O(1e-2).
        # The inverse ld then errs by |d ld / dx| dx (worst 4.7e-5 absolute at that element, 1.3e-6 norm-wise).
        check('sos inverse(forward(x)) = x %s' % tag, xr, xref)
        sos_worst('sos inverse(forward(x)) = x %s' % tag, xr, xref)
        sos_exact('sos inverse %s x bit-exact (README f32 bisection)' % tag, xr,
                  [sos_inv_f32(y, th[i * P:(i + 1) * P], K, r) for i, y in enumerate(yin)])
        ldref = [-q[1] for q in ref]
        ldref[3], ldref[4] = sos_inv_ref(1e20, th[3 * P:4 * P], K, r)[1], sos_inv_ref(-1e20, th[4 * P:5 * P], K, r)[1]
        check('sos inverse ld = -forward ld %s' % tag, ldr, ldref)
        sos_worst('sos inverse ld = -forward ld %s' % tag, ldr, ldref)

        # backward
        xa = m.alloc(xs)
        ga = m.alloc(gys + glds)
        gxa = m.alloc([math.nan] * n + [12345.0] * 3)
        gta = m.alloc([math.nan] * (n * P) + [12345.0] * 3)
        m.launch(E['sos_bwd'], grid, (256, 1, 1), prm(0), [xa, ta, ga, gxa, gta])
        gx = m.read(gxa, n + 3)
        gt = m.read(gta, n * P + 3)
        sentinel_ok('sos_bwd gx', gx, n)
        sentinel_ok('sos_bwd gtheta', gt, n * P)
        ref = [sos_bwd_ref(x, th[i * P:(i + 1) * P], gys[i], glds[i], K, r) for i, x in enumerate(xs)]
        check('sos_bwd %s gx' % tag, gx[:n], [q[0] for q in ref])
        sos_worst('sos_bwd %s gx' % tag, gx[:n], [q[0] for q in ref])
        rt = sum((q[1] for q in ref), [])
        check('sos_bwd %s gtheta' % tag, gt[:n * P], rt)
        sos_worst('sos_bwd %s gtheta' % tag, gt[:n * P], rt, P)


# ------------------------------------------------------------------ conv2d / conv_transpose2d
def conv_prm(n, cin, h, w, cout, oh, ow, kh, kw, s, p, has_bias, ksplit=0):
    return pk('16I', n, cin, h, w, cout, oh, ow, kh, kw, s, p, has_bias, ksplit, 0, 0, 0)


def conv_ref(X, W, B, n, cin, h, w, cout, kh, kw, s, p, oh, ow):
    y = []
    for b in range(n):
        for co in range(cout):
            for oy in range(oh):
                for ox in range(ow):
                    acc = B[co] if B else 0.0
                    for ci in range(cin):
                        for i in range(kh):
                            for j in range(kw):
                                iy, ix = oy * s - p + i, ox * s - p + j
                                if 0 <= iy < h and 0 <= ix < w:
                                    xi = ((b * cin + ci) * h + iy) * w + ix
                                    acc += X[xi] * W[((co * cin + ci) * kh + i) * kw + j]
                    y.append(acc)
    return y


def test_conv2d(E=None, cases=None, wgrad=True):
    E = E or kernel('conv2d.ptx')
    # (n, cin, h, w, cout, kh, kw, s, p, bias, grid along z, reverse): one tile with image padding on
    # every side; the autoencoder's k4 s2 p1; 98 columns over two tiles laid out along z; 70 output channels
    # (two row tiles, the fastest in the block number) over 9 columns.
    for (n, cin, h, w, cout, kh, kw, s, p, bias, zsplit, rev) in cases or [
            (2, 3, 7, 6, 5, 3, 3, 2, 1, True, False, False), (1, 3, 5, 5, 3, 4, 4, 2, 1, False, False, True),
            (2, 2, 7, 7, 3, 1, 1, 1, 0, True, True, False), (1, 1, 3, 3, 70, 1, 1, 1, 0, True, False, False)]:
        oh, ow = (h + 2 * p - kh) // s + 1, (w + 2 * p - kw) // s + 1
        X, W, B = rnd(n * cin * h * w), rnd(cout * cin * kh * kw), rnd(cout)
        ny = n * cout * oh * ow
        m = Machine()
        xa, wa, ba = m.alloc(X), m.alloc(W), m.alloc(B)
        ya = m.alloc([12345.0] * (ny + 3))
        blocks = tiles(cout) * tiles(n * oh * ow)
        grid = fold(blocks, (1, 1, blocks)) if zsplit else fold(blocks)
        t0 = time.time()
        m.launch(E['conv2d_fwd'], grid, (16, 16, 1), conv_prm(n, cin, h, w, cout, oh, ow, kh, kw, s, p, int(bias)),
                 [xa, wa, ba, ya], rev)
        Y = m.read(ya, ny + 3)
        sentinel_ok('conv2d_fwd', Y, ny)
        ref = conv_ref(X, W, B if bias else None, n, cin, h, w, cout, kh, kw, s, p, oh, ow)
        check('conv2d_fwd n%d ci%d %dx%d co%d k%dx%d s%d p%d b%d (%.1fs)' % (n, cin, h, w, cout, kh, kw, s, p, bias,
                                                                          time.time() - t0), Y[:ny], ref)

    if not wgrad:
        return
    # Weight gradient, split over the positions into slices of 16 (the host sums the slices).
    for (n, cin, h, w, cout, kh, kw, s, p, ksplit) in [(2, 3, 7, 6, 5, 3, 3, 2, 1, 16),
                                                       (1, 2, 5, 5, 3, 4, 4, 2, 1, 16),
                                                       (1, 1, 6, 6, 70, 1, 1, 1, 0, 16)]:
        oh, ow = (h + 2 * p - kh) // s + 1, (w + 2 * p - kw) // s + 1
        ltot = n * oh * ow
        slices = (ltot + ksplit - 1) // ksplit
        X, G = rnd(n * cin * h * w), rnd(n * cout * oh * ow)
        nk = cin * kh * kw
        m = Machine()
        xa, ga = m.alloc(X), m.alloc(G)
        da = m.alloc([12345.0] * (slices * cout * nk + 3))
        t0 = time.time()
        m.launch(E['conv2d_wgrad'], fold(tiles(nk) * tiles(cout) * slices), (16, 16, 1),
                 conv_prm(n, cin, h, w, cout, oh, ow, kh, kw, s, p, 0, ksplit), [xa, ga, da])
        D = m.read(da, slices * cout * nk + 3)
        sentinel_ok('conv2d_wgrad', D, slices * cout * nk)
        dw = [sum(D[z * cout * nk + i] for z in range(slices)) for i in range(cout * nk)]
        ref = [0.0] * (cout * nk)
        for b in range(n):
            for co in range(cout):
                for oy in range(oh):
                    for ox in range(ow):
                        gv = G[((b * cout + co) * oh + oy) * ow + ox]
                        for ci in range(cin):
                            for i in range(kh):
                                for j in range(kw):
                                    iy, ix = oy * s - p + i, ox * s - p + j
                                    if 0 <= iy < h and 0 <= ix < w:
                                        xi = ((b * cin + ci) * h + iy) * w + ix
                                        ref[((co * cin + ci) * kh + i) * kw + j] += gv * X[xi]
        check('conv2d_wgrad n%d ci%d %dx%d co%d k%dx%d s%d p%d %d slices (%.1fs)' % (
            n, cin, h, w, cout, kh, kw, s, p, slices, time.time() - t0), dw, ref)


def test_conv_transpose2d():
    E = kernel('conv_transpose2d.ptx')
    # (n, cin, h, w, cout, kh, kw, s, p, output_padding, bias, reverse): the autoencoder's k4 s2 p1, stride 1,
    # stride 3 with output padding and a non-square kernel (tiles laid out along z), a 1x1 kernel at
    # stride 2 whose odd output rows and columns meet no tap (bias only), and 70 output channels (two row
    # tiles, the fastest in the block number).
    for (n, cin, h, w, cout, kh, kw, s, p, op, bias, rev) in [(2, 3, 4, 3, 5, 4, 4, 2, 1, 0, True, False),
                                                             (1, 4, 4, 5, 3, 3, 3, 1, 1, 0, False, True),
                                                             (1, 2, 3, 3, 3, 3, 2, 3, 2, 1, True, False),
                                                             (2, 2, 3, 4, 3, 1, 1, 2, 0, 1, True, False),
                                                             (1, 1, 2, 2, 70, 1, 1, 2, 0, 0, True, False)]:
        oh, ow = (h - 1) * s - 2 * p + kh + op, (w - 1) * s - 2 * p + kw + op
        X, W, B = rnd(n * cin * h * w), rnd(cin * cout * kh * kw), rnd(cout)
        ny = n * cout * oh * ow
        m = Machine()
        xa, wa, ba = m.alloc(X), m.alloc(W), m.alloc(B)
        ya = m.alloc([12345.0] * (ny + 3))
        t0 = time.time()
        # One run of column tiles per output phase (py, px), as the host computes them.
        ctiles = sum(tiles(n * max(0, -(-(oh - py) // s)) * max(0, -(-(ow - px) // s)))
                     for py in range(s) for px in range(s))
        blocks = tiles(cout) * ctiles
        grid = fold(blocks, (1, 1, blocks)) if s == 3 else fold(blocks)
        m.launch(E['conv_transpose2d_fwd'], grid, (16, 16, 1),
                 conv_prm(n, cin, h, w, cout, oh, ow, kh, kw, s, p, int(bias)), [xa, wa, ba, ya], rev)
        Y = m.read(ya, ny + 3)
        sentinel_ok('conv_transpose2d_fwd', Y, ny)
        ref = [B[co] if bias else 0.0 for b in range(n) for co in range(cout) for _ in range(oh * ow)]
        for b in range(n):
            for ci in range(cin):
                for iy in range(h):
                    for ix in range(w):
                        xv = X[((b * cin + ci) * h + iy) * w + ix]
                        for co in range(cout):
                            for i in range(kh):
                                for j in range(kw):
                                    oy, ox = iy * s - p + i, ix * s - p + j
                                    if 0 <= oy < oh and 0 <= ox < ow:
                                        wv = W[((ci * cout + co) * kh + i) * kw + j]
                                        ref[((b * cout + co) * oh + oy) * ow + ox] += xv * wv
        check('conv_transpose2d_fwd n%d ci%d %dx%d co%d k%dx%d s%d p%d op%d b%d (%.1fs)' % (
            n, cin, h, w, cout, kh, kw, s, p, op, bias, time.time() - t0), Y[:ny], ref)


# ------------------------------------------------------------------ made
def test_made(cases, reverse=False):
    E = kernel('made.ptx')
    for (m_, n_, k_, ta, tb, mb, mc, bs) in cases:
        A = rnd(m_ * k_)
        B = rnd(n_ * k_)
        # the mask has b's layout when mask_b, c's ([m, n]) when mask_c
        M = [float(random.random() < 0.6) for _ in range(max(n_ * k_, m_ * n_))]
        bias = rnd(n_)
        mach = Machine()
        aa, ba, ma, bb = mach.alloc(A), mach.alloc(B), mach.alloc(M), mach.alloc(bias)
        ca = mach.alloc([12345.0] * (m_ * n_ + 3))
        prm = pk('8I', m_, n_, k_, ta, tb, mb, mc, bs)
        t0 = time.time()
        mach.launch(E['made'], fold(tiles(n_) * tiles(m_)), (16, 16, 1), prm, [aa, ba, ma, bb, ca], reverse)
        C = mach.read(ca, m_ * n_ + 3)
        sentinel_ok('made', C, m_ * n_)
        ref = []
        for i in range(m_):
            for j in range(n_):
                s = 0.0
                for l in range(k_):
                    av = A[l * m_ + i if ta else i * k_ + l]
                    bo = j * k_ + l if tb else l * n_ + j
                    s += av * B[bo] * (M[bo] if mb else 1.0)
                ref.append(s * (M[i * n_ + j] if mc else 1.0) + (bias[j] if bs else 0.0))
        check('made m%d n%d k%d ta%d tb%d mask_b%d mask_c%d bias%d (%.1fs)' % (m_, n_, k_, ta, tb, mb, mc, bs,
                                                                           time.time() - t0), C[:m_ * n_], ref)


# ------------------------------------------------------------------ coupling
def coupling_ref(xs, th, slot, rows, d, P, affine, inverse, clamp):
    """Packed forward output and a closure for the backward, in double precision."""
    W = 2 * P if affine else P

    def scale(r):
        return clamp * math.tanh(r / clamp) if clamp > 0 else r
    out = [0.0] * (rows * d + rows)
    for b in range(rows):
        acc = 0.0
        for i in range(d):
            x = xs[b * d + i]
            c = slot[i]
            if c == 0xffffffff:
                out[b * d + i] = x
                continue
            t = th[b * W + c]
            if not affine:
                out[b * d + i] = x - t if inverse else x + t
                continue
            s = scale(th[b * W + P + c])
            if inverse:
                acc -= s
                out[b * d + i] = (x - t) * math.exp(-s)
            else:
                acc += s
                out[b * d + i] = x * math.exp(s) + t
        out[rows * d + b] = acc
    return out


def coupling_bwd_ref(xs, th, slot, g, rows, d, P, affine, clamp):
    W = 2 * P if affine else P
    gx = [0.0] * (rows * d)
    gt = [0.0] * (rows * W)
    for b in range(rows):
        gld = g[rows * d + b]
        for i in range(d):
            gy = g[b * d + i]
            c = slot[i]
            if c == 0xffffffff:
                gx[b * d + i] = gy
                continue
            gt[b * W + c] = gy
            if not affine:
                gx[b * d + i] = gy
                continue
            r = th[b * W + P + c]
            u = math.tanh(r / clamp) if clamp > 0 else 0.0
            s = clamp * u if clamp > 0 else r
            e = math.exp(s)
            gx[b * d + i] = gy * e
            gs = gy * xs[b * d + i] * e + gld
            gt[b * W + P + c] = gs * (1 - u * u) if clamp > 0 else gs
    return gx, gt


def test_coupling():
    E = kernel('coupling.ptx')
    PASS_ = 0xffffffff
    mask = [1, 0, 0, 1, 0, 1, 0, 0, 1]
    compact, n0 = [], 0
    for mv in mask:
        compact.append(PASS_ if mv else n0)
        n0 += 0 if mv else 1
    dense = [PASS_ if mv else i for i, mv in enumerate(mask)]
    for (rows, slot, P, affine, inverse, clamp, name) in [
            (261, compact, 5, 1, 0, 3.0, 'affine clamp'), (37, compact, 5, 1, 0, 0.0, 'affine'),
            (37, compact, 5, 0, 0, 0.0, 'additive'), (37, dense, 9, 1, 0, 2.0, 'affine dense'),
            (37, compact, 5, 1, 1, 3.0, 'inverse affine clamp'), (37, compact, 5, 0, 1, 0.0, 'inverse additive'),
            (19, [0, 1, 2, 3, 4, 5, 6, 7, 8], 9, 1, 0, 3.0, 'MAF (no mask)')]:
        d = len(slot)
        W = 2 * P if affine else P
        xs = rnd(rows * d)
        th = rnd(rows * W, -1.5, 1.5)
        g = rnd(rows * d + rows)
        prm = pk('5I2fI', rows, d, P, affine, inverse, clamp, 1.0 / clamp if clamp > 0 else 0.0, 0)
        m = Machine()
        xa, ta, sa, ga = m.alloc(xs), m.alloc(th), m.alloc(slot, 'I'), m.alloc(g)
        oa = m.alloc([12345.0] * (rows * d + rows + 2))
        m.launch(E['coupling_fwd'], grid1d(rows), (256, 1, 1), prm, [xa, ta, sa, oa])
        out = m.read(oa, rows * d + rows + 2)
        sentinel_ok('coupling_fwd ' + name, out, rows * d + rows)
        check('coupling_fwd %s rows %d' % (name, rows), out[:rows * d + rows],
              coupling_ref(xs, th, slot, rows, d, P, affine, inverse, clamp))
        if inverse:
            continue
        gxa = m.alloc([12345.0] * (rows * d + 2))
        gta = m.alloc([float('nan')] * (rows * W) + [12345.0] * 2)
        m.launch(E['coupling_bwd'], grid1d(rows), (256, 1, 1), prm, [xa, ta, sa, ga, gxa, gta])
        gx = m.read(gxa, rows * d + 2)
        gt = m.read(gta, rows * W + 2)
        sentinel_ok('coupling_bwd gx ' + name, gx, rows * d)
        sentinel_ok('coupling_bwd gtheta ' + name, gt, rows * W)
        rgx, rgt = coupling_bwd_ref(xs, th, slot, g, rows, d, P, affine, clamp)
        check('coupling_bwd %s gx' % name, gx[:rows * d], rgx)
        check('coupling_bwd %s gtheta' % name, gt[:rows * W], rgt)


# ------------------------------------------------------------------ softclip
def test_softclip():
    E = kernel('softclip.ptx')
    B = 2.5
    n = 300
    xs = rnd(n, -4, 4) + [0.0]
    n += 1
    g = rnd(2 * n)
    edge = f32r(B * f32r(1 - 2.0 ** -20))
    for inverse in (0, 1):
        m = Machine()
        xa, ga = m.alloc(xs), m.alloc(g)
        oa = m.alloc([12345.0] * (2 * n + 2))
        prm = pk('2I2f', n, inverse, B, 1.0 / B)
        m.launch(E['softclip_fwd'], grid1d(n), (256, 1, 1), prm, [xa, oa])
        out = m.read(oa, 2 * n + 2)
        sentinel_ok('softclip_fwd', out, 2 * n)
        ys, lds = [], []
        for x in xs:
            if inverse:
                v = min(max(x, -edge), edge)
                a = 1 - abs(v) / B
            else:
                v, a = x, 1 + abs(x) / B
            ys.append(v / a)
            lds.append(-2 * math.log(a))
        # values held at the edge are ~1e6 B: compare y and ld separately so they do not drown the rest
        check('softclip_fwd inverse=%d y' % inverse, out[:n], ys)
        inside = [i for i in range(n) if abs(xs[i]) < edge]
        check('softclip_fwd inverse=%d y (inside the edge)' % inverse, [out[i] for i in inside], [ys[i] for i in inside])
        check('softclip_fwd inverse=%d ld' % inverse, out[n:2 * n], lds)
    m = Machine()
    xa, ga = m.alloc(xs), m.alloc(g)
    gxa = m.alloc([12345.0] * (n + 2))
    m.launch(E['softclip_bwd'], grid1d(n), (256, 1, 1), pk('2I2f', n, 0, B, 1.0 / B), [xa, ga, gxa])
    gx = m.read(gxa, n + 2)
    sentinel_ok('softclip_bwd', gx, n)
    ref = []
    for i, x in enumerate(xs):
        a = 1 + abs(x) / B
        sg = (x > 0) - (x < 0)
        ref.append(g[i] / (a * a) - 2 * g[n + i] * sg / (B * a))
    check('softclip_bwd', gx[:n], ref)


# ------------------------------------------------------------------ lu
def lu_parts(d, lo, up, ls, sg):
    L = [[lo[k * d + m] if m < k else (1.0 if m == k else 0.0) for m in range(d)] for k in range(d)]
    U = [[up[m * d + j] if j > m else (sg[m] * math.exp(ls[m]) if j == m else 0.0) for j in range(d)]
         for m in range(d)]
    return L, U


def test_lu():
    E = kernel('lu.ptx')
    for d in (5, 17):
        lo, up, ls = rnd(d * d, -0.5, 0.5), rnd(d * d, -0.5, 0.5), rnd(d, -0.7, 0.7)
        perm = [0.0] * (d * d)
        for i in range(d):
            perm[i * d + (i * 3 + 2) % d] = 1.0
        sg = [-1.0 if i % 3 == 1 else 1.0 for i in range(d)]
        g = rnd(d * d + 1)
        m = Machine()
        bufs = [m.alloc(v) for v in (lo, up, ls, perm, sg)]
        oa = m.alloc([12345.0] * (d * d + 3))
        prm = pk('4I', d, 0, 0, 0)
        m.launch(E['lu_fwd'], grid1d(d * d + 1), (256, 1, 1), prm, bufs + [oa])
        out = m.read(oa, d * d + 3)
        sentinel_ok('lu_fwd', out, d * d + 1)
        L, U = lu_parts(d, lo, up, ls, sg)
        A = [[sum(L[k][mm] * U[mm][j] for mm in range(d)) for j in range(d)] for k in range(d)]
        P = [[perm[i * d + k] for k in range(d)] for i in range(d)]
        W = [sum(P[i][k] * A[k][j] for k in range(d)) for i in range(d) for j in range(d)]
        check('lu_fwd d=%d W' % d, out[:d * d], W)
        check('lu_fwd d=%d ld' % d, [out[d * d]], [sum(ls)])
        ga_ = m.alloc(g)
        go = m.alloc([float('nan')] * (2 * d * d + d) + [12345.0] * 2)
        m.launch(E['lu_bwd'], grid1d(d * d), (256, 1, 1), prm, bufs + [ga_, go])
        gout = m.read(go, 2 * d * d + d + 2)
        sentinel_ok('lu_bwd', gout, 2 * d * d + d)
        G = [[g[i * d + j] for j in range(d)] for i in range(d)]
        GA = [[sum(P[i][k] * G[i][j] for i in range(d)) for j in range(d)] for k in range(d)]
        gL = [[sum(GA[k][j] * U[mm][j] for j in range(d)) for mm in range(d)] for k in range(d)]
        gU = [[sum(L[k][mm] * GA[k][j] for k in range(d)) for j in range(d)] for mm in range(d)]
        rl = [gL[r][c] if c < r else 0.0 for r in range(d) for c in range(d)]
        ru = [gU[r][c] if c > r else 0.0 for r in range(d) for c in range(d)]
        rs = [gU[r][r] * sg[r] * math.exp(ls[r]) + g[d * d] for r in range(d)]
        check('lu_bwd d=%d dlower' % d, gout[:d * d], rl)
        check('lu_bwd d=%d dupper' % d, gout[d * d:2 * d * d], ru)
        check('lu_bwd d=%d dlog_s' % d, gout[2 * d * d:2 * d * d + d], rs)


# ------------------------------------------------------------------ planted bugs
def planted(name, ptx, edits, run):
    """A planted bug: `run(E)` on the entries of kernels/<ptx> with every (old, new) of `edits` applied (each old
    must occur exactly once) has to fail at least one of its checks or stop the simulator. Passes when caught."""
    src = (KDIR / ptx).read_text()
    for old, new in edits:
        if src.count(old) != 1:
            print('%-50s edit %r found %d times FAIL' % ('planted: ' + name, old, src.count(old)))
            FAIL.append('planted: ' + name)
            return
        src = src.replace(old, new)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / ptx
        path.write_text(src)
        E = parse(path)
    p0, f0 = len(PASSED), len(FAIL)
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            run(E)
            caught = len(FAIL) > f0
        except SimError:
            caught = True
    del PASSED[p0:]
    del FAIL[f0:]
    print('%-50s %s' % ('planted: ' + name, 'caught ok' if caught else 'NOT CAUGHT FAIL'))
    (PASSED if caught else FAIL).append('planted: ' + name)


# ------------------------------------------------------------------ inv_conv1x1
def test_inv_conv1x1(E=None, cases=None):
    E = E or kernel('inv_conv1x1.ptx')
    # (batch, c, hw, trans, reverse): 945 outputs over 4 blocks; 17 channels of 3 pixels; 300 products per entry
    # (threads fold two each) with a grid split over x and y; an empty sum (hw = 0).
    for (batch, c, hw, trans, reverse) in cases or [(3, 5, 63, 0, False), (3, 5, 63, 1, True), (2, 17, 3, 1, False),
                                                    (3, 4, 100, 0, True), (2, 3, 0, 0, False)]:
        n = batch * c * hw
        X, W, G = rnd(n), rnd(c * c), rnd(n)
        m = Machine()
        xa, wa, ga = m.alloc(X + [0.0]), m.alloc(W), m.alloc(G + [0.0])
        prm = pk('4I', batch, c, hw, trans)
        if n:
            ya = m.alloc([12345.0] * (n + 3))
            m.launch(E['inv_conv1x1_fwd'], grid1d(n, 2), (256, 1, 1), prm, [xa, wa, ya])
            Y = m.read(ya, n + 3)
            sentinel_ok('inv_conv1x1_fwd', Y, n)
            ref = [sum((W[i * c + o] if trans else W[o * c + i]) * X[(b * c + i) * hw + q] for i in range(c))
                   for b in range(batch) for o in range(c) for q in range(hw)]
            check('inv_conv1x1_fwd b%d c%d hw%d trans%d' % (batch, c, hw, trans), Y[:n], ref)
        # dw, one block per entry, on a device allowing 7 blocks per dimension: the spare blocks store nothing
        blocks = c * c
        grid = fold(blocks, (7, 7, 7))
        da = m.alloc([float('nan')] * (c * c) + [12345.0] * 2)
        m.launch(E['inv_conv1x1_wgrad'], grid, (256, 1, 1), prm, [xa, ga, da], reverse)
        D = m.read(da, c * c + 2)
        sentinel_ok('inv_conv1x1_wgrad', D, c * c)
        ref = [sum(G[(b * c + o) * hw + q] * X[(b * c + i) * hw + q] for b in range(batch) for q in range(hw))
               for o in range(c) for i in range(c)]
        check('inv_conv1x1_wgrad b%d c%d hw%d rev=%d' % (batch, c, hw, reverse), D[:c * c], ref)


# ------------------------------------------------------------------ image_affine
def image_affine_ref(X, TH, G, batch, c, hw, pss, kind, inverse, r_off, t_off, lo, hi):
    """(packed forward [y, ls], gx, gtheta) in double precision, from the maths of src/ops/image_affine/."""
    ct = c - pss
    nx = batch * c * hw
    out = [0.0] * (nx + batch * ct * hw)
    gx = [0.0] * nx
    gt = [0.0] * (batch * 2 * ct * hw)
    for b in range(batch):
        for ch in range(c):
            for q in range(hw):
                i = (b * c + ch) * hw + q
                x, gy = X[i], G[i]
                if ch < pss:
                    out[i], gx[i] = x, gy
                    continue
                j = ch - pss
                ir, it, L = (b * 2 * ct + r_off + j) * hw + q, (b * 2 * ct + t_off + j) * hw + q, (b * ct + j) * hw + q
                r, t, gls = TH[ir], TH[it], G[nx + L]
                if kind == 0:
                    s = min(max(r, lo), hi)
                    out[i], out[nx + L] = ((x - t) * math.exp(-s), -s) if inverse else (x * math.exp(s) + t, s)
                    e = math.exp(s)
                    gx[i], gt[it], gt[ir] = gy * e, gy, gy * x * e + gls
                else:
                    u = sig(r + 2)
                    s = (1 - lo) * u + lo
                    out[i], out[nx + L] = (x / s - t, -math.log(s)) if inverse else ((x + t) * s, math.log(s))
                    gx[i], gt[it], gt[ir] = gy * s, gy * s, (gy * (x + t) + gls / s) * (1 - lo) * u * (1 - u)
    return out, gx, gt


def test_image_affine(E=None, cases=None):
    E = E or kernel('image_affine.ptx')
    # (name, batch, c, hw, kind, inverse, lo, hi): the injector's r reach past its clamp (straight-through
    # backward); the coupling's include r = +-100 and +-1e4 (a stable sigmoid stays finite).
    for (name, batch, c, hw, kind, inverse, lo, hi) in cases or [
            ('injector', 3, 5, 63, 0, 0, -1.0, 1.0), ('injector inverse', 3, 5, 63, 0, 1, -0.5, 0.5),
            ('coupling', 3, 6, 63, 1, 0, 0.5, 0.0), ('coupling floor 0', 2, 6, 35, 1, 0, 0.0, 0.0),
            ('coupling inverse', 3, 6, 63, 1, 1, 0.5, 0.0), ('coupling 2 channels', 5, 2, 61, 1, 0, 0.25, 0.0)]:
        pss = 0 if kind == 0 else c // 2
        ct = c - pss
        r_off, t_off = (c, 0) if kind == 0 else (0, ct)
        nx, nl, nt = batch * c * hw, batch * ct * hw, batch * 2 * ct * hw
        X = rnd(nx)
        TH = rnd(nt, -1.5, 1.5)
        if kind == 1 and lo > 0:
            for k, v in enumerate((100.0, -100.0, 1e4, -1e4)):
                TH[(r_off + k % ct) * hw + k] = v
        G = rnd(nx + nl)
        prm = pk('8I4f', batch, c, hw, pss, kind, inverse, r_off, t_off, lo, hi, 0, 0)
        assert len(prm) == 48
        m = Machine()
        xa, ta, ga = m.alloc(X), m.alloc(TH), m.alloc(G)
        oa = m.alloc([float('nan')] * (nx + nl) + [12345.0] * 2)
        m.launch(E['image_affine_fwd'], grid1d(nx, 2), (256, 1, 1), prm, [xa, ta, oa])
        out = m.read(oa, nx + nl + 2)
        sentinel_ok('image_affine_fwd ' + name, out, nx + nl)
        rout, rgx, rgt = image_affine_ref(X, TH, G, batch, c, hw, pss, kind, inverse, r_off, t_off, lo, hi)
        check('image_affine_fwd %s y' % name, out[:nx], rout[:nx])
        check('image_affine_fwd %s ls' % name, out[nx:nx + nl], rout[nx:])
        if inverse:
            continue
        gxa = m.alloc([float('nan')] * nx + [12345.0] * 2)
        gta = m.alloc([float('nan')] * nt + [12345.0] * 2)
        m.launch(E['image_affine_bwd'], grid1d(nx, 2), (256, 1, 1), prm, [xa, ta, ga, gxa, gta])
        gx = m.read(gxa, nx + 2)
        gt = m.read(gta, nt + 2)
        sentinel_ok('image_affine_bwd gx ' + name, gx, nx)
        sentinel_ok('image_affine_bwd gtheta ' + name, gt, nt)
        check('image_affine_bwd %s gx' % name, gx[:nx], rgx)
        check('image_affine_bwd %s gtheta' % name, gt[:nt], rgt)


# ------------------------------------------------------------------ squeeze
def squeeze_src(batch, c, h, w):
    """Index in x [batch, c, h, w] of every element of y [batch, 4c, h/2, w/2], in y's order (the README's map)."""
    return [((b * c + ci) * h + 2 * a + i) * w + 2 * bb + j
            for b in range(batch) for ci in range(c) for i in range(2) for j in range(2)
            for a in range(h // 2) for bb in range(w // 2)]


def test_squeeze(E=None, cases=None):
    E = E or kernel('squeeze.ptx')
    for (batch, c, h, w) in cases or [(3, 5, 6, 10), (3, 2, 10, 14), (1, 3, 2, 2)]:
        n = batch * c * h * w
        src = squeeze_src(batch, c, h, w)
        X = rnd(n)
        prm = pk('4I', batch, c, h, w)
        m = Machine()
        xa = m.alloc(X)
        ya = m.alloc([12345.0] * (n + 2))
        m.launch(E['squeeze_fwd'], grid1d(n, 2), (256, 1, 1), prm, [xa, ya])
        Y = m.read(ya, n + 2)
        sentinel_ok('squeeze_fwd', Y, n)
        check('squeeze_fwd %s' % ((batch, c, h, w),), Y[:n], [X[s] for s in src], 1e-12)
        Y2 = rnd(n)
        y2a = m.alloc(Y2)
        x2a = m.alloc([12345.0] * (n + 2))
        m.launch(E['unsqueeze_fwd'], grid1d(n, 2), (256, 1, 1), prm, [y2a, x2a])
        X2 = m.read(x2a, n + 2)
        sentinel_ok('unsqueeze_fwd', X2, n)
        ref = [0.0] * n
        for o, s in enumerate(src):
            ref[s] = Y2[o]
        check('unsqueeze_fwd %s' % ((batch, 4 * c, h // 2, w // 2),), X2[:n], ref, 1e-12)


# ------------------------------------------------------------------ pad2d
def test_pad2d(E=None, cases=None):
    E = E or kernel('pad2d.ptx')
    for (planes, h, w, k, value) in cases or [(15, 7, 9, 1, 1.0), (4, 1, 3, 2, -0.5), (3, 5, 6, 0, 7.0),
                                              (2, 20, 17, 3, 0.0)]:
        ho, wo = h + 2 * k, w + 2 * k
        ny, nx = planes * ho * wo, planes * h * w
        X = rnd(nx)
        prm = pk('4If3I', planes, h, w, k, value, 0, 0, 0)
        m = Machine()
        xa = m.alloc(X)
        ya = m.alloc([12345.0] * (ny + 2))
        m.launch(E['pad2d_fwd'], grid1d(ny, 2), (256, 1, 1), prm, [xa, ya])
        Y = m.read(ya, ny + 2)
        sentinel_ok('pad2d_fwd', Y, ny)
        ref = [X[(q * h + u - k) * w + v - k] if k <= u < h + k and k <= v < w + k else value
               for q in range(planes) for u in range(ho) for v in range(wo)]
        check('pad2d_fwd planes%d %dx%d pad%d' % (planes, h, w, k), Y[:ny], ref, 1e-12)
        G = rnd(ny)
        ga = m.alloc(G)
        gxa = m.alloc([12345.0] * (nx + 2))
        m.launch(E['pad2d_crop'], grid1d(nx, 2), (256, 1, 1), prm, [ga, gxa])
        GX = m.read(gxa, nx + 2)
        sentinel_ok('pad2d_crop', GX, nx)
        ref = [G[(q * ho + u + k) * wo + v + k] for q in range(planes) for u in range(h) for v in range(w)]
        check('pad2d_crop planes%d %dx%d pad%d' % (planes, h, w, k), GX[:nx], ref, 1e-12)


def test_planted():
    """Each new family's tests must catch a realistic bug planted in a copy of its PTX."""
    planted('inv_conv1x1_wgrad without the first tree barrier', 'inv_conv1x1.ptx',
            [('st.shared.f32   [%rd6], %f1;\n    bar.sync        0;', 'st.shared.f32   [%rd6], %f1;')],
            lambda E: test_inv_conv1x1(E, [(2, 3, 200, 0, False)]))
    planted('inv_conv1x1_fwd W^T read as W', 'inv_conv1x1.ptx',
            [('selp.b32        %r15, %r5, 1, %p2;', 'selp.b32        %r15, 1, %r5, %p2;')],
            lambda E: test_inv_conv1x1(E, [(2, 3, 40, 1, False)]))
    planted('image_affine_bwd clamp not straight-through', 'image_affine.ptx',
            [('min.f32         %f11, %f11, %f5;            // s',
              'min.f32         %f11, %f11, %f5;\n    setp.ne.f32     %p6, %f11, %f2;'),
             ('add.rn.f32      %f10, %f10, %f7;            // gr = (gy x) e + gls',
              'add.rn.f32      %f10, %f10, %f7;\n    @%p6 mov.f32    %f10, %f7;')],
            lambda E: test_image_affine(E, [('injector', 1, 3, 40, 0, 0, -0.5, 0.5)]))
    planted('image_affine_fwd ls written without the y part offset', 'image_affine.ptx',
            [('add.u64         %rd7, %rd7, %rd2;           // nx + L\n    shl.b64         %rd7, %rd7, 2;\n'
              '    add.u64         %rd6, %rd4, %rd7;', 'shl.b64         %rd7, %rd7, 2;\n'
              '    add.u64         %rd6, %rd4, %rd7;')],
            lambda E: test_image_affine(E, [('coupling', 1, 4, 40, 1, 0, 0.5, 0.0)]))
    planted('squeeze_fwd i and j swapped', 'squeeze.ptx',
            [('add.u32         %r13, %r13, %r16;           // 2a + i', 'add.u32         %r13, %r13, %r17;'),
             ('add.u32         %r12, %r12, %r17;           // 2b + j', 'add.u32         %r12, %r12, %r16;')],
            lambda E: test_squeeze(E, [(1, 2, 4, 6)]))
    planted('pad2d_fwd one column too many inside', 'pad2d.ptx',
            [('setp.lt.u32     %p2, %r11, %r6;', 'setp.le.u32     %p2, %r11, %r6;')],
            lambda E: test_pad2d(E, [(2, 3, 4, 1, 1.0)]))


def test_tiled():
    """The families again with every launch folded as on a device allowing a handful of blocks per dimension
    (TIGHT): the blocks spread over x, y and z with spare blocks past the end, as launches of more than 65,535
    blocks per dimension are folded on a real GPU (reduce and sos, slow here, fold their launches over z in
    their own tests). Then bugs planted in the block numbering, which these launches must catch."""
    random.seed(2)
    TIGHT[0] = True
    try:
        test_unary()
        test_binary()
        test_broadcast_to()
        test_softmax(False)
        test_copy(False)
        test_gather()
        test_optim(n=1300)
        test_spline()
        test_coupling()
        test_softclip()
        test_lu()
        test_image_affine()
        test_squeeze()
        test_pad2d()
        # (m, n, k, batch, ...): 12 and 6 tiles, folded to (3, 3, 2) and (2, 2, 2) with spare blocks.
        test_matmul([(70, 67, 5, 3, 0, 1, 1, 0)])
        test_made([(140, 67, 5, 0, 1, 1, 1, 1)])
        test_inv_conv1x1(cases=[(3, 5, 63, 0, False), (2, 17, 3, 1, False)])
        test_conv2d()
        test_conv_transpose2d()
        planted('matmul block number without ctaid.z', 'matmul.ptx',
                [('mov.u32         %blk0, %ctaid.z;', 'mov.u32         %blk0, 0;')],
                lambda E: test_matmul([(70, 67, 5, 3, 0, 0, 0, 0)], E=E))
        planted('matmul spare blocks not leaving', 'matmul.ptx',
                [('    @%p0 bra        DONE;                       // past the last tile', '    // ')],
                lambda E: test_matmul([(70, 67, 5, 3, 0, 0, 0, 0)], E=E))
        planted('conv2d_fwd tiles decoded columns first', 'conv2d.ptx',
                [('rem.u32         %row0, %col0, %tmp;\n    shl.b32         %row0, %row0, 6;\n'
                  '    div.u32         %col0, %col0, %tmp;',
                  'div.u32         %row0, %col0, %tmp;\n    shl.b32         %row0, %row0, 6;\n'
                  '    rem.u32         %col0, %col0, %tmp;')],
                lambda E: test_conv2d(E, [(1, 1, 3, 3, 70, 1, 1, 1, 0, True, False, False)], wgrad=False))
        planted('adam_step block number without ctaid.z', 'optim.ptx',
                [('mov.u32         %r1, %ctaid.z;', 'mov.u32         %r1, 0;')], lambda E: test_optim(E, 1300))
    finally:
        TIGHT[0] = False


FAMILIES = ['unary', 'binary', 'reduce', 'softmax', 'copy', 'gather', 'optim', 'matmul', 'spline', 'sos', 'made',
            'coupling', 'softclip', 'lu', 'inv_conv1x1', 'image_affine', 'squeeze', 'pad2d', 'planted', 'conv2d',
            'conv_transpose2d', 'tiled']


def run_family(w):
    if w == 'unary':
        test_unary()
    elif w == 'binary':
        test_binary()
        test_broadcast_to()
    elif w == 'reduce':
        test_reduce(False)
        test_reduce(True)
    elif w == 'softmax':
        test_softmax(False)
        test_softmax(True)
    elif w == 'copy':
        test_copy(False)
        test_copy(True)
    elif w == 'gather':
        test_gather()
    elif w == 'optim':
        test_optim()
    elif w == 'spline':
        test_spline()
    elif w == 'sos':
        test_sos()
    elif w == 'made':
        test_made([(37, 70, 19, 0, 0, 1, 0, 1), (19, 37, 70, 0, 1, 1, 0, 0), (37, 19, 70, 1, 0, 0, 1, 0),
                   (5, 3, 0, 0, 0, 1, 0, 1)])
        test_made([(20, 24, 19, 1, 1, 1, 1, 1)], reverse=True)
    elif w == 'coupling':
        test_coupling()
    elif w == 'softclip':
        test_softclip()
    elif w == 'lu':
        test_lu()
    elif w == 'inv_conv1x1':
        test_inv_conv1x1()
    elif w == 'image_affine':
        test_image_affine()
    elif w == 'squeeze':
        test_squeeze()
    elif w == 'pad2d':
        test_pad2d()
    elif w == 'planted':
        test_planted()
    elif w == 'matmul':
        test_matmul([(70, 67, 35, 2, 0, 0, 0, 0), (70, 67, 35, 1, 1, 0, 0, 0), (70, 67, 35, 1, 0, 1, 0, 0),
                     (70, 67, 35, 1, 1, 1, 0, 0), (64, 68, 17, 2, 0, 0, 1, 0), (5, 8, 3, 3, 1, 1, 0, 1),
                     (3, 4, 0, 1, 0, 0, 0, 0)])
        test_matmul([(20, 24, 19, 1, 1, 0, 0, 0)], reverse=True, block=(256, 1, 1))
    elif w == 'conv2d':
        test_conv2d()
    elif w == 'conv_transpose2d':
        test_conv_transpose2d()
    elif w == 'tiled':
        test_tiled()
    else:
        raise ValueError('unknown family %r (known: %s)' % (w, ' '.join(FAMILIES)))


def main(argv):
    t0 = time.time()
    for w in argv or FAMILIES:
        try:
            run_family(w)
        except SimError as ex:
            print('%-50s SIM ERROR FAIL: %s' % (w, ex))
            FAIL.append(w)
        except Exception:
            traceback.print_exc(file=sys.stdout)
            print('%-50s ERROR FAIL' % w)
            FAIL.append(w)
    if FAIL:
        print('failed: %s' % ', '.join(FAIL))
    print('time %.1f s' % (time.time() - t0))
    print('%d passed, %d failed' % (len(PASSED), len(FAIL)))
    return 1 if FAIL or not PASSED else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
