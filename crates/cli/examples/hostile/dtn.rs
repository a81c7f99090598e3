//! The hostile peer's DTN modes: it connects to a node and sends `/ferry/dtn/1`
//! requests no honest node would, then prints one JSON report and exits.
//!
//! ```text
//! hostile_peer dtn-malformed DATA_DIR ADDR
//! hostile_peer dtn-oversize DATA_DIR ADDR
//! hostile_peer dtn-flood DATA_DIR ADDR COUNT PAYLOAD_BYTES
//! ```
//!
//! - `dtn-malformed`: three bundles in turn, each waiting for its answer:
//!   garbage bytes, a valid bundle cut in half (truncated CBOR) and a valid
//!   bundle with one payload byte flipped (its CRC no longer matches); then a
//!   valid one at once. Then it waits a little to see whether the node hangs up.
//! - `dtn-oversize`: a request frame of 17 MiB (over the protocol's
//!   `MAX_REQUEST_BYTES`; the node's codec must refuse it from the length
//!   prefix, before reading or allocating the body), a bundle one byte over
//!   `MAX_BUNDLE_BYTES` in a frame that is within the limit, and finally one
//!   small valid bundle, to see whether the node still takes honest ones.
//! - `dtn-flood`: COUNT valid bundles of PAYLOAD_BYTES each, all for one
//!   random peer id that is nowhere, sent as fast as the node answers with
//!   [`FLOOD_WINDOW`] requests in flight.
//!
//! ADDR is the node's multiaddr ending in `/p2p/PEER_ID`. The peer has its
//! own codec, so it can write frames the real one would refuse to encode. It
//! answers the node's requests as a ferry node with nothing would: an empty
//! summary, and "have it" for every bundle offered.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::swarm::{Raw, RawEvent, raw_swarm};
use anyhow::{Context, bail};
use ferry_core::dtn::wire::{
    DtnRequest, DtnResponse, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, PROTOCOL, Receipt,
};
use ferry_core::dtn::{
    Bundle, CreationTimestamp, Eid, MAX_BUNDLE_BYTES, NewBundle, Priority, Summary,
    dtn_ms_from_unix_ms,
};
use ferry_net::libp2p::futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use ferry_net::libp2p::request_response::{self, Codec, Message, OutboundRequestId};
use ferry_net::libp2p::swarm::SwarmEvent;
use ferry_net::libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, multiaddr::Protocol};
use ferry_store::{DataDir, identity};
use report::{FloodReport, Report, Sent};

#[path = "dtn_forge.rs"]
mod forge;
#[path = "dtn_report.rs"]
mod report;

/// Requests the flood keeps in flight: below the node's 64 concurrent streams
/// per connection, so every request reaches the bundle agent instead of being
/// dropped by libp2p.
const FLOOD_WINDOW: usize = 48;
/// The longest wait for any one answer (a node under a flood answers late).
const STEP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `dtn-malformed` waits for the node to hang up after the third.
const HANGUP_WAIT: Duration = Duration::from_secs(10);
/// The oversize frame's body: 17 MiB, over `MAX_REQUEST_BYTES`.
const OVERSIZE_FRAME_BODY: usize = 17 * 1024 * 1024;

