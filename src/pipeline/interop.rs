//! `gforge import` / `gforge export`: trained PyTorch models in and out without retraining.
//!
//! gforge never parses a pickle. `tools/torch_models.py` (torch + numpy) turns a PyTorch file into an
//! *interchange* .npz and back; this module maps an interchange file to a gforge checkpoint and a gforge
//! checkpoint to an interchange file. An interchange file is an .npz that numpy opens: every tensor of the
//! model's PyTorch state_dict under its PyTorch name (float32), and the uint8 entry `__config__`, JSON
//! `{"format": "gforge-torch-interchange", "version": 1, "kind", "hyper", "standardisation", "source"}`
//! (the same container as our checkpoints, so the same CRC checks and atomic writes apply).
//!
//! Kinds (README "Models from PyTorch"):
//! - `galacticflow`: GalacticFlow's NSFlow (flowcode.py): `n_layers` x [GLOW_conv `layers.{2i}` (P, L, U, S),
//!   NSF_CL2 `layers.{2i+1}` (net1, net2, net_cond1, net_cond2, each an MLP whose Linear layers sit at
//!   `network.{2j}`)]. It is our NSF exactly, with the spline's minimum bin width, height and derivative 0
//!   (GalacticFlow normalises with a plain softmax and softplus) and its bound B. `hyper`: n_layers, dim_notcond,
//!   dim_cond, K, B, hidden, depth, slope. `standardisation`: GalacticFlow's Processor state (mu/std by name,
//!   the flow's star and condition order, the transformations applied before z-scoring; np.log10 on a
//!   condition becomes our `log10_*` condition).
//! - `ae`: GalacticForge's AE_Galaxy (final_AE.py): `encoder.{2i}` Conv2d, `encoder.{2n+1}` Linear, `decoder.0`
//!   Linear, `decoder.{2+2i}` ConvTranspose2d. `hyper`: image, channels, latents.
use super::model::{FlowSpec, SavedModel};
use crate::autodiff::Var;
use crate::backend::Device;
use crate::checkpoint::{self, Checkpoint};
use crate::data::conditions::Standardizer;
use crate::error::{Error, Result};
use crate::flows::{all_vars, MafConfig, NiceConfig, NsfConfig};
use crate::models::{AeConfig, Autoencoder};
use crate::ops::spline::SplineCfg;
use crate::tensor::Tensor;
use ndarray::{ArrayD, IxDyn};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

pub const FORMAT: &str = "gforge-torch-interchange";
pub const VERSION: u64 = 1;

/// GalacticFlow's names of the 10 modelled star columns, in gforge's order (data::MODELLED).
pub const GALACTICFLOW_STARS: [&str; 10] = ["x", "y", "z", "vx", "vy", "vz", "Z", "feh", "ofe", "age"];

/// An interchange file as read from disk.
pub struct Interchange {
    pub kind: String,
    pub hyper: Value,
    pub standardisation: Value,
    pub source: String,
    pub tensors: BTreeMap<String, ArrayD<f32>>,
}

fn bad(path: &Path, msg: impl Into<String>) -> Error {
    Error::Checkpoint { path: path.display().to_string(), msg: msg.into() }
}

/// Reads and checks an interchange file (format, version, every tensor finite).
pub fn read(path: &Path) -> Result<Interchange> {
    let Checkpoint { config, tensors } = checkpoint::load(path)?;
    if config["format"] != FORMAT {
        let what = if !config["flow"].is_null() || !config["autoencoder"].is_null() {
            " (it is a gforge checkpoint: `gforge export` writes an interchange file from it)".to_string()
        } else {
            String::new()
        };
        return Err(bad(path, format!("not an interchange file from tools/torch_models.py{what}")));
    }
    if config["version"] != VERSION {
        return Err(bad(path, format!("interchange version {}, this gforge reads {VERSION}", config["version"])));
    }
    let kind = config["kind"].as_str().unwrap_or("").to_string();
    Ok(Interchange {
        kind,
        hyper: config["hyper"].clone(),
        standardisation: config["standardisation"].clone(),
        source: config["source"].as_str().unwrap_or("").to_string(),
        tensors,
    })
}

/// Writes an interchange file atomically.
pub fn write(
    path: &Path,
    kind: &str,
    hyper: Value,
    std: Value,
    source: &str,
    tensors: Vec<(String, ArrayD<f32>)>,
) -> Result<()> {
    let cfg = json!({"format": FORMAT, "version": VERSION, "kind": kind, "hyper": hyper, "standardisation": std,
                     "source": source});
    let vars = tensors
        .into_iter()
        .map(|(k, a)| Ok(Var::new(&k, Tensor::from_ndarray(&a, &Device::Cpu)?)))
        .collect::<Result<Vec<_>>>()?;
    checkpoint::save(path, &vars, &cfg)
}

/// How a gforge tensor relates to the PyTorch tensor(s) it comes from.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Map {
    Same,
    /// nn.Linear's weight [out, in] is our [in, out].
    Transpose,
    /// Strictly lower part of GalacticFlow's L (its diagonal and upper part are masked out by the model).
    Lower,
    /// Strictly upper part of U.
    Upper,
    /// log|S| and sign(S) of the LU diagonal S.
    LogAbs,
    Sign,
}

/// (gforge name, PyTorch name, map) for every tensor of a model.
type Pairs = Vec<(String, String, Map)>;

