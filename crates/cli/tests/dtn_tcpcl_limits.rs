//! A real `ferry start` with its TCPCL listener on 127.0.0.1, and a hostile TCPCL
//! peer written with ferry's own codec (`ferry_net::tcpcl::codec`) over plain
//! sockets from loopback addresses (127.0.0.x): a session asking for no
//! keepalives, more sessions than allowed, transfers past the node's memory
//! budget, a flood of malformed bundles, and a flood of tiny segments from a
//! peer that never reads the acknowledgements.

// The harness is shared with other test files, whose helpers these tests do not
// all need.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use ferry_core::dtn::MAX_BUNDLE_BYTES;
use ferry_net::tcpcl::codec::{
    CONTACT_HEADER_LEN, ContactHeader, ExtensionItem, Limits, Message, SegmentFlags, SessInit,
    SessTermReason, XferRefuseReason, XferSegment, encode_segment_header,
};
use ferry_node::control::ControlFile;
use ferry_node::dtn::tcpcl_limits::{MAX_SESSIONS, MAX_SESSIONS_PER_ADDRESS, RECEIVE_BUDGET_BYTES};
use ferry_testkit::harness::{Node, START_TIMEOUT, wait_until};

/// The node's segment MRU (ferry's default): the largest segment it takes.
const SEGMENT: usize = 256 * 1024;
/// How long the node may take to answer anything.
const ANSWER: Duration = Duration::from_secs(20);
/// What the node logs for each refused bundle it does log.
const REFUSED_LINE: &str = "bundle from TCPCL peer refused";

/// The node's resident memory, in bytes (Linux).
fn resident_bytes(node: &Node) -> u64 {
    let pid = ControlFile::read(&node.data_dir()).unwrap().unwrap().pid;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kib * 1024
}

/// A loopback source address: 127.0.0.`n`.
fn local(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
}

/// A node listening for TCPCL on a free port of 127.0.0.1.
fn start_node(name: &str) -> (Node, SocketAddr) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let node = Node::start_with(name, &["--tcpcl-listen", &addr.to_string()]);
    wait_until("the TCPCL listener", START_TIMEOUT, || {
        if node.log().contains("TCPCL listening") {
            Ok(())
        } else {
            Err("not yet".into())
        }
    });
    (node, addr)
}

/// One TCPCL session, spoken message by message.
struct RawPeer {
    stream: TcpStream,
    inbuf: Vec<u8>,
}

impl RawPeer {
    /// Connects from `from` and exchanges contact headers and SESS_INITs as
    /// `node_id`, offering `keepalive` seconds; `Err` if the node closes first.
    fn connect(
        node: SocketAddr,
        from: IpAddr,
        node_id: &str,
        keepalive: u16,
    ) -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        let stream = runtime
            .block_on(async {
                let socket = tokio::net::TcpSocket::new_v4()?;
                socket.bind(SocketAddr::new(from, 0))?;
                socket.connect(node).await?.into_std()
            })
            .map_err(|e| format!("connect: {e}"))?;
        stream.set_nonblocking(false).unwrap();
        let mut peer = RawPeer {
            stream,
            inbuf: Vec::new(),
        };
        peer.write(&ContactHeader { flags: 0 }.encode());
        let mut header = [0u8; CONTACT_HEADER_LEN];
        peer.stream.set_read_timeout(Some(ANSWER)).unwrap();
        peer.stream
            .read_exact(&mut header)
            .map_err(|e| format!("no contact header: {e}"))?;
        ContactHeader::decode(&header)
            .map_err(|e| e.to_string())?
            .ok_or("short contact header")?;
        peer.send(&Message::SessInit(SessInit {
            keepalive,
            segment_mru: 1 << 20,
            transfer_mru: 1 << 30,
            node_id: node_id.to_owned(),
            extensions: Vec::new(),
        }));
        match peer.next(ANSWER) {
            Some(Message::SessInit(_)) => Ok(peer),
            other => Err(format!("no SESS_INIT but {other:?}")),
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to the node");
    }

    fn send(&mut self, message: &Message) {
        let mut wire = Vec::new();
        message.encode(&mut wire).unwrap();
        self.write(&wire);
    }

    /// Sends `data` as one transfer, in segments the node accepts, the last
    /// flagged END only if `end`.
    fn send_transfer(&mut self, transfer_id: u64, data: &[u8], end: bool) {
        let count = data.len().div_ceil(SEGMENT);
        let mut wire = Vec::new();
        for (i, part) in data.chunks(SEGMENT).enumerate() {
            let mut flags = SegmentFlags::NONE;
            if i == 0 {
                flags = flags.with(SegmentFlags::START);
            }
            if end && i + 1 == count {
                flags = flags.with(SegmentFlags::END);
            }
            wire.clear();
            encode_segment_header(flags, transfer_id, part.len() as u64, &mut wire);
            wire.extend_from_slice(part);
            self.write(&wire);
        }
    }