pub(crate) async fn run(mode: &str, data_dir: PathBuf, rest: &[String]) -> anyhow::Result<()> {
    let target: Multiaddr = match rest.first() {
        Some(addr) => addr.parse().context("ADDR is not a multiaddr")?,
        None => bail!("{mode} needs the node's ADDR"),
    };
    let mut contact = Contact::open(&data_dir, target, forge::support(mode)).await?;
    let report = match (mode, &rest[1..]) {
        ("dtn-malformed", []) => malformed(&mut contact).await?,
        ("dtn-oversize", []) => oversize(&mut contact).await?,
        ("dtn-flood", [count, payload]) => {
            flood(&mut contact, count.parse()?, payload.parse()?).await?
        }
        (mode, rest)
            if mode.starts_with("dtn-forge")
                || mode.contains("-ack")
                || mode.contains("summary") =>
        {
            forge::run(mode, &mut contact, rest).await?
        }
        _ => bail!(
            "usage: hostile_peer dtn-malformed|dtn-oversize DATA_DIR ADDR | dtn-flood DATA_DIR ADDR COUNT PAYLOAD_BYTES"
        ),
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// The node answered, or the request failed.
enum Outcome {
    Answered(DtnResponse),
    Failed(String),
}

/// One connection to the node under test, with the hostile codec.
struct Contact {
    swarm: Swarm<Raw<FrameCodec>>,
    /// This peer's key, for the forgery modes' signatures.
    keypair: ferry_net::libp2p::identity::Keypair,
    target: PeerId,
    target_addr: Multiaddr,
    started: Instant,
    hung_up_at: Option<Instant>,
}

impl Contact {
    async fn open(
        data_dir: &std::path::Path,
        target: Multiaddr,
        support: request_response::ProtocolSupport,
    ) -> anyhow::Result<Self> {
        let Some(Protocol::P2p(target_peer)) = target.iter().last() else {
            bail!("{target} does not end in /p2p/PEER_ID");
        };
        let dir = DataDir::lock(data_dir)?;
        let keypair = identity::load_or_create(&dir)?;
        let swarm = raw_swarm(
            keypair.clone(),
            PROTOCOL,
            FrameCodec,
            support,
            request_response::Config::default()
                .with_request_timeout(STEP_TIMEOUT)
                .with_max_concurrent_streams(4 * FLOOD_WINDOW),
            Duration::from_secs(60),
        )?;
        let mut contact = Self {
            swarm,
            keypair,
            target: target_peer,
            target_addr: target,
            started: Instant::now(),
            hung_up_at: None,
        };
        contact.dial().await?;
        Ok(contact)
    }

    /// Connects to the node (again, after a hang-up).
    async fn dial(&mut self) -> anyhow::Result<()> {
        self.swarm.dial(self.target_addr.clone())?;
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let event = tokio::time::timeout_at(deadline.into(), self.swarm.select_next_some())
                .await
                .context("timed out connecting to the node")?;
            match event {
                SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == self.target => {
                    break;
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => {
                    eprintln!("cannot connect to {}: {error}", self.target_addr);
                    std::process::exit(2);
                }
                other => self.handle(other),
            }
        }
        self.started = Instant::now();
        self.hung_up_at = None;
        Ok(())
    }

    fn send(&mut self, frame: Vec<u8>) -> OutboundRequestId {
        self.swarm
            .behaviour_mut()
            .proto
            .send_request(&self.target, Frame(frame))
    }

    /// Drives the swarm until some request of ours is answered or fails.
    async fn next_outcome(&mut self) -> anyhow::Result<(OutboundRequestId, Outcome)> {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let event = tokio::time::timeout_at(deadline.into(), self.swarm.select_next_some())
                .await
                .context("timed out waiting for the node to answer")?;
            match event {
                SwarmEvent::Behaviour(RawEvent::Proto(request_response::Event::Message {
                    message:
                        Message::Response {
                            request_id,
                            response,
                        },
                    ..
                })) => return Ok((request_id, Outcome::Answered(response))),
                SwarmEvent::Behaviour(RawEvent::Proto(
                    request_response::Event::OutboundFailure {
                        request_id, error, ..
                    },
                )) => return Ok((request_id, Outcome::Failed(error.to_string()))),
                other => self.handle(other),
            }
        }
    }

    /// Sends `frame` and waits for its answer.
    async fn exchange(&mut self, what: &'static str, bytes: usize, frame: Vec<u8>) -> Sent {
        let started = Instant::now();
        let id = self.send(frame);
        let outcome = loop {
            match self.next_outcome().await {
                Ok((done, outcome)) if done == id => break outcome,
                Ok(_) => continue,
                Err(e) => break Outcome::Failed(e.to_string()),
            }
        };
        let (answer, failure) = match outcome {
            Outcome::Answered(response) => (Some(describe(&response)), None),
            Outcome::Failed(error) => (None, Some(error)),
        };
        Sent {
            what: what.to_owned(),
            bytes,
            answer,
            failure,
            ms: started.elapsed().as_millis() as u64,
        }
    }

    /// Waits up to `wait` for the node to close the connection.
    async fn wait_hangup(&mut self, wait: Duration) {
        let deadline = Instant::now() + wait;
        while self.hung_up_at.is_none() {
            match tokio::time::timeout_at(deadline.into(), self.swarm.select_next_some()).await {
                Ok(event) => self.handle(event),
                Err(_) => return,
            }
        }
    }

    /// Everything but our own requests' outcomes: the node's requests are
    /// answered as an empty node would, and a hang-up is noted.
    fn handle(&mut self, event: SwarmEvent<RawEvent<FrameCodec>>) {
        match event {
            SwarmEvent::Behaviour(RawEvent::Proto(request_response::Event::Message {
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            })) => {
                let answer = match postcard::from_bytes::<DtnRequest>(&request.0) {
                    Ok(DtnRequest::Summary(_)) => DtnResponse::Summary(Summary::default()),
                    Ok(DtnRequest::Bundle { .. }) => DtnResponse::Receipt(Receipt::Have),
                    Err(_) => return,
                };
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .proto
                    .send_response(channel, answer);
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } if peer_id == self.target => {
                self.hung_up_at.get_or_insert_with(Instant::now);
            }
            _ => {}
        }
    }

    fn report(&self) -> Report {
        Report {
            peer_id: self.swarm.local_peer_id().to_string(),
            target: self.target_addr.to_string(),
            hung_up_after_ms: self
                .hung_up_at
                .map(|at| at.duration_since(self.started).as_millis() as u64),
            still_connected: self.swarm.is_connected(&self.target),
            ..Report::default()
        }
    }

    fn local(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }
}

fn describe(response: &DtnResponse) -> String {
    match response {
        DtnResponse::Summary(_) => "summary".into(),
        DtnResponse::Receipt(Receipt::Stored) => "stored".into(),
        DtnResponse::Receipt(Receipt::Delivered(_)) => "delivered".into(),
        DtnResponse::Receipt(Receipt::Have) => "have".into(),
        DtnResponse::Receipt(Receipt::Refused(reason)) => format!("refused: {reason}"),
    }
}

/// A bundle request's frame, as the real codec writes it: a 4-byte big-endian
/// length, then the postcard body.
fn frame(request: &DtnRequest) -> Vec<u8> {
    let body = postcard::to_stdvec(request).expect("a request encodes");
    let len = u32::try_from(body.len()).expect("under 4 GiB");
    [len.to_be_bytes().as_slice(), &body].concat()
}

fn bundle_frame(bytes: Vec<u8>) -> Vec<u8> {
    frame(&DtnRequest::Bundle { copies: 1, bytes })
}

/// A valid RFC 9171 bundle from `source` to `dtn://TO/text`.
fn valid_bundle(
    source: &PeerId,
    to: &PeerId,
    seq: u64,
    payload: Vec<u8>,
) -> anyhow::Result<Bundle> {
    let now = dtn_ms_from_unix_ms(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)?
            .as_millis()
            .try_into()?,
    );
    Ok(Bundle::new(NewBundle {
        source: Eid::for_peer(source, "hostile")?,
        destination: Eid::for_peer(to, "text")?,
        created: CreationTimestamp { time: now, seq },
        lifetime_ms: 3_600_000,
        priority: Priority::Normal,
        payload,
    })?)
}

