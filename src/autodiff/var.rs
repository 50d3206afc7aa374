//! A trainable parameter: a named, replaceable handle to a gradient-leaf tensor. Layers read it in their
//! forward pass; optimisers replace its tensor after each step (tensors themselves are immutable).
use crate::tensor::Tensor;
use std::sync::{Arc, RwLock};

#[derive(Clone)]
pub struct Var {
    name: Arc<str>,
    value: Arc<RwLock<Tensor>>,
}

impl Var {
    pub fn new(name: &str, t: Tensor) -> Var {
        Var { name: name.into(), value: Arc::new(RwLock::new(t.requires_grad())) }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The current value (a gradient leaf).
    pub fn get(&self) -> Tensor {
        crate::sync::read(&self.value).clone()
    }

    /// Replaces the value (e.g. after an optimiser step or when loading a checkpoint).
    pub fn set(&self, t: Tensor) {
        *crate::sync::write(&self.value) = t.requires_grad();
    }
}

impl std::fmt::Debug for Var {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Var({}, {:?})", self.name, self.get().shape())
    }
}
