//! anycastctl: status, why, drain and undrain for one site's anycastd.
//!
//! Exit codes: 0 done; 1 the daemon refused the request (unknown VIP, ...);
//! 2 bad usage; 3 the daemon is not running or cannot be reached; 4 not allowed (the
//! caller is not an operator: not root, not in the API's group, no valid token).

use std::path::PathBuf;
use std::process::ExitCode;

use anycastd::auth;
use anycastd::config::{self, ApiListen};
use anycastd::ctl::{client, render};
use anycastd::status::{ApiError, DrainReply, Status, WhyReply};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    version,
    about = "Operator CLI for anycastd: status, why, drain, undrain"
)]
struct Cli {
    /// The daemon's local API: unix:/path or 127.0.0.1:PORT
    /// (default unix:/run/anycastd/api.sock).
    #[arg(long, global = true, conflicts_with = "config")]
    api: Option<String>,
    /// Read the API address (and, over TCP, `token_file`) from this site config instead.
    #[arg(long, short = 'c', global = true)]
    config: Option<PathBuf>,
    /// Over TCP: the file holding the operator's token, sent as `Authorization: Bearer`.
    #[arg(long, global = true)]
    token_file: Option<PathBuf>,
    /// Print the daemon's JSON instead of text, for scripts.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The site at a glance: VIPs, BGP sessions, real servers, loads, spill.
    Status,
    /// Why a VIP is announced or withdrawn, and why it spills or not, with numbers.
    Why { vip: String },
    /// Gracefully withdraw one VIP, or every VIP of the site.
    Drain { vip: Option<String> },
    /// Undo a drain.
    Undrain { vip: Option<String> },
}

/// Where the API is, and the token file to use, if any.
fn endpoint(cli: &Cli) -> Result<(ApiListen, Option<PathBuf>), String> {
    if let Some(path) = &cli.config {
        return config::load(path)
            .map(|c| (c.api.listen, cli.token_file.clone().or(c.api.token_file)))
            .map_err(|e| e.to_string());
    }
    let listen = match cli.api.as_deref() {
        None => Ok(ApiListen::Unix(config::DEFAULT_API_SOCKET.into())),
        Some(a) => match a.strip_prefix("unix:") {
            Some(p) => Ok(ApiListen::Unix(p.into())),
            None => a
                .parse()
                .map(ApiListen::Tcp)
                .map_err(|e| format!("--api `{a}`: {e} (use unix:/path or 127.0.0.1:PORT)")),
        },
    }?;
    Ok((listen, cli.token_file.clone()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (endpoint, token_file) = match endpoint(&cli) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("anycastctl: {e}");
            return ExitCode::from(2);
        }
    };
    let (method, path) = match &cli.command {
        Command::Status => ("GET", "/v1/status".to_string()),
        Command::Why { vip } => ("GET", format!("/v1/why/{vip}")),
        Command::Drain { vip } => (
            "POST",
            format!("/v1/drain/{}", vip.as_deref().unwrap_or("")),
        ),
        Command::Undrain { vip } => (
            "POST",
            format!("/v1/undrain/{}", vip.as_deref().unwrap_or("")),
        ),
    };
    // The token is for TCP; a unix socket knows the caller from the kernel.
    let token = match (&endpoint, &token_file) {
        (ApiListen::Tcp(_), Some(f)) => match auth::read_token(f) {
            Ok(t) => Some(t),
            Err(e) if cli.token_file.is_some() => {
                eprintln!("anycastctl: --token-file: {e}");
                return ExitCode::from(2);
            }
            // From the config: a user who may not read it may still read public status.
            Err(e) => {
                if method != "GET" {
                    eprintln!("anycastctl: no token sent: {e}");
                }
                None
            }
        },
        _ => None,
    };
    let path = path.trim_end_matches('/');
    let sent = match &token {
        Some(t) => client::request_with_token(&endpoint, method, path, t),
        None => client::request(&endpoint, method, path),
    };
    let reply = match sent {
        Ok(r) => r,
        Err(e @ client::ClientError::NotAllowed { .. }) => {
            eprintln!("anycastctl: {e}");
            return ExitCode::from(4);
        }
        Err(e) => {
            eprintln!("anycastctl: {e}");
            return ExitCode::from(3);
        }
    };
    if !(200..300).contains(&reply.status) {
        let msg = serde_json::from_str::<ApiError>(&reply.body)
            .map(|e| e.error)
            .unwrap_or_else(|_| reply.body.clone());
        if cli.json {
            println!("{}", reply.body);
        }
        eprintln!("anycastctl: {msg}");
        return ExitCode::from(if reply.status == 403 { 4 } else { 1 });
    }
    if cli.json {
        println!("{}", reply.body);
        return ExitCode::SUCCESS;
    }
    let shown = match &cli.command {
        Command::Status => serde_json::from_str::<Status>(&reply.body).map(|s| render::status(&s)),
        Command::Why { .. } => serde_json::from_str::<WhyReply>(&reply.body).map(|w| {
            let mut out = format!("{}: {}\n", w.vip, w.announcement);
            for line in &w.spill {
                out.push_str(&format!("{}: {line}\n", w.vip));
            }
            out
        }),
        Command::Drain { .. } | Command::Undrain { .. } => {
            serde_json::from_str::<DrainReply>(&reply.body).map(|d| format!("{}\n", d.message))
        }
    };
    match shown {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "anycastctl: the daemon's reply is not what this anycastctl understands: {e}"
            );
            ExitCode::from(1)
        }
    }
}
