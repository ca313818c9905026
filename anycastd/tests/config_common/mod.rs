//! What the config tests share: loading a text as if it were configs/idc1.toml,
//! the problems of a refused one, and `anycastd check` on a text.
#![allow(dead_code)]

use std::path::Path;

use anycastd::config::{SiteConfig, parse_str};

pub fn configs_dir_file() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/idc1.toml"))
}

pub fn load(text: &str) -> SiteConfig {
    parse_str(configs_dir_file(), text).unwrap_or_else(|e| panic!("{e}"))
}

/// `text` refused: each problem as `LINE: reason`.
pub fn refused(text: &str) -> Vec<String> {
    match parse_str(configs_dir_file(), text) {
        Ok(_) => panic!("accepted a bad file"),
        Err(e) => e
            .problems
            .iter()
            .map(|p| format!("{}: {}", p.line, p.reason))
            .collect(),
    }
}

pub fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

/// What `anycastd check` did with a file: exit code, standard output and error, and
/// the file's path as the messages name it.
pub struct Checked {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub file: String,
}

/// `anycastd check` on `text` written as idc1.toml next to the keys it names, in a
/// directory of its own (`tag`): its exit code and standard output.
pub fn check(tag: &str, text: &str) -> (Option<i32>, String) {
    let c = check_all(tag, text);
    (c.code, c.stdout)
}

/// [`check`], with everything it printed.
pub fn check_all(tag: &str, text: &str) -> Checked {
    let dir = std::env::temp_dir().join(format!("anycastd-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    let keys = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/keys"));
    for key in ["idc1-idc2.key", "idc1-directors.key"] {
        std::fs::copy(keys.join(key), dir.join("keys").join(key)).unwrap();
    }
    let file = dir.join("idc1.toml");
    std::fs::write(&file, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args(["check", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    Checked {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        file: file.display().to_string(),
    }
}
