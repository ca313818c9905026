//! The demo behind the README's first command: boots the lab kernel with the LVS
//! paper's topology (lab/src/seed.rs), runs two anycastd sites under FRR routers, and
//! walks through convergence, a site failure and spill-over with `anycastctl status`
//! between the steps (lab/demo/seed-demo.sh), streaming the narration as it goes.
//!
//! Usage: seed-demo BIN_DIR   (the directory holding anycastd and anycastctl)

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anycast_lab::uml::Lab;
use anycast_lab::{Need, require, seed};

/// Names of the demo work dirs that exist now (runs kept from earlier failures).
fn demo_dirs(work: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(work)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("demo-"))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Prints whatever is appended to the script log of the demo work dir that appears
/// after `old` was taken, until `done`.
fn follow(work: PathBuf, old: Vec<PathBuf>, done: Arc<AtomicBool>) {
    let mut file: Option<std::fs::File> = None;
    let mut pos = 0u64;
    for _ in 0..36_000 {
        if file.is_none() {
            file = demo_dirs(&work)
                .into_iter()
                .find(|d| !old.contains(d))
                .and_then(|d| std::fs::File::open(d.join("script.log")).ok());
        }
        if let Some(f) = file.as_mut() {
            let mut buf = String::new();
            if f.seek(SeekFrom::Start(pos)).is_ok() && f.read_to_string(&mut buf).is_ok() {
                pos += buf.len() as u64;
                let shown: String = buf
                    .lines()
                    .filter(|l| !l.contains("Disabling MPLS support") && !l.starts_with("== "))
                    .map(|l| format!("{l}\n"))
                    .collect();
                print!("{shown}");
                let _ = std::io::stdout().flush();
            }
        }
        if done.load(Ordering::Relaxed) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn main() {
    let bin = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            eprintln!("usage: seed-demo BIN_DIR");
            std::process::exit(2)
        });
    let bin = std::fs::canonicalize(&bin).unwrap_or(bin);
    for b in ["anycastd", "anycastctl"] {
        if !bin.join(b).is_file() {
            eprintln!(
                "seed-demo: {} not found: build with `cargo build --release -p anycastd`",
                bin.join(b).display()
            );
            std::process::exit(2);
        }
    }
    if !require(
        "seed-demo",
        &[
            Need::LabKernel,
            Need::Root,
            Need::Program("/usr/lib/frr/bgpd"),
            Need::Program("python3"),
        ],
    ) {
        eprintln!("seed-demo: run scripts/install-deps.sh as root first");
        std::process::exit(2);
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let repo = std::fs::canonicalize(&repo).unwrap_or(repo);
    let script = include_str!("../../demo/seed-demo.sh")
        .replace("@BIN@", &bin.display().to_string())
        .replace("@REPO@", &repo.display().to_string());
    println!(
        "Booting the lab kernel with the paper's topology (7 FRR routers, 3 directors: two for IDC1, 4 real servers)..."
    );
    let done = Arc::new(AtomicBool::new(false));
    let follower = {
        let done = done.clone();
        let work = Path::new(env!("CARGO_MANIFEST_DIR")).join("work");
        let old = demo_dirs(&work);
        std::thread::spawn(move || follow(work, old, done))
    };
    let out = Lab::new("demo")
        .topology(seed::topology())
        .extra_modules(&[anycast_lab::seed6::MODULES, &["ip_vs_mh", "sch_tbf"]].concat())
        .script(&script)
        .timeout(Duration::from_secs(420))
        .mem_mb(1024)
        .run();
    done.store(true, Ordering::Relaxed);
    let _ = follower.join();
    match out {
        Ok(o) => {
            println!("\n=== results");
            for r in &o.results {
                println!(
                    "{} {} {}",
                    if r.pass { "PASS" } else { "FAIL" },
                    r.name,
                    r.detail
                );
            }
            std::process::exit(if o.passed() { 0 } else { 1 });
        }
        Err(e) => {
            eprintln!("seed-demo: the lab kernel did not run: {e}");
            std::process::exit(1);
        }
    }
}
