// Glow's invertible 1x1 convolution y[n, o, q] = sum_i W[o, i] x[n, i, q] (W^T when trans) and its weight
// gradient dW[o, i] = sum_{n, q} g[n, o, q] x[n, i, q] (src/ops/inv_conv1x1/). ABI and maths: kernels/README.md
// ("inv_conv1x1"); sums in ascending order with fma, as kernels/inv_conv1x1.ptx.
struct Params { batch: u32, c: u32, hw: u32, trans: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> dw: array<f32>;

// One thread per output element t = (n c + o) hw + q.
@compute @workgroup_size(256)
fn inv_conv1x1_fwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let t = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * 256u + lid;
    if (t >= p.batch * p.c * p.hw) { return; }
    let q = t % p.hw;
    let nc_o = t / p.hw;
    let o = nc_o % p.c;
    var xi = (nc_o - o) * p.hw + q;                  // x[n, 0, q]
    var wi = select(o * p.c, o, p.trans != 0u);      // W[o, 0]
    let wstep = select(1u, p.c, p.trans != 0u);
    var acc = 0.0;
    for (var i = 0u; i < p.c; i++) {
        acc = fma(w[wi], x[xi], acc);
        wi += wstep;
        xi += p.hw;
    }
    y[t] = acc;
}

var<workgroup> sh: array<f32, 256>;

// A workgroup per entry e = o c + i of dW; its threads stride over the batch hw products, then a tree.
@compute @workgroup_size(256)
fn inv_conv1x1_wgrad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let e = (wid.z * nwg.y + wid.y) * nwg.x + wid.x;
    if (e >= p.c * p.c) { return; }
    let go = (e / p.c) * p.hw;
    let xo = (e % p.c) * p.hw;
    let chw = p.c * p.hw;
    var acc = 0.0;
    for (var l = lid; l < p.batch * p.hw; l += 256u) {
        let base = (l / p.hw) * chw + l % p.hw;
        acc = fma(g[base + go], x[base + xo], acc);
    }
    sh[lid] = acc;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s = s >> 1u) {
        if (lid < s) { sh[lid] = sh[lid] + sh[lid + s]; }
        workgroupBarrier();
    }
    if (lid == 0u) { dw[e] = sh[0]; }
}
