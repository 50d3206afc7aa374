//! `gforge`: the GalacticForge command line.
use clap::{Args, Parser, Subcommand};
use galactic_forge::backend::{list_devices, Device};
use galactic_forge::data::synthetic::{self, SynthConfig};
use galactic_forge::flows::{MafConfig, NiceConfig, NsfConfig, SospfConfig};
use galactic_forge::pipeline::{self, forge, FlowSpec, PrepareConfig, SavedModel, TrainConfig};
use galactic_forge::{selftest, Error, Result};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "gforge",
    version,
    about = "Conditional normalizing flows and autoencoders for astrophysics on CUDA, any WGPU GPU and the CPU"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List the devices this machine offers (CPU, CUDA GPUs, WGPU adapters).
    Devices,
    /// Check every op, forward and backward, on a device against the CPU reference.
    Selftest {
        /// auto, cpu, wgpu[:N] or cuda[:N]; without it, every GPU device this machine has.
        #[arg(long)]
        device: Option<String>,
        /// Seed of the random inputs.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Generate synthetic data with exact densities.
    Synth {
        #[command(subcommand)]
        what: SynthCmd,
    },
    /// Train, sample and evaluate star-particle flows.
    Flow {
        #[command(subcommand)]
        cmd: Box<FlowCmd>,
    },
    /// The whole pipeline into one folder: synthesise -> clean -> train -> sample -> evaluate and plot.
    Forge {
        /// Run on the embedded default (synthetic galaxies); the only mode until real-data forging lands.
        #[arg(long)]
        demo: bool,
        #[arg(long, default_value = "forge-demo")]
        out: PathBuf,
        #[arg(long, default_value = "auto")]
        device: String,
        /// Training epochs (the demo's default fits in a few minutes on 2 CPU cores).
        #[arg(long)]
        epochs: Option<usize>,
    },
}

#[derive(Subcommand)]
enum SynthCmd {
    /// NIHAO-like galaxies as <id>.npy files (GalacticFlow layout) plus truth.json.
    Galaxies {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 24)]
        galaxies: usize,
        /// Star particle mass [Msun]; each galaxy gets M_star / m_particle stars within [n_min, n_max].
        #[arg(long, default_value_t = 2e6)]
        m_particle: f64,
        #[arg(long, default_value_t = 2000)]
        n_min: usize,
        #[arg(long, default_value_t = 12000)]
        n_max: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(Args)]
struct ModelArgs {
    /// nsf (GalacticFlow's neural spline flow) or maf (masked autoregressive flow; --layers transforms,
    /// --depth - 1 hidden layers of --hidden units), nice or nice-affine (--layers couplings), sospf
    /// (--layers sum-of-squares polynomial transforms).
    #[arg(long, default_value = "nsf")]
    model: String,
    #[arg(long, default_value_t = 14)]
    layers: usize,
    #[arg(long, default_value_t = 128)]
    hidden: usize,
    /// Linear layers per net.
    #[arg(long, default_value_t = 4)]
    depth: usize,
    /// Spline bins.
    #[arg(long, default_value_t = 10)]
    bins: usize,
}

impl ModelArgs {
    /// Hidden widths of a MADE or coupling net: --depth Linear layers means --depth - 1 hidden ones.
    fn hidden_layers(&self) -> Vec<usize> {
        vec![self.hidden; self.depth.saturating_sub(1).max(1)]
    }
}