async fn malformed(contact: &mut Contact) -> anyhow::Result<Report> {
    let me = contact.local();
    let nowhere = PeerId::random();
    let garbage: Vec<u8> = (0..1024u32).map(|i| (i * 37 + 11) as u8).collect();
    let whole = valid_bundle(&me, &nowhere, 0, b"truncated on the way".to_vec())?.to_bytes();
    let truncated = whole[..whole.len() / 2].to_vec();
    let text = b"one byte of this payload is flipped after the CRC was computed";
    let mut flipped = valid_bundle(&me, &nowhere, 1, text.to_vec())?.to_bytes();
    let at = flipped
        .windows(text.len())
        .position(|w| w == text)
        .context("the payload is in the encoding")?;
    flipped[at + 4] ^= 0x20;
    let mut sent = Vec::new();
    for (what, bytes) in [
        ("garbage bytes", garbage),
        ("truncated CBOR", truncated),
        ("payload changed after the CRC", flipped),
    ] {
        let len = bytes.len();
        sent.push(contact.exchange(what, len, bundle_frame(bytes)).await);
    }
    // Struck out: even a valid bundle should not be taken now.
    let valid = valid_bundle(&me, &nowhere, 2, b"sent after three strikes".to_vec())?.to_bytes();
    let len = valid.len();
    sent.push(
        contact
            .exchange("valid bundle after the third", len, bundle_frame(valid))
            .await,
    );
    contact.wait_hangup(HANGUP_WAIT).await;
    Ok(Report {
        sent,
        ..contact.report()
    })
}

async fn oversize(contact: &mut Contact) -> anyhow::Result<Report> {
    let me = contact.local();
    let nowhere = PeerId::random();
    let mut sent = Vec::new();

    // A well-formed request whose frame is over the limit: the real codec would
    // not write it.
    let big = frame(&DtnRequest::Bundle {
        copies: 1,
        bytes: vec![0x42; OVERSIZE_FRAME_BODY],
    });
    assert!(big.len() - 4 > MAX_REQUEST_BYTES);
    let len = big.len() - 4;
    sent.push(
        contact
            .exchange("frame over MAX_REQUEST_BYTES", len, big)
            .await,
    );

    // A bundle one byte over the limit, in a frame within it: a valid bundle,
    // padded (the size is checked before the bytes are parsed).
    let mut bytes = valid_bundle(&me, &nowhere, 0, b"padded".to_vec())?.to_bytes();
    bytes.resize(MAX_BUNDLE_BYTES + 1, 0);
    let request = bundle_frame(bytes);
    assert!(request.len() - 4 <= MAX_REQUEST_BYTES);
    sent.push(
        contact
            .exchange(
                "bundle over MAX_BUNDLE_BYTES",
                MAX_BUNDLE_BYTES + 1,
                request,
            )
            .await,
    );

    // And then an honest one.
    let honest = valid_bundle(&me, &nowhere, 1, b"an honest bundle after all".to_vec())?;
    let bytes = honest.to_bytes();
    let len = bytes.len();
    sent.push(
        contact
            .exchange("valid bundle afterwards", len, bundle_frame(bytes))
            .await,
    );
    Ok(Report {
        sent,
        ..contact.report()
    })
}

