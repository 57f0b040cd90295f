//! The fleet simulator behind `otad device simulate`, usable from tests and benchmarks.
//!
//! One concept a file: what to simulate ([`Options`], `options.rs`), the drivers that run
//! the fleet ([`run`], `fleet.rs`), what one device does (`flow.rs`), what the devices of a
//! repeat or hold run share (`together.rs`), and the latency statistics and the [`Report`]
//! with its stable JSON form (`report.rs`).
//!
//! Three modes ([`Mode`]):
//! - **once** (the default): every device connects + HELLO, CHECKs, downloads the offered
//!   image once (every chunk verified, the whole image checked against both hashes),
//!   REPORTs DOWNLOADED and disconnects; a bounded worker pool runs C devices at a time.
//!   With [`Options::install`] it then installs (`client/install.rs`): a seeded share of
//!   the devices fails with a reason, another never confirms, the rest reboot and confirm.
//! - **repeat**: every device connects at once and downloads the image over and over; only
//!   the chunks that arrive inside a measuring window (after a warm-up) are counted, so the
//!   figures are steady-state throughput (chunks/s, MB/s, GET → DATA latency).
//! - **hold**: every device connects, CHECKs, then stays idle (a PING now and then) until a
//!   given time after the last one connected: idle authenticated connections, for memory
//!   measurements of the server.
//!
//! GETs are verified slices of one group by default; [`Options::raw`] asks for raw bytes
//! without proof and [`Options::get_size`] for more than one group per GET.
//!
//! Not here: argument parsing and human output (`src/cli/device/`) and the protocol itself
//! (`client/device.rs`; its verified download is what the default once mode uses).

mod fleet;
mod flow;
mod options;
mod report;
mod together;

pub use self::fleet::run;
pub use self::options::{
    DeviceCreds, Hook, Install, Mode, Options, SimError, SimEvent, parse_devices_csv,
};
pub use self::report::{Failure, Installs, MAX_ERRORS, Percentiles, Report, Stage};
