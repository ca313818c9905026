//! The command lines of `anycastd` and `anycastctl`.
//!
//! They live in the library, not in the binaries, so that the man pages and the shell
//! completions (`examples/gen_assets.rs`, run by `scripts/package.sh`) are generated
//! from the very definitions the binaries parse with.

pub mod ctl;
pub mod daemon;