fn nsf_pairs(c: &NsfConfig) -> Pairs {
    let mut v = Vec::new();
    for i in 0..c.layers {
        let (lu, cl) = (format!("layers.{}", 2 * i), format!("layers.{}", 2 * i + 1));
        for (ours, theirs, m) in [
            ("perm", "P", Map::Same),
            ("lower", "L", Map::Lower),
            ("upper", "U", Map::Upper),
            ("log_s", "S", Map::LogAbs),
            ("sign", "S", Map::Sign),
        ] {
            v.push((format!("nsf.{i}.lu.{ours}"), format!("{lu}.{theirs}"), m));
        }
        for (ours, theirs) in [("net1", "net1"), ("cond1", "net_cond1"), ("net2", "net2"), ("cond2", "net_cond2")] {
            for j in 0..c.depth {
                let (o, t) = (format!("nsf.{i}.{ours}.{j}"), format!("{cl}.{theirs}.network.{}", 2 * j));
                v.push((format!("{o}.w"), format!("{t}.weight"), Map::Transpose));
                v.push((format!("{o}.b"), format!("{t}.bias"), Map::Same));
            }
        }
    }
    v
}

fn ae_pairs(c: &AeConfig) -> Pairs {
    let steps = c.channels.len() - 1;
    let mut v = Vec::new();
    let mut both = |ours: String, theirs: String, m: Map| {
        v.push((format!("{ours}.w"), format!("{theirs}.weight"), m));
        v.push((format!("{ours}.b"), format!("{theirs}.bias"), Map::Same));
    };
    for i in 0..steps {
        both(format!("ae.enc.{i}"), format!("encoder.{}", 2 * i), Map::Same);
    }
    both("ae.to_latent".into(), format!("encoder.{}", 2 * steps + 1), Map::Transpose);
    both("ae.from_latent".into(), "decoder.0".into(), Map::Transpose);
    for i in 0..steps {
        both(format!("ae.dec.{i}"), format!("decoder.{}", 2 + 2 * i), Map::Same);
    }
    v
}

fn transpose(a: &ArrayD<f32>) -> ArrayD<f32> {
    a.t().as_standard_layout().to_owned()
}

/// The gforge tensor `want` (of shape `shape`) from PyTorch's tensor `a`.
fn to_ours(path: &Path, theirs: &str, a: &ArrayD<f32>, m: Map, shape: &[usize]) -> Result<ArrayD<f32>> {
    let their_shape: Vec<usize> = match m {
        Map::Transpose => shape.iter().rev().copied().collect(),
        Map::LogAbs | Map::Sign | Map::Same | Map::Lower | Map::Upper => shape.to_vec(),
    };
    if a.shape() != their_shape.as_slice() {
        return Err(bad(path, format!("entry '{theirs}' has shape {:?}, the model needs {their_shape:?}", a.shape())));
    }
    Ok(match m {
        Map::Same => a.clone(),
        Map::Transpose => transpose(a),
        Map::Lower | Map::Upper => {
            let d = shape[0];
            let keep = |r: usize, c: usize| if m == Map::Lower { c < r } else { c > r };
            ArrayD::from_shape_fn(IxDyn(&[d, d]), |ix| if keep(ix[0], ix[1]) { a[IxDyn(&[ix[0], ix[1]])] } else { 0.0 })
        }
        Map::LogAbs => {
            if let Some(i) = a.iter().position(|&s| s == 0.0) {
                return Err(bad(path, format!("entry '{theirs}' has a zero at {i}: the LU matrix is singular")));
            }
            a.mapv(|s| s.abs().ln())
        }
        Map::Sign => a.mapv(f32::signum),
    })
}

/// Every gforge tensor of a model from the interchange tensors; each PyTorch entry must be used.
fn gather(path: &Path, ic: &Interchange, pairs: &Pairs, vars: &[Var]) -> Result<BTreeMap<String, ArrayD<f32>>> {
    let mut out = BTreeMap::new();
    for v in vars {
        let Some((_, theirs, m)) = pairs.iter().find(|p| p.0 == v.name()) else {
            return Err(Error::Usage(format!("internal: no PyTorch name for '{}'", v.name())));
        };
        let a = ic.tensors.get(theirs).ok_or_else(|| bad(path, format!("entry '{theirs}' is missing")))?;
        out.insert(v.name().to_string(), to_ours(path, theirs, a, *m, v.get().shape())?);
    }
    if let Some(extra) = ic.tensors.keys().find(|k| !pairs.iter().any(|p| &p.1 == *k)) {
        return Err(bad(path, format!("entry '{extra}' does not belong to this {} model", ic.kind)));
    }
    Ok(out)
}

/// The values of `vars` by name.
fn by_name(vars: &[Var]) -> Result<BTreeMap<String, ArrayD<f32>>> {
    vars.iter().map(|v| Ok((v.name().to_string(), v.get().to_ndarray()?))).collect()
}

/// PyTorch's tensors of a model from its gforge tensors (the inverse of `gather`).
fn scatter(pairs: &Pairs, vars: &[Var]) -> Result<Vec<(String, ArrayD<f32>)>> {
    let ours = by_name(vars)?;
    let get =
        |name: &str| ours.get(name).ok_or_else(|| Error::Usage(format!("internal: the model has no tensor '{name}'")));
    let mut out: Vec<(String, ArrayD<f32>)> = Vec::new();
    for (o, t, m) in pairs {
        let a = match m {
            Map::Same => get(o)?.clone(),
            Map::Transpose => transpose(get(o)?),
            // GalacticFlow's L keeps its unit diagonal (masked, but what its own init and training leave there).
            Map::Lower => {
                let mut l = get(o)?.clone();
                (0..l.shape()[0]).for_each(|i| l[IxDyn(&[i, i])] = 1.0);
                l
            }
            Map::Upper => get(o)?.clone(),
            Map::LogAbs => {
                let sign = get(&o.replace(".log_s", ".sign"))?;
                ndarray::Zip::from(get(o)?).and(sign).map_collect(|&l, &s| s * l.exp())
            }
            Map::Sign => continue,
        };
        out.push((t.clone(), a));
    }
    Ok(out)
}

