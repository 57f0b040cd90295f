//! The per-connection rules of OCP/1 after HELLO, as a pure state machine: which request
//! frames are admitted, which are refused with the connection kept open, and which close it.
//!
//! No I/O: `server/device.rs` asks [`Session::admit`] for every frame and calls
//! [`Session::complete`] when it has written the answer. Fuzzed with frame sequences
//! (fuzz/targets.rs `session_sequence`).

use std::collections::HashSet;

use super::wire::{ErrorCode, MsgType};

/// What to do with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Process it; it now counts as in flight.
    Accept,
    /// Answer ERROR with this code and the frame's request_id; keep the connection.
    Refuse(ErrorCode, &'static str),
    /// Send ERROR with this code and request_id 0, then close.
    Close(ErrorCode, &'static str),
}

/// Requests in flight on one authenticated connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    max_inflight: usize,
    inflight: HashSet<u32>,
}

impl Session {
    pub fn new(max_inflight: u8) -> Self {
        Self {
            max_inflight: usize::from(max_inflight.max(1)),
            inflight: HashSet::new(),
        }
    }

    pub fn in_flight(&self) -> usize {
        self.inflight.len()
    }

    /// Decides about a request frame. Request ids must be non-zero and unique among the
    /// requests in flight; a second HELLO is a state error; server-to-device types from a
    /// device are malformed; one more than max_inflight is refused.
    pub fn admit(&mut self, request_id: u32, msg_type: MsgType) -> Admission {
        if request_id == 0 || self.inflight.contains(&request_id) {
            return Admission::Close(ErrorCode::BadFrame, "request_id is 0 or already in flight");
        }
        match msg_type {
            MsgType::Hello => {
                return Admission::Close(ErrorCode::BadState, "HELLO was already sent");
            }
            MsgType::Check | MsgType::Get | MsgType::Report | MsgType::Ping => {}
            MsgType::HelloOk
            | MsgType::Offer
            | MsgType::Data
            | MsgType::ReportOk
            | MsgType::Pong
            | MsgType::Error => {
                return Admission::Close(ErrorCode::BadFrame, "not a device request");
            }
        }
        if self.inflight.len() >= self.max_inflight {
            return Admission::Refuse(ErrorCode::TooManyInflight, "too many requests in flight");
        }
        self.inflight.insert(request_id);
        Admission::Accept
    }

    /// The answer to `request_id` was written; it no longer counts.
    pub fn complete(&mut self, request_id: u32) {
        self.inflight.remove(&request_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_rules() {
        let mut s = Session::new(2);
        assert_eq!(s.admit(1, MsgType::Get), Admission::Accept);
        assert!(matches!(
            s.admit(1, MsgType::Ping),
            Admission::Close(ErrorCode::BadFrame, _)
        ));
        assert!(matches!(
            s.admit(0, MsgType::Ping),
            Admission::Close(ErrorCode::BadFrame, _)
        ));
        assert_eq!(s.admit(2, MsgType::Check), Admission::Accept);
        assert!(matches!(
            s.admit(3, MsgType::Ping),
            Admission::Refuse(ErrorCode::TooManyInflight, _)
        ));
        assert_eq!(s.in_flight(), 2);
        s.complete(1);
        assert_eq!(s.admit(3, MsgType::Report), Admission::Accept);
        // A completed id may be reused.
        s.complete(2);
        assert_eq!(s.admit(1, MsgType::Ping), Admission::Accept);
        assert!(matches!(
            s.admit(9, MsgType::Hello),
            Admission::Close(ErrorCode::BadState, _)
        ));
        assert!(matches!(
            s.admit(9, MsgType::Data),
            Admission::Close(ErrorCode::BadFrame, _)
        ));
    }
}
