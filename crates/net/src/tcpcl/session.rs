//! The sans-IO TCPCLv4 session state machine.
//!
//! A [`Session`] is fed the bytes read from the TCP connection
//! ([`Session::handle_input`]), the end of the stream ([`Session::handle_eof`])
//! and the passing of time ([`Session::handle_timeout`] at
//! [`Session::poll_timeout`]); it hands back the bytes to write
//! ([`Session::poll_transmit`]) and what happened ([`Session::poll_event`]).
//! Every input takes the current time, so tests drive it with a fake clock.
//!
//! What it does:
//! - contact header exchange (the active side speaks first, the passive side
//!   answers), then SESS_INIT exchange in the same order; no TLS is offered;
//! - negotiation: the keepalive interval is the smaller of the two offers, and
//!   outgoing transfers obey the peer's segment and transfer MRUs;
//! - segmentation of outgoing bundles (one segment per `poll_transmit`, so
//!   acknowledgements and keepalives interleave with a large transfer) and
//!   completion when the peer acknowledges the whole length; the flags of the
//!   peer's XFER_ACK are not checked (dtn7-rs always sends 0);
//! - reassembly of incoming transfers up to the local transfer MRU (larger ones
//!   are refused); intermediate segments are acknowledged at once, the last one
//!   only when the owner calls [`Session::ack_transfer`] — after the bundle is
//!   durably stored;
//! - KEEPALIVE after half an interval without sending, session end after two
//!   intervals without receiving, or after [`SessionConfig::max_idle`] when the
//!   peer asked for no keepalives (0): no peer holds a silent session forever;
//! - with a [`ReceiveBudget`], incoming bytes held across sessions stay under
//!   its bound (a transfer that would pass it is refused);
//! - SESS_TERM in both directions; MSG_REJECT for unknown or unexpected
//!   messages; any malformed input ends the session with a clear error.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;
use tracing::{debug, warn};

use super::budget::{ReceiveBudget, Reservation};
use super::codec::{
    ContactHeader, DecodeError, ExtensionItem, Limits, Message, MessageType, MsgReject,
    MsgRejectReason, SegmentFlags, SessInit, SessTerm, SessTermReason, XferAck, XferRefuse,
    XferRefuseReason, XferSegment, encode_segment_header,
};

/// Which end opened the TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Opened the connection; sends its contact header and SESS_INIT first.
    Active,
    /// Accepted the connection; answers.
    Passive,
}

/// Local session parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Node id sent in SESS_INIT. It must be a URI (e.g. `dtn://PEER_ID/`):
    /// dtn7-rs ends the session on anything else.
    pub local_node_id: String,
    /// Offered keepalive interval in seconds (0 disables keepalives; dtn7-rs
    /// ends such a session at once).
    pub keepalive_secs: u16,
    /// How long a session whose keepalives are disabled (either side offered
    /// 0) may go without receiving anything before it is ended. RFC 9174 lets a
    /// node end an idle session; without this bound a peer asking for no
    /// keepalives could hold a session, and its memory, forever.
    pub max_idle: Duration,
    /// Largest segment accepted from the peer.
    pub segment_mru: u64,
    /// Largest bundle accepted from the peer; larger transfers are refused.
    pub transfer_mru: u64,
    /// Largest segment sent, whatever the peer's segment MRU allows.
    pub max_send_segment: u64,
    /// Smallest segment MRU accepted from the peer. Every segment costs a header
    /// and an acknowledgement of about 20 bytes each: a peer offering 1 byte would
    /// make the node send 20 times the bundle's size, byte by byte. RFC 9174 sets
    /// no minimum; a session offering less is ended at the handshake.
    pub min_peer_segment_mru: u64,
    /// Largest extension item list accepted in SESS_INIT or XFER_SEGMENT.
    pub max_extensions_len: u32,
    /// Largest peer node id accepted.
    pub max_node_id_len: u16,
    /// Time allowed for the contact header and SESS_INIT exchange.
    pub handshake_timeout: Duration,
    /// Time allowed, after SESS_TERM is sent, for the session to wind down.
    pub close_timeout: Duration,
}

/// The default [`SessionConfig::min_peer_segment_mru`]: segments of 512 bytes cost
/// at most a few percent in headers and acknowledgements (dtn7-rs offers 64,000).
pub const MIN_PEER_SEGMENT_MRU: u64 = 512;

impl SessionConfig {
    /// Defaults: keepalive 30 s, idle bound without keepalives 60 s (what two
    /// intervals of 30 s allow), segment MRU 256 KiB, transfer MRU 64 MiB.
    pub fn new(local_node_id: impl Into<String>) -> Self {
        SessionConfig {
            local_node_id: local_node_id.into(),
            keepalive_secs: 30,
            max_idle: Duration::from_secs(60),
            segment_mru: 256 * 1024,
            transfer_mru: 64 * 1024 * 1024,
            max_send_segment: 256 * 1024,
            min_peer_segment_mru: MIN_PEER_SEGMENT_MRU,
            max_extensions_len: 4096,
            max_node_id_len: 1024,
            handshake_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(10),
        }
    }

    /// Checks the configuration (also done by [`Session::new`]).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !is_uri(&self.local_node_id) {
            return Err(ConfigError::NodeIdNotUri(self.local_node_id.clone()));
        }
        if self.local_node_id.len() > usize::from(u16::MAX) {
            return Err(ConfigError::NodeIdTooLong);
        }
        if self.segment_mru == 0 || self.max_send_segment == 0 {
            return Err(ConfigError::ZeroSegmentSize);
        }
        Ok(())
    }

    fn limits(&self) -> Limits {
        Limits {
            max_segment_len: self.segment_mru,
            max_extensions_len: self.max_extensions_len,
            max_node_id_len: self.max_node_id_len,
        }
    }
}

/// The node id ferry sends for a peer id: `dtn://PEER_ID/`.
pub fn node_id_for(peer_id: &str) -> String {
    format!("dtn://{peer_id}/")
}

/// A URI as RFC 3986 starts one: a scheme (a letter, then letters, digits,
/// `+`, `-`, `.`), a colon, and something after it.
fn is_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
}

/// A session configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("node id {0:?} is not a URI (use e.g. dtn://NAME/)")]
    NodeIdNotUri(String),
    #[error("node id longer than 65535 bytes")]
    NodeIdTooLong,
    #[error("segment sizes must be above 0")]
    ZeroSegmentSize,
}

/// What was negotiated with the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's node id from its SESS_INIT.
    pub node_id: String,
    /// The session's keepalive interval in seconds (0: none).
    pub keepalive_secs: u16,
    /// The peer's segment MRU (bounds the segments sent to it).
    pub segment_mru: u64,
    /// The peer's transfer MRU (bounds the bundles sent to it).
    pub transfer_mru: u64,
    /// Whether the peer's contact header offered TLS (never used here).
    pub peer_can_tls: bool,
}

