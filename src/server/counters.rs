//! Traffic counters of the OCP/1 listener, read by `/metrics`: connections, sessions,
//! CHECKs, REPORTs, DATA frames and their payload bytes, unsolicited OFFERs, and ERROR
//! frames by code. Every frame the device server sends passes [`OcpCounters::sent`], so
//! what is counted is what went out, wherever in the session it was decided.
//!
//! Not here: the HTTP request counters and the Prometheus text (`api/metrics.rs`).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::ocp::wire::{ErrorCode, Message};

/// ERROR codes are 1..=11 today (`ocp/wire.rs`); one slot more for any code above.
const ERROR_SLOTS: usize = 16;

#[derive(Default)]
pub struct OcpCounters {
    connections: AtomicU64,
    sessions: AtomicU64,
    checks: AtomicU64,
    reports: AtomicU64,
    chunks: AtomicU64,
    chunk_bytes: AtomicU64,
    pushed_offers: AtomicU64,
    errors: [AtomicU64; ERROR_SLOTS],
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OcpSnapshot {
    /// TLS connections accepted (handshake done or not).
    pub connections: u64,
    /// Sessions that passed HELLO (device authenticated).
    pub sessions: u64,
    pub checks: u64,
    pub reports: u64,
    /// DATA frames sent, and the firmware bytes they carried (proofs excluded).
    pub chunks: u64,
    pub chunk_bytes: u64,
    /// OFFERs sent unasked, after a push.
    pub pushed_offers: u64,
    /// ERROR frames sent, by protocol name (`BAD_FRAME`, …), in code order.
    pub errors: Vec<(&'static str, u64)>,
}

fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl OcpCounters {
    pub fn connection(&self) {
        bump(&self.connections, 1);
    }

    pub fn session(&self) {
        bump(&self.sessions, 1);
    }

    pub fn check(&self) {
        bump(&self.checks, 1);
    }

    pub fn report(&self) {
        bump(&self.reports, 1);
    }

    /// Counts one frame that is being sent with `request_id`.
    pub fn sent(&self, request_id: u32, msg: &Message) {
        match msg {
            Message::Data { length, .. } => {
                bump(&self.chunks, 1);
                bump(&self.chunk_bytes, u64::from(*length));
            }
            Message::Offer { .. } if request_id == 0 => bump(&self.pushed_offers, 1),
            Message::Error { code, .. } => {
                let slot = usize::from(*code).min(ERROR_SLOTS - 1);
                if let Some(counter) = self.errors.get(slot) {
                    bump(counter, 1);
                }
            }
            _ => {}
        }
    }

    pub fn snapshot(&self) -> OcpSnapshot {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let errors = (1..ERROR_SLOTS)
            .filter_map(|slot| {
                let code = u16::try_from(slot).ok()?;
                let name = match ErrorCode::from_u16(code) {
                    Some(known) => known.name(),
                    None if slot == ERROR_SLOTS - 1 => "OTHER",
                    None => return None,
                };
                Some((name, self.errors.get(slot).map_or(0, read)))
            })
            .collect();
        OcpSnapshot {
            connections: read(&self.connections),
            sessions: read(&self.sessions),
            checks: read(&self.checks),
            reports: read(&self.reports),
            chunks: read(&self.chunks),
            chunk_bytes: read(&self.chunk_bytes),
            pushed_offers: read(&self.pushed_offers),
            errors,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_is_sent() {
        let c = OcpCounters::default();
        let data = Message::Data {
            offset: 0,
            length: 4096,
            with_proof: true,
            payload: vec![0; 4200],
        };
        c.sent(7, &data);
        c.sent(8, &data);
        c.sent(0, &Message::Offer { items: Vec::new() });
        c.sent(9, &Message::Offer { items: Vec::new() });
        let busy = Message::Error {
            code: ErrorCode::Busy as u16,
            retry_after_ms: 5,
            message: String::new(),
        };
        c.sent(0, &busy);
        let odd = Message::Error {
            code: 900,
            retry_after_ms: 0,
            message: String::new(),
        };
        c.sent(0, &odd);
        let s = c.snapshot();
        assert_eq!((s.chunks, s.chunk_bytes, s.pushed_offers), (2, 8192, 1));
        assert!(s.errors.contains(&("BUSY", 1)));
        assert!(s.errors.contains(&("BAD_FRAME", 0)));
        assert!(s.errors.contains(&("OTHER", 1)));
        assert_eq!(s.errors.len(), 12, "{:?}", s.errors);
    }
}
