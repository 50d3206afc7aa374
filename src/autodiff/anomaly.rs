//! Anomaly detection, as torch's `detect_anomaly`: off by default; on (`GFORGE_DETECT_ANOMALY=1`, or
//! `--detect-anomaly` on the train commands, or [`set_detect_anomaly`]) every op's output is checked for
//! NaN and Inf as it is made, and every gradient a backward rule returns, and the first one found is an
//! error naming the op and the layer that ran it. Layers name themselves with a cheap thread-local
//! [`scope`] in their forward (a no-op while detection is off). Checking reads each output back to the
//! host, so it slows training down (a lot on a GPU): for finding where a run goes wrong, not for every run.
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU8, Ordering};

/// 0: not decided yet (read the environment), 1: off, 2: on.
static MODE: AtomicU8 = AtomicU8::new(0);

thread_local! {
    static SCOPES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    /// The recorded op whose backward rule is running (its name and layer): an op that rule runs and that
    /// produces a NaN is reported as that backward's.
    static IN_BACKWARD: RefCell<Option<(&'static str, Option<String>)>> = const { RefCell::new(None) };
}

/// Runs the backward rule of `op` (recorded in `layer`), so an anomaly inside it is reported as its.
pub(crate) fn in_backward<T>(op: &'static str, layer: Option<&str>, f: impl FnOnce() -> T) -> T {
    if !detect_anomaly() {
        return f();
    }
    let previous = IN_BACKWARD.with(|b| b.replace(Some((op, layer.map(str::to_string)))));
    let out = f();
    IN_BACKWARD.with(|b| *b.borrow_mut() = previous);
    out
}

/// Turns anomaly detection on or off for the whole process (overrides `GFORGE_DETECT_ANOMALY`).
pub fn set_detect_anomaly(on: bool) {
    MODE.store(if on { 2 } else { 1 }, Ordering::Relaxed);
}

/// Whether anomaly detection is on: [`set_detect_anomaly`], else `GFORGE_DETECT_ANOMALY=1` (or `true`).
pub fn detect_anomaly() -> bool {
    match MODE.load(Ordering::Relaxed) {
        0 => {
            let on = std::env::var("GFORGE_DETECT_ANOMALY").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
            MODE.store(if on { 2 } else { 1 }, Ordering::Relaxed);
            on
        }
        m => m == 2,
    }
}

/// The innermost layer scope's guard: dropping it leaves the layer.
pub struct Scope(bool);

impl Drop for Scope {
    fn drop(&mut self) {
        if self.0 {
            SCOPES.with(|s| s.borrow_mut().pop());
        }
    }
}

/// Enters the layer `name` (e.g. a parameter prefix, "maf.3") until the guard drops; nothing while
/// detection is off.
pub fn scope(name: &str) -> Scope {
    if !detect_anomaly() {
        return Scope(false);
    }
    SCOPES.with(|s| s.borrow_mut().push(name.to_string()));
    Scope(true)
}

/// The current layer, innermost scope last ("maf.3 > maf.3.made"), if any.
pub(crate) fn current_layer() -> Option<String> {
    SCOPES.with(|s| {
        let s = s.borrow();
        (!s.is_empty()).then(|| s.join(" > "))
    })
}

/// NaN and Inf counts of `t` and the index of the first.
fn non_finite(t: &Tensor) -> Result<Option<(usize, usize, usize)>> {
    let v = crate::autodiff::no_grad(|| t.to_vec())?;
    let (mut nan, mut inf, mut first) = (0, 0, None);
    for (i, x) in v.iter().enumerate() {
        if x.is_nan() {
            nan += 1;
        } else if x.is_infinite() {
            inf += 1;
        } else {
            continue;
        }
        first.get_or_insert(i);
    }
    Ok(first.map(|f| (nan, inf, f)))
}

fn describe(nan: usize, inf: usize, first: usize, shape: &[usize]) -> String {
    let what = match (nan, inf) {
        (0, i) => format!("{i} Inf"),
        (n, 0) => format!("{n} NaN"),
        (n, i) => format!("{n} NaN and {i} Inf"),
    };
    format!("{what} of {} values (first at flat index {first} of shape {shape:?})", shape.iter().product::<usize>())
}

fn layer_text(layer: Option<&str>) -> String {
    layer.map_or_else(|| " outside any named layer".to_string(), |l| format!(" in layer '{l}'"))
}

/// Checks an op's fresh output (detection on only).
pub(crate) fn check_forward(op: &'static str, out: &Tensor) -> Result<()> {
    if let Some((nan, inf, first)) = non_finite(out)? {
        if let Some((owner, layer)) = IN_BACKWARD.with(|b| b.borrow().clone()) {
            return Err(Error::Numeric(format!(
                "anomaly detected: the backward of op '{owner}'{} produced {} (in its op '{op}') \
                 (GFORGE_DETECT_ANOMALY)",
                layer_text(layer.as_deref()),
                describe(nan, inf, first, out.shape())
            )));
        }
        let layer = current_layer();
        return Err(Error::Numeric(format!(
            "anomaly detected: op '{op}'{} produced {} in the forward pass (GFORGE_DETECT_ANOMALY)",
            layer_text(layer.as_deref()),
            describe(nan, inf, first, out.shape())
        )));
    }
    Ok(())
}

/// Checks the gradient that op `op`'s backward rule returned for its input `index`.
pub(crate) fn check_backward(op: &'static str, layer: Option<&str>, index: usize, g: &Tensor) -> Result<()> {
    if let Some((nan, inf, first)) = non_finite(g)? {
        return Err(Error::Numeric(format!(
            "anomaly detected: the backward of op '{op}'{} produced {} in the gradient of its input {index} \
             (GFORGE_DETECT_ANOMALY)",
            layer_text(layer),
            describe(nan, inf, first, g.shape())
        )));
    }
    Ok(())
}

/// [`scope`] with a name built only while detection is on.
pub fn scope_with(name: impl FnOnce() -> String) -> Scope {
    if !detect_anomaly() {
        return Scope(false);
    }
    scope(&name())
}

/// [`scope`] named after a layer's parameter: "nice.3.0.w" -> layer "nice.3.0".
pub fn scope_of(param: &crate::autodiff::Var) -> Scope {
    scope_with(|| {
        let n = param.name();
        n.rsplit_once('.').map_or(n, |(layer, _)| layer).to_string()
    })
}
