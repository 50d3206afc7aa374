//! Layers built from the primitive ops: each owns its parameters as named [`Var`]s, so optimisers and
//! checkpoints see one flat list. Names are dotted paths ("flow.3.coupling.net_a.0.w").
mod actnorm;
mod conv;
mod glow_net;
mod image_coupling;
mod inv_conv;
mod linear;
mod lu;
mod made;
mod made_inverse;

pub use actnorm::{ActNorm, CondActNorm, INJECTOR_CLAMP};
pub use conv::{Conv2d, ConvTranspose2d};
pub use glow_net::{condition_map, GlowNet, ZeroConv2d};
pub use image_coupling::CondAffineCoupling;
pub use inv_conv::InvConv1x1;
pub use linear::{Linear, Mlp};
pub use lu::LuLinear;
pub use made::{Made, MaskedLinear};

use crate::autodiff::Var;

/// Something with parameters. `buffers` are saved with the model but never trained (fixed permutations,
/// signs, masks drawn at construction), so a checkpoint restores a model exactly even if the code that
/// draws them changes.
pub trait Module {
    fn vars(&self) -> Vec<Var>;
    fn buffers(&self) -> Vec<Var> {
        Vec::new()
    }
}