    /// The next message from the node, or `None` once it closed the
    /// connection. Panics if nothing comes within `timeout`.
    fn next(&mut self, timeout: Duration) -> Option<Message> {
        let deadline = Instant::now() + timeout;
        let limits = Limits {
            max_segment_len: 1 << 20,
            ..Limits::default()
        };
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if let Some((message, used)) = Message::decode(&self.inbuf, &limits).unwrap() {
                self.inbuf.drain(..used);
                return Some(message);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "nothing from the node within {timeout:?}");
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.inbuf.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
    }

    /// How the node settled transfer `id` of `len` bytes: `Ok` once every byte
    /// is acknowledged, `Err(reason)` if refused.
    fn outcome(&mut self, id: u64, len: u64) -> Result<(), XferRefuseReason> {
        loop {
            match self.next(ANSWER) {
                Some(Message::XferAck(ack))
                    if ack.transfer_id == id && ack.acknowledged_len == len =>
                {
                    return Ok(());
                }
                Some(Message::XferRefuse(r)) if r.transfer_id == id => return Err(r.reason),
                Some(_) => {}
                None => panic!("the node closed the session before settling transfer {id}"),
            }
        }
    }
}

#[test]
fn a_session_asking_for_no_keepalives_is_still_ended_when_idle() {
    let (_node, addr) = start_node("idle");
    let mut peer = RawPeer::connect(addr, local(1), "dtn://silent/", 0).unwrap();
    let opened = Instant::now();
    let mut reason = None;
    while let Some(message) = peer.next(Duration::from_secs(180)) {
        match message {
            Message::SessTerm(term) => reason = Some(term.reason),
            Message::Keepalive => panic!("no keepalives were negotiated"),
            other => panic!("unexpected {other:?}"),
        }
    }
    let idle = opened.elapsed();
    println!("the node ended the silent session after {idle:?}");
    assert_eq!(reason, Some(SessTermReason::IDLE_TIMEOUT));
    assert!(idle >= Duration::from_secs(55), "ended too soon: {idle:?}");
}

#[test]
fn sessions_past_the_caps_are_refused_and_their_places_given_back() {
    let (node, addr) = start_node("caps");
    let connect = |from: IpAddr, n: usize| {
        RawPeer::connect(addr, from, &format!("dtn://crowd-{from}-{n}/"), 30)
    };
    let mut held: Vec<RawPeer> = (0..MAX_SESSIONS_PER_ADDRESS)
        .map(|n| connect(local(1), n).expect("a session within the cap"))
        .collect();
    let refused = connect(local(1), 99);
    assert!(
        refused.is_err(),
        "a session past {MAX_SESSIONS_PER_ADDRESS} from one address was taken"
    );
    let addresses = MAX_SESSIONS.div_ceil(MAX_SESSIONS_PER_ADDRESS);
    for a in 2..=addresses {
        for n in 0..MAX_SESSIONS_PER_ADDRESS.min(MAX_SESSIONS - held.len()) {
            held.push(connect(local(a as u8), n).expect("a session within the caps"));
        }
    }
    assert_eq!(held.len(), MAX_SESSIONS);
    assert!(
        connect(local(200), 0).is_err(),
        "a session past {MAX_SESSIONS} in all was taken"
    );
    assert!(node.log().contains("TCPCL connection closed"));

    // A session that ends gives its place back.
    drop(held.swap_remove(0));
    let again = wait_until("the freed place", ANSWER, || connect(local(1), 100));
    held.push(again);
    assert_eq!(held.len(), MAX_SESSIONS);
}