#[derive(Subcommand)]
enum FlowCmd {
    /// Train a flow on a folder of galaxies (.npy per galaxy, or one .npz).
    Train {
        #[arg(long)]
        data: PathBuf,
        /// Checkpoint written after every epoch.
        #[arg(long, default_value = "flow.npz")]
        out: PathBuf,
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long, default_value = "auto")]
        device: String,
        #[arg(long, default_value_t = 10)]
        epochs: usize,
        #[arg(long, default_value_t = 1024)]
        batch: usize,
        /// radam, adam or adamw.
        #[arg(long, default_value = "radam")]
        optimizer: String,
        #[arg(long, default_value_t = 9e-5)]
        lr: f32,
        /// ExponentialLR factor, applied every --gamma-every batches.
        #[arg(long, default_value_t = 0.998)]
        gamma: f32,
        #[arg(long, default_value_t = 10)]
        gamma_every: u64,
        #[arg(long)]
        clip: Option<f32>,
        #[arg(long)]
        max_steps: Option<u64>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Comma-separated galaxy ids left out for validation (default: --val-fraction of them).
        #[arg(long, value_delimiter = ',')]
        val_ids: Vec<String>,
        #[arg(long, default_value_t = 0.2)]
        val_fraction: f64,
        /// CSV of extra per-galaxy conditions: header `id,name1,...`.
        #[arg(long)]
        extra_conditions: Option<PathBuf>,
        /// Continue from --out where it stopped.
        #[arg(long)]
        resume: bool,
    },
    /// Clean, condition, split and standardise a data folder as `train` would, and write the result as .npy
    /// (train_x/val_x [N, 10] standardised stars, train_c/val_c [N, C] each star's standardised condition)
    /// plus prepared.json (standardisation, ids, cleaning report): the same data for other tools.
    Prepare {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_delimiter = ',')]
        val_ids: Vec<String>,
        #[arg(long, default_value_t = 0.2)]
        val_fraction: f64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        extra_conditions: Option<PathBuf>,
    },
    /// Draw stars for one galaxy's condition, in physical units, into a .npy [N, 10].
    Sample {
        #[arg(long)]
        model: PathBuf,
        /// A galaxy id stored in the checkpoint.
        #[arg(long)]
        galaxy: Option<String>,
        /// Physical condition values, comma-separated, in the checkpoint's condition order.
        #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
        condition: Option<Vec<f64>>,
        #[arg(long)]
        stars: u64,
        #[arg(long, default_value = "stars.npy")]
        out: PathBuf,
        #[arg(long, default_value_t = 300_000)]
        chunk: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value = "auto")]
        device: String,
    },
    /// Held-out NLL, exact KL (synthetic data), linear MMD and Wasserstein distances, and plots.
    Eval {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value = "eval")]
        out: PathBuf,
        #[arg(long, default_value = "auto")]
        device: String,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

fn flow_spec(m: &ModelArgs, cond_dim: usize, seed: u64) -> Result<FlowSpec> {
    match m.model.as_str() {
        "nsf" => Ok(FlowSpec::Nsf(NsfConfig {
            layers: m.layers,
            hidden: m.hidden,
            depth: m.depth,
            spline: galactic_forge::ops::spline::SplineCfg { bins: m.bins, ..Default::default() },
            seed,
            ..NsfConfig::galacticflow(10, cond_dim)
        })),
        // zuko's MAF as GalacticForge ran it: --layers transforms, (hidden, hidden) MADEs.
        "maf" => Ok(FlowSpec::Maf(MafConfig {
            transforms: m.layers,
            hidden: m.hidden_layers(),
            seed,
            ..MafConfig::galacticforge(10, cond_dim)
        })),
        // NICE: --layers additive couplings (affine with nice-affine), (hidden, ...) ReLU nets.
        "nice" | "nice-affine" => Ok(FlowSpec::Nice(NiceConfig {
            transforms: m.layers,
            hidden: m.hidden_layers(),
            affine: m.model == "nice-affine",
            seed,
            ..NiceConfig::galacticforge(10, cond_dim)
        })),
        // SOSPF: --layers transforms of degree-4, 3-polynomial SOS with soft-clips, (hidden, ...) MADEs.
        "sospf" => Ok(FlowSpec::Sospf(SospfConfig {
            transforms: m.layers,
            hidden: m.hidden_layers(),
            seed,
            ..SospfConfig::galacticforge(10, cond_dim)
        })),
        o => Err(Error::Usage(format!("unknown model '{o}' (nsf, maf, nice, nice-affine, sospf)"))),
    }
}