/// Something the owner of a session should know about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Contact headers and SESS_INITs exchanged: transfers may start.
    Established(PeerInfo),
    /// A whole bundle arrived. Its last segment is acknowledged only when the
    /// owner calls [`Session::ack_transfer`] (or refused with
    /// [`Session::refuse_transfer`]).
    BundleReceived { transfer_id: u64, data: Vec<u8> },
    /// The peer acknowledged every byte of an outgoing bundle (or refused it
    /// as already complete).
    TransferAcked { transfer_id: u64 },
    /// The peer refused an outgoing bundle.
    TransferRefused {
        transfer_id: u64,
        reason: XferRefuseReason,
    },
    /// The session ended before the peer acknowledged an outgoing bundle.
    TransferFailed { transfer_id: u64 },
    /// SESS_TERM sent or received: no new transfers start.
    Terminating {
        reason: SessTermReason,
        by_peer: bool,
    },
    /// The session is over: `None` after a clean SESS_TERM exchange. Pending
    /// output (a final SESS_TERM, say) should still be written, then the
    /// connection closed.
    Closed(Option<SessionError>),
}

/// Why a session ended abnormally.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SessionError {
    #[error("malformed data from peer: {0}")]
    Decode(#[from] DecodeError),
    #[error("protocol violation by peer: {0}")]
    Protocol(String),
    #[error("peer sent a critical session extension item of type {0:#06x}, which is not supported")]
    CriticalExtension(u16),
    #[error("peer rejected our {header} message: {reason}", header = message_name(.0.rejected_header), reason = .0.reason)]
    Rejected(MsgReject),
    #[error("peer ended the session before it was established ({0})")]
    RefusedByPeer(SessTermReason),
    #[error("contact header and SESS_INIT exchange not complete within {0:?}")]
    HandshakeTimeout(Duration),
    #[error("nothing received for {0:?}")]
    IdleTimeout(Duration),
    #[error("session termination not complete within {0:?}")]
    CloseTimeout(Duration),
    #[error("the connection closed before the session ended")]
    ConnectionLost,
    #[error("closed locally before the session was established")]
    ClosedBeforeEstablished,
}

fn message_name(code: u8) -> String {
    match MessageType::from_u8(code) {
        Some(t) => format!("{t:?}"),
        None => format!("{code:#04x}"),
    }
}

/// Why a bundle cannot be queued.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SendError {
    #[error("the session is not established")]
    NotEstablished,
    #[error("the session is terminating")]
    Terminating,
    #[error("an empty bundle cannot be sent")]
    Empty,
    #[error("bundle of {len} bytes exceeds the peer's transfer MRU of {max} bytes")]
    TooLarge { len: u64, max: u64 },
    #[error("transfer ids exhausted")]
    TransferIdsExhausted,
}

/// Why an acknowledgement or refusal cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AckError {
    #[error("no received transfer {0} is awaiting acknowledgement")]
    UnknownTransfer(u64),
    #[error("the session is closed")]
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    ContactHeader,
    SessInit,
    Established,
    Closed,
}

struct Outgoing {
    id: u64,
    data: Vec<u8>,
    offset: usize,
}

struct Unacked {
    total: u64,
    sent: u64,
    acked: u64,
}

struct Incoming {
    id: u64,
    data: Vec<u8>,
    refused: bool,
    /// The share of the node's receive budget `data` holds.
    reserved: Option<Reservation>,
}

struct Delivered {
    len: u64,
    flags: SegmentFlags,
    /// Kept until the owner settles the bundle: its bytes are held till then.
    _reserved: Option<Reservation>,
}

/// One TCPCLv4 session, without I/O.
pub struct Session {
    role: Role,
    config: SessionConfig,
    limits: Limits,
    state: State,
    contact_header_sent: bool,
    inbuf: Vec<u8>,
    ctrl: Vec<u8>,
    events: VecDeque<Event>,
    peer: Option<PeerInfo>,
    peer_can_tls: bool,
    // Outgoing transfers: queued (front may be part-sent) and awaiting acks.
    tx_queue: VecDeque<Outgoing>,
    tx_unacked: BTreeMap<u64, Unacked>,
    next_tid: u64,
    // Incoming transfers: the one being reassembled, and the whole ones
    // awaiting the owner's acknowledgement.
    rx: Option<Incoming>,
    rx_delivered: BTreeMap<u64, Delivered>,
    term_sent: bool,
    term_received: bool,
    term_deadline: Option<Instant>,
    reading_paused: bool,
    budget: Option<Arc<ReceiveBudget>>,
    started: Instant,
    last_sent: Instant,
    last_received: Instant,
}

impl Session {
    /// A new session on a freshly opened (`Active`) or accepted (`Passive`)
    /// connection. The active side's contact header is ready at once in
    /// [`Session::poll_transmit`].
    pub fn new(role: Role, config: SessionConfig, now: Instant) -> Result<Session, ConfigError> {
        config.validate()?;
        let mut s = Session {
            role,
            limits: config.limits(),
            config,
            state: State::ContactHeader,
            contact_header_sent: false,
            inbuf: Vec::new(),
            ctrl: Vec::new(),
            events: VecDeque::new(),
            peer: None,
            peer_can_tls: false,
            tx_queue: VecDeque::new(),
            tx_unacked: BTreeMap::new(),
            next_tid: 0,
            rx: None,
            rx_delivered: BTreeMap::new(),
            term_sent: false,
            term_received: false,
            term_deadline: None,
            reading_paused: false,
            budget: None,
            started: now,
            last_sent: now,
            last_received: now,
        };
        if role == Role::Active {
            s.send_contact_header();
        }
        Ok(s)
    }

    /// Incoming transfers will hold their bytes of `budget`, shared with other
    /// sessions; one that would pass it is refused.
    pub fn set_receive_budget(&mut self, budget: Arc<ReceiveBudget>) {
        self.budget = Some(budget);
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// The negotiated parameters, once established.
    pub fn peer(&self) -> Option<&PeerInfo> {
        self.peer.as_ref()
    }

    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }

    /// True once the session is over; write out what
    /// [`Session::poll_transmit`] still gives, then close the connection.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Received bundles handed over but not yet acknowledged or refused.
    pub fn unacknowledged_received(&self) -> usize {
        self.rx_delivered.len()
    }

    /// Bytes of control messages (acknowledgements, refusals, keepalives)
    /// queued and not yet taken by [`Session::poll_transmit`]. Each segment
    /// read queues an acknowledgement: while these cannot be written (the peer
    /// does not read), the owner should stop reading too, or they grow without
    /// bound.
    pub fn queued_control_bytes(&self) -> usize {
        self.ctrl.len()
    }

