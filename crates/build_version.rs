// The build script of every binary crate (`include!`d by each crate's build.rs): sets
// `VERSION_WITH_COMMIT`, what `--version` prints: the package version and the git commit it was
// built from, e.g. `0.2.0 (commit 1a2b3c4d5e6f)`.
//
// The commit is `SELLERSYNC_COMMIT` when set at build time (a build from a source tarball or a
// packaging system that knows it), else `git rev-parse` in the crate's checkout, else
// `unknown` (git absent, or no .git: a copy without history). The build script runs again when
// HEAD moves (a commit, a checkout) and when `SELLERSYNC_COMMIT` changes.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-env-changed=SELLERSYNC_COMMIT");
    println!("cargo::rerun-if-changed=build.rs");
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let commit = match std::env::var("SELLERSYNC_COMMIT") {
        Ok(commit) if !commit.trim().is_empty() => commit.trim().to_owned(),
        _ => git_commit(&dir).unwrap_or_else(|| "unknown".to_owned()),
    };
    let version = std::env::var("CARGO_PKG_VERSION").expect("cargo sets it");
    println!("cargo::rustc-env=VERSION_WITH_COMMIT={version} (commit {commit})");
}

/// The checkout's HEAD commit (12 hex digits), watching the files that change when it moves.
fn git_commit(dir: &Path) -> Option<String> {
    let commit = git(dir, &["rev-parse", "--short=12", "HEAD"])?;
    // HEAD itself (a checkout), the branch it points at (a commit) and packed-refs (a branch
    // whose ref was packed): git prints where each lives, also in a linked worktree.
    let mut watched = vec![git(dir, &["rev-parse", "--git-path", "HEAD"])?];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        watched.push(git(dir, &["rev-parse", "--git-path", &branch])?);
    }
    watched.push(git(dir, &["rev-parse", "--git-path", "packed-refs"])?);
    for path in watched {
        let path = dir.join(path);
        // A path that does not exist would make cargo run this script on every build.
        if path.exists() {
            println!("cargo::rerun-if-changed={}", path.display());
        }
    }
    Some(commit)
}

/// `git <args>` in `dir`: its trimmed output, or `None` when git is absent or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).current_dir(dir).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}
