//! The WGPU backend: any Vulkan, Metal, DX12 or GL adapter runs the WGSL kernels of `wgsl/`.
//!
//! - Pipelines are compiled once per (family, entry) and cached.
//! - Dispatches are recorded into one pending command encoder and submitted in batches; reads flush it.
//! - Buffers are recycled through a pool keyed by size, since training allocates the same sizes each step.
//! - wgpu panics on validation errors unless they are captured: each launch and allocation runs inside
//!   error scopes (thread-local, so concurrent users see only their own errors), and a handler records
//!   anything outside a scope, reported as an `Error` at the next flush.
//! - A GL adapter is used by one thread at a time (`WgpuDevice::serial`).
use super::{DeviceInfo, Launch};
use crate::error::{Error, Result};
use crate::sync::lock;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use wgpu::util::DeviceExt;

/// Dispatches recorded before the pending encoder is submitted.
const BATCH: usize = 64;
/// Upper bound on bytes kept in the free-buffer pool.
const POOL_BYTES: u64 = 1 << 30;

pub struct WgpuDevice {
    pub index: usize,
    pub info: wgpu::AdapterInfo,
    device: wgpu::Device,
    queue: wgpu::Queue,
    pipelines: Mutex<HashMap<(&'static str, &'static str), Arc<wgpu::ComputePipeline>>>,
    pending: Mutex<Pending>,
    pool: Mutex<Pool>,
    errors: Arc<Mutex<Vec<String>>>,
    max_binding: u64,
    /// `Limits::max_compute_workgroups_per_dimension` of the adapter (65,535 unless it allows more).
    max_workgroups: u32,
    /// GL adapters only. wgpu-hal guards a GL adapter's one EGL context with a lock that it waits on for 6 s
    /// and then panics ("Could not lock adapter context"); a wait for a long dispatch on a software GL
    /// device holds it longer than that while another thread allocates. Every call into a GL device takes
    /// this lock first, so threads queue here instead. Reentrant: `upload` allocates, then flushes.
    serial: Option<parking_lot::ReentrantMutex<()>>,
}

#[derive(Default)]
struct Pending {
    encoder: Option<wgpu::CommandEncoder>,
    count: usize,
}

#[derive(Default)]
struct Pool {
    free: HashMap<u64, Vec<wgpu::Buffer>>,
    bytes: u64,
}

/// A storage buffer of `len` 4-byte elements; goes back to its device's pool when dropped.
pub struct WgpuBuffer {
    buf: Option<wgpu::Buffer>,
    len: usize,
    dev: Arc<WgpuDevice>,
}

impl WgpuBuffer {
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    fn raw(&self) -> &wgpu::Buffer {
        self.buf.as_ref().expect("buffer present until drop")
    }
}

impl Drop for WgpuBuffer {
    fn drop(&mut self) {
        // A buffer the pool does not keep is destroyed here, which calls into the driver.
        let _gl = self.dev.serial();
        if let Some(b) = self.buf.take() {
            let mut pool = lock(&self.dev.pool);
            if pool.bytes + b.size() <= POOL_BYTES {
                pool.bytes += b.size();
                pool.free.entry(b.size()).or_default().push(b);
            }
        }
    }
}

fn instance() -> &'static wgpu::Instance {
    static INSTANCE: OnceLock<wgpu::Instance> = OnceLock::new();
    INSTANCE.get_or_init(|| {
        // WGPU_BACKEND (vulkan, gl, ...) narrows the backends, as in every wgpu program.
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
    })
}

/// Adapters in a stable order (Vulkan/Metal/DX12 before GL, hardware before software), enumerated once
/// per process: enumerating creates driver contexts, and a GL context created while another thread
/// holds one current makes wgpu-hal's EGL code panic.
fn adapters() -> Vec<wgpu::Adapter> {
    static ADAPTERS: OnceLock<Vec<wgpu::Adapter>> = OnceLock::new();
    ADAPTERS
        .get_or_init(|| {
            let mut v = pollster::block_on(instance().enumerate_adapters(wgpu::Backends::all()));
            v.sort_by_key(|a| {
                let i = a.get_info();
                (i.backend == wgpu::Backend::Gl, i.device_type == wgpu::DeviceType::Cpu)
            });
            v
        })
        .clone()
}

/// Index of the first non-software adapter, for `--device auto`.
pub fn hardware_adapter_index() -> Option<usize> {
    adapters().iter().position(|a| {
        let t = a.get_info().device_type;
        t == wgpu::DeviceType::DiscreteGpu || t == wgpu::DeviceType::IntegratedGpu
    })
}

