//! A trained flow with everything needed to use it: the flow, the standardisation, and the training
//! state, all in one checkpoint (.npz with a JSON `__config__`).
use crate::backend::Device;
use crate::checkpoint;
use crate::data::conditions::Standardizer;
use crate::error::{Error, Result};
use crate::flows::{Flow, Maf, MafConfig, Nice, NiceConfig, Nsf, NsfConfig, Sospf, SospfConfig};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Which flow, with its settings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "model", rename_all = "lowercase")]
pub enum FlowSpec {
    Nsf(NsfConfig),
    Maf(MafConfig),
    Nice(NiceConfig),
    Sospf(SospfConfig),
}

impl FlowSpec {
    pub fn name(&self) -> &'static str {
        match self {
            FlowSpec::Nsf(_) => "nsf",
            FlowSpec::Maf(_) => "maf",
            FlowSpec::Nice(_) => "nice",
            FlowSpec::Sospf(_) => "sospf",
        }
    }
}

pub fn build_flow(spec: &FlowSpec, dev: &Device) -> Result<Box<dyn Flow>> {
    Ok(match spec {
        FlowSpec::Nsf(c) => Box::new(Nsf::new(c.clone(), dev)?),
        FlowSpec::Maf(c) => Box::new(Maf::new(c.clone(), dev)?),
        FlowSpec::Nice(c) => Box::new(Nice::new(c.clone(), dev)?),
        FlowSpec::Sospf(c) => Box::new(Sospf::new(c.clone(), dev)?),
    })
}

pub struct SavedModel {
    pub spec: FlowSpec,
    pub flow: Box<dyn Flow>,
    pub standardizer: Standardizer,
    pub config: serde_json::Value,
}

impl SavedModel {
    /// Loads a checkpoint written by the trainer onto `dev`.
    pub fn load(path: &Path, dev: &Device) -> Result<(SavedModel, checkpoint::Checkpoint)> {
        let ck = checkpoint::load(path)?;
        let bad = |what: &str, e: serde_json::Error| Error::Checkpoint {
            path: path.display().to_string(),
            msg: format!("{what}: {e}"),
        };
        if ck.config["flow"].is_null() {
            let what = if ck.config["autoencoder"].is_null() { "" } else { " (it is an autoencoder checkpoint)" };
            return Err(Error::Checkpoint {
                path: path.display().to_string(),
                msg: format!("not a flow checkpoint{what}"),
            });
        }
        let spec: FlowSpec = serde_json::from_value(ck.config["flow"].clone()).map_err(|e| bad("flow settings", e))?;
        let standardizer: Standardizer =
            serde_json::from_value(ck.config["standardizer"].clone()).map_err(|e| bad("standardisation", e))?;
        let flow = build_flow(&spec, dev)?;
        ck.restore(path, &crate::flows::all_vars(flow.as_ref()), dev)?;
        Ok((SavedModel { spec, flow, standardizer, config: ck.config.clone() }, ck))
    }
}
