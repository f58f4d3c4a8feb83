//! Progress bars for long operations (load, save, import, bootstrap): shown on a terminal
//! (stderr), silent otherwise or with `--quiet`.

use std::io::{self, IsTerminal, Read};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar (bytes when the total is known, a spinner otherwise) or nothing.
#[derive(Clone)]
pub struct Bar {
    bar: Option<ProgressBar>,
}

impl Bar {
    /// A bar on stderr when it is a terminal and `quiet` is false; `total` in bytes if known.
    pub fn new(quiet: bool, total: Option<u64>, message: &str) -> Bar {
        if quiet || !io::stderr().is_terminal() {
            return Bar { bar: None };
        }
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
        bar.set_style(if total.is_some() {
            bytes_style()
        } else {
            spinner_style()
        });
        bar.set_message(message.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        Bar { bar: Some(bar) }
    }

    pub fn add(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    pub fn message(&self, m: &str) {
        if let Some(b) = &self.bar {
            b.set_message(m.trim().to_string());
        }
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

/// A reader that moves a bar by the bytes read through it.
pub struct Counting<R> {
    pub inner: R,
    pub bar: Bar,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.add(n as u64);
        Ok(n)
    }
}

fn bytes_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{spinner} {msg:20!} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg:50!} {bytes} {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}
