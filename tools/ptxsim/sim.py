"""PTX interpreter: a testing aid for the CUDA path on machines without a GPU (CI has none).

It parses the hand-written kernels in kernels/*.ptx (only the instruction subset they use) and runs the
real PTX thread by thread, so the CUDA kernels can be checked against references without a GPU; the
tests live in test_kernels.py next to this file.

- Threads of a block run one after another up to each bar.sync (a valid schedule for race-free code).
  Running them in forward and in reverse order exposes missing barriers; a bar.sync not reached by
  every thread of the block is reported as barrier divergence.
- Global memory accesses are bounds- and alignment-checked per buffer; shared and parameter accesses
  are bounds-checked too. Unknown operands / uninitialised registers raise SimError.
- f32 arithmetic is rounded to f32 after every instruction (fma is computed in double, then rounded).

Not modelled: the approximation error of ex2.approx / lg2.approx (they are computed exactly, then
rounded to f32, with ftz on ex2 results), warps (no warp-synchronous execution, shuffles or votes),
memory ordering between blocks, and timing. Atomics are applied in sequential order.
"""
import math
import re
import struct

GBITS = 40


class SimError(Exception):
    pass


def f32(x):
    if x != x or x in (math.inf, -math.inf):
        return x
    try:
        return struct.unpack('<f', struct.pack('<f', x))[0]
    except OverflowError:
        # only values beyond FLT_MAX round here; treat as overflow to inf
        return math.copysign(math.inf, x)


def imm_float(tok):
    return struct.unpack('<f', struct.pack('<I', int(tok[2:], 16)))[0]


class Entry:
    def __init__(self, name):
        self.name = name
        self.params = []        # (name, offset, size)
        self.param_size = 0
        self.shared = {}        # name -> offset
        self.shared_size = 0
        self.insts = []
        self.labels = {}


def parse(path):
    src = open(path).read()
    src = re.sub(r'//[^\n]*', '', src)
    entries = {}
    for m in re.finditer(r'\.entry\s+(\w+)\s*\((.*?)\)\s*\{(.*?)\n\}', src, re.S):
        e = Entry(m.group(1))
        off = 0
        for pd in m.group(2).split(','):
            pd = pd.strip()
            mm = re.match(r'\.param\s+\.align\s+(\d+)\s+\.b8\s+(\w+)\[(\d+)\]', pd)
            if mm:
                al, nm, sz = int(mm.group(1)), mm.group(2), int(mm.group(3))
            else:
                mm = re.match(r'\.param\s+\.u64\s+(\w+)', pd)
                al, nm, sz = 8, mm.group(1), 8
            off = (off + al - 1) // al * al
            e.params.append((nm, off, sz))
            off += sz
        e.param_size = off
        for line in m.group(3).split('\n'):
            line = line.strip()
            if not line:
                continue
            if line.endswith(':'):
                e.labels[line[:-1]] = len(e.insts)
                continue
            for st in line.split(';'):
                st = st.strip()
                if not st or st.startswith('.reg'):
                    continue
                if st.startswith('.shared'):
                    mm = re.match(r'\.shared\s+\.align\s+(\d+)\s+\.(\w+)\s+(\w+)\[(\d+)\]', st)
                    al = int(mm.group(1))
                    e.shared_size = (e.shared_size + al - 1) // al * al
                    e.shared[mm.group(3)] = e.shared_size
                    e.shared_size += 4 * int(mm.group(4))
                    continue
                e.insts.append(parse_inst(st))
        entries[e.name] = e
    return entries


def split_operands(s):
    out, depth, cur = [], 0, ''
    for ch in s:
        if ch in '{[':
            depth += 1
        elif ch in '}]':
            depth -= 1
        if ch == ',' and depth == 0:
            out.append(cur.strip())
            cur = ''
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def parse_inst(st):
    pred = None
    if st.startswith('@'):
        p, st = st.split(None, 1)
        pred = (p[1:].lstrip('!'), p.startswith('@!'))
    parts = st.split(None, 1)
    op = parts[0]
    ops = split_operands(parts[1]) if len(parts) > 1 else []
    return (pred, op, ops)


class Block:
    pass


