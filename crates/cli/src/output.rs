//! What the CLI shows a person: tables (comfy-table) and progress bars on stderr (indicatif).
//! With `--json` neither appears: scripts get one JSON document on stdout.

use std::time::Duration;

use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{ContentArrangement, Table};
use indicatif::{ProgressBar, ProgressStyle};

/// A table of `rows` under `headers`, fitted to the terminal; `(none)` when empty.
pub fn print_table(headers: &[&str], rows: Vec<Vec<String>>) {
    if rows.is_empty() {
        println!("(none)");
        return;
    }
    let mut table = Table::new();
    table
        .load_preset(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(headers.to_vec());
    for row in rows {
        table.add_row(row);
    }
    println!("{table}");
}

/// A progress bar or spinner on stderr; hidden with `--json` (and by indicatif itself when
/// stderr is not a terminal).
pub struct Progress(ProgressBar);

impl Progress {
    pub fn bar(quiet: bool, total: u64, what: &str) -> Self {
        let bar = if quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(total)
        };
        bar.set_style(
            ProgressStyle::with_template("{msg:>16} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.set_message(what.to_owned());
        Self(bar)
    }

    pub fn spinner(quiet: bool, what: &str) -> Self {
        let bar = if quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new_spinner()
        };
        bar.enable_steady_tick(Duration::from_millis(120));
        bar.set_message(what.to_owned());
        Self(bar)
    }

    pub fn inc(&self, n: u64) {
        self.0.inc(n);
    }

    pub fn set(&self, position: u64) {
        self.0.set_position(position);
    }

    pub fn message(&self, text: &str) {
        self.0.set_message(text.to_owned());
    }

    pub fn finish(&self, text: &str) {
        self.0.finish_with_message(text.to_owned());
    }
}