fn get_usize(path: &Path, h: &Value, key: &str) -> Result<usize> {
    h[key]
        .as_u64()
        .map(|v| v as usize)
        .ok_or_else(|| bad(path, format!("hyper '{key}' is missing or not a whole number")))
}

fn get_f32(path: &Path, h: &Value, key: &str) -> Result<f32> {
    h[key].as_f64().map(|v| v as f32).ok_or_else(|| bad(path, format!("hyper '{key}' is missing or not a number")))
}

/// Our NSF configuration of a GalacticFlow NSFlow.
fn nsf_config(path: &Path, h: &Value) -> Result<NsfConfig> {
    let (dim, cond_dim) = (get_usize(path, h, "dim_notcond")?, get_usize(path, h, "dim_cond")?);
    let cfg = NsfConfig {
        dim,
        cond_dim,
        layers: get_usize(path, h, "n_layers")?,
        hidden: get_usize(path, h, "hidden")?,
        depth: get_usize(path, h, "depth")?,
        slope: get_f32(path, h, "slope")?,
        spline: SplineCfg {
            bins: get_usize(path, h, "K")?,
            bound: get_f32(path, h, "B")?,
            min_width: 0.0,
            min_height: 0.0,
            min_derivative: 0.0,
        },
        seed: 0,
    };
    if dim != GALACTICFLOW_STARS.len() {
        return Err(bad(
            path,
            format!("the flow models {dim} star columns; gforge's star flows model GalacticFlow's 10"),
        ));
    }
    if cond_dim == 0 {
        return Err(bad(path, "the flow is unconditioned (dim_cond = 0); gforge's flows take conditions"));
    }
    if cfg.layers == 0 || cfg.depth < 2 || cfg.hidden == 0 || !cfg.spline.bound.is_finite() || cfg.spline.bound <= 0.0 {
        return Err(bad(path, format!("unusable hyperparameters {h}")));
    }
    cfg.spline.params(1, false).map_err(|e| bad(path, e.to_string()))?;
    Ok(cfg)
}

/// gforge's name of a GalacticFlow condition (np.log10 applied before z-scoring when `log10`).
pub fn gforge_condition_name(name: &str, log10: bool) -> String {
    match (name, log10) {
        ("M_stars", true) => "log10_Mstars".into(),
        ("M_dm", true) => "log10_Mdm".into(),
        (n, true) => format!("log10_{n}"),
        (n, false) => n.into(),
    }
}

/// GalacticFlow's name of a gforge condition, and whether GalacticFlow applies np.log10 to it first.
pub fn galacticflow_condition_name(name: &str) -> (String, bool) {
    match name {
        "log10_Mstars" => ("M_stars".into(), true),
        "log10_Mdm" => ("M_dm".into(), true),
        n => match n.strip_prefix("log10_") {
            Some(rest) if !rest.is_empty() => (rest.into(), true),
            _ => (n.into(), false),
        },
    }
}

fn names(path: &Path, s: &Value, key: &str) -> Result<Vec<String>> {
    s[key]
        .as_array()
        .and_then(|a| a.iter().map(|v| v.as_str().map(String::from)).collect::<Option<Vec<_>>>())
        .ok_or_else(|| bad(path, format!("standardisation '{key}' is missing or not a list of names")))
}

fn values(path: &Path, s: &Value, key: &str) -> Result<Vec<f64>> {
    s[key]
        .as_array()
        .and_then(|a| a.iter().map(Value::as_f64).collect::<Option<Vec<_>>>())
        .ok_or_else(|| bad(path, format!("standardisation '{key}' is missing or not a list of numbers")))
}

/// Our standardiser from GalacticFlow's Processor state.
fn standardizer(path: &Path, s: &Value, cond_dim: usize) -> Result<Standardizer> {
    let stars = names(path, s, "star_names")?;
    if stars != GALACTICFLOW_STARS {
        return Err(bad(
            path,
            format!(
                "the flow's star columns are {stars:?}; gforge's star flows take {GALACTICFLOW_STARS:?} in that order"
            ),
        ));
    }
    if s["star_conditions"].as_array().is_some_and(|a| !a.is_empty()) {
        return Err(bad(path, "the flow takes star columns as conditions (cond_names['stars']), which gforge cannot"));
    }
    let conds = names(path, s, "cond_names")?;
    if conds.len() != cond_dim {
        return Err(bad(path, format!("{} condition names for a flow of {cond_dim} conditions", conds.len())));
    }
    let mut log10 = Vec::new();
    for t in s["transformations"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        let f = t["function"].as_str().unwrap_or("?");
        for c in t["components"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
            let c = c.as_str().unwrap_or("?");
            if stars.iter().any(|s| s == c) {
                return Err(bad(path, format!("the star column '{c}' is transformed by {f} before z-scoring; gforge only z-scores star columns")));
            }
            if f != "np.log10" {
                return Err(bad(
                    path,
                    format!("the condition '{c}' is transformed by {f}; gforge knows only np.log10"),
                ));
            }
            log10.push(c.to_string());
        }
    }
    let stat = |which: &str| -> Result<BTreeMap<String, f64>> {
        let (n, v) = (names(path, s, &format!("{which}_names"))?, values(path, s, &format!("{which}_vals"))?);
        if n.len() != v.len() {
            return Err(bad(path, format!("{} {which} names for {} values", n.len(), v.len())));
        }
        Ok(n.into_iter().zip(v).collect())
    };
    let (mu, sd) = (stat("mu")?, stat("std")?);
    let look = |name: &str| -> Result<(f64, f64)> {
        let m = *mu.get(name).ok_or_else(|| bad(path, format!("no mean for '{name}'")))?;
        let d = *sd.get(name).ok_or_else(|| bad(path, format!("no standard deviation for '{name}'")))?;
        if !(m.is_finite() && d.is_finite() && d > 0.0) {
            return Err(bad(path, format!("'{name}' has mean {m} and standard deviation {d}")));
        }
        Ok((m, d))
    };
    let (star_mean, star_std) = stars.iter().map(|n| look(n)).collect::<Result<(Vec<_>, Vec<_>)>>()?;
    let (cond_mean, cond_std) = conds.iter().map(|n| look(n)).collect::<Result<(Vec<_>, Vec<_>)>>()?;
    let cond_names = conds.iter().map(|c| gforge_condition_name(c, log10.contains(c))).collect();
    Ok(Standardizer { star_mean, star_std, cond_names, cond_mean, cond_std })
}

