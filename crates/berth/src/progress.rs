//! Progress bars for long operations: shown on a terminal (stderr), silent otherwise or with
//! `--quiet`.

use std::io::IsTerminal;
use std::time::Duration;

use berth_image::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar (bytes when the total is known, a spinner otherwise) or nothing.
pub struct Bar {
    bar: Option<ProgressBar>,
}

impl Bar {
    /// A bar on stderr when it is a terminal and `quiet` is false.
    pub fn new(quiet: bool) -> Bar {
        if quiet || !std::io::stderr().is_terminal() {
            return Bar { bar: None };
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.enable_steady_tick(Duration::from_millis(120));
        Bar { bar: Some(bar) }
    }

    /// Feeds one progress report of berth-image to the bar.
    pub fn update(&self, p: &Progress) {
        let Some(bar) = &self.bar else { return };
        let item = short(&p.item);
        match p.total {
            Some(total) if total > 0 => {
                if bar.length() != Some(total) {
                    bar.set_style(bytes_style());
                    bar.set_length(total);
                }
                bar.set_position(p.current.min(total));
            }
            _ => {
                if bar.length().is_some() {
                    bar.set_style(spinner_style());
                    bar.unset_length();
                }
                if p.current > 0 && p.action != "debootstrap" {
                    bar.set_position(p.current);
                }
            }
        }
        bar.set_message(format!("{} {item}", p.action));
    }

    /// A callback for berth-image's `ProgressFn`.
    pub fn callback(&self) -> impl FnMut(Progress) + '_ {
        move |p| self.update(&p)
    }

    /// Removes the bar from the terminal.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.finish();
    }
}

fn bytes_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{spinner} {msg:40!} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg:60!} {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

/// Digests shortened to 12 hex digits, like docker's progress.
fn short(item: &str) -> String {
    match item.strip_prefix("sha256:") {
        Some(hex) if hex.len() > 12 => hex[..12].to_string(),
        _ => item.to_string(),
    }
}
