//! `anycastctl`: the operator's CLI to a running anycastd.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "anycastctl",
    version,
    about = "Operator CLI for anycastd: status, why, drain, undrain",
    after_long_help = "Exit status: 0 done; 1 the daemon refused the request (unknown VIP, ...); \
2 bad usage; 3 the daemon is not running or cannot be reached; 4 not allowed (the \
caller is not an operator: not root, not in the API's group, no valid token).\n\n\
Only root and the members of the `anycastd` group may drain or undrain through the \
default socket unix:/run/anycastd/api.sock. See anycastd(8)."
)]
pub struct Cli {
    /// The daemon's local API: unix:/path or 127.0.0.1:PORT
    /// (default unix:/run/anycastd/api.sock).
    #[arg(long, global = true, conflicts_with = "config")]
    pub api: Option<String>,
    /// Read the API address (and, over TCP, `token_file`) from this site config instead.
    #[arg(long, short = 'c', global = true)]
    pub config: Option<PathBuf>,
    /// Over TCP: the file holding the operator's token, sent as `Authorization: Bearer`.
    #[arg(long, global = true)]
    pub token_file: Option<PathBuf>,
    /// Print the daemon's JSON instead of text, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The site at a glance: VIPs, BGP sessions, real servers, loads, spill.
    Status,
    /// Why a VIP is announced or withdrawn, and why it spills or not, with numbers.
    Why { vip: String },
    /// Gracefully withdraw one VIP, or every VIP of the site.
    Drain { vip: Option<String> },
    /// Undo a drain.
    Undrain { vip: Option<String> },
    /// One real server: list them, take one out (drain) or put it back.
    Server {
        #[command(subcommand)]
        action: ServerAction,
    },
}

#[derive(Subcommand, Debug)]
pub enum ServerAction {
    /// Every real server with its state, connections, weight and last check.
    List,
    /// Take a real server out: weight 0 (running connections finish), its capacity
    /// leaves the site at once; kept across restarts until `enable`.
    Disable {
        vip: String,
        /// ADDR or ADDR:PORT (`[IPv6]:PORT`).
        server: String,
        /// Also when it is the last server the VIP needs: the VIP is withdrawn.
        #[arg(long)]
        force: bool,
    },
    /// Put a disabled real server back (up at once if its checks pass).
    Enable {
        vip: String,
        /// ADDR or ADDR:PORT (`[IPv6]:PORT`).
        server: String,
    },
}