    /// Outgoing bundles queued or awaiting acknowledgement.
    pub fn outgoing_in_flight(&self) -> usize {
        self.tx_unacked.len() + self.tx_queue.iter().filter(|o| o.offset == 0).count()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next bytes to write: pending control messages first, then one
    /// segment of the outgoing transfer at the head of the queue.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        if !self.ctrl.is_empty() {
            self.last_sent = now;
            return Some(std::mem::take(&mut self.ctrl));
        }
        if self.state != State::Established {
            return None;
        }
        let peer_mru = self.peer.as_ref()?.segment_mru;
        let out = self.tx_queue.front_mut()?;
        let remaining = out.data.len() - out.offset;
        let max = peer_mru.min(self.config.max_send_segment);
        let len = usize::try_from(max).map_or(remaining, |m| m.min(remaining));
        let mut flags = SegmentFlags::NONE;
        if out.offset == 0 {
            flags = flags.with(SegmentFlags::START);
            self.tx_unacked.insert(
                out.id,
                Unacked {
                    total: out.data.len() as u64,
                    sent: 0,
                    acked: 0,
                },
            );
        }
        if out.offset + len == out.data.len() {
            flags = flags.with(SegmentFlags::END);
        }
        let mut buf = Vec::with_capacity(len + 32);
        encode_segment_header(flags, out.id, len as u64, &mut buf);
        buf.extend_from_slice(&out.data[out.offset..out.offset + len]);
        out.offset += len;
        let id = out.id;
        if let Some(u) = self.tx_unacked.get_mut(&id) {
            u.sent += len as u64;
        }
        if flags.is_end() {
            self.tx_queue.pop_front();
        }
        self.last_sent = now;
        Some(buf)
    }

    /// When [`Session::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Closed => None,
            State::ContactHeader | State::SessInit => {
                Some(self.started + self.config.handshake_timeout)
            }
            State::Established => {
                let mut next = self.term_deadline;
                if !self.reading_paused {
                    let idle = self.last_received + self.idle_timeout();
                    next = Some(next.map_or(idle, |n| n.min(idle)));
                }
                if let Some(ka) = self.keepalive()
                    && self.ctrl.is_empty()
                {
                    let send = self.last_sent + ka / 2;
                    next = Some(next.map_or(send, |n| n.min(send)));
                }
                next
            }
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Closed => {}
            State::ContactHeader | State::SessInit => {
                if now >= self.started + self.config.handshake_timeout {
                    self.fail(
                        None,
                        SessionError::HandshakeTimeout(self.config.handshake_timeout),
                    );
                }
            }
            State::Established => {
                if self.term_deadline.is_some_and(|d| now >= d) {
                    self.fail(None, SessionError::CloseTimeout(self.config.close_timeout));
                    return;
                }
                let idle = self.idle_timeout();
                if !self.reading_paused && now >= self.last_received + idle {
                    self.fail(
                        Some(SessTermReason::IDLE_TIMEOUT),
                        SessionError::IdleTimeout(idle),
                    );
                } else if let Some(ka) = self.keepalive()
                    && now >= self.last_sent + ka / 2
                    && self.ctrl.is_empty()
                {
                    self.queue(&Message::Keepalive);
                }
            }
        }
    }

    /// Tells the session that its owner stops (or resumes) reading from the
    /// connection, e.g. while received bundles await storage. The idle
    /// timeout is suspended meanwhile, and starts afresh on resuming.
    pub fn set_reading_paused(&mut self, paused: bool, now: Instant) {
        if self.reading_paused && !paused {
            self.last_received = self.last_received.max(now);
        }
        self.reading_paused = paused;
    }

    /// Bytes read from the connection.
    pub fn handle_input(&mut self, data: &[u8], now: Instant) {
        if self.state == State::Closed {
            return;
        }
        self.last_received = now;
        self.inbuf.extend_from_slice(data);
        let mut pos = 0;
        while self.state != State::Closed && pos < self.inbuf.len() {
            if self.state == State::ContactHeader {
                match ContactHeader::decode(&self.inbuf[pos..]) {
                    Ok(None) => break,
                    Ok(Some(header)) => {
                        pos += super::codec::CONTACT_HEADER_LEN;
                        self.on_contact_header(header);
                    }
                    Err(DecodeError::UnsupportedVersion(v)) => {
                        // Answer in our version, then end (RFC 9174 4.3).
                        if !self.contact_header_sent {
                            self.send_contact_header();
                        }
                        self.fail(
                            Some(SessTermReason::VERSION_MISMATCH),
                            DecodeError::UnsupportedVersion(v).into(),
                        );
                    }
                    Err(e) => self.fail(None, e.into()),
                }
                continue;
            }
            match Message::decode(&self.inbuf[pos..], &self.limits) {
                Ok(None) => break,
                Ok(Some((message, used))) => {
                    pos += used;
                    self.on_message(message, now);
                }
                Err(e) => {
                    let reason = match e {
                        DecodeError::UnknownMessageType(code) => {
                            self.queue(&Message::MsgReject(MsgReject {
                                reason: MsgRejectReason::TYPE_UNKNOWN,
                                rejected_header: code,
                            }));
                            SessTermReason::UNKNOWN
                        }
                        DecodeError::SegmentTooLong { .. }
                        | DecodeError::ExtensionsTooLong { .. }
                        | DecodeError::NodeIdTooLong { .. } => SessTermReason::RESOURCE_EXHAUSTION,
                        _ => SessTermReason::UNKNOWN,
                    };
                    self.fail(Some(reason), e.into());
                }
            }
        }
        if self.state == State::Closed {
            self.inbuf = Vec::new();
        } else {
            self.inbuf.drain(..pos);
        }
    }

    /// The peer closed its side of the connection.
    pub fn handle_eof(&mut self) {
        if self.state == State::Closed {
            return;
        }
        if self.term_sent && self.term_received {
            self.finish();
        } else {
            self.fail(None, SessionError::ConnectionLost);
        }
    }

    /// Queues a bundle for the peer; returns its transfer id.
    pub fn send_bundle(&mut self, data: Vec<u8>) -> Result<u64, SendError> {
        if self.state != State::Established {
            return Err(SendError::NotEstablished);
        }
        if self.term_sent || self.term_received {
            return Err(SendError::Terminating);
        }
        if data.is_empty() {
            return Err(SendError::Empty);
        }
        let max = self.peer.as_ref().map_or(0, |p| p.transfer_mru);
        if data.len() as u64 > max {
            return Err(SendError::TooLarge {
                len: data.len() as u64,
                max,
            });
        }
        let id = self.next_tid;
        self.next_tid = self
            .next_tid
            .checked_add(1)
            .ok_or(SendError::TransferIdsExhausted)?;
        self.tx_queue.push_back(Outgoing {
            id,
            data,
            offset: 0,
        });
        Ok(id)
    }

    /// Sends the final XFER_ACK of a received bundle: call once it is durably
    /// stored.
    pub fn ack_transfer(&mut self, transfer_id: u64) -> Result<(), AckError> {
        let d = self.take_delivered(transfer_id)?;
        self.queue(&Message::XferAck(XferAck {
            flags: d.flags,
            transfer_id,
            acknowledged_len: d.len,
        }));
        self.check_done();
        Ok(())
    }

    /// Refuses a received bundle instead of acknowledging it.
    pub fn refuse_transfer(
        &mut self,
        transfer_id: u64,
        reason: XferRefuseReason,
    ) -> Result<(), AckError> {
        self.take_delivered(transfer_id)?;
        self.queue(&Message::XferRefuse(XferRefuse {
            reason,
            transfer_id,
        }));
        self.check_done();
        Ok(())
    }

    fn take_delivered(&mut self, transfer_id: u64) -> Result<Delivered, AckError> {
        if self.state == State::Closed {
            return Err(AckError::Closed);
        }
        self.rx_delivered
            .remove(&transfer_id)
            .ok_or(AckError::UnknownTransfer(transfer_id))
    }

    /// Starts ending the session: SESS_TERM goes out, transfers under way may
    /// finish, queued ones fail. Before establishment the session just ends.
    pub fn close(&mut self, reason: SessTermReason, now: Instant) {
        match self.state {
            State::Closed => {}
            State::ContactHeader | State::SessInit => {
                let term = self.contact_header_sent.then_some(reason);
                self.fail(term, SessionError::ClosedBeforeEstablished);
            }
            State::Established => {
                if !self.term_sent {
                    self.send_term(0, reason, now);
                    self.events.push_back(Event::Terminating {
                        reason,
                        by_peer: false,
                    });
                    self.fail_unstarted();
                }
                self.check_done();
            }
        }
    }

    fn keepalive(&self) -> Option<Duration> {
        match self.peer.as_ref()?.keepalive_secs {
            0 => None,
            s => Some(Duration::from_secs(u64::from(s))),
        }
    }

    /// How long the session may stay silent: two keepalive intervals, or
    /// [`SessionConfig::max_idle`] when keepalives are disabled.
    fn idle_timeout(&self) -> Duration {
        self.keepalive().map_or(self.config.max_idle, |ka| ka * 2)
    }

    fn queue(&mut self, message: &Message) {
        // Messages built here always encode: node ids were validated and no
        // extensions are sent.
        if let Err(e) = message.encode(&mut self.ctrl) {
            warn!(error = %e, "TCPCL: could not encode {:?}", message.message_type());
        }
    }

    fn send_contact_header(&mut self) {
        self.ctrl
            .extend_from_slice(&ContactHeader { flags: 0 }.encode());
        self.contact_header_sent = true;
    }

    fn send_sess_init(&mut self) {
        self.queue(&Message::SessInit(SessInit {
            keepalive: self.config.keepalive_secs,
            segment_mru: self.config.segment_mru,
            transfer_mru: self.config.transfer_mru,
            node_id: self.config.local_node_id.clone(),
            extensions: Vec::new(),
        }));
    }

    fn send_term(&mut self, flags: u8, reason: SessTermReason, now: Instant) {
        self.queue(&Message::SessTerm(SessTerm { flags, reason }));
        self.term_sent = true;
        self.term_deadline = Some(now + self.config.close_timeout);
    }

    fn reject(&mut self, message: &Message) {
        self.queue(&Message::MsgReject(MsgReject {
            reason: MsgRejectReason::UNEXPECTED,
            rejected_header: message.message_type() as u8,
        }));
    }

    /// Ends the session abnormally, with a SESS_TERM if `term` is given and
    /// none was sent yet.
    fn fail(&mut self, term: Option<SessTermReason>, error: SessionError) {
        if self.state == State::Closed {
            return;
        }
        if let Some(reason) = term
            && !self.term_sent
            && self.contact_header_sent
        {
            self.queue(&Message::SessTerm(SessTerm { flags: 0, reason }));
            self.term_sent = true;
        }
        debug!(error = %error, "TCPCL session failed");
        self.end(Some(error));
    }

    fn finish(&mut self) {
        self.end(None);
    }

    fn end(&mut self, error: Option<SessionError>) {
        self.state = State::Closed;
        let mut failed: Vec<u64> = self.tx_unacked.keys().copied().collect();
        failed.extend(self.tx_queue.iter().filter(|o| o.offset == 0).map(|o| o.id));
        failed.sort_unstable();
        self.tx_unacked.clear();
        self.tx_queue.clear();
        for transfer_id in failed {
            self.events.push_back(Event::TransferFailed { transfer_id });
        }
        self.rx = None;
        self.rx_delivered.clear();
        self.events.push_back(Event::Closed(error));
    }

    fn fail_unstarted(&mut self) {
        let mut kept = VecDeque::new();
        for out in self.tx_queue.drain(..) {
            if out.offset == 0 {
                self.events.push_back(Event::TransferFailed {
                    transfer_id: out.id,
                });
            } else {
                kept.push_back(out);
            }
        }
        self.tx_queue = kept;
    }

    /// After the SESS_TERM exchange, the session ends once nothing is under way.
    fn check_done(&mut self) {
        if self.state == State::Established
            && self.term_sent
            && self.term_received
            && self.tx_queue.is_empty()
            && self.tx_unacked.is_empty()
            && self.rx.as_ref().is_none_or(|rx| rx.refused)
            && self.rx_delivered.is_empty()
        {
            self.finish();
        }
    }

    fn on_contact_header(&mut self, header: ContactHeader) {
        self.peer_can_tls = header.can_tls();
        match self.role {
            Role::Active => self.send_sess_init(),
            Role::Passive => self.send_contact_header(),
        }
        self.state = State::SessInit;
    }

    fn on_message(&mut self, message: Message, now: Instant) {
        match self.state {
            State::SessInit => match message {
                Message::SessInit(init) => self.on_sess_init(init),
                Message::SessTerm(term) => {
                    if !term.is_reply() && !self.term_sent {
                        self.queue(&Message::SessTerm(SessTerm {
                            flags: SessTerm::REPLY,
                            reason: term.reason,
                        }));
                        self.term_sent = true;
                    }
                    self.term_received = true;
                    self.fail(None, SessionError::RefusedByPeer(term.reason));
                }
                Message::MsgReject(r) => self.fail(None, SessionError::Rejected(r)),
                other => {
                    self.reject(&other);
                    self.fail(
                        Some(SessTermReason::UNKNOWN),
                        SessionError::Protocol(format!(
                            "{:?} before SESS_INIT",
                            other.message_type()
                        )),
                    );
                }
            },
            State::Established => match message {
                Message::SessInit(_) => {
                    self.reject(&message);
                    self.fail(
                        Some(SessTermReason::UNKNOWN),
                        SessionError::Protocol("second SESS_INIT".into()),
                    );
                }
                Message::XferSegment(seg) => self.on_segment(seg),
                Message::XferAck(ack) => self.on_ack(ack),
                Message::XferRefuse(refuse) => self.on_refuse(refuse),
                Message::Keepalive => {}
                Message::SessTerm(term) => self.on_sess_term(term, now),
                Message::MsgReject(r) => {
                    self.fail(Some(SessTermReason::UNKNOWN), SessionError::Rejected(r))
                }
            },
            State::ContactHeader | State::Closed => {}
        }
    }

    fn on_sess_init(&mut self, init: SessInit) {
        if let Some(item) = init.extensions.iter().find(|i| i.is_critical()) {
            self.fail(
                Some(SessTermReason::CONTACT_FAILURE),
                SessionError::CriticalExtension(item.item_type),
            );
            return;
        }
        if init.segment_mru < self.config.min_peer_segment_mru.max(1) {
            self.fail(
                Some(SessTermReason::CONTACT_FAILURE),
                SessionError::Protocol(format!(
                    "SESS_INIT with a segment MRU of {}, under the {} bytes accepted",
                    init.segment_mru, self.config.min_peer_segment_mru
                )),
            );
            return;
        }
        if self.role == Role::Passive {
            self.send_sess_init();
        }
        let info = PeerInfo {
            node_id: init.node_id,
            keepalive_secs: init.keepalive.min(self.config.keepalive_secs),
            segment_mru: init.segment_mru,
            transfer_mru: init.transfer_mru,
            peer_can_tls: self.peer_can_tls,
        };
        debug!(peer = %info.node_id, keepalive = info.keepalive_secs,
            segment_mru = info.segment_mru, transfer_mru = info.transfer_mru,
            "TCPCL session established");
        self.peer = Some(info.clone());
        self.state = State::Established;
        self.events.push_back(Event::Established(info));
    }

    fn budget_available(&self) -> u64 {
        self.budget.as_ref().map_or(u64::MAX, |b| b.available())
    }

    fn protocol_error(&mut self, what: String) {
        self.fail(Some(SessTermReason::UNKNOWN), SessionError::Protocol(what));
    }

    fn refuse_incoming(&mut self, transfer_id: u64, reason: XferRefuseReason) {
        debug!(transfer_id, %reason, "TCPCL: refusing incoming transfer");
        self.queue(&Message::XferRefuse(XferRefuse {
            reason,
            transfer_id,
        }));
    }

    fn on_segment(&mut self, seg: XferSegment) {
        let id = seg.transfer_id;
        if seg.flags.is_start() {
            if let Some(rx) = &self.rx {
                if !rx.refused {
                    let prev = rx.id;
                    self.protocol_error(format!(
                        "transfer {id} started before transfer {prev} ended"
                    ));
                    return;
                }
                // The peer gave up on a refused transfer and moved on.
                self.rx = None;
            }
            if self.rx_delivered.contains_key(&id) {
                self.protocol_error(format!("transfer id {id} reused"));
                return;
            }
            let refusal = if self.term_sent || self.term_received {
                Some(XferRefuseReason::SESSION_TERMINATING)
            } else if seg
                .extensions
                .iter()
                .any(|i| i.is_critical() && i.transfer_length().is_none())
            {
                Some(XferRefuseReason::EXTENSION_FAILURE)
            } else if seg
                .extensions
                .iter()
                .filter_map(ExtensionItem::transfer_length)
                .any(|len| len > self.config.transfer_mru || len > self.budget_available())
            {
                Some(XferRefuseReason::NO_RESOURCES)
            } else {
                None
            };
            self.rx = Some(Incoming {
                id,
                data: Vec::new(),
                refused: refusal.is_some(),
                reserved: self.budget.clone().map(Reservation::new),
            });
            if let Some(reason) = refusal {
                self.refuse_incoming(id, reason);
            }
        } else {
            match &self.rx {
                Some(rx) if rx.id == id => {}
                Some(rx) => {
                    let cur = rx.id;
                    self.protocol_error(format!(
                        "segment of transfer {id} while transfer {cur} is under way"
                    ));
                    return;
                }
                None => {
                    self.protocol_error(format!("segment of transfer {id} without START"));
                    return;
                }
            }
        }
        let transfer_mru = self.config.transfer_mru;
        let Some(rx) = self.rx.as_mut() else {
            return;
        };
        let mut refuse_now = false;
        if !rx.refused {
            let fits = (rx.data.len() as u64).saturating_add(seg.data.len() as u64) <= transfer_mru
                && rx
                    .reserved
                    .as_mut()
                    .is_none_or(|r| r.try_grow(seg.data.len() as u64));
            if fits {
                rx.data.extend_from_slice(&seg.data);
            } else {
                rx.refused = true;
                rx.data = Vec::new();
                rx.reserved = None;
                refuse_now = true;
            }
        }
        if refuse_now {
            // Not a warning: a peer repeating it must not fill the log; the
            // peer learns of it from the refusal.
            debug!(
                transfer_id = id,
                transfer_mru, "TCPCL: incoming bundle over the transfer MRU or the receive budget"
            );
            self.refuse_incoming(id, XferRefuseReason::NO_RESOURCES);
        }
        let Some(rx) = self.rx.as_mut() else {
            return;
        };
        if rx.refused {
            if seg.flags.is_end() {
                self.rx = None;
                self.check_done();
            }
            return;
        }
        let len = rx.data.len() as u64;
        if !seg.flags.is_end() {
            self.queue(&Message::XferAck(XferAck {
                flags: seg.flags,
                transfer_id: id,
                acknowledged_len: len,
            }));
            return;
        }
        let data = std::mem::take(&mut rx.data);
        let reserved = rx.reserved.take();
        self.rx = None;
        self.rx_delivered.insert(
            id,
            Delivered {
                len,
                flags: seg.flags,
                _reserved: reserved,
            },
        );
        self.events.push_back(Event::BundleReceived {
            transfer_id: id,
            data,
        });
    }

    fn on_ack(&mut self, ack: XferAck) {
        let id = ack.transfer_id;
        let Some(u) = self.tx_unacked.get_mut(&id) else {
            debug!(
                transfer_id = id,
                "TCPCL: ignoring XFER_ACK for no transfer in flight"
            );
            return;
        };
        if ack.acknowledged_len > u.sent {
            let sent = u.sent;
            self.protocol_error(format!(
                "XFER_ACK for {} bytes of transfer {id}, only {sent} sent",
                ack.acknowledged_len
            ));
            return;
        }
        u.acked = u.acked.max(ack.acknowledged_len);
        if u.acked == u.total {
            self.tx_unacked.remove(&id);
            self.events
                .push_back(Event::TransferAcked { transfer_id: id });
            self.check_done();
        }
    }

    fn on_refuse(&mut self, refuse: XferRefuse) {
        let id = refuse.transfer_id;
        if self.tx_unacked.remove(&id).is_none() {
            debug!(
                transfer_id = id,
                "TCPCL: ignoring XFER_REFUSE for no transfer in flight"
            );
            return;
        }
        // Stop sending what is left of it.
        if self.tx_queue.front().is_some_and(|o| o.id == id) {
            self.tx_queue.pop_front();
        }
        if refuse.reason == XferRefuseReason::COMPLETED {
            self.events
                .push_back(Event::TransferAcked { transfer_id: id });
        } else {
            self.events.push_back(Event::TransferRefused {
                transfer_id: id,
                reason: refuse.reason,
            });
        }
        self.check_done();
    }

    fn on_sess_term(&mut self, term: SessTerm, now: Instant) {
        self.term_received = true;
        if !self.term_sent {
            self.send_term(SessTerm::REPLY, term.reason, now);
            self.events.push_back(Event::Terminating {
                reason: term.reason,
                by_peer: true,
            });
            self.fail_unstarted();
        }
        self.check_done();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t0() -> Instant {
        Instant::now()
    }

    fn drain(s: &mut Session, now: Instant) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(b) = s.poll_transmit(now) {
            out.extend_from_slice(&b);
        }
        out
    }

    fn events(s: &mut Session) -> Vec<Event> {
        std::iter::from_fn(|| s.poll_event()).collect()
    }

    /// Moves bytes both ways until neither side has anything to say.
    fn pump(a: &mut Session, b: &mut Session, now: Instant) {
        loop {
            let ab = drain(a, now);
            let ba = drain(b, now);
            if ab.is_empty() && ba.is_empty() {
                break;
            }
            b.handle_input(&ab, now);
            a.handle_input(&ba, now);
        }
    }

    fn pair(now: Instant) -> (Session, Session) {
        // Tiny segments, to see segmentation at work on small bundles.
        let mut a = SessionConfig::new("dtn://alpha/");
        a.keepalive_secs = 60;
        a.segment_mru = 10;
        a.min_peer_segment_mru = 1;
        let mut b = SessionConfig::new("dtn://beta/");
        b.segment_mru = 7;
        b.transfer_mru = 100;
        b.min_peer_segment_mru = 1;
        let mut a = Session::new(Role::Active, a, now).unwrap();
        let mut b = Session::new(Role::Passive, b, now).unwrap();
        pump(&mut a, &mut b, now);
        (a, b)
    }

    #[test]
    fn config_rejects_bare_node_names() {
        let now = t0();
        let err = Session::new(Role::Active, SessionConfig::new("ferry"), now).err();
        assert_eq!(err, Some(ConfigError::NodeIdNotUri("ferry".into())));
        assert!(Session::new(Role::Active, SessionConfig::new(node_id_for("x")), now).is_ok());
        assert!(!is_uri(":x") && !is_uri("1a:x") && !is_uri("dtn:") && is_uri("ipn:1.0"));
    }

    #[test]
    fn negotiation() {
        let now = t0();
        let (mut a, mut b) = pair(now);
        let ea = events(&mut a);
        let eb = events(&mut b);
        assert_eq!(
            ea,
            vec![Event::Established(PeerInfo {
                node_id: "dtn://beta/".into(),
                keepalive_secs: 30,
                segment_mru: 7,
                transfer_mru: 100,
                peer_can_tls: false,
            })]
        );
        assert_eq!(
            eb,
            vec![Event::Established(PeerInfo {
                node_id: "dtn://alpha/".into(),
                keepalive_secs: 30,
                segment_mru: 10,
                transfer_mru: 64 * 1024 * 1024,
                peer_can_tls: false,
            })]
        );
    }

    #[test]
    fn passive_waits_for_the_active_side() {
        let now = t0();
        let mut p = Session::new(Role::Passive, SessionConfig::new("dtn://p/"), now).unwrap();
        assert_eq!(p.poll_transmit(now), None);
        p.handle_input(b"dtn!\x04\x00", now);
        assert_eq!(p.poll_transmit(now), Some(b"dtn!\x04\x00".to_vec()));
        // No SESS_INIT until the active side's arrives.
        assert_eq!(p.poll_transmit(now), None);
    }

    #[test]
    fn segmentation_reassembly_and_deferred_ack() {
        let now = t0();
        let (mut a, mut b) = pair(now);
        events(&mut a);
        events(&mut b);
        let bundle: Vec<u8> = (0..25u8).collect();
        let tid = a.send_bundle(bundle.clone()).unwrap();
        // 25 bytes to a peer with segment MRU 7: 7 + 7 + 7 + 4.
        let mut segs = Vec::new();
        while let Some(s) = a.poll_transmit(now) {
            segs.push(s);
        }
        assert_eq!(segs.len(), 4);
        for s in &segs {
            b.handle_input(s, now);
        }
        assert_eq!(
            events(&mut b),
            vec![Event::BundleReceived {
                transfer_id: tid,
                data: bundle
            }]
        );
        // Three intermediate acks went out; the last waits for the owner.
        let acks = drain(&mut b, now);
        a.handle_input(&acks, now);
        assert_eq!(events(&mut a), vec![]);
        b.ack_transfer(tid).unwrap();
        assert_eq!(b.ack_transfer(tid), Err(AckError::UnknownTransfer(tid)));
        pump(&mut a, &mut b, now);
        assert_eq!(
            events(&mut a),
            vec![Event::TransferAcked { transfer_id: tid }]
        );
    }

    #[test]
    fn acks_with_zero_flags_complete_a_transfer() {
        let now = t0();
        let (mut a, _b) = pair(now);
        let tid = a.send_bundle(vec![1; 5]).unwrap();
        drain(&mut a, now);
        events(&mut a);
        let mut ack = Vec::new();
        Message::XferAck(XferAck {
            flags: SegmentFlags::NONE,
            transfer_id: tid,
            acknowledged_len: 5,
        })
        .encode(&mut ack)
        .unwrap();
        a.handle_input(&ack, now);
        assert_eq!(
            events(&mut a),
            vec![Event::TransferAcked { transfer_id: tid }]
        );
    }

    #[test]
    fn oversized_transfer_is_refused_and_skipped() {
        let now = t0();
        let (mut a, mut b) = pair(now);
        events(&mut b);
        // b's transfer MRU is 100; a does not know (it ignores MRUs here by
        // writing segments by hand).
        let mut wire = Vec::new();
        for (i, chunk) in [9u8; 140].chunks(7).enumerate() {
            let mut flags = SegmentFlags::NONE;
            if i == 0 {
                flags = flags.with(SegmentFlags::START);
            }
            if i == 19 {
                flags = flags.with(SegmentFlags::END);
            }
            encode_segment_header(flags, 42, chunk.len() as u64, &mut wire);
            wire.extend_from_slice(chunk);
        }
        b.handle_input(&wire, now);
        assert_eq!(events(&mut b), vec![]);
        let out = drain(&mut b, now);
        let mut pos = 0;
        let mut refused = false;
        while let Some((m, used)) = Message::decode(&out[pos..], &Limits::default()).unwrap() {
            pos += used;
            if let Message::XferRefuse(r) = m {
                assert_eq!(r.reason, XferRefuseReason::NO_RESOURCES);
                assert_eq!(r.transfer_id, 42);
                refused = true;
            }
        }
        assert!(refused);
        // The session carries on.
        let tid = a.send_bundle(vec![7; 20]).unwrap();
        pump(&mut a, &mut b, now);
        assert!(
            matches!(&events(&mut b)[..], [Event::BundleReceived { transfer_id, .. }] if *transfer_id == tid)
        );
        assert!(b.is_established());
    }

    #[test]
    fn sending_respects_the_peer_transfer_mru() {
        let now = t0();
        let (mut a, _b) = pair(now);
        assert_eq!(
            a.send_bundle(vec![0; 101]),
            Err(SendError::TooLarge { len: 101, max: 100 })
        );
        assert_eq!(a.send_bundle(vec![]), Err(SendError::Empty));
    }

    #[test]
    fn keepalive_and_idle_timeout() {
        let now = t0();
        let (mut a, mut b) = pair(now);
        events(&mut a);
        // Negotiated 30 s: a keepalive after 15 s of silence.
        let t = a.poll_timeout().unwrap();
        assert_eq!(t, now + Duration::from_secs(15));
        a.handle_timeout(t);
        assert_eq!(a.poll_transmit(t), Some(vec![0x04]));
        // Nothing heard for 60 s: idle timeout.
        let mut when = t;
        while !a.is_closed() {
            when = a.poll_timeout().unwrap();
            a.handle_timeout(when);
            drain(&mut a, when);
        }
        assert_eq!(when, now + Duration::from_secs(60));
        let ev = events(&mut a);
        assert_eq!(
            ev.last(),
            Some(&Event::Closed(Some(SessionError::IdleTimeout(
                Duration::from_secs(60)
            ))))
        );
        // While its owner does not read, a session does not time out.
        let (mut c, _d) = pair(now);
        c.set_reading_paused(true, now);
        c.handle_timeout(now + Duration::from_secs(600));
        assert!(c.is_established());
        c.set_reading_paused(false, now + Duration::from_secs(600));
        c.handle_timeout(now + Duration::from_secs(601));
        assert!(c.is_established());
        c.handle_timeout(now + Duration::from_secs(661));
        assert!(c.is_closed());
        // b hears keepalives, so it stays up.
        b.handle_input(&[0x04], now + Duration::from_secs(50));
        b.handle_timeout(now + Duration::from_secs(61));
        assert!(b.is_established());
    }

    #[test]
    fn a_peer_asking_for_no_keepalives_is_still_held_to_an_idle_bound() {
        let now = t0();
        let mut a = SessionConfig::new("dtn://alpha/");
        a.keepalive_secs = 0;
        let b = SessionConfig::new("dtn://beta/");
        let max_idle = b.max_idle;
        let mut a = Session::new(Role::Active, a, now).unwrap();
        let mut b = Session::new(Role::Passive, b, now).unwrap();
        pump(&mut a, &mut b, now);
        assert_eq!(b.peer().unwrap().keepalive_secs, 0);
        assert_eq!(b.poll_timeout(), Some(now + max_idle));
        b.handle_timeout(now + max_idle - Duration::from_millis(1));
        assert!(b.is_established());
        b.handle_timeout(now + max_idle);
        assert!(b.is_closed());
        assert_eq!(
            events(&mut b).last(),
            Some(&Event::Closed(Some(SessionError::IdleTimeout(max_idle))))
        );
    }

    /// Writes one transfer's segments by hand, `chunk` bytes each, the last one
    /// flagged END only if `end`.
    fn segments(transfer_id: u64, data: &[u8], chunk: usize, end: bool) -> Vec<u8> {
        let mut wire = Vec::new();
        let count = data.chunks(chunk).count();
        for (i, part) in data.chunks(chunk).enumerate() {
            let mut flags = SegmentFlags::NONE;
            if i == 0 {
                flags = flags.with(SegmentFlags::START);
            }
            if end && i + 1 == count {
                flags = flags.with(SegmentFlags::END);
            }
            encode_segment_header(flags, transfer_id, part.len() as u64, &mut wire);
            wire.extend_from_slice(part);
        }
        wire
    }

    fn refusals(out: &[u8]) -> Vec<(u64, XferRefuseReason)> {
        let mut pos = 0;
        let mut found = Vec::new();
        while let Some((m, used)) = Message::decode(&out[pos..], &Limits::default()).unwrap() {
            pos += used;
            if let Message::XferRefuse(r) = m {
                found.push((r.transfer_id, r.reason));
            }
        }
        found
    }

    #[test]
    fn sessions_share_one_receive_budget() {
        let now = t0();
        let budget = ReceiveBudget::new(150);
        let (_a1, mut b1) = pair(now);
        let (_a2, mut b2) = pair(now);
        b1.set_receive_budget(budget.clone());
        b2.set_receive_budget(budget.clone());
        events(&mut b1);
        events(&mut b2);
        // 90 bytes held by an unfinished transfer on the first session.
        b1.handle_input(&segments(1, &[1; 90], 7, false), now);
        assert!(refusals(&drain(&mut b1, now)).is_empty());
        assert_eq!(budget.used(), 90);
        // The second session's transfer would pass the total: refused, freed.
        b2.handle_input(&segments(2, &[2; 70], 7, true), now);
        assert_eq!(
            refusals(&drain(&mut b2, now)),
            vec![(2, XferRefuseReason::NO_RESOURCES)]
        );
        assert!(events(&mut b2).is_empty());
        assert_eq!(budget.used(), 90);
        // An announced length past what is left is refused before any byte.
        let mut wire = Vec::new();
        Message::XferSegment(XferSegment {
            flags: SegmentFlags::START,
            transfer_id: 3,
            extensions: vec![ExtensionItem {
                flags: 0,
                item_type: ExtensionItem::TRANSFER_LENGTH,
                value: 61u64.to_be_bytes().to_vec(),
            }],
            data: vec![3; 5],
        })
        .encode(&mut wire)
        .unwrap();
        b2.handle_input(&wire, now);
        assert_eq!(
            refusals(&drain(&mut b2, now)),
            vec![(3, XferRefuseReason::NO_RESOURCES)]
        );
        // A whole bundle holds its bytes until settled; the end frees them all.
        b2.handle_input(&segments(4, &[4; 50], 7, true), now);
        assert_eq!(budget.used(), 140);
        let received = events(&mut b2);
        assert!(matches!(
            &received[..],
            [Event::BundleReceived { transfer_id: 4, .. }]
        ));
        b2.ack_transfer(4).unwrap();
        assert_eq!(budget.used(), 90);
        b1.handle_eof();
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn clean_termination() {
        let now = t0();
        let (mut a, mut b) = pair(now);
        events(&mut a);
        events(&mut b);
        a.close(SessTermReason::UNKNOWN, now);
        pump(&mut a, &mut b, now);
        assert_eq!(
            events(&mut b),
            vec![
                Event::Terminating {
                    reason: SessTermReason::UNKNOWN,
                    by_peer: true
                },
                Event::Closed(None)
            ]
        );
        assert_eq!(
            events(&mut a),
            vec![
                Event::Terminating {
                    reason: SessTermReason::UNKNOWN,
                    by_peer: false
                },
                Event::Closed(None)
            ]
        );
    }

    #[test]
    fn termination_waits_for_the_local_ack() {
        let now = t0();
        let (mut a, mut b) = pair(now);
        let tid = a.send_bundle(vec![3; 9]).unwrap();
        pump(&mut a, &mut b, now);
        events(&mut a);
        events(&mut b);
        a.close(SessTermReason::UNKNOWN, now);
        pump(&mut a, &mut b, now);
        assert!(!b.is_closed());
        b.ack_transfer(tid).unwrap();
        pump(&mut a, &mut b, now);
        assert!(a.is_closed() && b.is_closed());
        assert!(events(&mut a).contains(&Event::TransferAcked { transfer_id: tid }));
    }

    #[test]
    fn version_mismatch_and_bad_magic() {
        let now = t0();
        let mut p = Session::new(Role::Passive, SessionConfig::new("dtn://p/"), now).unwrap();
        p.handle_input(b"dtn!\x03\x00", now);
        let out = drain(&mut p, now);
        assert_eq!(&out[..6], b"dtn!\x04\x00");
        assert_eq!(&out[6..], &[0x05, 0x00, 0x02]);
        assert!(p.is_closed());

        let mut p = Session::new(Role::Passive, SessionConfig::new("dtn://p/"), now).unwrap();
        p.handle_input(b"GET / HTTP/1.1\r\n", now);
        assert_eq!(drain(&mut p, now), Vec::<u8>::new());
        assert_eq!(
            events(&mut p),
            vec![Event::Closed(Some(SessionError::Decode(
                DecodeError::BadMagic
            )))]
        );
    }

    #[test]
    fn unknown_message_type_is_rejected() {
        let now = t0();
        let (_a, mut b) = pair(now);
        events(&mut b);
        b.handle_input(&[0x2a], now);
        assert_eq!(drain(&mut b, now), vec![0x06, 0x01, 0x2a, 0x05, 0x00, 0x00]);
        assert!(b.is_closed());
    }

    /// A peer offering 1-byte segments would have every bundle sent to it byte by
    /// byte, each with a header and an acknowledgement: refused at the handshake.
    #[test]
    fn a_tiny_segment_mru_from_the_peer_ends_the_session() {
        let now = t0();
        let mut p = Session::new(Role::Passive, SessionConfig::new("dtn://p/"), now).unwrap();
        let mut wire = b"dtn!\x04\x00".to_vec();
        Message::SessInit(SessInit {
            keepalive: 30,
            segment_mru: 1,
            transfer_mru: 1 << 20,
            node_id: "dtn://x/".into(),
            extensions: vec![],
        })
        .encode(&mut wire)
        .unwrap();
        p.handle_input(&wire, now);
        assert!(p.is_closed());
        assert!(matches!(
            events(&mut p).as_slice(),
            [Event::Closed(Some(SessionError::Protocol(why)))] if why.contains("segment MRU of 1")
        ));
    }

    #[test]
    fn critical_session_extension_ends_the_session() {
        let now = t0();
        let mut p = Session::new(Role::Passive, SessionConfig::new("dtn://p/"), now).unwrap();
        let mut wire = b"dtn!\x04\x00".to_vec();
        Message::SessInit(SessInit {
            keepalive: 30,
            segment_mru: 100,
            transfer_mru: 100,
            node_id: "dtn://x/".into(),
            extensions: vec![ExtensionItem {
                flags: ExtensionItem::CRITICAL,
                item_type: 9,
                value: vec![],
            }],
        })
        .encode(&mut wire)
        .unwrap();
        p.handle_input(&wire, now);
        assert!(p.is_closed());
        assert_eq!(
            events(&mut p),
            vec![Event::Closed(Some(SessionError::CriticalExtension(9)))]
        );
    }

    #[test]
    fn connection_loss_fails_transfers() {
        let now = t0();
        let (mut a, _b) = pair(now);
        events(&mut a);
        let t1 = a.send_bundle(vec![1; 30]).unwrap();
        a.poll_transmit(now);
        let t2 = a.send_bundle(vec![1; 3]).unwrap();
        a.handle_eof();
        assert_eq!(
            events(&mut a),
            vec![
                Event::TransferFailed { transfer_id: t1 },
                Event::TransferFailed { transfer_id: t2 },
                Event::Closed(Some(SessionError::ConnectionLost))
            ]
        );
    }

    #[test]
    fn handshake_timeout() {
        let now = t0();
        let mut a = Session::new(Role::Active, SessionConfig::new("dtn://a/"), now).unwrap();
        let t = a.poll_timeout().unwrap();
        a.handle_timeout(t);
        assert!(a.is_closed());
    }

    proptest! {
        #[test]
        fn garbage_after_handshake_never_panics(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
        ) {
            let now = t0();
            let (mut a, mut b) = pair(now);
            let _ = a.send_bundle(vec![5; 30]);
            pump(&mut a, &mut b, now);
            for c in &chunks {
                b.handle_input(c, now);
                drain(&mut b, now);
                let _ = b.poll_timeout();
            }
            b.handle_eof();
            prop_assert!(b.is_closed());
        }

        #[test]
        fn garbage_before_handshake_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..256),
            active in any::<bool>(),
        ) {
            let now = t0();
            let role = if active { Role::Active } else { Role::Passive };
            let mut s = Session::new(role, SessionConfig::new("dtn://s/"), now).unwrap();
            let mut wire = b"dtn!\x04\x00".to_vec();
            wire.extend_from_slice(&bytes);
            s.handle_input(&wire, now);
            drain(&mut s, now);
            s.handle_timeout(now + Duration::from_secs(3600));
            prop_assert!(s.is_closed());
        }

        #[test]
        fn any_split_of_the_stream_gives_the_same_bundles(
            data in proptest::collection::vec(any::<u8>(), 1..100),
            cuts in proptest::collection::vec(1usize..40, 0..20),
        ) {
            let now = t0();
            let (mut a, mut b) = pair(now);
            events(&mut b);
            let tid = a.send_bundle(data.clone()).unwrap();
            let wire = drain(&mut a, now);
            let mut rest = &wire[..];
            for c in cuts {
                let c = c.min(rest.len());
                b.handle_input(&rest[..c], now);
                rest = &rest[c..];
            }
            b.handle_input(rest, now);
            prop_assert_eq!(events(&mut b), vec![Event::BundleReceived { transfer_id: tid, data }]);
        }
    }
}