/// GalacticFlow's Processor state of our standardiser (the inverse of `standardizer`).
fn processor_state(st: &Standardizer) -> Value {
    let conds: Vec<(String, bool)> = st.cond_names.iter().map(|c| galacticflow_condition_name(c)).collect();
    let mut all: Vec<String> = GALACTICFLOW_STARS.iter().map(|s| s.to_string()).collect();
    all.extend(conds.iter().map(|c| c.0.clone()));
    let logged: Vec<&String> = conds.iter().filter(|c| c.1).map(|c| &c.0).collect();
    let mu: Vec<f64> = st.star_mean.iter().chain(&st.cond_mean).copied().collect();
    let sd: Vec<f64> = st.star_std.iter().chain(&st.cond_std).copied().collect();
    json!({
        "mu_names": all, "mu_vals": mu, "std_names": all, "std_vals": sd,
        "star_names": GALACTICFLOW_STARS, "cond_names": conds.iter().map(|c| &c.0).collect::<Vec<_>>(),
        "star_conditions": [],
        "transformations": [{"function": "np.log10", "components": logged}],
    })
}

/// z-scoring that changes nothing: the imported flow then takes GalacticFlow's normalised coordinates.
fn identity_standardizer(cond_dim: usize) -> Standardizer {
    Standardizer {
        star_mean: vec![0.0; GALACTICFLOW_STARS.len()],
        star_std: vec![1.0; GALACTICFLOW_STARS.len()],
        cond_names: (0..cond_dim).map(|i| format!("c{i}")).collect(),
        cond_mean: vec![0.0; cond_dim],
        cond_std: vec![1.0; cond_dim],
    }
}

/// Our MAF configuration of a zuko MAF (affine, alternating orders).
fn zuko_maf_config(path: &Path, h: &Value) -> Result<MafConfig> {
    let (dim, cond_dim, transforms, hidden, slope) = zuko_hyper(path, h)?;
    Ok(MafConfig { dim, cond_dim, transforms, hidden, seed: 0, zuko_slope: Some(slope), conditioner_clip: None })
}

/// zuko's prefix of transform `i`'s masked linear layer `l`.
fn zuko_layer(i: usize, l: usize) -> String {
    format!("transform.transforms.{i}.hyper.{}", 2 * l)
}

/// Row of zuko's last MADE layer that our output column `k` reads: zuko interleaves (shift, log-scale) per
/// feature, we keep all shifts, then all log-scales.
fn zuko_row(k: usize, d: usize) -> usize {
    if k < d {
        2 * k
    } else {
        2 * (k - d) + 1
    }
}

/// Every tensor of our MAF from a zuko MAF's state_dict.
fn zuko_maf_gather(path: &Path, ic: &Interchange, cfg: &MafConfig) -> Result<BTreeMap<String, ArrayD<f32>>> {
    let (d, c) = (cfg.dim, cfg.cond_dim);
    zuko_base(path, ic, d)?;
    let mut used: Vec<String> = vec!["base.loc".into(), "base.scale".into()];
    let get = |name: &str, shape: &[usize]| zuko_get(path, ic, name, shape);
    let mut out = BTreeMap::new();
    let sizes: Vec<usize> = cfg.hidden.iter().copied().chain([2 * d]).collect();
    for i in 0..cfg.transforms {
        let order = format!("transform.transforms.{i}.order");
        get(&order, &[d])?;
        used.push(order);
        let mut fan_in = d + c;
        for (l, &fo) in sizes.iter().enumerate() {
            let t = zuko_layer(i, l);
            let (w, b, m) = (
                get(&format!("{t}.weight"), &[fo, fan_in])?,
                get(&format!("{t}.bias"), &[fo])?,
                get(&format!("{t}.mask"), &[fo, fan_in])?,
            );
            used.extend([format!("{t}.weight"), format!("{t}.bias"), format!("{t}.mask")]);
            let last = l + 1 == sizes.len();
            let row = |k: usize| if last { zuko_row(k, d) } else { k };
            let cols = if l == 0 { d } else { fan_in };
            let o = format!("maf.{i}.{l}");
            out.insert(
                format!("{o}.w"),
                ArrayD::from_shape_fn(IxDyn(&[cols, fo]), |ix| w[IxDyn(&[row(ix[1]), ix[0]])]),
            );
            out.insert(
                format!("{o}.mask"),
                ArrayD::from_shape_fn(IxDyn(&[cols, fo]), |ix| m[IxDyn(&[row(ix[1]), ix[0]])]),
            );
            out.insert(format!("{o}.b"), ArrayD::from_shape_fn(IxDyn(&[fo]), |ix| b[IxDyn(&[row(ix[0])])]));
            if l == 0 {
                if m.slice(ndarray::s![.., d..]).iter().any(|&v| v != 1.0) {
                    return Err(bad(
                        path,
                        format!("entry '{t}.mask' does not connect every context feature to every unit"),
                    ));
                }
                out.insert(
                    format!("{o}.wc"),
                    ArrayD::from_shape_fn(IxDyn(&[c, fo]), |ix| w[IxDyn(&[ix[1], d + ix[0]])]),
                );
            }
            fan_in = fo;
        }
    }
    if let Some(extra) = ic.tensors.keys().find(|k| !used.contains(k)) {
        return Err(bad(path, format!("entry '{extra}' does not belong to this {} model", ic.kind)));
    }
    Ok(out)
}

