//! The TCPCLv4 convergence layer as a peer on the other end of the TCP
//! connection drives it: the sans-IO session state machine fed the peer's
//! bytes in chunks the fuzzer cuts, the passing of time, end of stream, and
//! the local owner's own calls (send, acknowledge, refuse, pause, close); and
//! the codec on its own.
//!
//! Script operations (see `ferry_fuzz::Script`), after a role byte and the
//! local configuration:
//! - 0 `chunk`: bytes from the peer (the chunk boundary is the fuzzer's)
//! - 1 `u32`: milliseconds pass; timers fire when due
//! - 2 `u16`: the owner sends a bundle of that many bytes (256 KiB in all
//!   at most)
//! - 3 `u8`: the owner acknowledges (even) or refuses (odd, that reason) the
//!   oldest bundle received and not yet answered
//! - 4 `u64`: the owner acknowledges a transfer id of the fuzzer's choice
//! - 5 `bool`: reading paused or resumed (backpressure)
//! - 6 `u8`: the owner closes the session with that reason
//! - 7: end of stream
//! - 8 `chunk`: the codec alone: every message decoded from the chunk
//!   encodes and decodes back to itself
//!
//! Properties: nothing panics; everything the session writes is well-formed
//! TCPCL (a contact header, then messages the codec decodes); no bundle
//! larger than the local transfer MRU is ever delivered.
#![no_main]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use ferry_fuzz::Script;
use ferry_fuzz::tcpcl::codec::{
    CONTACT_HEADER_LEN, ContactHeader, Limits, Message, SessTermReason, XferRefuseReason,
};
use ferry_fuzz::tcpcl::session::SessionConfig;
use ferry_fuzz::tcpcl::session::{Event, Role, Session};
use libfuzzer_sys::fuzz_target;

/// What the session wrote, checked as the peer's decoder would read it.
struct Wire {
    buf: Vec<u8>,
    header_seen: bool,
    limits: Limits,
}

impl Wire {
    fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        loop {
            if !self.header_seen {
                match ContactHeader::decode(&self.buf) {
                    Ok(Some(_)) => {
                        self.buf.drain(..CONTACT_HEADER_LEN);
                        self.header_seen = true;
                    }
                    Ok(None) => return,
                    Err(e) => panic!("the session wrote a bad contact header: {e}"),
                }
            }
            match Message::decode(&self.buf, &self.limits) {
                Ok(Some((_, used))) => {
                    self.buf.drain(..used);
                }
                Ok(None) => return,
                Err(e) => panic!("the session wrote a malformed message: {e}"),
            }
        }
    }
}

/// Bytes the owner sends in one input at most.
const MAX_SENT_BYTES: usize = 256 * 1024;

fn codec_round_trip(mut bytes: &[u8]) {
    let limits = Limits::default();
    while let Ok(Some((message, used))) = Message::decode(bytes, &limits) {
        let mut out = Vec::new();
        message.encode(&mut out).expect("a decoded message encodes");
        let (again, len) = Message::decode(&out, &limits)
            .expect("an encoded message decodes")
            .expect("an encoded message is whole");
        assert_eq!(again, message);
        assert_eq!(len, out.len());
        bytes = &bytes[used..];
    }
}

fuzz_target!(|data: &[u8]| {
    let mut s = Script::new(data);
    let role = if s.bool() {
        Role::Active
    } else {
        Role::Passive
    };
    let mut config = SessionConfig::new("dtn://fuzz/");
    config.keepalive_secs = s.u8().into();
    config.segment_mru = 1 + u64::from(s.u16());
    config.transfer_mru = 1 + u64::from(s.u16()) * 16;
    config.max_send_segment = 1 + u64::from(s.u16());
    // Any peer segment MRU is taken, so small ones still reach segmentation (the
    // node's floor is a unit test of the session).
    config.min_peer_segment_mru = 1;
    let transfer_mru = config.transfer_mru;
    let start = Instant::now();
    let mut now = start;
    let Ok(mut session) = Session::new(role, config, now) else {
        return;
    };
    let mut wire = Wire {
        buf: Vec::new(),
        header_seen: false,
        limits: Limits {
            max_segment_len: u64::MAX,
            max_extensions_len: u32::MAX,
            max_node_id_len: u16::MAX,
        },
    };
    let mut received: VecDeque<u64> = VecDeque::new();
    let mut sent = 0;
    let mut steps = 0;
    while !s.is_empty() && steps < 512 {
        steps += 1;
        match s.u8() % 9 {
            0 => session.handle_input(s.chunk(), now),
            1 => {
                now += Duration::from_millis(s.u32().into());
                if session.poll_timeout().is_some_and(|due| due <= now) {
                    session.handle_timeout(now);
                }
            }
            2 => {
                let len = usize::from(s.u16());
                // A peer may ask for segments of one byte; bounding what the
                // owner sends keeps each input quick all the same.
                if sent + len <= MAX_SENT_BYTES {
                    sent += len;
                    let _ = session.send_bundle(vec![0xb7; len]);
                }
            }
            3 => {
                let reason = s.u8();
                if let Some(id) = received.pop_front() {
                    let answer = if reason.is_multiple_of(2) {
                        session.ack_transfer(id)
                    } else {
                        session.refuse_transfer(id, XferRefuseReason(reason >> 1))
                    };
                    // Refused only once the session is over.
                    assert!(answer.is_ok() || session.is_closed(), "{answer:?}");
                }
            }
            4 => {
                // Any id, received or not; one received is then answered.
                let id = s.u64();
                if session.ack_transfer(id).is_ok() {
                    received.retain(|r| *r != id);
                }
            }
            5 => {
                let paused = s.bool();
                session.set_reading_paused(paused, now);
            }
            6 => session.close(SessTermReason(s.u8()), now),
            7 => session.handle_eof(),
            _ => codec_round_trip(s.chunk()),
        }
        while let Some(bytes) = session.poll_transmit(now) {
            wire.push(&bytes);
        }
        while let Some(event) = session.poll_event() {
            if let Event::BundleReceived { transfer_id, data } = event {
                assert!(
                    data.len() as u64 <= transfer_mru,
                    "a {}-byte bundle delivered past a {transfer_mru}-byte MRU",
                    data.len()
                );
                received.push_back(transfer_id);
            }
        }
    }
});
