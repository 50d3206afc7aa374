// Rational-quadratic spline, element-wise, forward/inverse and the forward's backward (src/ops/spline/).
// ABI and maths: kernels/README.md ("spline"). Knots accumulate left to right exactly as the CPU reference.
struct Params { n: u32, k: u32, inverse: u32, pad: u32, bound: f32, min_w: f32, min_h: f32, min_d: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> theta: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn softplus(r: f32) -> f32 { return max(r, 0.0) + log(1.0 + exp(-abs(r))); }
fn sigmoid(r: f32) -> f32 {
    if (r >= 0.0) { return 1.0 / (1.0 + exp(-r)); }
    let e = exp(r);
    return e / (1.0 + e);
}

// The bin of one element and the softmax statistics the backward needs.
struct Bin {
    k: u32, x0: f32, w: f32, y0: f32, h: f32, d0: f32, d1: f32,
    mw: f32, sw: f32, mh: f32, sh: f32, below_w: f32, below_h: f32,
}

// Normalises the raw parameters at `base` and finds the bin of v (of x, or of y when `inv`).
fn locate(base: u32, v: f32, inv: bool) -> Bin {
    let K = p.k;
    let B = p.bound;
    var b: Bin;
    b.mw = theta[base];
    b.mh = theta[base + K];
    for (var j = 1u; j < K; j++) {
        b.mw = max(b.mw, theta[base + j]);
        b.mh = max(b.mh, theta[base + K + j]);
    }
    b.sw = 0.0;
    b.sh = 0.0;
    for (var j = 0u; j < K; j++) {
        b.sw += exp(theta[base + j] - b.mw);
        b.sh += exp(theta[base + K + j] - b.mh);
    }
    let scw = 1.0 - p.min_w * f32(K);
    let sch = 1.0 - p.min_h * f32(K);
    var accw = 0.0;
    var acch = 0.0;
    var x0 = -B;
    var y0 = -B;
    var x1 = B;
    var y1 = B;
    b.below_w = 0.0;
    b.below_h = 0.0;
    b.k = K - 1u;
    for (var j = 0u; j < K; j++) {
        let hw = exp(theta[base + j] - b.mw) / b.sw;
        let hh = exp(theta[base + K + j] - b.mh) / b.sh;
        accw += p.min_w + scw * hw;
        acch += p.min_h + sch * hh;
        x1 = select(-B + 2.0 * B * accw, B, j + 1u == K);
        y1 = select(-B + 2.0 * B * acch, B, j + 1u == K);
        let key = select(x1, y1, inv);
        if (j + 1u < K && key <= v) {
            x0 = x1;
            y0 = y1;
            b.below_w += hw;
            b.below_h += hh;
        } else {
            b.k = j;
            break;
        }
    }
    b.x0 = x0;
    b.w = x1 - x0;
    b.y0 = y0;
    b.h = y1 - y0;
    let r = base + 2u * K;
    b.d0 = select(p.min_d + softplus(theta[r + b.k - 1u]), 1.0, b.k == 0u);
    b.d1 = select(p.min_d + softplus(theta[r + b.k]), 1.0, b.k + 1u == K);
    return b;
}

// (y, ld) at ξ in bin b.
fn eval(b: Bin, xi: f32) -> vec2<f32> {
    let s = b.h / b.w;
    let q = xi * (1.0 - xi);
    let n = s * xi * xi + b.d0 * q;
    let d = s + (b.d0 + b.d1 - 2.0 * s) * q;
    let m = b.d1 * xi * xi + 2.0 * s * q + b.d0 * (1.0 - xi) * (1.0 - xi);
    return vec2<f32>(b.y0 + b.h * n / d, 2.0 * log(s) + log(m) - 2.0 * log(d));
}

@compute @workgroup_size(256)
fn spline_fwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * 256u + lid;
    if (i >= p.n) { return; }
    let v = x[i];
    if (!(v >= -p.bound && v <= p.bound)) {
        out[i] = v;
        out[p.n + i] = 0.0;
        return;
    }
    let base = i * (3u * p.k - 1u);
    let inv = p.inverse != 0u;
    let b = locate(base, v, inv);
    if (!inv) {
        let r = eval(b, (v - b.x0) / b.w);
        out[i] = r.x;
        out[p.n + i] = r.y;
        return;
    }
    let s = b.h / b.w;
    let t = v - b.y0;
    let c2 = b.d0 + b.d1 - 2.0 * s;
    let qa = b.h * (s - b.d0) + t * c2;
    let qb = b.h * b.d0 - t * c2;
    let qc = -s * t;
    let disc = max(qb * qb - 4.0 * qa * qc, 0.0);
    let xi = 2.0 * qc / (-qb - sqrt(disc));
    out[i] = b.x0 + xi * b.w;
    out[p.n + i] = -eval(b, xi).y;
}

