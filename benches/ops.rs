//! Criterion benchmarks of the primitive ops on every backend this machine has:
//! matmul at 1024^3 (and 256^3) and a row reduction (sum over 4096 of [1024, 4096]).
//! GPU timings include a synchronize, so they measure finished work.
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use galactic_forge::backend::wgpu;
use galactic_forge::{no_grad, Device, Tensor};
use rand::rngs::StdRng;
use rand::SeedableRng;

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

criterion_group!(benches, matmul, reduce);
criterion_main!(benches);
