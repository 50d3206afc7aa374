// Broadcasting binary ops (maths and CPU reference: src/ops/binary/). ABI: kernels/README.md.
// op: 0 add, 1 sub, 2 mul, 3 div, 4 eq, 5 maximum, 6 minimum, 7 copy a.
struct Params {
    n: u32, op: u32, rank: u32, pad: u32,
    shape: array<vec4<u32>, 2>,
    a_strides: array<vec4<u32>, 2>,
    b_strides: array<vec4<u32>, 2>,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn apply(x: f32, y: f32) -> f32 {
    switch p.op {
        case 0u: { return x + y; }
        case 1u: { return x - y; }
        case 2u: { return x * y; }
        case 3u: { return x / y; }
        case 4u: { return select(0.0, 1.0, x == y); }
        case 5u: { return max(x, y); }
        case 6u: { return min(x, y); }
        default: { return x; }
    }
}

@compute @workgroup_size(256)
fn binary_fwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * 256u + lid;
    if (i >= p.n) { return; }
    // Unravel i over the output shape (last dimension fastest), accumulating each operand's offset.
    var rem = i;
    var ia = 0u;
    var ib = 0u;
    for (var d = i32(p.rank) - 1; d >= 0; d--) {
        let q = u32(d) / 4u;
        let r = u32(d) % 4u;
        let s = p.shape[q][r];
        let c = rem % s;
        rem = rem / s;
        ia += c * p.a_strides[q][r];
        ib += c * p.b_strides[q][r];
    }
    out[i] = apply(a[ia], b[ib]);
}
