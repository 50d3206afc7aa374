//! `gforge`: the GalacticForge command line.
use clap::{Args, Parser, Subcommand};
use galactic_forge::backend::{list_devices, Device};
use galactic_forge::data::hi_generator::{self, HiGenConfig, HiTruth};
use galactic_forge::data::hi_maps::ScalingKind;
use galactic_forge::data::images::{self, RenderConfig};
use galactic_forge::data::synthetic::{self, SynthConfig};
use galactic_forge::flows::{MafConfig, NiceConfig, NsfConfig, SospfConfig};
use galactic_forge::models::{AeConfig, GlowConfig, GlowPrior};
use galactic_forge::pipeline::ae::{self, AeTrainConfig, ImageSet};
use galactic_forge::pipeline::glow::{self, GlowTrainConfig};
use galactic_forge::pipeline::hi_eval::{self, HiEvalConfig};
use galactic_forge::pipeline::interop;
use galactic_forge::pipeline::train::{kept_summary, Keep};
use galactic_forge::pipeline::{self, forge, higlow, FlowSpec, PrepareConfig, SavedModel, TrainConfig};
use galactic_forge::{selftest, Error, Result};
use std::path::PathBuf;
use std::process::ExitCode;

/// Keeps large freed buffers for reuse (src/alloc.rs explains why training needs it).
#[global_allocator]
static ALLOC: galactic_forge::alloc::CachingAlloc = galactic_forge::alloc::CachingAlloc::new(8 << 30);

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
    /// Train, apply and inspect the galaxy-image autoencoder.
    Ae {
        #[command(subcommand)]
        cmd: Box<AeCmd>,
    },
    /// Train, sample, evaluate and invert HIGlow's conditional Glow over HI maps.
    Glow {
        #[command(subcommand)]
        cmd: Box<GlowCmd>,
    },
    /// Import a trained PyTorch model: GalacticFlow's NSFlow, zuko's MAF or NICE (GalacticForge's), or
    /// GalacticForge's autoencoder, converted to an interchange .npz by `python3 tools/torch_models.py
    /// to-gforge ...` (README: "Models from PyTorch").
    Import {
        /// The interchange .npz tools/torch_models.py wrote.
        input: PathBuf,
        /// The gforge checkpoint to write (for `flow sample`, `flow log-prob`, `ae encode`, the C API...).
        #[arg(long)]
        out: PathBuf,
        /// A flow converted without its standardisation: use it in its own normalised coordinates.
        #[arg(long)]
        no_standardisation: bool,
    },
    /// Export a gforge NSF, MAF, NICE or autoencoder checkpoint as an interchange .npz, which
    /// `python3 tools/torch_models.py from-gforge` turns into GalacticFlow's, zuko's or GalacticForge's PyTorch file.
    Export {
        /// The gforge checkpoint (a flow checkpoint trained with --keep best exports its kept epoch).
        input: PathBuf,
        /// The interchange .npz to write.
        #[arg(long)]
        out: PathBuf,
        /// Export a flow whose parametrisation the PyTorch code lacks (an NSF with gforge's spline minimums, a
        /// MAF or affine NICE with gforge's log-scale clamp): its density there then differs slightly.
        #[arg(long)]
        inexact: bool,
    },
    /// HIGlow end to end into one folder: synthetic HI maps with an exact density -> conditional Glow ->
    /// samples, power spectra, parameter inference against the exact posterior, figures and summary.json.
    Higlow {
        /// Run on the embedded default (the only mode: your own maps go through `gforge glow ...`).
        #[arg(long, required = true)]
        demo: bool,
        #[arg(long, default_value = "higlow-demo")]
        out: PathBuf,
        #[arg(long, default_value = "auto")]
        device: String,
        /// Training epochs (the default fits the demo in a few minutes on 2 CPU cores).
        #[arg(long)]
        epochs: Option<usize>,
        /// Parameter sets synthesised (15 maps each).
        #[arg(long)]
        sims: Option<usize>,
    },
    /// The whole pipeline into one folder: galaxy images + star particles -> autoencoder -> latents ->
    /// flow conditioned on the galaxy parameters and the latents -> samples, metrics and plots.
    Forge {
        /// Run on the embedded default: synthetic galaxies and their mock images, small autoencoder.
        #[arg(long)]
        demo: bool,
        /// Your galaxies: a folder of <id>.npy star particles (GalacticFlow's 11 columns)...
        #[arg(long, required_unless_present = "demo", conflicts_with = "demo")]
        data: Option<PathBuf>,
        /// ...and a folder of <id>.png/.jpg images of the same galaxies (any size; resized).
        #[arg(long, required_unless_present = "demo", conflicts_with = "demo")]
        images: Option<PathBuf>,
        #[arg(long, default_value = "forge-demo")]
        out: PathBuf,
        #[arg(long, default_value = "auto")]
        device: String,
        /// Flow training epochs (the demo's default fits in a few minutes on 2 CPU cores).
        #[arg(long)]
        epochs: Option<usize>,
        /// Autoencoder image side, channels and epochs for your data (default: GalacticForge's model,
        /// 448 pixels and 3,64,...,2048, which wants a GPU).
        #[arg(long)]
        ae_size: Option<usize>,
        #[arg(long, value_delimiter = ',')]
        ae_channels: Option<Vec<usize>>,
        #[arg(long)]
        ae_epochs: Option<usize>,
        #[command(flatten)]
        stars: StarFileArgs,
        /// The flow epoch sampled and evaluated: best (lowest held-out NLL) or last; both are written.
        #[arg(long, default_value = "best")]
        keep: String,
    },
}

