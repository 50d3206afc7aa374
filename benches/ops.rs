//! Criterion benchmarks of the primitive ops on every backend this machine has:
//! matmul at 1024^3 (and 256^3), a row reduction (sum over 4096 of [1024, 4096]), and conv2d /
//! conv_transpose2d forward + backward at the galaxy autoencoder's shapes (k4 s2 p1; batch 4, or
//! GFORGE_CONV_BATCH; benches/torch/conv.py times the same in PyTorch).
//! GPU timings include a synchronize, so they measure finished work.
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use galactic_forge::backend::wgpu;
use galactic_forge::{backward, no_grad, Device, Tensor};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// The allocator `gforge` installs (src/alloc.rs), so the figures match what users run.
#[global_allocator]
static ALLOC: galactic_forge::alloc::CachingAlloc = galactic_forge::alloc::CachingAlloc::new(8 << 30);

fn devices() -> Vec<Device> {
    let mut v = vec![Device::Cpu];
    if let Ok(list) = wgpu::list() {
        v.extend((0..list.len()).filter_map(|i| Device::parse(&format!("wgpu:{i}")).ok()));
    }
    if let Ok(d) = Device::parse("cuda") {
        v.push(d);
    }
    v
}

fn matmul(c: &mut Criterion) {
    let mut g = c.benchmark_group("matmul");
    g.sample_size(10);
    let mut rng = StdRng::seed_from_u64(0);
    for dev in devices() {
        for n in [256usize, 1024] {
            let a = Tensor::randn(&[n, n], &mut rng, &dev).unwrap();
            let b = Tensor::randn(&[n, n], &mut rng, &dev).unwrap();
            g.throughput(Throughput::Elements((2 * n * n * n) as u64)); // flops
            g.bench_with_input(BenchmarkId::new(dev.to_string(), n), &n, |bench, _| {
                bench.iter(|| {
                    no_grad(|| a.matmul(&b).unwrap());
                    dev.synchronize().unwrap();
                })
            });
        }
    }
    g.finish();
}

fn reduce(c: &mut Criterion) {
    let mut g = c.benchmark_group("sum_rows");
    g.sample_size(10);
    let mut rng = StdRng::seed_from_u64(1);
    for dev in devices() {
        let x = Tensor::randn(&[1024, 4096], &mut rng, &dev).unwrap();
        g.throughput(Throughput::Bytes((x.numel() * 4) as u64));
        g.bench_function(BenchmarkId::new(dev.to_string(), "1024x4096"), |bench| {
            bench.iter(|| {
                no_grad(|| x.sum(-1).unwrap());
                dev.synchronize().unwrap();
            })
        });
    }
    g.finish();
}

/// (name, transposed, cin, cout, input side): encoder layers 1, 2 and 5 and their decoder mirrors.
const CONV_SHAPES: [(&str, bool, usize, usize, usize); 6] = [
    ("enc 3->64 @448", false, 3, 64, 448),
    ("enc 64->128 @224", false, 64, 128, 224),
    ("enc 512->1024 @28", false, 512, 1024, 28),
    ("dec 1024->512 @14", true, 1024, 512, 14),
    ("dec 128->64 @112", true, 128, 64, 112),
    ("dec 64->3 @224", true, 64, 3, 224),
];

/// Forward + backward (dx, dw, db) of one k4 s2 p1 layer; throughput in flops (3 x the forward's 2 MACs).
fn conv(c: &mut Criterion) {
    let batch: usize = std::env::var("GFORGE_CONV_BATCH").ok().and_then(|v| v.parse().ok()).unwrap_or(4);
    let mut g = c.benchmark_group("conv_fwd_bwd");
    g.sample_size(10);
    let mut rng = StdRng::seed_from_u64(2);
    for dev in devices() {
        for (name, transposed, cin, cout, side) in CONV_SHAPES {
            let x = Tensor::randn(&[batch, cin, side, side], &mut rng, &dev).unwrap().requires_grad();
            let wshape = if transposed { [cin, cout, 4, 4] } else { [cout, cin, 4, 4] };
            let w = Tensor::randn(&wshape, &mut rng, &dev).unwrap().requires_grad();
            let b = Tensor::randn(&[cout], &mut rng, &dev).unwrap().requires_grad();
            let out_side = if transposed { side * 2 } else { side / 2 };
            // MACs of the forward: every output element sums cin * 16 products (a transposed layer: every input
            // element scatters cout * 16); dx and dw each cost as much again.
            let macs = if transposed {
                batch * cin * side * side * cout * 16
            } else {
                batch * cout * out_side * out_side * cin * 16
            };
            g.throughput(Throughput::Elements((3 * 2 * macs) as u64));
            g.bench_function(BenchmarkId::new(dev.to_string(), format!("{name} b{batch}")), |bench| {
                bench.iter(|| {
                    let y = if transposed {
                        x.conv_transpose2d(&w, Some(&b), 2, 1).unwrap()
                    } else {
                        x.conv2d(&w, Some(&b), 2, 1).unwrap()
                    };
                    let grads = backward(&y.sum_all().unwrap()).unwrap();
                    dev.synchronize().unwrap();
                    grads
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, matmul, reduce, conv);
criterion_main!(benches);
