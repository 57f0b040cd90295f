//! Where log lines go: standard error, with routine lines (INFO and below — one per HTTP
//! request under load) gathered in memory and written every 100 ms or every 64 KiB by a
//! background thread, instead of one system call per line. WARN and ERROR lines first
//! write what is gathered and then themselves at once, so nothing important waits and the
//! order of lines is kept. A SIGKILL can lose at most the last 100 ms of routine lines.
//!
//! What a line says (text or JSON) is chosen in `cli/mod.rs`; this file only moves bytes.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

const FLUSH_EVERY: Duration = Duration::from_millis(100);
const FLUSH_BYTES: usize = 64 * 1024;

static SHARED: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

/// The `MakeWriter` given to the tracing subscriber.
#[derive(Clone)]
pub struct LogSink {
    pending: Arc<Mutex<Vec<u8>>>,
}

impl LogSink {
    /// Creates the sink and starts its flushing thread (once per process).
    pub fn start() -> LogSink {
        let pending = SHARED
            .get_or_init(|| {
                let pending = Arc::new(Mutex::new(Vec::new()));
                let for_thread = Arc::clone(&pending);
                // Without the thread lines would still be written, just only at 64 KiB or
                // at the next warning, so a failed spawn is not fatal.
                let _ = std::thread::Builder::new()
                    .name("otad-log".into())
                    .spawn(move || {
                        loop {
                            std::thread::sleep(FLUSH_EVERY);
                            write_out(&for_thread);
                        }
                    });
                pending
            })
            .clone();
        LogSink { pending }
    }
}

/// Writes whatever routine lines are gathered (e.g. before the process exits).
pub fn flush() {
    if let Some(pending) = SHARED.get() {
        write_out(pending);
    }
}

fn write_out(pending: &Mutex<Vec<u8>>) {
    let Ok(mut buf) = pending.lock() else { return };
    if !buf.is_empty() {
        // Standard error is the last resort for reporting anything: nowhere to report to.
        let _ = std::io::stderr().write_all(&buf);
        buf.clear();
    }
}

/// One log line's writer: gathered (routine) or written at once (warnings and errors).
pub struct LineWriter {
    pending: Arc<Mutex<Vec<u8>>>,
    now: bool,
}

impl Write for LineWriter {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let mut buf = self
            .pending
            .lock()
            .map_err(|_| std::io::Error::other("log buffer poisoned"))?;
        buf.extend_from_slice(line);
        if self.now || buf.len() >= FLUSH_BYTES {
            // Cleared whether or not the write worked, so a failing stderr cannot make the
            // buffer grow and every later line retry all of it.
            let written = std::io::stderr().write_all(&buf);
            buf.clear();
            written?;
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogSink {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter {
            pending: Arc::clone(&self.pending),
            now: true,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> LineWriter {
        LineWriter {
            pending: Arc::clone(&self.pending),
            // Levels order from ERROR (least verbose) up: WARN and ERROR go at once.
            now: *meta.level() <= Level::WARN,
        }
    }
}
