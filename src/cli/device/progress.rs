//! The progress line of `device download`: redrawn in place on a terminal, a plain line
//! every 10% otherwise, on stderr when stdout carries JSON.
//!
//! Not here: the admin commands' progress bar (`cli/output.rs`).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use crate::cli::output::size;

/// Progress output: one redrawn line on a terminal, else a plain line every 10%.
pub(super) struct Meter {
    total: u64,
    started: Instant,
    from: u64,
    to_stderr: bool,
    tty: bool,
    next_tenth: u64,
    last_draw: Option<Instant>,
}

impl Meter {
    pub(super) fn new(total: u64, from: u64, to_stderr: bool) -> Self {
        let tty = if to_stderr {
            std::io::stderr().is_terminal()
        } else {
            std::io::stdout().is_terminal()
        };
        Self {
            total,
            started: Instant::now(),
            from,
            to_stderr,
            tty,
            next_tenth: from.saturating_mul(10) / total.max(1) + 1,
            last_draw: None,
        }
    }

    fn emit(&self, text: &str) {
        let result = if self.to_stderr {
            let mut e = std::io::stderr().lock();
            e.write_all(text.as_bytes()).and_then(|()| e.flush())
        } else {
            let mut o = std::io::stdout().lock();
            o.write_all(text.as_bytes()).and_then(|()| o.flush())
        };
        // Progress is decoration: a closed pipe must not abort the download.
        let _ = result;
    }

    fn line(&self, done: u64) -> String {
        let pct = done as f64 * 100.0 / self.total.max(1) as f64;
        let secs = self.started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 {
            (done - self.from) as f64 / secs / (1 << 20) as f64
        } else {
            0.0
        };
        format!(
            "{pct:5.1}%  {} of {}  {rate:.1} MiB/s",
            size(done),
            size(self.total)
        )
    }

    pub(super) fn update(&mut self, done: u64) {
        if self.tty {
            // Redraw at most ten times a second: the terminal is slower than the network.
            if self
                .last_draw
                .is_some_and(|t| t.elapsed() < Duration::from_millis(100))
                && done < self.total
            {
                return;
            }
            self.last_draw = Some(Instant::now());
            self.emit(&format!("\r{}\x1b[K", self.line(done)));
        } else {
            let tenth = done.saturating_mul(10) / self.total.max(1);
            if tenth >= self.next_tenth {
                self.next_tenth = tenth + 1;
                self.emit(&format!("{}\n", self.line(done)));
            }
        }
    }

    pub(super) fn finish(&mut self) {
        if self.tty && self.last_draw.is_some() {
            self.emit("\n");
        }
    }
}
