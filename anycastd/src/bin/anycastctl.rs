//! anycastctl: status, why, drain and undrain for one site's anycastd.
//!
//! Exit codes: 0 done; 1 the daemon refused the request (unknown VIP, ...);
//! 2 bad usage; 3 the daemon is not running or cannot be reached; 4 not allowed (the
//! caller is not an operator: not root, not in the API's group, no valid token).

use std::path::PathBuf;
use std::process::ExitCode;

use anycastd::auth;
use anycastd::cli::ctl::{Cli, Command, ServerAction};
use anycastd::config::{self, ApiListen};
use anycastd::ctl::{client, render};
use anycastd::status::{ApiError, DrainReply, ServerReply, Status, WhyReply};
use clap::Parser;

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
        Command::Server { action } => match action {
            ServerAction::List => ("GET", "/v1/status".to_string()),
            ServerAction::Disable { .. } => ("POST", "/v1/server/disable".to_string()),
            ServerAction::Enable { .. } => ("POST", "/v1/server/enable".to_string()),
        },
    };
    let body = match &cli.command {
        Command::Server {
            action: ServerAction::Disable { vip, server, force },
        } => Some(serde_json::json!({ "vip": vip, "server": server, "force": force })),
        Command::Server {
            action: ServerAction::Enable { vip, server },
        } => Some(serde_json::json!({ "vip": vip, "server": server })),
        _ => None,
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
    let sent = match (&token, body) {
        (t, Some(b)) => client::request_json(&endpoint, method, path, t.as_deref(), b.to_string()),
        (Some(t), None) => client::request_with_token(&endpoint, method, path, t),
        (None, None) => client::request(&endpoint, method, path),
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
    if let (
        true,
        Command::Server {
            action: ServerAction::List,
        },
    ) = (cli.json, &cli.command)
    {
        // The servers alone, for scripts.
        return match serde_json::from_str::<Status>(&reply.body) {
            Ok(s) => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&s.real_servers).unwrap_or_default()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!(
                    "anycastctl: the daemon's reply is not what this anycastctl understands: {e}"
                );
                ExitCode::from(1)
            }
        };
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
        Command::Server {
            action: ServerAction::List,
        } => serde_json::from_str::<Status>(&reply.body).map(|s| render::servers(&s)),
        Command::Server { .. } => {
            serde_json::from_str::<ServerReply>(&reply.body).map(|r| format!("{}\n", r.message))
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