/// How star files are read and which conditions they give.
#[derive(Args)]
struct StarFileArgs {
    /// auto ([stars, 11] or [11, stars] from the shape), stars-first, or columns-first (GalacticFlow's
    /// NIHAO files, [11, stars]); an 11 x 11 file needs it unless the folder's other files settle it.
    #[arg(long, default_value = "auto")]
    layout: String,
    /// Also condition on log10 M_dm, read from file names ending `_<NIHAO id>_<M_dm>.npy` as GalacticFlow's.
    #[arg(long)]
    dm_mass: bool,
}

impl StarFileArgs {
    /// `base` with this layout and condition choice.
    fn apply(&self, base: PrepareConfig) -> Result<PrepareConfig> {
        Ok(PrepareConfig { layout: self.layout.parse()?, dm_mass: self.dm_mass, ..base })
    }
}

#[derive(Subcommand)]
enum SynthCmd {
    /// NIHAO-like galaxies as <id>.npy files (GalacticFlow layout) plus truth.json.
    Galaxies {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = SynthConfig::default().galaxies)]
        galaxies: usize,
        /// Star particle mass [Msun]; each galaxy gets M_star / m_particle stars within [n_min, n_max].
        #[arg(long, default_value_t = SynthConfig::default().m_particle)]
        m_particle: f64,
        #[arg(long, default_value_t = SynthConfig::default().n_min)]
        n_min: usize,
        #[arg(long, default_value_t = SynthConfig::default().n_max)]
        n_max: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// HIGlow-like neutral-hydrogen maps (64 x 64, 25 Mpc/h) with an exact density: maps.npy and
    /// params.csv in the CAMELS layout, plus truth.json (the generator's constants).
    HiMaps {
        #[arg(long)]
        out: PathBuf,
        /// Parameter sets (Omega_m, sigma_8), on a Latin hypercube as CAMELS' LH set.
        #[arg(long, default_value_t = HiGenConfig::default().sims)]
        sims: usize,
        #[arg(long, default_value_t = HiGenConfig::default().maps_per_sim)]
        maps_per_sim: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Mock images of a galaxy folder (.npy per galaxy) from random views: <id>.png plus views.json.
    Images {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = RenderConfig::default().size)]
        size: usize,
        /// Full width of the field of view [kpc], the same for every galaxy.
        #[arg(long, default_value_t = RenderConfig::default().fov_kpc)]
        fov: f32,
        /// PSF sigma [pixels].
        #[arg(long, default_value_t = RenderConfig::default().psf_sigma_px)]
        psf: f32,
        /// Spread each star over about this many projected neighbours (0: points blurred by the PSF only).
        #[arg(long, default_value_t = RenderConfig::default().smooth_neighbours)]
        smooth: f32,
        /// Sky noise per pixel and band [L_sun/pc^2].
        #[arg(long, default_value_t = RenderConfig::default().sky_sigma)]
        noise: f32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Also draw every image into one overview PNG here (outside --out, which is an image folder).
        #[arg(long)]
        grid: Option<PathBuf>,
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
enum AeCmd {
    /// Train on a folder of galaxy images (PNG/JPEG of any size, resized; the file stem is the galaxy id).
    Train {
        #[arg(long)]
        images: PathBuf,
        /// Checkpoint written after every epoch.
        #[arg(long, default_value = "ae.npz")]
        out: PathBuf,
        /// Image side the model reads (GalacticForge: 448).
        #[arg(long, default_value_t = AeConfig::galacticforge().image)]
        size: usize,
        /// Channels from the 3 image bands down, one stride-2 4x4 conv each (GalacticForge: 3,64,...,2048).
        #[arg(long, value_delimiter = ',', default_values_t = AeConfig::galacticforge().channels)]
        channels: Vec<usize>,
        #[arg(long, default_value_t = AeConfig::galacticforge().latents)]
        latents: usize,
        #[arg(long, default_value_t = AeTrainConfig::default().epochs)]
        epochs: usize,
        #[arg(long, default_value_t = AeTrainConfig::default().batch)]
        batch: usize,
        #[arg(long, default_value_t = AeTrainConfig::default().lr)]
        lr: f32,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Comma-separated galaxy ids held out (default: --val-fraction of them).
        #[arg(long, value_delimiter = ',')]
        val_ids: Vec<String>,
        /// GalacticForge holds out 1%.
        #[arg(long, default_value_t = 0.01)]
        val_fraction: f64,
        #[arg(long, default_value = "auto")]
        device: String,
        /// Continue from --out where it stopped.
        #[arg(long)]
        resume: bool,
        /// Check every op's output and gradient for NaN/Inf and stop at the first, naming the op and layer
        /// (slow; also GFORGE_DETECT_ANOMALY=1).
        #[arg(long)]
        detect_anomaly: bool,
    },
    /// Write <id>_latent.npy per galaxy and latents.csv (the table `flow train --extra-conditions` reads).
    Encode {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        images: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "auto")]
        device: String,
    },
    /// reconstructions.png (inputs over reconstructions) and traversal.png (one row per latent).
    Show {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        images: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Galaxies in the reconstruction panel.
        #[arg(long, default_value_t = 8)]
        max: usize,
        #[arg(long, default_value = "auto")]
        device: String,
    },
}