#[test]
fn transfers_past_the_memory_budget_are_refused_without_being_held() {
    let (node, addr) = start_node("budget");
    let connect = |n: usize| RawPeer::connect(addr, local(1), &format!("dtn://hoarder-{n}/"), 30);

    // An announced length far past a bundle's limit: refused before any byte.
    let mut peer = connect(0).unwrap();
    peer.send(&Message::XferSegment(XferSegment {
        flags: SegmentFlags::START,
        transfer_id: 1,
        extensions: vec![ExtensionItem {
            flags: 0,
            item_type: ExtensionItem::TRANSFER_LENGTH,
            value: (1u64 << 40).to_be_bytes().to_vec(),
        }],
        data: vec![0; 16],
    }));
    assert_eq!(peer.outcome(1, 16), Err(XferRefuseReason::NO_RESOURCES));

    // Unfinished transfers just under a bundle's limit are held (each segment
    // acknowledged) until they would pass the node's total.
    let part = vec![7u8; MAX_BUNDLE_BYTES - SEGMENT];
    let fit = (RECEIVE_BUDGET_BYTES / part.len() as u64) as usize;
    assert!(fit < MAX_SESSIONS_PER_ADDRESS);
    let mut holders = Vec::new();
    for n in 1..=fit {
        let mut peer = connect(n).unwrap();
        peer.send_transfer(1, &part, false);
        assert_eq!(peer.outcome(1, part.len() as u64), Ok(()), "holder {n}");
        holders.push(peer);
    }
    let mut over = connect(fit + 1).unwrap();
    over.send_transfer(1, &part, false);
    assert_eq!(
        over.outcome(1, part.len() as u64),
        Err(XferRefuseReason::NO_RESOURCES),
        "{} bytes held across sessions, past the {RECEIVE_BUDGET_BYTES}-byte budget",
        (fit + 1) * part.len()
    );

    // A holder that goes gives its share back: a whole bundle is taken again
    // (and refused only for not being a bundle).
    drop(holders.pop());
    let gone = format!("peer=dtn://hoarder-{fit}/");
    wait_until("the holder's session to end", ANSWER, || {
        let log = node.log();
        if log
            .lines()
            .any(|l| l.contains("TCPCL session ended") && l.contains(&gone))
        {
            Ok(())
        } else {
            Err("not yet".into())
        }
    });
    let mut late = connect(fit + 2).unwrap();
    late.send_transfer(1, &part, true);
    assert_eq!(
        late.outcome(1, part.len() as u64),
        Err(XferRefuseReason::NOT_ACCEPTABLE),
        "the bytes were taken whole and judged as a bundle"
    );
}

#[test]
fn a_flood_of_malformed_bundles_makes_a_bounded_number_of_warnings() {
    let (node, addr) = start_node("flood");
    let mut peer = RawPeer::connect(addr, local(1), "dtn://flood/", 30).unwrap();
    const FLOOD: u64 = 1_200;
    let started = Instant::now();
    for id in 0..FLOOD {
        peer.send_transfer(id, format!("not a bundle {id}").as_bytes(), true);
    }
    let mut refused = 0;
    while refused < FLOOD {
        match peer.next(ANSWER) {
            Some(Message::XferRefuse(r)) => {
                assert_eq!(r.reason, XferRefuseReason::NOT_ACCEPTABLE);
                refused += 1;
            }
            Some(_) => {}
            None => panic!("the node closed the session after {refused} refusals"),
        }
    }
    let took = started.elapsed();
    let warnings = node
        .log()
        .lines()
        .filter(|l| l.contains(REFUSED_LINE))
        .count() as u64;
    println!("{FLOOD} malformed bundles refused in {took:?}: {warnings} warning lines");
    assert!(warnings >= 1, "the refusals are reported");
    // One line, then at most one per 10 s of flood.
    assert!(
        warnings <= 1 + took.as_secs() / 10,
        "{warnings} warning lines for {FLOOD} refusals in {took:?}"
    );
}

#[test]
fn a_peer_that_never_reads_cannot_grow_the_nodes_memory() {
    let (node, addr) = start_node("deaf");
    let mut peer = RawPeer::connect(addr, local(1), "dtn://deaf/", 30).unwrap();
    let before = resident_bytes(&node);
    // One-byte segments of one transfer: each makes the node queue an
    // acknowledgement of about the same size, which this peer never reads.
    const SEGMENTS_PER_WRITE: usize = 50_000;
    let mut wire = Vec::new();
    encode_segment_header(SegmentFlags::START, 1, 1, &mut wire);
    wire.push(0);
    let first = wire.len();
    for _ in 1..SEGMENTS_PER_WRITE {
        encode_segment_header(SegmentFlags::NONE, 1, 1, &mut wire);
        wire.push(0);
    }
    // Up to 8 MiB of segment data (half a bundle's limit), about 150 MiB of
    // acknowledgements if all were read; stops early once the node stops reading.
    let budget = 8 << 20;
    peer.stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let (mut sent, mut chunk) = (0usize, &wire[..]);
    let stalled = loop {
        if sent >= budget {
            break false;
        }
        match peer.stream.write_all(chunk) {
            Ok(()) => sent += chunk.len() / first,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break true;
            }
            Err(e) => panic!("the node closed the connection: {e}"),
        }
        // The rest of the transfer: the same segments without START.
        chunk = &wire[first..];
    };
    let after = resident_bytes(&node);
    let grown = after.saturating_sub(before);
    println!(
        "{sent} one-byte segments written ({}stalled); the node grew by {} KiB",
        if stalled { "" } else { "never " },
        grown / 1024
    );
    assert!(
        stalled,
        "the node kept reading {sent} segments nobody acknowledged"
    );
    assert!(grown < 64 << 20, "the node grew by {grown} bytes");
}