fn flow_cmd(cmd: FlowCmd) -> Result<bool> {
    match cmd {
        FlowCmd::Train {
            data,
            out,
            model,
            device,
            epochs,
            batch,
            optimizer,
            lr,
            gamma,
            gamma_every,
            clip,
            max_steps,
            seed,
            val_ids,
            val_fraction,
            extra_conditions,
            resume,
        } => {
            let dev = Device::parse(&device)?;
            let prep = PrepareConfig { val_ids, val_fraction, seed, extra_conditions, ..Default::default() };
            let p = pipeline::prepare(&data, &prep)?;
            println!("{}", p.report);
            println!(
                "training on {} galaxies ({} stars), {} held out; device {dev}",
                p.train.len(),
                p.train.iter().map(|g| g.n()).sum::<usize>(),
                p.val.len()
            );
            let spec = flow_spec(&model, p.standardizer.cond_names.len(), seed)?;
            let tc = TrainConfig {
                epochs,
                batch,
                optimizer,
                lr,
                gamma,
                gamma_every,
                clip,
                max_steps,
                seed,
                ..Default::default()
            };
            pipeline::train(&p, &spec, &prep, &tc, &out, &dev, resume, true)?;
            println!("checkpoint: {}", out.display());
            Ok(true)
        }
        FlowCmd::Prepare { data, out, val_ids, val_fraction, seed, extra_conditions } => {
            let prep = PrepareConfig { val_ids, val_fraction, seed, extra_conditions, ..Default::default() };
            let p = pipeline::prepare(&data, &prep)?;
            pipeline::prepare::export(&p, &out)?;
            println!(
                "{}\n{} training and {} held-out galaxies -> {}",
                p.report,
                p.train.len(),
                p.val.len(),
                out.display()
            );
            Ok(true)
        }
        FlowCmd::Sample { model, galaxy, condition, stars, out, chunk, seed, device } => {
            let dev = Device::parse(&device)?;
            let (m, _) = SavedModel::load(&model, &dev)?;
            let c = pipeline::sample::condition(&m, galaxy.as_deref(), condition.as_deref())?;
            pipeline::sample::sample_to_npy(&m, &c, stars, chunk, seed, &out, &dev, true)?;
            println!("{stars} stars -> {}", out.display());
            Ok(true)
        }
        FlowCmd::Eval { model, data, out, device, seed } => {
            let dev = Device::parse(&device)?;
            forge::evaluate(&model, &data, &out, &dev, seed)?;
            Ok(true)
        }
    }
}

fn human_bytes(b: u64) -> String {
    format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64)
}

fn devices() -> Result<bool> {
    let (list, notes) = list_devices();
    println!("{:<8} {:<40} {:<14} {:<16} {:>10} {:>4}", "device", "name", "backend", "type", "memory", "f16");
    for d in &list {
        let mem = d.memory.map(human_bytes).unwrap_or_else(|| "-".into());
        println!(
            "{:<8} {:<40} {:<14} {:<16} {:>10} {:>4}",
            d.spec,
            d.name,
            d.backend,
            d.kind,
            mem,
            if d.f16 { "yes" } else { "no" }
        );
    }
    for n in notes {
        println!("({n})");
    }
    Ok(true)
}

fn run(cli: Cli) -> Result<bool> {
    match cli.cmd {
        Cmd::Devices => devices(),
        Cmd::Synth { what: SynthCmd::Galaxies { out, galaxies, m_particle, n_min, n_max, seed } } => {
            let cfg = SynthConfig { galaxies, m_particle, n_min, n_max, seed };
            let (gals, truth) = synthetic::generate(&cfg);
            synthetic::write(&out, &gals, &truth)?;
            let stars: usize = gals.iter().map(|g| g.n()).sum();
            println!("{} galaxies, {stars} stars -> {}", gals.len(), out.display());
            Ok(true)
        }
        Cmd::Flow { cmd } => flow_cmd(*cmd),
        Cmd::Forge { demo, out, device, epochs } => {
            if !demo {
                return Err(Error::Usage(
                    "only `gforge forge --demo` exists so far (real-data forging arrives with the autoencoder)".into(),
                ));
            }
            forge::demo(&out, &Device::parse(&device)?, epochs)?;
            Ok(true)
        }
        Cmd::Selftest { device, seed } => {
            let devs = match device {
                Some(d) => vec![Device::parse(&d)?],
                None => {
                    let gpus: Vec<Device> = list_devices()
                        .0
                        .iter()
                        .filter(|d| d.spec != "cpu")
                        .map(|d| Device::parse(&d.spec))
                        .collect::<Result<_>>()?;
                    if gpus.is_empty() {
                        println!("no GPU device found: checking the CPU path against itself");
                        vec![Device::Cpu]
                    } else {
                        gpus
                    }
                }
            };
            let mut ok = true;
            for dev in devs {
                let rows = selftest::run(&dev, seed);
                println!("{}", selftest::table(&dev, &rows));
                ok &= rows.iter().all(|r| r.pass());
            }
            Ok(ok)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("gforge: {e}");
            if matches!(e, Error::Usage(_)) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