/// A zuko MAF state_dict of our MAF (the inverse of `zuko_maf_gather`; masks and orders as float32, which
/// tools/torch_models.py turns back into bool and int64).
fn zuko_maf_scatter(cfg: &MafConfig, vars: &[Var]) -> Result<Vec<(String, ArrayD<f32>)>> {
    let (d, c) = (cfg.dim, cfg.cond_dim);
    let ours = by_name(vars)?;
    let get = |name: String| ours.get(&name).ok_or_else(|| Error::Usage(format!("internal: no tensor '{name}'")));
    let mut out = vec![
        ("base.loc".to_string(), ArrayD::zeros(IxDyn(&[d]))),
        ("base.scale".to_string(), ArrayD::ones(IxDyn(&[d]))),
    ];
    let sizes: Vec<usize> = cfg.hidden.iter().copied().chain([2 * d]).collect();
    for i in 0..cfg.transforms {
        let order: Vec<f32> =
            if i % 2 == 0 { (0..d).map(|k| k as f32).collect() } else { (0..d).rev().map(|k| k as f32).collect() };
        out.push((
            format!("transform.transforms.{i}.order"),
            ArrayD::from_shape_vec(IxDyn(&[d]), order).expect("d values"),
        ));
        let mut fan_in = d + c;
        for (l, &fo) in sizes.iter().enumerate() {
            let (o, t) = (format!("maf.{i}.{l}"), zuko_layer(i, l));
            let (w, m, b) = (get(format!("{o}.w"))?, get(format!("{o}.mask"))?, get(format!("{o}.b"))?);
            let last = l + 1 == sizes.len();
            // Our column of zuko's row r.
            let col = |r: usize| {
                if !last {
                    r
                } else if r.is_multiple_of(2) {
                    r / 2
                } else {
                    d + r / 2
                }
            };
            let wc = if l == 0 { Some(get(format!("{o}.wc"))?) } else { None };
            let full = |a: &ArrayD<f32>, ctx: Option<&ArrayD<f32>>, fill: f32| {
                ArrayD::from_shape_fn(IxDyn(&[fo, fan_in]), |ix| {
                    let (r, k) = (ix[0], ix[1]);
                    match (l == 0 && k >= d, ctx) {
                        (true, Some(cw)) => cw[IxDyn(&[k - d, col(r)])],
                        (true, None) => fill,
                        (false, _) => a[IxDyn(&[k, col(r)])],
                    }
                })
            };
            out.push((format!("{t}.weight"), full(w, wc, 0.0)));
            out.push((format!("{t}.bias"), ArrayD::from_shape_fn(IxDyn(&[fo]), |ix| b[IxDyn(&[col(ix[0])])])));
            out.push((format!("{t}.mask"), full(m, None, 1.0)));
            fan_in = fo;
        }
    }
    Ok(out)
}

/// Options of `gforge import`.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Import a flow that carries no standardisation, with z-scoring that changes nothing.
    pub no_standardisation: bool,
}

/// features, context, transforms, hidden widths and slope of a zuko flow's hyper.
fn zuko_hyper(path: &Path, h: &Value) -> Result<(usize, usize, usize, Vec<usize>, f32)> {
    let hidden = h["hidden"]
        .as_array()
        .and_then(|a| a.iter().map(|v| v.as_u64().map(|c| c as usize)).collect::<Option<Vec<_>>>())
        .filter(|v| !v.is_empty() && v.iter().all(|&c| c > 0))
        .ok_or_else(|| bad(path, "hyper 'hidden' is missing or not a list of layer widths"))?;
    let (d, c, t) =
        (get_usize(path, h, "features")?, get_usize(path, h, "context")?, get_usize(path, h, "transforms")?);
    let slope = get_f32(path, h, "slope")?;
    if d != GALACTICFLOW_STARS.len() {
        return Err(bad(path, format!("the flow models {d} features; gforge's star flows model 10")));
    }
    if c == 0 || t == 0 {
        return Err(bad(path, format!("unusable hyperparameters {h} (gforge's flows take conditions)")));
    }
    if slope.is_nan() || slope <= 0.0 || slope >= 1.0 {
        return Err(bad(path, format!("slope {slope} is not in (0, 1)")));
    }
    Ok((d, c, t, hidden, slope))
}

/// A zuko flow's tensor `name`, of shape `shape`.
fn zuko_get<'a>(path: &Path, ic: &'a Interchange, name: &str, shape: &[usize]) -> Result<&'a ArrayD<f32>> {
    let a = ic.tensors.get(name).ok_or_else(|| bad(path, format!("entry '{name}' is missing")))?;
    if a.shape() != shape {
        return Err(bad(path, format!("entry '{name}' has shape {:?}, the model needs {shape:?}", a.shape())));
    }
    Ok(a)
}

/// zuko's base must be N(0, I), as ours.
fn zuko_base(path: &Path, ic: &Interchange, d: usize) -> Result<()> {
    for (name, want) in [("base.loc", 0.0), ("base.scale", 1.0)] {
        if zuko_get(path, ic, name, &[d])?.iter().any(|&v| v != want) {
            return Err(bad(path, format!("entry '{name}' is not {want} everywhere: the base is not N(0, I)")));
        }
    }
    Ok(())
}

/// Features transformed by NICE coupling `i` (zuko's mask: feature j kept when j % 2 == i % 2).
fn nice_changed(i: usize, d: usize) -> usize {
    (0..d).filter(|j| (j + i) % 2 == 1).count()
}

