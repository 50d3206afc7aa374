// Gather along an axis by u32 indices, and its gradient scatter_add (src/ops/gather/). ABI: kernels/README.md.
struct Params { outer: u32, src_n: u32, idx_n: u32, inner: u32 }
@group(0) @binding(0) var<uniform> p: Params;

@group(0) @binding(1) var<storage, read> gsrc: array<f32>;
@group(0) @binding(2) var<storage, read> gidx: array<u32>;
@group(0) @binding(3) var<storage, read_write> gdst: array<f32>;

@compute @workgroup_size(256)
fn gather(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let i = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * 256u + lid;
    if (i >= p.outer * p.idx_n * p.inner) { return; }
    let r = i % p.inner;
    let j = (i / p.inner) % p.idx_n;
    let o = i / (p.inner * p.idx_n);
    gdst[i] = gsrc[(o * p.src_n + gidx[j]) * p.inner + r];
}

@group(0) @binding(1) var<storage, read> sg: array<f32>;
@group(0) @binding(2) var<storage, read> sidx: array<u32>;
// f32 values held as u32 bits: WGSL has no atomic float add, so add with a compare-exchange loop.
@group(0) @binding(3) var<storage, read_write> sdst: array<atomic<u32>>;

@compute @workgroup_size(256)
fn scatter_add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * 256u + lid;
    if (i >= p.outer * p.idx_n * p.inner) { return; }
    let r = i % p.inner;
    let j = (i / p.inner) % p.idx_n;
    let o = i / (p.inner * p.idx_n);
    let d = (o * p.src_n + sidx[j]) * p.inner + r;
    let v = sg[i];
    var old = atomicLoad(&sdst[d]);
    loop {
        let res = atomicCompareExchangeWeak(&sdst[d], old, bitcast<u32>(bitcast<f32>(old) + v));
        if (res.exchanged) { break; }
        old = res.old_value;
    }
}
