//! Autodiff-lite. An op whose inputs need gradients records a [`Node`] on its output: the inputs and a
//! backward closure written right under the op's forward maths (src/ops/<op>/mod.rs). The recorded nodes
//! hanging off a loss are the tape; [`backward`] walks it in reverse topological order and returns the
//! gradients of the leaves. With no tracked input (sampling, inference), or inside [`no_grad`], an op
//! records nothing and pays only one branch.
pub mod anomaly;
mod var;

pub use var::Var;

use crate::error::{Error, Result};
use crate::tensor::{Tensor, TensorId};
use std::cell::Cell;
use std::collections::{HashMap, HashSet};

pub(crate) type BackwardFn = Box<dyn Fn(&[Tensor], &Tensor, &Tensor) -> Result<Vec<Option<Tensor>>> + Send + Sync>;

pub(crate) struct Node {
    /// The op's name and, with anomaly detection on, the layer that ran it (for anomaly reports).
    pub op: &'static str,
    pub layer: Option<String>,
    pub inputs: Vec<Tensor>,
    /// (inputs, output, gradient of the output) -> gradient of each input (None: no gradient).
    pub backward: BackwardFn,
}

pub(crate) enum Grad {
    /// No gradient flows here.
    None,
    /// A parameter: its gradient is returned by `backward`.
    Leaf,
    /// Computed by a recorded op.
    Op(Node),
}

thread_local! {
    static RECORDING: Cell<bool> = const { Cell::new(true) };
}

pub(crate) fn recording() -> bool {
    RECORDING.with(|r| r.get())
}

/// Runs `f` without recording any op (inference, sampling, optimiser updates).
pub fn no_grad<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            RECORDING.with(|r| r.set(self.0));
        }
    }
    let _restore = Restore(RECORDING.with(|r| r.replace(false)));
    f()
}

/// Gradients of the leaves, by tensor id.
#[derive(Default)]
pub struct Grads(HashMap<TensorId, Tensor>);

impl Grads {
    pub fn get(&self, t: &Tensor) -> Option<&Tensor> {
        self.0.get(&t.id())
    }
    pub fn insert(&mut self, t: &Tensor, g: Tensor) {
        self.0.insert(t.id(), g);
    }
    pub fn remove(&mut self, t: &Tensor) -> Option<Tensor> {
        self.0.remove(&t.id())
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Gradients of the scalar `loss` with respect to every leaf it depends on.
pub fn backward(loss: &Tensor) -> Result<Grads> {
    if loss.numel() != 1 {
        return Err(Error::shape("backward", format!("loss must be a scalar, got shape {:?}", loss.shape())));
    }
    // Post-order DFS (iterative: flows can be hundreds of ops deep).
    let mut order: Vec<Tensor> = Vec::new();
    let mut seen: HashSet<TensorId> = HashSet::new();
    let mut stack: Vec<(Tensor, bool)> = vec![(loss.clone(), false)];
    while let Some((t, expanded)) = stack.pop() {
        if expanded {
            order.push(t);
            continue;
        }
        if !seen.insert(t.id()) {
            continue;
        }
        stack.push((t.clone(), true));
        if let Grad::Op(node) = &t.grad_info() {
            for i in &node.inputs {
                if i.tracks() && !seen.contains(&i.id()) {
                    stack.push((i.clone(), false));
                }
            }
        }
    }
    no_grad(|| {
        let mut grads: HashMap<TensorId, Tensor> = HashMap::new();
        grads.insert(loss.id(), Tensor::ones(loss.shape(), loss.device())?);
        let mut leaves = Grads::default();
        for t in order.iter().rev() {
            let Some(g) = grads.remove(&t.id()) else { continue };
            match t.grad_info() {
                Grad::Leaf => {
                    leaves.0.insert(t.id(), g);
                }
                Grad::Op(node) => {
                    let gs =
                        anomaly::in_backward(node.op, node.layer.as_deref(), || (node.backward)(&node.inputs, t, &g))?;
                    let check = anomaly::detect_anomaly();
                    for (index, (input, gi)) in node.inputs.iter().zip(gs).enumerate() {
                        let Some(gi) = gi else { continue };
                        if check {
                            anomaly::check_backward(node.op, node.layer.as_deref(), index, &gi)?;
                        }
                        if !input.tracks() {
                            continue;
                        }
                        if gi.shape() != input.shape() {
                            return Err(Error::shape(
                                "backward",
                                format!("gradient of shape {:?} for input of shape {:?}", gi.shape(), input.shape()),
                            ));
                        }
                        let acc = match grads.remove(&input.id()) {
                            Some(prev) => prev.add(&gi)?,
                            None => gi,
                        };
                        grads.insert(input.id(), acc);
                    }
                }
                Grad::None => {}
            }
        }
        Ok(leaves)
    })
}
