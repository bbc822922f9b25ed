//! Sets `VERSION_WITH_COMMIT` (the version and git commit `--version` prints): the workspace's one
//! build script, shared by every binary crate.
include!("../build_version.rs");