/// Our NICE (zuko's affine couplings and log-scale) of a zuko NICE.
fn zuko_nice_config(path: &Path, h: &Value) -> Result<NiceConfig> {
    let (dim, cond_dim, transforms, hidden, slope) = zuko_hyper(path, h)?;
    Ok(NiceConfig {
        dim,
        cond_dim,
        transforms,
        hidden,
        affine: true,
        seed: 0,
        zuko_slope: Some(slope),
        conditioner_clip: None,
    })
}

/// Every tensor of our NICE from a zuko NICE's state_dict (plain MLPs on [kept half, context]).
fn zuko_nice_gather(path: &Path, ic: &Interchange, cfg: &NiceConfig) -> Result<BTreeMap<String, ArrayD<f32>>> {
    let (d, c) = (cfg.dim, cfg.cond_dim);
    zuko_base(path, ic, d)?;
    let mut used: Vec<String> = vec!["base.loc".into(), "base.scale".into()];
    let mut out = BTreeMap::new();
    out.insert("nice.log_scale".to_string(), ArrayD::zeros(IxDyn(&[d])));
    for i in 0..cfg.transforms {
        let nb = nice_changed(i, d);
        let mname = format!("transform.transforms.{i}.mask");
        let mask = zuko_get(path, ic, &mname, &[d])?;
        if mask.iter().enumerate().any(|(j, &m)| (m != 0.0) != ((j + i) % 2 == 0)) {
            return Err(bad(
                path,
                format!("entry '{mname}' is not zuko's alternating mask (randmask=True is not supported)"),
            ));
        }
        used.push(mname);
        let sizes: Vec<usize> = cfg.hidden.iter().copied().chain([2 * nb]).collect();
        let mut fan_in = d - nb + c;
        for (l, &fo) in sizes.iter().enumerate() {
            let t = zuko_layer(i, l);
            let (w, b) = (
                zuko_get(path, ic, &format!("{t}.weight"), &[fo, fan_in])?,
                zuko_get(path, ic, &format!("{t}.bias"), &[fo])?,
            );
            used.extend([format!("{t}.weight"), format!("{t}.bias")]);
            let last = l + 1 == sizes.len();
            let row = |k: usize| if last { zuko_row(k, nb) } else { k };
            let o = format!("nice.{i}.{l}");
            out.insert(
                format!("{o}.w"),
                ArrayD::from_shape_fn(IxDyn(&[fan_in, fo]), |ix| w[IxDyn(&[row(ix[1]), ix[0]])]),
            );
            out.insert(format!("{o}.b"), ArrayD::from_shape_fn(IxDyn(&[fo]), |ix| b[IxDyn(&[row(ix[0])])]));
            fan_in = fo;
        }
    }
    if let Some(extra) = ic.tensors.keys().find(|k| !used.contains(k)) {
        return Err(bad(path, format!("entry '{extra}' does not belong to this {} model", ic.kind)));
    }
    Ok(out)
}

/// A zuko NICE state_dict of our NICE (the inverse of `zuko_nice_gather`).
fn zuko_nice_scatter(cfg: &NiceConfig, vars: &[Var]) -> Result<Vec<(String, ArrayD<f32>)>> {
    let d = cfg.dim;
    let ours = by_name(vars)?;
    let get = |name: String| ours.get(&name).ok_or_else(|| Error::Usage(format!("internal: no tensor '{name}'")));
    let mut out = vec![
        ("base.loc".to_string(), ArrayD::zeros(IxDyn(&[d]))),
        ("base.scale".to_string(), ArrayD::ones(IxDyn(&[d]))),
    ];
    for i in 0..cfg.transforms {
        let nb = nice_changed(i, d);
        let mask = ArrayD::from_shape_fn(IxDyn(&[d]), |ix| ((ix[0] + i) % 2 == 0) as u8 as f32);
        out.push((format!("transform.transforms.{i}.mask"), mask));
        let layers = cfg.hidden.len() + 1;
        for l in 0..layers {
            let (o, t) = (format!("nice.{i}.{l}"), zuko_layer(i, l));
            let (w, b) = (get(format!("{o}.w"))?, get(format!("{o}.b"))?);
            let last = l + 1 == layers;
            let col = |r: usize| {
                if !last {
                    r
                } else if r.is_multiple_of(2) {
                    r / 2
                } else {
                    nb + r / 2
                }
            };
            let (fan_in, fo) = (w.shape()[0], w.shape()[1]);
            out.push((
                format!("{t}.weight"),
                ArrayD::from_shape_fn(IxDyn(&[fo, fan_in]), |ix| w[IxDyn(&[ix[1], col(ix[0])])]),
            ));
            out.push((format!("{t}.bias"), ArrayD::from_shape_fn(IxDyn(&[fo]), |ix| b[IxDyn(&[col(ix[0])])])));
        }
    }
    Ok(out)
}

/// The standardisation an imported flow carries, or z-scoring that changes nothing when asked for.
fn flow_standardizer(input: &Path, ic: &Interchange, cond_dim: usize, opts: &ImportOptions) -> Result<Standardizer> {
    if ic.standardisation.is_null() {
        if !opts.no_standardisation {
            return Err(bad(
                input,
                "carries no standardisation (GalacticFlow's mu/std): convert a file GalacticFlow's API saved, or pass \
                 --stats to tools/torch_models.py; --no-standardisation imports the flow in its normalised coordinates",
            ));
        }
        return Ok(identity_standardizer(cond_dim));
    }
    if opts.no_standardisation {
        return Err(Error::Usage("--no-standardisation: this file carries its standardisation".into()));
    }
    standardizer(input, &ic.standardisation, cond_dim)
}

