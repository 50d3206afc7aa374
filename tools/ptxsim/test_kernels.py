"""Checks the hand-written PTX kernels in kernels/*.ptx against Python references by running them in the
PTX interpreter sim.py (no GPU needed). Standard library only.

Usage: python3 tools/ptxsim/test_kernels.py [family ...]   (from any directory; default: all families)
Families: unary binary reduce softmax copy gather optim matmul.
Prints one line per case, then a final `N passed, M failed` line; exits non-zero if any case failed.
"""
import math
import random
import struct
import sys
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


def grid1d(n, gx_cap=None):
    blocks = max(1, (n + 255) // 256)
    if gx_cap and blocks > gx_cap:
        return (gx_cap, (blocks + gx_cap - 1) // gx_cap, 1)
    return (blocks, 1, 1)


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
            m.launch(E['reduce_rows'], (3, 2, 1), (256, 1, 1), pk('IIII', outer, n, 1, op), [xa, ya], reverse)
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
            m.launch(E['reduce_cols'], grid1d(tot), (256, 1, 1), pk('IIII', outer, n, inner, op), [xa, ya])
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
        m.launch(E['softmax_rows'], (2, 2, 1), (256, 1, 1), pk('IIII', outer, n, 1, 0), [xa, ya], reverse)
        y = m.read(ya, outer * n + 2)
        sentinel_ok('softmax_rows', y, outer * n)
        ref = sum((softmax(xs[o * n:(o + 1) * n]) for o in range(outer)), [])
        check('softmax_rows n=%d rev=%d' % (n, reverse), y[:outer * n], ref)
    for outer, n, inner in ((3, 7, 5), (2, 40, 130)):
        xs = rnd(outer * n * inner, -10, 10)
        m = Machine()
        tot = outer * n * inner
        xa, ya = m.alloc(xs), m.alloc([12345.0] * (tot + 2))
        m.launch(E['softmax_cols'], grid1d(outer * inner), (256, 1, 1), pk('IIII', outer, n, inner, 0), [xa, ya])
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
def test_matmul(cases, reverse=False, block=(16, 16, 1)):
    E = kernel('matmul.ptx')
    for (m_, n_, k_, batch, ta, tb, bca, bcb) in cases:
        A = rnd((1 if bca else batch) * m_ * k_)
        B = rnd((1 if bcb else batch) * n_ * k_)
        mach = Machine()
        aa, ba = mach.alloc(A), mach.alloc(B)
        ca = mach.alloc([12345.0] * (batch * m_ * n_ + 3))
        prm = pk('8I', m_, n_, k_, batch, ta, tb, 0 if bca else m_ * k_, 0 if bcb else n_ * k_)
        grid = ((n_ + 63) // 64, (m_ + 63) // 64, batch)
        t0 = time.time()
        mach.launch(E['matmul'], grid, block, prm, [aa, ba, ca], reverse)
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
        m.launch(E['transpose'], ((cols + 15) // 16, (rows + 15) // 16, batch), blk,
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
def test_optim():
    E = kernel('optim.ptx')
    n = 300
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


FAMILIES = ['unary', 'binary', 'reduce', 'softmax', 'copy', 'gather', 'optim', 'matmul']


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
    elif w == 'matmul':
        test_matmul([(70, 67, 35, 2, 0, 0, 0, 0), (70, 67, 35, 1, 1, 0, 0, 0), (70, 67, 35, 1, 0, 1, 0, 0),
                     (70, 67, 35, 1, 1, 1, 0, 0), (64, 68, 17, 2, 0, 0, 1, 0), (5, 8, 3, 3, 1, 1, 0, 1),
                     (3, 4, 0, 1, 0, 0, 0, 0)])
        test_matmul([(20, 24, 19, 1, 1, 0, 0, 0)], reverse=True, block=(256, 1, 1))
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
