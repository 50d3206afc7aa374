//! Device-resident f32 tensors: contiguous, row-major, immutable. Ops make new tensors on the same device
//! with no host round-trip. A tensor that needs gradients carries the op that made it (see autodiff).
use crate::autodiff::{self, Grad, Node};
use crate::backend::{Device, Storage};
use crate::error::{Error, Result};
use ndarray::{ArrayD, IxDyn};
use rand::RngExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub type TensorId = u64;

fn next_id() -> TensorId {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[derive(Clone)]
pub struct Tensor(Arc<Inner>);

pub(crate) struct Inner {
    id: TensorId,
    shape: Vec<usize>,
    storage: Arc<Storage>,
    device: Device,
    pub(crate) grad: Grad,
}

impl Tensor {
    fn build(storage: Arc<Storage>, shape: Vec<usize>, device: Device, grad: Grad) -> Tensor {
        Tensor(Arc::new(Inner { id: next_id(), shape, storage, device, grad }))
    }

    /// A tensor with no gradient history over `storage`.
    pub fn from_storage(storage: Storage, shape: &[usize], device: &Device) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        if storage.len() != n {
            return Err(Error::shape("tensor", format!("{} values for shape {shape:?}", storage.len())));
        }
        Ok(Self::build(Arc::new(storage), shape.to_vec(), device.clone(), Grad::None))
    }

    /// The output of op `op`: records `backward` (gradients of the inputs given the output's gradient)
    /// only when some input needs gradients and recording is on; otherwise `backward` is dropped unused.
    /// With anomaly detection on ([`autodiff::anomaly`]) a NaN or Inf in the output is an error naming `op`
    /// and the current layer.
    pub(crate) fn from_op<F>(
        op: &'static str,
        storage: Storage,
        shape: Vec<usize>,
        device: &Device,
        inputs: &[&Tensor],
        backward: F,
    ) -> Result<Tensor>
    where
        F: Fn(&[Tensor], &Tensor, &Tensor) -> Result<Vec<Option<Tensor>>> + Send + Sync + 'static,
    {
        let t = Self::build(Arc::new(storage), shape, device.clone(), Self::record(op, inputs, backward));
        if autodiff::anomaly::detect_anomaly() {
            autodiff::anomaly::check_forward(op, &t)?;
        }
        Ok(t)
    }

    fn record<F>(op: &'static str, inputs: &[&Tensor], backward: F) -> Grad
    where
        F: Fn(&[Tensor], &Tensor, &Tensor) -> Result<Vec<Option<Tensor>>> + Send + Sync + 'static,
    {
        if autodiff::recording() && inputs.iter().any(|t| t.tracks()) {
            // The layer is only looked up (and stored) while anomaly detection is on.
            let layer = if autodiff::anomaly::detect_anomaly() { autodiff::anomaly::current_layer() } else { None };
            Grad::Op(Node {
                op,
                layer,
                inputs: inputs.iter().map(|t| (*t).clone()).collect(),
                backward: Box::new(backward),
            })
        } else {
            Grad::None
        }
    }

    pub fn from_vec(data: Vec<f32>, shape: &[usize], device: &Device) -> Result<Tensor> {
        crate::build_budget::take(data.len() as u64)?;
        Self::from_host(data, shape, device)
    }

    /// `from_vec` for values already counted against the build budget.
    fn from_host(data: Vec<f32>, shape: &[usize], device: &Device) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        if data.len() != n {
            return Err(Error::shape("from_vec", format!("{} values for shape {shape:?}", data.len())));
        }
        let storage = match device {
            Device::Cpu => Storage::Cpu(data),
            d => d.upload(&data)?,
        };
        Self::from_storage(storage, shape, device)
    }

    pub fn from_slice(data: &[f32], shape: &[usize], device: &Device) -> Result<Tensor> {
        Self::from_vec(data.to_vec(), shape, device)
    }

    pub fn scalar(v: f32, device: &Device) -> Result<Tensor> {
        Self::from_vec(vec![v], &[], device)
    }

    pub fn full(shape: &[usize], value: f32, device: &Device) -> Result<Tensor> {
        crate::ops::copy::fill(shape, value, device)
    }

    pub fn zeros(shape: &[usize], device: &Device) -> Result<Tensor> {
        Self::full(shape, 0.0, device)
    }

    pub fn ones(shape: &[usize], device: &Device) -> Result<Tensor> {
        Self::full(shape, 1.0, device)
    }

    /// Standard normal values drawn on the host from `rng` (reproducible across devices).
    pub fn randn(shape: &[usize], rng: &mut impl rand::Rng, device: &Device) -> Result<Tensor> {
        let n = crate::build_budget::take_shape(shape)?;
        let v = (0..n).map(|_| rng.sample::<f32, _>(rand_distr::StandardNormal)).collect();
        Self::from_host(v, shape, device)
    }

    /// Uniform values in [lo, hi) drawn on the host from `rng`.
    pub fn rand_uniform(
        shape: &[usize],
        lo: f32,
        hi: f32,
        rng: &mut impl rand::Rng,
        device: &Device,
    ) -> Result<Tensor> {
        let n = crate::build_budget::take_shape(shape)?;
        let v = (0..n).map(|_| lo + (hi - lo) * rng.random::<f32>()).collect();
        Self::from_host(v, shape, device)
    }

    pub fn from_ndarray(a: &ArrayD<f32>, device: &Device) -> Result<Tensor> {
        let data: Vec<f32> = a.iter().copied().collect();
        Self::from_vec(data, a.shape(), device)
    }

    pub fn to_ndarray(&self) -> Result<ArrayD<f32>> {
        ArrayD::from_shape_vec(IxDyn(&self.0.shape), self.to_vec()?).map_err(|e| Error::Data(e.to_string()))
    }

    /// Reads the values back to the host (waits for pending device work).
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        self.0.device.download(&self.0.storage)
    }

    /// The single value of a one-element tensor.
    pub fn item(&self) -> Result<f32> {
        if self.numel() != 1 {
            return Err(Error::shape("item", format!("tensor of shape {:?} is not a scalar", self.shape())));
        }
        Ok(self.to_vec()?[0])
    }

    /// Reads a float32 or float64 .npy file (float64 is converted), with a clear error for anything else.
    pub fn read_npy(path: &Path, device: &Device) -> Result<Tensor> {
        let a = crate::io::read_npy_f32(path)?;
        Self::from_ndarray(&a, device)
    }

    /// Writes a float32 .npy file atomically (temporary file, then rename).
    pub fn write_npy(&self, path: &Path) -> Result<()> {
        crate::io::write_npy_f32(path, &self.to_ndarray()?)
    }

    /// The same values on another device.
    pub fn to_device(&self, device: &Device) -> Result<Tensor> {
        if self.0.device.same(device) {
            return Ok(self.clone());
        }
        Self::from_vec(self.to_vec()?, &self.0.shape, device)
    }

    pub fn id(&self) -> TensorId {
        self.0.id
    }
    pub fn shape(&self) -> &[usize] {
        &self.0.shape
    }
    pub fn rank(&self) -> usize {
        self.0.shape.len()
    }
    pub fn numel(&self) -> usize {
        self.0.shape.iter().product()
    }
    pub fn device(&self) -> &Device {
        &self.0.device
    }
    pub fn storage(&self) -> &Storage {
        &self.0.storage
    }
    pub(crate) fn storage_arc(&self) -> &Arc<Storage> {
        &self.0.storage
    }

    pub(crate) fn grad_info(&self) -> &Grad {
        &self.0.grad
    }

    /// True if gradients flow into this tensor (a parameter, or computed from one).
    pub fn tracks(&self) -> bool {
        !matches!(self.0.grad, Grad::None)
    }

    /// A gradient leaf over the same storage: `backward` returns its gradient.
    pub fn requires_grad(&self) -> Tensor {
        Self::build(self.0.storage.clone(), self.0.shape.clone(), self.0.device.clone(), Grad::Leaf)
    }

    /// The same values with no gradient history.
    pub fn detach(&self) -> Tensor {
        Self::build(self.0.storage.clone(), self.0.shape.clone(), self.0.device.clone(), Grad::None)
    }

    /// Resolves a possibly negative axis against this tensor's rank.
    pub fn axis(&self, axis: isize) -> Result<usize> {
        let r = self.rank() as isize;
        let a = if axis < 0 { axis + r } else { axis };
        if a < 0 || a >= r {
            return Err(Error::shape("axis", format!("axis {axis} out of range for shape {:?}", self.shape())));
        }
        Ok(a as usize)
    }

    /// Same values, new shape (no copy).
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        if n != self.numel() {
            return Err(Error::shape("reshape", format!("{:?} -> {shape:?}", self.shape())));
        }
        let old = self.shape().to_vec();
        let grad = Self::record("reshape", &[self], move |_, _, g| Ok(vec![Some(g.reshape(&old)?)]));
        Ok(Self::build(self.0.storage.clone(), shape.to_vec(), self.0.device.clone(), grad))
    }

    pub(crate) fn check_same_device(&self, other: &Tensor) -> Result<()> {
        if self.device().same(other.device()) {
            Ok(())
        } else {
            Err(Error::DeviceMismatch(self.device().to_string(), other.device().to_string()))
        }
    }
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor(id={}, shape={:?}, device={})", self.0.id, self.0.shape, self.0.device)
    }
}