/// Converts an interchange file into a gforge checkpoint; returns one line saying what was imported.
pub fn import(input: &Path, out: &Path, opts: &ImportOptions) -> Result<String> {
    let ic = read(input)?;
    let imported = json!({"kind": ic.kind, "source": ic.source, "interchange": input.display().to_string()});
    match ic.kind.as_str() {
        "galacticflow" => {
            let cfg = nsf_config(input, &ic.hyper)?;
            let st = flow_standardizer(input, &ic, cfg.cond_dim, opts)?;
            let spec = FlowSpec::Nsf(cfg.clone());
            let flow = super::build_flow(&spec, &Device::Cpu)?;
            let vars = all_vars(flow.as_ref());
            let tensors = gather(input, &ic, &nsf_pairs(&cfg), &vars)?;
            let config = json!({"checkpoint": "imported", "flow": spec, "standardizer": st, "imported": imported});
            Checkpoint { config: config.clone(), tensors }.restore(input, &vars, &Device::Cpu)?;
            checkpoint::save(out, &vars, &config)?;
            Ok(format!(
                "GalacticFlow NSFlow ({} layers, K = {} on [-{}, {}], nets {} x {}, conditions {}) -> {}",
                cfg.layers,
                cfg.spline.bins,
                cfg.spline.bound,
                cfg.spline.bound,
                cfg.depth,
                cfg.hidden,
                st.cond_names.join(", "),
                out.display()
            ))
        }
        "ae" => {
            let h = &ic.hyper;
            let channels = h["channels"]
                .as_array()
                .and_then(|a| a.iter().map(|v| v.as_u64().map(|c| c as usize)).collect::<Option<Vec<_>>>())
                .ok_or_else(|| bad(input, "hyper 'channels' is missing or not a list of whole numbers"))?;
            let cfg = AeConfig {
                image: get_usize(input, h, "image")?,
                channels,
                latents: get_usize(input, h, "latents")?,
                seed: 0,
            };
            cfg.validate().map_err(|e| bad(input, e.to_string()))?;
            let ae = Autoencoder::new(&cfg, &Device::Cpu)?;
            let vars = ae.all_vars();
            let tensors = gather(input, &ic, &ae_pairs(&cfg), &vars)?;
            let config = json!({"checkpoint": "imported", "autoencoder": cfg, "imported": imported});
            Checkpoint { config: config.clone(), tensors }.restore(input, &vars, &Device::Cpu)?;
            checkpoint::save(out, &vars, &config)?;
            Ok(format!(
                "GalacticForge autoencoder ({} x {} images, channels {:?}, {} latents) -> {}",
                cfg.image,
                cfg.image,
                cfg.channels,
                cfg.latents,
                out.display()
            ))
        }
        "zuko-maf" => {
            let cfg = zuko_maf_config(input, &ic.hyper)?;
            let st = flow_standardizer(input, &ic, cfg.cond_dim, opts)?;
            let spec = FlowSpec::Maf(cfg.clone());
            let flow = super::build_flow(&spec, &Device::Cpu)?;
            let vars = all_vars(flow.as_ref());
            let tensors = zuko_maf_gather(input, &ic, &cfg)?;
            let config = json!({"checkpoint": "imported", "flow": spec, "standardizer": st, "imported": imported});
            Checkpoint { config: config.clone(), tensors }.restore(input, &vars, &Device::Cpu)?;
            checkpoint::save(out, &vars, &config)?;
            Ok(format!(
                "zuko MAF ({} transforms, hidden {:?}, conditions {}) -> {}",
                cfg.transforms,
                cfg.hidden,
                st.cond_names.join(", "),
                out.display()
            ))
        }
        "zuko-nice" => {
            let cfg = zuko_nice_config(input, &ic.hyper)?;
            let st = flow_standardizer(input, &ic, cfg.cond_dim, opts)?;
            let spec = FlowSpec::Nice(cfg.clone());
            let flow = super::build_flow(&spec, &Device::Cpu)?;
            let vars = all_vars(flow.as_ref());
            let tensors = zuko_nice_gather(input, &ic, &cfg)?;
            let config = json!({"checkpoint": "imported", "flow": spec, "standardizer": st, "imported": imported});
            Checkpoint { config: config.clone(), tensors }.restore(input, &vars, &Device::Cpu)?;
            checkpoint::save(out, &vars, &config)?;
            Ok(format!(
                "zuko NICE ({} affine couplings, hidden {:?}, conditions {}) -> {}",
                cfg.transforms,
                cfg.hidden,
                st.cond_names.join(", "),
                out.display()
            ))
        }
        k => Err(bad(
            input,
            format!("unknown kind '{k}' (this gforge imports galacticflow, zuko-maf, zuko-nice and ae)"),
        )),
    }
}

/// Options of `gforge export`.
#[derive(Clone, Debug, Default)]
pub struct ExportOptions {
    /// Export an NSF whose spline has non-zero minimum bin sizes (gforge's training default), which
    /// GalacticFlow's spline cannot express: its density in GalacticFlow then differs slightly.
    pub inexact: bool,
}

