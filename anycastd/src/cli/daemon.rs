//! `anycastd`: runs one site, or checks its config.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// The path the packaged unit and the docs use.
pub const DEFAULT_CONFIG: &str = "/etc/anycastd/site.toml";

#[derive(Parser, Debug)]
#[command(
    name = "anycastd",
    version,
    about = "Geo-distributed anycast site daemon (BGP + IPVS + IPIP spill)",
    long_about = "Runs one site of a geo-distributed anycast service: announces each VIP \
prefix over BGP while the site can serve it, withdraws it at once when it cannot, \
programs IPVS and an IPIP tunnel, trades load reports with the peer sites and spills \
new connections to a lightly loaded one.\n\n\
`anycastd check` validates the config and prints the plan without touching the kernel \
or the network; every problem is printed as FILE:LINE:COLUMN: reason.",
    after_long_help = "Exit status: 0 ok; 1 the config is refused or the site cannot start; \
2 bad usage.\n\n\
Signals: SIGTERM or SIGINT stop gracefully (GRACEFUL_SHUTDOWN, site.shutdown_wait, \
withdraw; a second signal skips the wait); SIGHUP reloads the config, and a file with \
any problem is refused whole while the running config stays in force.\n\n\
Under systemd (anycastd.service, anycastd@.service) it reports readiness and keeps \
the watchdog, and logs to the journal as structured fields.\n\n\
Files: /etc/anycastd/site.toml (the config), /var/lib/anycastd (state), \
/run/anycastd/api.sock (the local API for anycastctl). \
See /usr/share/doc/anycastd and anycastctl(8)."
)]
pub struct Cli {
    /// The site config file.
    #[arg(long, short = 'c', global = true, default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Validate the config and print the plan; touches nothing.
    Check {
        /// Print only the verdict, not the plan (the unit's ExecStartPre uses this).
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// Read a password on stdin (one line) and print its argon2id hash, for a
    /// `[[monitor.user]]` password_hash.
    HashPassword,
}