async fn flood(
    contact: &mut Contact,
    count: usize,
    payload_bytes: usize,
) -> anyhow::Result<Report> {
    let me = contact.local();
    let nowhere = PeerId::random();
    let mut bundles = Vec::with_capacity(count);
    let mut bundle_bytes = 0;
    for seq in 0..count {
        let bundle = valid_bundle(&me, &nowhere, seq as u64, vec![0x66; payload_bytes])?;
        let bytes = bundle.to_bytes();
        bundle_bytes = bundle_bytes.max(bytes.len());
        bundles.push((bundle.id().to_string(), bundle_frame(bytes)));
    }
    let mut report = FloodReport {
        count,
        payload_bytes,
        bundle_bytes,
        ..FloodReport::default()
    };
    let mut ids = std::collections::HashMap::new();
    let mut next = bundles.into_iter();
    let (mut in_flight, mut done) = (0usize, 0usize);
    let started = Instant::now();
    while done < count {
        while in_flight < FLOOD_WINDOW
            && let Some((id, frame)) = next.next()
        {
            ids.insert(contact.send(frame), id);
            in_flight += 1;
        }
        let (request, outcome) = contact.next_outcome().await?;
        let Some(id) = ids.remove(&request) else {
            continue;
        };
        in_flight -= 1;
        done += 1;
        match outcome {
            Outcome::Answered(DtnResponse::Receipt(Receipt::Stored)) => {
                report.stored += 1;
                report.stored_ids.push(id);
            }
            Outcome::Answered(DtnResponse::Receipt(Receipt::Have)) => report.have += 1,
            Outcome::Answered(DtnResponse::Receipt(Receipt::Delivered(_))) => report.delivered += 1,
            Outcome::Answered(DtnResponse::Receipt(Receipt::Refused(reason))) => {
                let kind = if reason.contains("too many bundles") {
                    "rate"
                } else if reason.contains("share") {
                    "share"
                } else if reason.starts_with("store full") {
                    "full"
                } else {
                    "other"
                };
                report
                    .refused
                    .entry(kind.to_owned())
                    .or_insert((0, reason))
                    .0 += 1;
            }
            Outcome::Answered(other) => {
                report.failed += 1;
                report
                    .first_failure
                    .get_or_insert(format!("wrong answer: {}", describe(&other)));
            }
            Outcome::Failed(error) => {
                report.failed += 1;
                report.first_failure.get_or_insert(error);
            }
        }
    }
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(Report {
        flood: Some(report),
        ..contact.report()
    })
}

/// An outgoing request is the exact bytes to write, length prefix included, so
/// a frame may be anything; an incoming one is a frame's body (checked against
/// `MAX_REQUEST_BYTES` like the real codec). Responses are real ones.
#[derive(Debug)]
struct Frame(Vec<u8>);

#[derive(Clone, Copy)]
struct FrameCodec;

async fn read_body<T: AsyncRead + Unpin>(io: &mut T, limit: usize) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("message of {len} bytes is over the {limit}-byte limit"),
        ));
    }
    let mut body = vec![0u8; len];
    io.read_exact(&mut body).await?;
    Ok(body)
}

impl Codec for FrameCodec {
    type Protocol = StreamProtocol;
    type Request = Frame;
    type Response = DtnResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> std::io::Result<Frame>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_body(io, MAX_REQUEST_BYTES).await.map(Frame)
    }

    async fn read_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<DtnResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        let body = read_body(io, MAX_RESPONSE_BYTES).await?;
        postcard::from_bytes(&body)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Frame,
    ) -> std::io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&request.0).await?;
        io.close().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: DtnResponse,
    ) -> std::io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let body = postcard::to_stdvec(&response)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let len = u32::try_from(body.len())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        io.write_all(&len.to_be_bytes()).await?;
        io.write_all(&body).await?;
        io.close().await
    }
}