/// Converts a gforge checkpoint (flow or autoencoder) into an interchange file; returns one line saying what
/// was exported, and a warning when the export is not exact.
pub fn export(input: &Path, out: &Path, opts: &ExportOptions) -> Result<(String, Option<String>)> {
    let ck = checkpoint::load(input)?;
    let source = input.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default();
    if !ck.config["autoencoder"].is_null() {
        let (ae, _) = super::ae::load(input, &Device::Cpu)?;
        let t = scatter(&ae_pairs(&ae.cfg), &ae.all_vars())?;
        let h = json!({"image": ae.cfg.image, "channels": ae.cfg.channels, "latents": ae.cfg.latents});
        write(out, "ae", h, Value::Null, &source, t)?;
        return Ok((
            format!(
                "GalacticForge autoencoder ({:?}, {} latents) -> {}",
                ae.cfg.channels,
                ae.cfg.latents,
                out.display()
            ),
            None,
        ));
    }
    let (model, _) = SavedModel::load(input, &Device::Cpu)?;
    if let FlowSpec::Maf(cfg) = &model.spec {
        let why = if cfg.zuko_slope.is_none() {
            Some("this MAF uses gforge's log-scale clamp 3 tanh(r / 3), not zuko's soft clip")
        } else if cfg.conditioner_clip.is_some() {
            Some("this MAF's MADEs read their inputs soft-clipped, which zuko's do not")
        } else {
            None
        };
        if let (Some(w), false) = (why, opts.inexact) {
            return Err(Error::Usage(format!(
                "{}: {w}, so zuko would compute another density; --inexact exports it anyway",
                input.display()
            )));
        }
        let warning = why.map(|w| format!("{w}: its densities in zuko differ"));
        let slope = cfg.zuko_slope.unwrap_or(1e-3);
        let t = zuko_maf_scatter(cfg, &all_vars(model.flow.as_ref()))?;
        let short = |v: f32| v.to_string().parse::<f64>().unwrap_or(f64::from(v));
        let h = json!({"features": cfg.dim, "context": cfg.cond_dim, "transforms": cfg.transforms,
                       "hidden": cfg.hidden, "slope": short(slope)});
        write(out, "zuko-maf", h, processor_state(&model.standardizer), &source, t)?;
        return Ok((format!("MAF -> zuko MAF ({} transforms) -> {}", cfg.transforms, out.display()), warning));
    }
    if let FlowSpec::Nice(cfg) = &model.spec {
        let scaled = model
            .flow
            .vars()
            .iter()
            .any(|v| v.name() == "nice.log_scale" && v.get().to_vec().is_ok_and(|s| s.iter().any(|&x| x != 0.0)));
        let what = if !cfg.affine {
            Some("this NICE is additive; zuko's NICE couples affinely")
        } else if scaled {
            Some("this NICE has a final diagonal scaling, which zuko's NICE lacks")
        } else if cfg.zuko_slope.is_none() {
            Some("this NICE uses gforge's log-scale clamp 3 tanh(r / 3), not zuko's soft clip")
        } else if cfg.conditioner_clip.is_some() {
            Some("this NICE's coupling nets read their inputs soft-clipped, which zuko's do not")
        } else {
            None
        };
        if let Some(w) = what {
            if !cfg.affine || scaled || !opts.inexact {
                let hint = if cfg.affine && !scaled { "; --inexact exports it anyway" } else { "" };
                return Err(Error::Usage(format!(
                    "{}: {w}, so zuko would compute another density{hint}",
                    input.display()
                )));
            }
        }
        let t = zuko_nice_scatter(cfg, &all_vars(model.flow.as_ref()))?;
        let short = |v: f32| v.to_string().parse::<f64>().unwrap_or(f64::from(v));
        let h = json!({"features": cfg.dim, "context": cfg.cond_dim, "transforms": cfg.transforms,
                       "hidden": cfg.hidden, "slope": short(cfg.zuko_slope.unwrap_or(1e-3))});
        write(out, "zuko-nice", h, processor_state(&model.standardizer), &source, t)?;
        let warning = what.map(|w| format!("{w}: its densities in zuko differ"));
        return Ok((format!("NICE -> zuko NICE ({} transforms) -> {}", cfg.transforms, out.display()), warning));
    }
    let FlowSpec::Nsf(cfg) = &model.spec else {
        return Err(Error::Usage(format!(
            "{}: a {} flow; export writes GalacticFlow's NSFlow, zuko's MAF and NICE, and GalacticForge's autoencoder",
            input.display(),
            model.spec.name()
        )));
    };
    if cfg.dim % 2 != 0 || cfg.depth < 2 {
        return Err(Error::Usage(format!(
            "{}: GalacticFlow's NSFlow needs an even dimension and nets of 2 or more layers",
            input.display()
        )));
    }
    let s = &cfg.spline;
    let mut warning = None;
    if s.min_width != 0.0 || s.min_height != 0.0 || s.min_derivative != 0.0 {
        let what = format!(
            "this NSF's spline keeps minimum bin widths, heights and derivatives ({}, {}, {}), which GalacticFlow's \
             spline lacks",
            s.min_width, s.min_height, s.min_derivative
        );
        if !opts.inexact {
            return Err(Error::Usage(format!(
                "{}: {what}, so GalacticFlow would compute another density; --inexact exports it anyway",
                input.display()
            )));
        }
        warning = Some(format!("{what}: in GalacticFlow its log-densities differ slightly from gforge's"));
    }
    let t = scatter(&nsf_pairs(cfg), &all_vars(model.flow.as_ref()))?;
    // f32 settings as their shortest decimal (0.2, not 0.20000000298...).
    let short = |v: f32| v.to_string().parse::<f64>().unwrap_or(f64::from(v));
    let h = json!({"n_layers": cfg.layers, "dim_notcond": cfg.dim, "dim_cond": cfg.cond_dim, "K": s.bins,
                   "B": short(s.bound), "hidden": cfg.hidden, "depth": cfg.depth, "slope": short(cfg.slope)});
    write(out, "galacticflow", h, processor_state(&model.standardizer), &source, t)?;
    let from = if model.path.as_path() != input {
        format!(" (its kept epoch, {})", model.path.display())
    } else {
        String::new()
    };
    Ok((
        format!("NSF{from} -> GalacticFlow NSFlow ({} layers, K = {}) -> {}", cfg.layers, s.bins, out.display()),
        warning,
    ))
}