fn ae_cmd(cmd: AeCmd) -> Result<bool> {
    match cmd {
        AeCmd::Train {
            images: dir,
            out,
            size,
            channels,
            latents,
            epochs,
            batch,
            lr,
            seed,
            val_ids,
            val_fraction,
            device,
            resume,
            detect_anomaly,
        } => {
            if detect_anomaly {
                galactic_forge::autodiff::anomaly::set_detect_anomaly(true);
            }
            let dev = Device::parse(&device)?;
            let cfg = AeConfig { image: size, channels, latents, seed };
            cfg.validate()?;
            let all = ImageSet::from_images(images::load_folder(&dir, size)?)?;
            let val_ids = pipeline::prepare::pick_val_ids(&all.ids, &val_ids, val_fraction, seed)?;
            let (train, val) = (all.select(&val_ids, false), all.select(&val_ids, true));
            println!("{} training and {} held-out images ({size} x {size}) on {dev}", train.len(), val.len());
            let tc = AeTrainConfig { epochs, batch, lr, seed };
            ae::train(&train, &val, &cfg, &tc, &out, &dev, resume, true)?;
            println!("checkpoint: {}", out.display());
            Ok(true)
        }
        AeCmd::Encode { model, images: dir, out, device } => {
            let dev = Device::parse(&device)?;
            let (m, _) = ae::load(&model, &dev)?;
            let set = ImageSet::from_images(images::load_folder(&dir, m.cfg.image)?)?;
            let z = ae::encode(&m, &set, &dev)?;
            ae::write_latents(&out, &set.ids, &z)?;
            println!("{} x {} latents -> {}", set.len(), m.cfg.latents, out.display());
            Ok(true)
        }
        AeCmd::Show { model, images: dir, out, max, device } => {
            let dev = Device::parse(&device)?;
            let (m, _) = ae::load(&model, &dev)?;
            let set = ImageSet::from_images(images::load_folder(&dir, m.cfg.image)?)?;
            ae::show(&m, &set, &out, max, &dev)?;
            println!("reconstructions.png, traversal.png -> {}", out.display());
            Ok(true)
        }
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
        /// Gaussian noise (std) added to the standardised conditions of every training row.
        #[arg(long, default_value_t = 0.0)]
        cond_noise: f32,
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
        #[command(flatten)]
        stars: StarFileArgs,
        /// The epoch sampling and evaluation use: last, or best (lowest held-out NLL). The checkpoint holds
        /// the last (so --resume continues exactly); the best is kept beside it, as <out stem>.best.npz.
        #[arg(long, default_value = "last")]
        keep: String,
        /// Continue from --out where it stopped.
        #[arg(long)]
        resume: bool,
        /// Check every op's output and gradient for NaN/Inf and stop at the first, naming the op and layer
        /// (slow; also GFORGE_DETECT_ANOMALY=1).
        #[arg(long)]
        detect_anomaly: bool,
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
        #[command(flatten)]
        stars: StarFileArgs,
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
    /// log q(star | condition) per star in nats over physical units (the standardisation's Jacobian
    /// included), into a float64 .npy [N]: e.g. to check an imported model against its PyTorch original.
    LogProb {
        #[arg(long)]
        model: PathBuf,
        /// Stars [N, 10] in physical units (.npy, float32 or float64), the modelled columns in order.
        #[arg(long)]
        stars: PathBuf,
        /// One physical condition for every star, comma-separated, in the checkpoint's condition order...
        #[arg(long, value_delimiter = ',', allow_hyphen_values = true, conflicts_with = "conditions")]
        condition: Option<Vec<f64>>,
        /// ...or one per star, a .npy [N, C].
        #[arg(long)]
        conditions: Option<PathBuf>,
        #[arg(long, default_value = "log_prob.npy")]
        out: PathBuf,
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
            cond_noise,
            seed,
            val_ids,
            val_fraction,
            extra_conditions,
            stars,
            keep,
            resume,
            detect_anomaly,
        } => {
            if detect_anomaly {
                galactic_forge::autodiff::anomaly::set_detect_anomaly(true);
            }
            let dev = Device::parse(&device)?;
            let keep: Keep = keep.parse()?;
            let prep =
                stars.apply(PrepareConfig { val_ids, val_fraction, seed, extra_conditions, ..Default::default() })?;
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
                cond_noise,
                seed,
                keep,
                ..Default::default()
            };
            let summary = pipeline::train(&p, &spec, &prep, &tc, &out, &dev, resume, true)?;
            println!("{}", kept_summary(&summary.state, keep, &out));
            Ok(true)
        }
        FlowCmd::Prepare { data, out, val_ids, val_fraction, seed, extra_conditions, stars } => {
            let prep =
                stars.apply(PrepareConfig { val_ids, val_fraction, seed, extra_conditions, ..Default::default() })?;
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
            if m.path != model {
                println!("sampling the best held-out epoch the checkpoint keeps: {}", m.path.display());
            }
            let c = pipeline::sample::condition(&m, galaxy.as_deref(), condition.as_deref())?;
            pipeline::sample::range_warnings(&m, &c).iter().for_each(|w| eprintln!("warning: {w}"));
            pipeline::sample::sample_to_npy(&m, &c, stars, chunk, seed, &out, &dev, true)?;
            println!("{stars} stars -> {}", out.display());
            Ok(true)
        }
        FlowCmd::LogProb { model, stars, condition, conditions, out, device } => {
            let dev = Device::parse(&device)?;
            let (m, _) = SavedModel::load(&model, &dev)?;
            let x = galactic_forge::io::read_npy_f32(&stars)?;
            let d = m.flow.dim();
            if x.ndim() != 2 || x.shape()[1] != d {
                return Err(Error::Usage(format!("{}: shape {:?}, expected [stars, {d}]", stars.display(), x.shape())));
            }
            let x: Vec<f32> = x.iter().copied().collect();
            let per_row;
            let conds = match (&condition, &conditions) {
                (Some(c), None) => pipeline::Conditions::One(c),
                (None, Some(p)) => {
                    per_row = galactic_forge::io::read_npy_f64(p)?;
                    let want = [x.len() / d, m.standardizer.cond_names.len()];
                    if per_row.shape() != want {
                        return Err(Error::Usage(format!(
                            "{}: shape {:?}, expected {want:?} (one condition per star: {})",
                            p.display(),
                            per_row.shape(),
                            m.standardizer.cond_names.join(", ")
                        )));
                    }
                    pipeline::Conditions::PerRow(per_row.as_slice().expect("read_npy gives standard layout"))
                }
                _ => return Err(Error::Usage("give --condition or --conditions".into())),
            };
            let lq = pipeline::eval::log_q_physical(&m, &x, conds, &dev)?;
            let n = lq.len();
            galactic_forge::io::write_npy_f64(&out, &ndarray::ArrayD::from_shape_vec(vec![n], lq).expect("n values"))?;
            println!("log q of {n} stars -> {}", out.display());
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

/// Where HI maps come from: a folder (maps.npy, params.csv, truth.json if synthetic) or CAMELS' files.
#[derive(Args)]
struct HiDataArgs {
    /// A folder written by `gforge synth hi-maps`, or laid out the same way.
    #[arg(long, conflicts_with_all = ["maps", "params"])]
    data: Option<PathBuf>,
    /// CAMELS maps, .npy [N, H, W] (H = W a multiple of 64; block-averaged to 64)...
    #[arg(long, requires = "params")]
    maps: Option<PathBuf>,
    /// ...and their parameter table (CSV with a header, or CAMELS' whitespace text), one row per parameter set.
    #[arg(long, requires = "maps")]
    params: Option<PathBuf>,
    #[arg(long, default_value_t = galactic_forge::data::hi_maps::MAPS_PER_SIM)]
    maps_per_sim: usize,
}

impl HiDataArgs {
    fn load(&self) -> Result<higlow::HiData> {
        match (&self.data, &self.maps, &self.params) {
            (Some(d), _, _) => higlow::load_folder(d),
            (None, Some(m), Some(p)) => higlow::load_files(m, p, self.maps_per_sim, None),
            _ => Err(Error::Usage("give --data DIR, or --maps FILE.npy and --params FILE".into())),
        }
    }
}

#[derive(Subcommand)]
enum GlowCmd {
    /// Train on HI maps; whole parameter sets are held out.
    Train {
        #[command(flatten)]
        data: HiDataArgs,
        /// Checkpoint written after every epoch.
        #[arg(long, default_value = "glow.npz")]
        out: PathBuf,
        /// Squeeze-and-split blocks, steps per block and hidden width (HIGlow: 6, 20, 16).
        #[arg(long, default_value_t = GlowConfig::higlow().blocks)]
        blocks: usize,
        #[arg(long, default_value_t = GlowConfig::higlow().steps)]
        steps: usize,
        #[arg(long, default_value_t = GlowConfig::higlow().hidden)]
        hidden: usize,
        /// Priors: cond (MLPs of the parameters, HIGlow's evaluated model) or learned.
        #[arg(long, default_value = "cond")]
        prior: String,
        /// Hidden width of the conditional priors' MLPs.
        #[arg(long, default_value_t = 8)]
        prior_hidden: usize,
        /// A plain actnorm at the start of every block.
        #[arg(long)]
        actnorm: bool,
        /// The coupling scale's floor (HIGlow: 0.5).
        #[arg(long, default_value_t = GlowConfig::higlow().floor)]
        floor: f32,
        /// Map scaling after log10: minmax (to [-1, 1]) or sigmoid (z-score, then 2 sigmoid - 1).
        #[arg(long, default_value = "minmax")]
        scaling: String,
        #[arg(long, default_value_t = GlowTrainConfig::default().epochs)]
        epochs: usize,
        #[arg(long, default_value_t = GlowTrainConfig::default().batch)]
        batch: usize,
        #[arg(long, default_value_t = GlowTrainConfig::default().lr)]
        lr: f32,
        /// Gradient-norm clip (0: none).
        #[arg(long, default_value_t = 2.0)]
        clip: f32,
        /// Learning-rate schedule: plateau (HIGlow's ReduceLROnPlateau) or cosine (to --min-lr at the end).
        #[arg(long, default_value = "plateau")]
        schedule: String,
        #[arg(long, default_value_t = GlowTrainConfig::default().min_lr)]
        min_lr: f32,
        #[arg(long)]
        no_augment: bool,
        /// Augment with random transposes too (all 8 symmetries of the square; HIGlow flips only).
        #[arg(long)]
        transpose: bool,
        /// Weight of the contrastive term: each map is also scored at a moved condition and the flow is
        /// asked which condition made it (0: the likelihood alone, as HIGlow); twice the cost per batch.
        #[arg(long, default_value_t = 0.0)]
        contrast: f32,
        /// How far the condition moves for that term (standard deviation, normalised units in [-1, 1]).
        #[arg(long, default_value_t = GlowTrainConfig::default().contrast_width)]
        contrast_width: f32,
        /// Fraction of the parameter sets held out.
        #[arg(long, default_value_t = 0.1)]
        val_fraction: f64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value = "auto")]
        device: String,
        /// Continue from --out where it stopped.
        #[arg(long)]
        resume: bool,
        /// Check every op's output and gradient for NaN/Inf and stop at the first, naming the op and layer
        /// (slow; also GFORGE_DETECT_ANOMALY=1).
        #[arg(long)]
        detect_anomaly: bool,
    },
    /// Draw maps for given (Omega_m, sigma_8), written as .npy [N, S, S] in the data's units.
    Sample {
        #[arg(long)]
        model: PathBuf,
        /// Omega_m,sigma_8.
        #[arg(long, value_delimiter = ',', required = true)]
        condition: Vec<f64>,
        #[arg(long, default_value_t = 16)]
        n: usize,
        #[arg(long, default_value_t = 1.0)]
        temp: f32,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value = "auto")]
        device: String,
    },
    /// Held-out NLL, exact KL (synthetic maps), P(k) of samples against data, parameter inference.
    Eval {
        #[arg(long)]
        model: PathBuf,
        #[command(flatten)]
        data: HiDataArgs,
        #[arg(long)]
        out: PathBuf,
        /// Evaluate every map, not only the model's held-out parameter sets.
        #[arg(long)]
        all: bool,
        #[arg(long, default_value_t = HiEvalConfig::default().samples_per_set)]
        samples: usize,
        /// Held-out maps whose posteriors are computed.
        #[arg(long, default_value_t = HiEvalConfig::default().infer_maps)]
        infer_maps: usize,
        #[arg(long, default_value_t = HiEvalConfig::default().grid)]
        grid: usize,
        /// Average the flow's likelihood over this many symmetries of the square (1 to 8: identity, the
        /// flips, then the transposes) for inference; S times the cost.
        #[arg(long, default_value_t = HiEvalConfig::default().symmetries)]
        symmetries: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value = "auto")]
        device: String,
    },
    /// Posterior of (Omega_m, sigma_8) for each map from the flow's exact likelihood on a grid.
    Infer {
        #[arg(long)]
        model: PathBuf,
        #[command(flatten)]
        data: HiDataArgs,
        #[arg(long)]
        out: PathBuf,
        /// Indices of the maps (default: the first 10).
        #[arg(long, value_delimiter = ',')]
        index: Vec<usize>,
        #[arg(long, default_value_t = HiEvalConfig::default().grid)]
        grid: usize,
        /// Average the flow's likelihood over this many symmetries of the square (1 to 8: identity, the
        /// flips, then the transposes) for inference; S times the cost.
        #[arg(long, default_value_t = HiEvalConfig::default().symmetries)]
        symmetries: usize,
        #[arg(long, default_value = "auto")]
        device: String,
    },
}

