// Sum-of-squares polynomial transform, element-wise: forward, inverse by bisection, and the forward's
// backward (src/ops/sos/). ABI, maths and loop order: kernels/README.md ("sos").
struct Params { n: u32, k: u32, r: u32, inverse: u32, bound: f32, iters: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> theta: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn coef(base: u32, k: u32, l: u32) -> f32 { return theta[base + k * (p.r + 1u) + l]; }

// f(v) = c + Σ_k Σ_l Σ_m a[k][l] a[k][m] v^(l+m+1) / (l+m+1).
fn f(base: u32, v: f32) -> f32 {
    var acc = 0.0;
    for (var k = 0u; k < p.k; k++) {
        var xl1 = v;
        for (var l = 0u; l <= p.r; l++) {
            var pw = xl1;
            for (var m = 0u; m <= p.r; m++) {
                acc += coef(base, k, l) * coef(base, k, m) * pw / f32(l + m + 1u);
                pw *= v;
            }
            xl1 *= v;
        }
    }
    return theta[base + p.k * (p.r + 1u)] + acc;
}

// (p_k(v), p_k'(v)) by Horner.
fn poly(base: u32, k: u32, v: f32) -> vec2<f32> {
    var val = 0.0;
    var d = 0.0;
    for (var j = 0u; j <= p.r; j++) {
        let l = p.r - j;
        d = d * v + val;
        val = val * v + coef(base, k, l);
    }
    return vec2<f32>(val, d);
}

fn df(base: u32, v: f32) -> f32 {
    var s = 0.0;
    for (var k = 0u; k < p.k; k++) {
        let q = poly(base, k, v).x;
        s += q * q;
    }
    return s;
}

@compute @workgroup_size(256)
fn sos_fwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let i = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * 256u + lid;
    if (i >= p.n) { return; }
    let base = i * (p.k * (p.r + 1u) + 1u);
    let v = x[i];
    if (p.inverse == 0u) {
        out[i] = f(base, v);
        out[p.n + i] = log(df(base, v));
        return;
    }
    var lo = -p.bound;
    var hi = p.bound;
    for (var it = 0u; it < p.iters; it++) {
        let mid = 0.5 * (lo + hi);
        if (f(base, mid) < v) { lo = mid; } else { hi = mid; }
    }
    let xv = 0.5 * (lo + hi);
    out[i] = xv;
    out[p.n + i] = -log(df(base, xv));
}

@group(0) @binding(3) var<storage, read> g: array<f32>;
@group(0) @binding(4) var<storage, read_write> gx: array<f32>;
@group(0) @binding(5) var<storage, read_write> gtheta: array<f32>;

@compute @workgroup_size(256)
fn sos_bwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let i = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * 256u + lid;
    if (i >= p.n) { return; }
    let np = p.k * (p.r + 1u) + 1u;
    let base = i * np;
    let v = x[i];
    let gy = g[i];
    let gld = g[p.n + i];
    let d = df(base, v);
    var dd = 0.0;
    for (var k = 0u; k < p.k; k++) {
        let q = poly(base, k, v);
        dd += 2.0 * q.x * q.y;
        var xl = 1.0;
        var xl1 = v;
        for (var l = 0u; l <= p.r; l++) {
            var pw = xl1;
            var s = 0.0;
            for (var m = 0u; m <= p.r; m++) {
                s += coef(base, k, m) * pw / f32(l + m + 1u);
                pw *= v;
            }
            gtheta[base + k * (p.r + 1u) + l] = gy * 2.0 * s + gld * 2.0 * q.x * xl / d;
            xl *= v;
            xl1 *= v;
        }
    }
    gtheta[base + np - 1u] = gy;
    gx[i] = gy * d + gld * dd / d;
}
