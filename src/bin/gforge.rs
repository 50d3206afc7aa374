//! `gforge`: the GalacticForge command line.
use clap::{Parser, Subcommand};
use galactic_forge::backend::{list_devices, Device};
use galactic_forge::{selftest, Error, Result};
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