fn glow_cmd(cmd: GlowCmd) -> Result<bool> {
    match cmd {
        GlowCmd::Train {
            data,
            out,
            blocks,
            steps,
            hidden,
            prior,
            prior_hidden,
            actnorm,
            floor,
            scaling,
            epochs,
            batch,
            lr,
            clip,
            schedule,
            min_lr,
            no_augment,
            transpose,
            contrast,
            contrast_width,
            val_fraction,
            seed,
            device,
            resume,
            detect_anomaly,
        } => {
            if detect_anomaly {
                galactic_forge::autodiff::anomaly::set_detect_anomaly(true);
            }
            let dev = Device::parse(&device)?;
            let prior = match prior.as_str() {
                "cond" => GlowPrior::Conditional { hidden: prior_hidden },
                "learned" => GlowPrior::Learned,
                o => return Err(Error::Usage(format!("unknown prior '{o}' (cond, learned)"))),
            };
            let scaling = match scaling.as_str() {
                "minmax" => ScalingKind::MinMax,
                "sigmoid" => ScalingKind::Sigmoid,
                o => return Err(Error::Usage(format!("unknown scaling '{o}' (minmax, sigmoid)"))),
            };
            if !(0.0..1.0).contains(&val_fraction) {
                return Err(Error::Usage(format!("--val-fraction must be in [0, 1), got {val_fraction}")));
            }
            let data = data.load()?;
            let cfg = GlowConfig {
                side: data.maps.side,
                blocks,
                steps,
                hidden,
                prior,
                actnorm,
                floor,
                seed,
                ..GlowConfig::higlow()
            };
            let tc = GlowTrainConfig {
                epochs,
                batch,
                lr,
                clip: (clip > 0.0).then_some(clip),
                schedule: schedule.parse()?,
                min_lr,
                augment: !no_augment,
                transpose,
                contrast,
                contrast_width,
                seed,
                ..GlowTrainConfig::default()
            };
            higlow::train(&data, &cfg, &tc, scaling, val_fraction, &out, &dev, resume, true)?;
            println!("model -> {}", out.display());
            Ok(true)
        }
        GlowCmd::Sample { model, condition, n, temp, out, seed, device } => {
            let dev = Device::parse(&device)?;
            if !(temp.is_finite() && temp >= 0.0) {
                return Err(Error::Usage(format!("--temp must be >= 0, got {temp}")));
            }
            if condition.len() != 2 {
                return Err(Error::Usage(format!("--condition takes Omega_m,sigma_8, got {} values", condition.len())));
            }
            let (m, meta) = glow::load(&model, &dev)?;
            meta.cond_scaling.outside([condition[0], condition[1]]).iter().for_each(|w| eprintln!("warning: {w}"));
            let maps = glow::sample_maps(&m, &meta, &[[condition[0], condition[1]]], n, temp, 64, seed, &dev)?;
            let s = m.cfg.side;
            let flat: Vec<f32> = maps.into_iter().flatten().collect();
            let a = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[n, s, s]), flat)
                .map_err(|e| Error::Data(e.to_string()))?;
            galactic_forge::io::write_npy_f32(&out, &a)?;
            println!("{n} maps at Omega_m {} sigma_8 {} -> {}", condition[0], condition[1], out.display());
            Ok(true)
        }
        GlowCmd::Eval { model, data, out, all, samples, infer_maps, grid, symmetries, seed, device } => {
            let dev = Device::parse(&device)?;
            let (m, meta) = glow::load(&model, &dev)?;
            let data = data.load()?;
            let val = higlow::held_out(&meta, &data.maps, all)?;
            let ec = HiEvalConfig {
                samples_per_set: samples,
                infer_maps,
                grid,
                symmetries,
                seed,
                ..HiEvalConfig::default()
            };
            let r = higlow::evaluate(&m, &meta, &data, &val, &ec, &out, &dev)?;
            higlow::print_report(&r);
            println!("report -> {}", out.join("eval.json").display());
            Ok(true)
        }
        GlowCmd::Infer { model, data, out, index, grid, symmetries, device } => {
            let dev = Device::parse(&device)?;
            let (m, meta) = glow::load(&model, &dev)?;
            let data = data.load()?;
            let idx: Vec<usize> = if index.is_empty() { (0..data.maps.len().min(10)).collect() } else { index };
            if let Some(&bad) = idx.iter().find(|&&i| i >= data.maps.len()) {
                return Err(Error::Usage(format!("map index {bad} out of range ({} maps)", data.maps.len())));
            }
            std::fs::create_dir_all(&out).map_err(|e| Error::file(&out, e))?;
            let ec = HiEvalConfig { grid, symmetries, ..HiEvalConfig::default() };
            let posts = hi_eval::infer(&m, &meta, &data.maps, &idx, &ec, data.truth.as_ref(), &dev)?;
            for p in &posts {
                let [om, s8] = meta.cond_scaling.inverse(p.flow.mean());
                let [so, ss] = p.flow.std();
                println!("map {}: Omega_m {om:.4}, sigma_8 {s8:.4} (posterior std {so:.3}, {ss:.3} normalised)", p.map);
            }
            let v = serde_json::json!({ "posteriors": posts, "summary": hi_eval::summarise(&posts, grid) });
            higlow::write_json(&out.join("posteriors.json"), &v)?;
            println!("posteriors -> {}", out.join("posteriors.json").display());
            Ok(true)
        }
    }
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
        Cmd::Synth { what: SynthCmd::HiMaps { out, sims, maps_per_sim, seed } } => {
            if sims == 0 || maps_per_sim == 0 {
                return Err(Error::Usage("--sims and --maps-per-sim must be at least 1".into()));
            }
            let cfg = HiGenConfig { sims, maps_per_sim, seed, ..Default::default() };
            let maps = hi_generator::generate(&cfg);
            maps.save(&out)?;
            HiTruth::new(&cfg).write(&out.join("truth.json"))?;
            println!(
                "{} HI maps ({} parameter sets x {maps_per_sim}, {} x {}) -> {}",
                maps.len(),
                sims,
                cfg.side,
                cfg.side,
                out.display()
            );
            Ok(true)
        }
        Cmd::Synth { what: SynthCmd::Images { data, out, size, fov, psf, smooth, noise, seed, grid } } => {
            let cfg = RenderConfig {
                size,
                fov_kpc: fov,
                psf_sigma_px: psf,
                smooth_neighbours: smooth,
                sky_sigma: noise,
                ..Default::default()
            };
            let v = images::render_folder(&data, &out, &cfg, seed)?;
            if let Some(g) = grid {
                images::save_grid(&g, &images::load_folder(&out, size.min(224))?)?;
            }
            println!("{} images ({size} x {size}, {fov} kpc) -> {}", v.views.len(), out.display());
            Ok(true)
        }
        Cmd::Import { input, out, no_standardisation } => {
            let opts = interop::ImportOptions { no_standardisation };
            println!("{}", interop::import(&input, &out, &opts)?);
            Ok(true)
        }
        Cmd::Export { input, out, inexact } => {
            let (line, warning) = interop::export(&input, &out, &interop::ExportOptions { inexact })?;
            if let Some(w) = warning {
                eprintln!("gforge: warning: {w}");
            }
            println!("{line}");
            Ok(true)
        }
        Cmd::Flow { cmd } => flow_cmd(*cmd),
        Cmd::Glow { cmd } => glow_cmd(*cmd),
        Cmd::Higlow { demo: _, out, device, epochs, sims } => {
            let dev = Device::parse(&device)?;
            let mut dc = higlow::DemoConfig::default();
            dc.train.epochs = epochs.unwrap_or(dc.train.epochs);
            dc.sims = sims.unwrap_or(dc.sims);
            if dc.sims < 2 {
                return Err(Error::Usage("--sims must be at least 2 (some parameter sets are held out)".into()));
            }
            higlow::demo(&out, &dc, &dev)?;
            Ok(true)
        }
        Cmd::Ae { cmd } => ae_cmd(*cmd),
        Cmd::Forge { demo, data, images, out, device, epochs, ae_size, ae_channels, ae_epochs, stars, keep } => {
            let dev = Device::parse(&device)?;
            let keep: Keep = keep.parse()?;
            if demo {
                if stars.dm_mass || stars.layout != "auto" {
                    return Err(Error::Usage("--layout and --dm-mass apply to --data, not to --demo".into()));
                }
                forge::demo(&out, &dev, epochs, keep)?;
                return Ok(true);
            }
            let (Some(data), Some(images)) = (data, images) else {
                return Err(Error::Usage("give --demo, or both --data and --images".into()));
            };
            let mut s = forge::ForgeSettings {
                ae: AeConfig::galacticforge(),
                ae_train: AeTrainConfig::default(),
                nsf: NsfConfig::galacticflow(10, 0),
                flow_train: TrainConfig {
                    epochs: epochs.unwrap_or(TrainConfig::default().epochs),
                    keep,
                    ..Default::default()
                },
                without_latents: false,
                prepare: stars.apply(PrepareConfig::default())?,
            };
            s.ae.image = ae_size.unwrap_or(s.ae.image);
            s.ae.channels = ae_channels.unwrap_or(s.ae.channels);
            s.ae_train.epochs = ae_epochs.unwrap_or(s.ae_train.epochs);
            s.ae.validate()?;
            forge::forge(&data, &images, &out, &s, &dev)?;
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

/// Ctrl-C once: training stops at the next batch boundary with a checkpoint to resume from; twice: at once.
fn handle_ctrl_c() {
    let _ = ctrlc::set_handler(|| {
        if pipeline::interrupt::stop_requested() {
            std::process::exit(130);
        }
        pipeline::interrupt::request_stop();
        eprintln!("\ngforge: stopping after this batch and saving a checkpoint (Ctrl-C again to quit at once)");
    });
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    handle_ctrl_c();
    // The whole-pipeline commands train inside and have no --resume of their own.
    let no_resume = match cli.cmd {
        Cmd::Forge { .. } => Some("forge"),
        Cmd::Higlow { .. } => Some("higlow"),
        _ => None,
    };
    match galactic_forge::on_pool(|| run(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(Error::Interrupted { path, epoch, batch }) if no_resume.is_some() => {
            eprintln!(
                "gforge: interrupted: {path} holds the run up to batch {batch} of epoch {epoch}; `gforge {}` cannot \
                 resume, so run it again to start over",
                no_resume.unwrap_or_default()
            );
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("gforge: {e}");
            match e {
                Error::Usage(_) => ExitCode::from(2),
                Error::Interrupted { .. } => ExitCode::from(130),
                _ => ExitCode::FAILURE,
            }
        }
    }
}