pub fn list() -> Result<Vec<DeviceInfo>> {
    let v = adapters();
    if v.is_empty() {
        return Err(Error::Device("no WGPU adapter found (no Vulkan, Metal, DX12 or GL driver)".into()));
    }
    Ok(v.iter()
        .enumerate()
        .map(|(i, a)| {
            let info = a.get_info();
            DeviceInfo {
                spec: format!("wgpu:{i}"),
                name: info.name.clone(),
                backend: format!("wgpu/{:?}", info.backend).to_lowercase(),
                kind: format!("{:?}", info.device_type),
                memory: None,
                f16: a.features().contains(wgpu::Features::SHADER_F16),
            }
        })
        .collect())
}

impl std::fmt::Display for WgpuDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "wgpu:{} ({})", self.index, self.info.name)
    }
}

impl WgpuDevice {
    /// Opens adapter `index` (as listed by `gforge devices`) once per process.
    pub fn open(index: usize) -> Result<Arc<WgpuDevice>> {
        static OPEN: OnceLock<Mutex<HashMap<usize, Arc<WgpuDevice>>>> = OnceLock::new();
        let mut open = lock(&OPEN.get_or_init(Default::default));
        if let Some(d) = open.get(&index) {
            return Ok(d.clone());
        }
        let all = adapters();
        let n = all.len();
        let adapter = all.into_iter().nth(index).ok_or_else(|| {
            Error::Device(if n == 0 {
                "no WGPU adapter found (no Vulkan, Metal, DX12 or GL driver)".to_string()
            } else {
                format!("wgpu:{index} does not exist ({n} adapter(s): wgpu:0..wgpu:{})", n - 1)
            })
        })?;
        let info = adapter.get_info();
        let limits = adapter.limits();
        let desc = wgpu::DeviceDescriptor {
            label: Some("galactic-forge"),
            required_limits: limits.clone(),
            ..Default::default()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc))
            .map_err(|e| Error::Device(format!("wgpu:{index} ({}): cannot open: {e}", info.name)))?;
        let errors: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| lock(&sink).push(e.to_string())));
        let d = Arc::new(WgpuDevice {
            index,
            info: info.clone(),
            device,
            queue,
            pipelines: Mutex::default(),
            pending: Mutex::default(),
            pool: Mutex::default(),
            errors,
            max_binding: limits.max_storage_buffer_binding_size,
            max_workgroups: limits.max_compute_workgroups_per_dimension,
            serial: (info.backend == wgpu::Backend::Gl).then(Default::default),
        });
        open.insert(index, d.clone());
        Ok(d)
    }

    /// Held for the duration of every call into the driver on a GL adapter (see the field).
    fn serial(&self) -> Option<parking_lot::ReentrantMutexGuard<'_, ()>> {
        self.serial.as_ref().map(|m| m.lock())
    }

    fn check_errors(&self, what: &str) -> Result<()> {
        let mut errs = lock(&self.errors);
        if errs.is_empty() {
            return Ok(());
        }
        let msg = errs.join("; ");
        errs.clear();
        Err(Error::Device(format!("wgpu:{} {what}: {msg}", self.index)))
    }

    fn buffer(self: &Arc<Self>, len: usize) -> Result<WgpuBuffer> {
        let _gl = self.serial();
        // wgpu rejects zero-sized bindings; keep at least one element.
        let size = (len.max(1) * 4) as u64;
        if size > self.max_binding {
            return Err(Error::Device(format!(
                "wgpu:{}: buffer of {size} bytes exceeds the adapter's binding limit of {} bytes",
                self.index, self.max_binding
            )));
        }
        let reused = {
            let mut pool = lock(&self.pool);
            let b = pool.free.get_mut(&size).and_then(|v| v.pop());
            if b.is_some() {
                pool.bytes -= size;
            }
            b
        };
        let buf = match reused {
            Some(b) => b,
            None => {
                let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
                let b = self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: None,
                    size,
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                if let Some(e) = pollster::block_on(oom.pop()) {
                    return Err(Error::OutOfMemory(format!(
                        "wgpu:{}: out of memory for {size} bytes: {e}",
                        self.index
                    )));
                }
                b
            }
        };
        Ok(WgpuBuffer { buf: Some(buf), len, dev: self.clone() })
    }

    pub fn upload(self: &Arc<Self>, bytes: &[u8], len: usize) -> Result<WgpuBuffer> {
        let _gl = self.serial();
        let b = self.buffer(len)?;
        // A pooled buffer may still be read by recorded work: submit that first so the write lands after it.
        self.flush()?;
        if !bytes.is_empty() {
            self.queue.write_buffer(b.raw(), 0, bytes);
        }
        Ok(b)
    }

    pub fn alloc(self: &Arc<Self>, len: usize) -> Result<WgpuBuffer> {
        if super::poisoned() {
            return self.upload(bytemuck::cast_slice(&vec![f32::NAN; len.max(1)]), len);
        }
        self.buffer(len)
    }

    fn pipeline(&self, family: &'static str, entry: &'static str) -> Result<Arc<wgpu::ComputePipeline>> {
        let _gl = self.serial();
        if let Some(p) = lock(&self.pipelines).get(&(family, entry)) {
            return Ok(p.clone());
        }
        let src = crate::kernels::wgsl(family)
            .ok_or_else(|| Error::kernel(format!("{family}::{entry}"), "no wgsl/ file for this family"))?;
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(family),
            source: wgpu::ShaderSource::Wgsl(src.into()),
        });
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry),
            layout: None,
            module: &module,
            entry_point: Some(entry),
            compilation_options: Default::default(),
            cache: None,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::kernel(format!("{family}::{entry}"), format!("wgpu rejected the pipeline: {e}")));
        }
        let p = Arc::new(pipeline);
        lock(&self.pipelines).insert((family, entry), p.clone());
        Ok(p)
    }

    /// Workgroups a dispatch may have along each dimension.
    pub fn grid_limits(&self) -> [u32; 3] {
        [self.max_workgroups; 3]
    }

    /// Records one dispatch of `grid` workgroups (folded from `l.blocks` by `Device::launch`).
    pub fn launch(
        &self,
        l: &Launch,
        grid: [u32; 3],
        inputs: &[&super::Storage],
        outputs: &[&super::Storage],
    ) -> Result<()> {
        let _gl = self.serial();
        let pipeline = self.pipeline(l.family, l.entry)?;
        // Build and validate the bind group first: an invalid one recorded into the shared encoder would
        // poison every later submit.
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let invalid = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let bind = self.bind_group(l, &pipeline, inputs, outputs);
        let errors = [pollster::block_on(invalid.pop()), pollster::block_on(oom.pop())];
        if let Some(e) = errors.into_iter().flatten().next() {
            return Err(Error::kernel(l.name(), format!("wgpu:{} rejected the launch: {e}", self.index)));
        }
        let bind = bind?;
        let mut pending = lock(&self.pending);
        let enc = pending
            .encoder
            .get_or_insert_with(|| self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None }));
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: None });
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups(grid[0], grid[1], grid[2]);
        }
        pending.count += 1;
        if pending.count >= BATCH {
            self.submit(&mut pending);
        }
        drop(pending);
        self.check_errors(&l.name())
    }

    /// The parameter uniform at binding 0, then inputs and outputs at 1.. (kernels/README.md).
    fn bind_group(
        &self,
        l: &Launch,
        pipeline: &wgpu::ComputePipeline,
        inputs: &[&super::Storage],
        outputs: &[&super::Storage],
    ) -> Result<wgpu::BindGroup> {
        let params = self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: None,
            contents: l.params,
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let mut entries = vec![wgpu::BindGroupEntry { binding: 0, resource: params.as_entire_binding() }];
        for (i, s) in inputs.iter().chain(outputs).enumerate() {
            let super::Storage::Wgpu(b) = s else {
                return Err(Error::Device(format!("{}: buffer is not on this WGPU device", l.name())));
            };
            entries.push(wgpu::BindGroupEntry { binding: i as u32 + 1, resource: b.raw().as_entire_binding() });
        }
        let layout = pipeline.get_bind_group_layout(0);
        Ok(self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &layout,
            entries: &entries,
        }))
    }

    fn submit(&self, pending: &mut Pending) {
        if let Some(enc) = pending.encoder.take() {
            self.queue.submit(Some(enc.finish()));
        }
        pending.count = 0;
    }

    /// Submits recorded work.
    pub fn flush(&self) -> Result<()> {
        let _gl = self.serial();
        self.submit(&mut lock(&self.pending));
        self.check_errors("submit")
    }

    pub fn synchronize(&self) -> Result<()> {
        let _gl = self.serial();
        self.flush()?;
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Device(format!("wgpu:{}: {e}", self.index)))?;
        self.check_errors("synchronize")
    }

    pub fn download(&self, b: &WgpuBuffer) -> Result<Vec<u8>> {
        let _gl = self.serial();
        let size = (b.len * 4) as u64;
        if size == 0 {
            return Ok(Vec::new());
        }
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        {
            let mut pending = lock(&self.pending);
            let enc = pending.encoder.get_or_insert_with(|| {
                self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
            });
            enc.copy_buffer_to_buffer(b.raw(), 0, &staging, 0, size);
            self.submit(&mut pending);
        }
        let slice = staging.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Device(format!("wgpu:{}: {e}", self.index)))?;
        self.check_errors("read back")?;
        rx.recv()
            .map_err(|_| Error::Device("wgpu: map callback never ran".into()))?
            .map_err(|e| Error::Device(format!("wgpu:{}: cannot map buffer: {e}", self.index)))?;
        let data = slice
            .get_mapped_range()
            .map_err(|e| Error::Device(format!("wgpu:{}: cannot read mapped buffer: {e}", self.index)))?
            .to_vec();
        staging.unmap();
        Ok(data)
    }
}