@group(0) @binding(3) var<storage, read> g: array<f32>;
@group(0) @binding(4) var<storage, read_write> gx: array<f32>;
@group(0) @binding(5) var<storage, read_write> gtheta: array<f32>;

@compute @workgroup_size(256)
fn spline_bwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * 256u + lid;
    if (i >= p.n) { return; }
    let K = p.k;
    let np = 3u * K - 1u;
    let base = i * np;
    let v = x[i];
    let gy = g[i];
    let gld = g[p.n + i];
    if (!(v >= -p.bound && v <= p.bound)) {
        gx[i] = gy;
        for (var j = 0u; j < np; j++) { gtheta[base + j] = 0.0; }
        return;
    }
    let b = locate(base, v, false);
    let s = b.h / b.w;
    let xi = (v - b.x0) / b.w;
    let q = xi * (1.0 - xi);
    let qp = 1.0 - 2.0 * xi;
    let d0 = b.d0;
    let d1 = b.d1;
    let n = s * xi * xi + d0 * q;
    let d = s + (d0 + d1 - 2.0 * s) * q;
    let m = d1 * xi * xi + 2.0 * s * q + d0 * (1.0 - xi) * (1.0 - xi);
    let n_xi = 2.0 * s * xi + d0 * qp;
    let n_s = xi * xi;
    let d_xi = (d0 + d1 - 2.0 * s) * qp;
    let d_s = 1.0 - 2.0 * q;
    let m_xi = 2.0 * d1 * xi + 2.0 * s * qp - 2.0 * d0 * (1.0 - xi);
    let hd2 = b.h / (d * d);
    let y_xi = hd2 * (n_xi * d - n * d_xi);
    let y_s = hd2 * (n_s * d - n * d_s);
    let y_d0 = hd2 * (q * d - n * q);
    let y_d1 = hd2 * (-n * q);
    let l_xi = m_xi / m - 2.0 * d_xi / d;
    let l_s = 2.0 / s + 2.0 * q / m - 2.0 * d_s / d;
    let l_d0 = (1.0 - xi) * (1.0 - xi) / m - 2.0 * q / d;
    let l_d1 = xi * xi / m - 2.0 * q / d;
    let g_xi = gy * y_xi + gld * l_xi;
    let g_s = gy * y_s + gld * l_s;
    let g_d0 = gy * y_d0 + gld * l_d0;
    let g_d1 = gy * y_d1 + gld * l_d1;
    gx[i] = g_xi / b.w;
    let g_x0 = -g_xi / b.w;
    let g_w = -(g_xi * xi + g_s * s) / b.w;
    let g_y0 = gy;
    let g_h = gy * n / d + g_s / b.w;
    let cw = 2.0 * p.bound * (1.0 - p.min_w * f32(K));
    let ch = 2.0 * p.bound * (1.0 - p.min_h * f32(K));
    let hwk = exp(theta[base + b.k] - b.mw) / b.sw;
    let hhk = exp(theta[base + K + b.k] - b.mh) / b.sh;
    let dot_w = cw * (g_x0 * b.below_w + g_w * hwk);
    let dot_h = ch * (g_y0 * b.below_h + g_h * hhk);
    for (var j = 0u; j < K; j++) {
        let hw = exp(theta[base + j] - b.mw) / b.sw;
        let hh = exp(theta[base + K + j] - b.mh) / b.sh;
        let gw = select(select(0.0, g_w, j == b.k), g_x0, j < b.k);
        let gh = select(select(0.0, g_h, j == b.k), g_y0, j < b.k);
        gtheta[base + j] = hw * (cw * gw - dot_w);
        gtheta[base + K + j] = hh * (ch * gh - dot_h);
    }
    let r = base + 2u * K;
    for (var j = 0u; j + 1u < K; j++) { gtheta[r + j] = 0.0; }
    if (b.k >= 1u) { gtheta[r + b.k - 1u] = g_d0 * sigmoid(theta[r + b.k - 1u]); }
    if (b.k + 1u < K) { gtheta[r + b.k] = g_d1 * sigmoid(theta[r + b.k]); }
}
