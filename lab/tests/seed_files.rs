//! The containerlab form of the seed topology: generated, committed, and valid
//! against containerlab's own schema.

use std::path::{Path, PathBuf};
use std::process::Command;

use anycast_lab::{Need, require, seed};

fn lab_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn committed_seed_files_match_the_generator() {
    for (rel, want) in seed::files() {
        let path = lab_dir().join("seed").join(&rel);
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "lab/seed/{rel} differs from lab/src/seed.rs: run `cargo run -p anycast-lab --bin gen-seed` and commit"
        );
    }
}

#[test]
fn the_clab_file_is_valid_against_containerlabs_schema() {
    if !require(
        "the_clab_file_is_valid_against_containerlabs_schema",
        &[Need::Program("python3")],
    ) {
        return;
    }
    // shared/ sits beside the checkout (CI); $ANYCAST_SHARED points elsewhere.
    let rel = "containerlab/clab.schema.json";
    let candidates: Vec<PathBuf> = std::env::var_os("ANYCAST_SHARED")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            lab_dir().join("../../shared"),
            PathBuf::from("/work/shared"),
        ])
        .map(|d| d.join(rel))
        .collect();
    let Some(schema) = candidates.iter().find(|p| p.is_file()).cloned() else {
        panic!(
            "containerlab's schema is not in any of {candidates:?} (the shared/ folder beside the repository; set ANYCAST_SHARED to its path)"
        );
    };
    let check = r#"
import json, sys
try:
    import jsonschema, yaml
except ImportError as e:
    print("MISSING", e); sys.exit(3)
schema = json.load(open(sys.argv[1]))
doc = yaml.safe_load(open(sys.argv[2]))
errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=str)
for e in errors:
    print("INVALID", "/".join(map(str, e.absolute_path)), e.message)
sys.exit(1 if errors else 0)
"#;
    let clab = lab_dir().join("seed/seed.clab.yml");
    let out = Command::new("python3")
        .args(["-c", check])
        .arg(&schema)
        .arg(&clab)
        .output()
        .expect("run python3");
    let text = String::from_utf8_lossy(&out.stdout);
    if out.status.code() == Some(3) {
        let msg = format!("needs python3-jsonschema and python3-yaml: {text}");
        assert!(!anycast_lab::require::in_ci(), "{msg}");
        eprintln!("SKIPPED the_clab_file_is_valid_against_containerlabs_schema: {msg}");
        return;
    }
    assert!(
        out.status.success(),
        "{} is not valid:\n{text}",
        clab.display()
    );
    let _ = Path::new(&clab);
}

#[test]
fn the_clab_file_names_every_node_and_link() {
    let y = seed::clab_yaml();
    for n in seed::NODES {
        assert!(
            y.contains(&format!("\n    {}:\n      kind: linux\n", n.name)),
            "{}",
            n.name
        );
    }
    assert_eq!(y.matches("- endpoints: [").count(), seed::LINKS.len());
    assert!(y.contains("ipv4: [\"10.101.3.1/29\", \"10.101.3.2/29\"]"));
}