class Machine:
    def __init__(self):
        self.bufs = []

    def alloc(self, data, kind='f'):
        """data: list of floats (kind 'f') or ints (kind 'I'); returns the device address."""
        b = bytearray(struct.pack('<%d%s' % (len(data), kind), *data))
        self.bufs.append(b)
        return len(self.bufs) << GBITS

    def read(self, addr, n, kind='f'):
        b = self.bufs[(addr >> GBITS) - 1]
        return list(struct.unpack_from('<%d%s' % (n, kind), b, 0))

    def gmem(self, addr, size):
        idx = (addr >> GBITS) - 1
        off = addr & ((1 << GBITS) - 1)
        if idx < 0 or idx >= len(self.bufs):
            raise SimError('bad global address %x' % addr)
        b = self.bufs[idx]
        if off + size > len(b):
            raise SimError('global OOB: buf %d off %d size %d len %d' % (idx, off, size, len(b)))
        if off % size and size <= 16:
            raise SimError('misaligned global access off %d size %d' % (off, size))
        return b, off

    def launch(self, e, grid, block, param_bytes, ptrs, reverse=False):
        # The parameter block must be exactly the declared p[SIZE], as on the host (Device::launch): a short
        # one would be zero-padded here and read as zeros, a long one would spill into the pointers.
        if len(param_bytes) != e.params[0][2]:
            raise SimError('%s: %d bytes of parameters for p[%d]' % (e.name, len(param_bytes), e.params[0][2]))
        if len(ptrs) != len(e.params) - 1:
            raise SimError('%s: %d buffers for %d pointer parameters' % (e.name, len(ptrs), len(e.params) - 1))
        pbuf = bytearray(e.param_size)
        pbuf[0:len(param_bytes)] = param_bytes
        for (nm, off, sz), v in zip(e.params[1:], ptrs):
            struct.pack_into('<Q', pbuf, off, v)
        self.count = 0
        for bz in range(grid[2]):
            for by in range(grid[1]):
                for bx in range(grid[0]):
                    self.run_block(e, grid, block, (bx, by, bz), pbuf, reverse)

    def run_block(self, e, grid, block, cta, pbuf, reverse):
        shared = bytearray(max(e.shared_size, 4))
        threads = []
        for tz in range(block[2]):
            for ty in range(block[1]):
                for tx in range(block[0]):
                    sp = {'%tid.x': tx, '%tid.y': ty, '%tid.z': tz, '%ntid.x': block[0], '%ntid.y': block[1],
                          '%ctaid.x': cta[0], '%ctaid.y': cta[1], '%ctaid.z': cta[2],
                          '%nctaid.x': grid[0], '%nctaid.y': grid[1], '%nctaid.z': grid[2]}
                    threads.append({'regs': dict(sp), 'pc': 0, 'state': 'run'})
        if reverse:
            threads.reverse()
        while True:
            for t in threads:
                if t['state'] != 'exit':
                    t['state'] = self.run_thread(e, t, shared, pbuf)
            states = set(t['state'] for t in threads)
            if states == {'exit'}:
                return
            if states == {'bar'}:
                for t in threads:
                    t['state'] = 'run'
                continue
            raise SimError('barrier divergence in %s: %s' % (e.name, states))

    def run_thread(self, e, t, shared, pbuf):
        regs = t['regs']
        insts = e.insts
        pc = t['pc']
        steps = 0

        def val(o):
            if o in regs:
                return regs[o]
            if o.startswith('0f'):
                return imm_float(o)
            if re.match(r'^-?\d+$', o):
                return int(o)
            if o in e.shared:
                return e.shared[o]
            for nm, off, sz in e.params:
                if nm == o:
                    return off
            raise SimError('unknown operand %s (uninitialised register?) in %s pc %d' % (o, e.name, pc))

        def addr(o):
            o = o.strip('[]')
            if '+' in o:
                a, b = o.split('+')
                return val(a.strip()) + int(b)
            return val(o)

        while True:
            steps += 1
            if steps > 2_000_000:
                raise SimError('runaway thread')
            if pc >= len(insts):
                return 'exit'
            pred, op, ops = insts[pc]
            pc += 1
            if pred is not None:
                pv = regs.get(pred[0])
                if pv is None:
                    raise SimError('undefined predicate %s' % pred[0])
                if pv == pred[1]:
                    continue
            parts = op.split('.')
            base = parts[0]
            ty = parts[-1]
            bits = 64 if ty in ('u64', 'b64', 's64') else 32
            mask = (1 << bits) - 1
            if base == 'ret':
                t['pc'] = pc
                return 'exit'
            if base == 'bra':
                pc = e.labels[ops[0]]
                continue
            if base == 'bar':
                t['pc'] = pc
                return 'bar'
            if base == 'ld' or base == 'st' or base == 'red':
                space = parts[1]
                vec = 4 if 'v4' in parts else 1
                kind = 'f' if ty == 'f32' else ('Q' if ty in ('u64', 'b64') else 'I')
                size = 8 if kind == 'Q' else 4
                a = addr(ops[1] if base == 'ld' else ops[0])
                if space == 'param':
                    mem, off = pbuf, a
                    if off + size * vec > len(mem):
                        raise SimError('param OOB')
                elif space == 'shared':
                    mem, off = shared, a
                    if off + size * vec > len(mem) or off < 0:
                        raise SimError('shared OOB %d' % off)
                    if off % (size * vec):
                        raise SimError('misaligned shared access %d' % off)
                else:
                    mem, off = self.gmem(a, size * vec)
                if base == 'ld':
                    vals = struct.unpack_from('<%d%s' % (vec, kind), mem, off)
                    dsts = [x.strip() for x in ops[0].strip('{}').split(',')]
                    for d, v in zip(dsts, vals):
                        regs[d] = v
                elif base == 'st':
                    srcs = [x.strip() for x in ops[1].strip('{}').split(',')]
                    struct.pack_into('<%d%s' % (vec, kind), mem, off, *[val(s) for s in srcs])
                else:  # red.global.add.f32
                    old = struct.unpack_from('<f', mem, off)[0]
                    struct.pack_into('<f', mem, off, f32(old + val(ops[1])))
                continue
            d = ops[0] if ops else None
            src = [val(o) for o in ops[1:]]
            if base == 'mov':
                r = src[0]
            elif base == 'cvta':
                r = src[0]
            elif base == 'cvt':
                dt, stt = parts[-2], parts[-1]
                if dt == 'f32':
                    r = f32(float(src[0]))
                elif dt == 'u64':
                    r = src[0] & 0xffffffff
                elif dt == 'u32':
                    r = src[0] & 0xffffffff
                else:
                    raise SimError('cvt ' + op)
            elif base == 'setp':
                cmp = parts[1]
                a, b = src
                if ty == 'f32' and (a != a or b != b):
                    r = False
                else:
                    r = {'eq': a == b, 'ne': a != b, 'lt': a < b, 'le': a <= b, 'gt': a > b, 'ge': a >= b}[cmp]
            elif base == 'selp':
                r = src[0] if src[2] else src[1]
            elif base == 'not':
                r = not src[0]
            elif base == 'and':
                r = (src[0] and src[1]) if ty == 'pred' else (src[0] & src[1])
            elif base == 'or':
                r = (src[0] or src[1]) if ty == 'pred' else (src[0] | src[1])
            elif ty == 'f32':
                r = self.fop(base, parts, src)
            else:
                a = src[0]
                if base == 'add':
                    r = (a + src[1]) & mask
                elif base == 'sub':
                    r = (a - src[1]) & mask
                elif base == 'mul':
                    if parts[1] == 'wide':
                        r = (a * src[1]) & 0xffffffffffffffff
                    else:
                        r = (a * src[1]) & mask
                elif base == 'mad':
                    r = (a * src[1] + src[2]) & mask
                elif base == 'shl':
                    r = (a << src[1]) & mask
                elif base == 'shr':
                    r = a >> src[1]
                elif base == 'min':
                    r = min(a, src[1])
                elif base == 'max':
                    r = max(a, src[1])
                elif base == 'div':
                    if src[1] == 0:
                        raise SimError('integer division by zero')
                    r = a // src[1]
                elif base == 'rem':
                    if src[1] == 0:
                        raise SimError('integer remainder by zero')
                    r = a % src[1]
                else:
                    raise SimError('unsupported ' + op)
            regs[d] = r

    @staticmethod
    def fop(base, parts, s):
        if base == 'add':
            return f32(s[0] + s[1])
        if base == 'sub':
            return f32(s[0] - s[1])
        if base == 'mul':
            return f32(s[0] * s[1])
        if base == 'fma':
            a, b, c = s
            if any(math.isinf(x) or x != x for x in s):
                return f32(a * b + c)
            return f32(a * b + c)
        if base == 'div':
            a, b = s
            if b == 0:
                if a == 0 or a != a:
                    return math.nan
                return math.copysign(math.inf, a) * math.copysign(1.0, b)
            if math.isinf(b):
                return math.nan if math.isinf(a) or a != a else math.copysign(0.0, a) * math.copysign(1.0, b)
            return f32(a / b)
        if base == 'sqrt':
            a = s[0]
            if a != a or a < 0:
                return math.nan
            return f32(math.sqrt(a))
        if base == 'ex2':
            a = s[0]
            if a != a:
                return a
            if a > 200:
                return math.inf
            if a < -200:
                return 0.0
            r = f32(2.0 ** a)
            if abs(r) < 1.1754943508222875e-38:
                r = 0.0
            return r
        if base == 'lg2':
            a = s[0]
            if a != a or a < 0:
                return math.nan
            if a == 0:
                return -math.inf
            if math.isinf(a):
                return math.inf
            return f32(math.log2(a))
        if base == 'max' or base == 'min':
            a, b = s
            if a != a:
                return b
            if b != b:
                return a
            return max(a, b) if base == 'max' else min(a, b)
        if base == 'abs':
            return abs(s[0])
        if base == 'neg':
            return -s[0]
        if base == 'copysign':
            return math.copysign(s[1], s[0])
        raise SimError('unsupported f32 op ' + base)
