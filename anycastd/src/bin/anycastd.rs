//! anycastd: runs one site of a geo-distributed anycast service.
//!
//! `anycastd --config FILE` runs the site; `anycastd check --config FILE` validates
//! the file and prints what the daemon would do, touching neither kernel nor network.
//! Exit codes: 0 ok; 1 the config is refused or the site cannot start; 2 bad usage.

use std::path::PathBuf;
use std::process::ExitCode;

use anycastd::config::{self, LogFormat};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    version,
    about = "Geo-distributed anycast site daemon (BGP + IPVS + IPIP spill)"
)]
struct Cli {
    /// The site config file.
    #[arg(
        long,
        short = 'c',
        global = true,
        default_value = "/etc/anycastd/site.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the config and print the plan; touches nothing.
    Check,
}

fn init_logs(cfg: &config::SiteConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cfg.log.format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cfg = match config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("anycastd: config refused:\n{e}");
            return ExitCode::from(1);
        }
    };
    if let Some(Command::Check) = cli.command {
        print!("{}", anycastd::plan::render(&cfg));
        println!("\n{}: valid", cli.config.display());
        return ExitCode::SUCCESS;
    }
    init_logs(&cfg);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("anycastd: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(anycastd::daemon::run(&cli.config, cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "anycastd cannot start");
            eprintln!("anycastd: {e}");
            ExitCode::from(1)
        }
    }
}
