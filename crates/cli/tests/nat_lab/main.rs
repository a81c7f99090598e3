//! Across the internet, in the network lab (needs root; skips otherwise): two homes
//! behind NAT routers reach each other knowing only a bootstrap node and a peer id.
//!
//! ```text
//!   public segment 10.80.0.0/24 ("the internet")
//!     b  10.80.0.1   ferry start --relay            bootstrap node and relay
//!     c  10.80.0.2   ferry start                    a second public node
//!     r1 10.80.0.11  NAT router of home 1           (masquerade)
//!     r2 10.80.0.12  NAT router of home 2           (masquerade, or fully-random)
//!   home1 192.168.1.0/24: r1 .1, h1 .10   ferry start --bootstrap b --bootstrap c
//!   home2 192.168.2.0/24: r2 .1, h2 .10   ferry start --bootstrap b --bootstrap c
//! ```
//!
//! The routers masquerade with nftables: plainly for a cone NAT (Linux keeps the
//! source port, so the mapping is endpoint-independent), or `fully-random` for a
//! symmetric NAT (a new random port per destination); like real home routers,
//! they drop unsolicited packets from outside (see [`Host::firewall_inbound`] for
//! why that matters to hole punching). The public hosts have no route into the
//! homes. `c` exists so that each home node has two observers of
//! its public address, which is what tells the two kinds of NAT apart.
//!
//! Variants ([`Setup`]): h2 beside h1 on home 1's LAN (192.168.1.11, same
//! router); b with a `config.toml` that tightens its relay limits; home nodes
//! without LAN discovery; c or h1 started later by the test; a hostile peer
//! `x` at 10.80.0.3 (`examples/hostile_peer.rs`).
//!
//! Tests, each printing its figures (time to connect by id, how, transfer rate):
//! - cone NATs: `ferry find` by peer id, the hole punch, chat, and a 50 MiB
//!   `ferry get` over the direct path (the relay's byte counters prove it);
//! - a symmetric NAT on one side: it stays relayed, and chat and the 50 MiB get
//!   still work, through the relay;
//! - cone NATs with 5 % loss on both home links: chat and a 10 MiB get;
//! - a node behind NAT stays a DHT client while the public bootstrap node
//!   becomes a DHT server;
//! - relay limits hold: a relay allowed one reservation grants one and refuses
//!   the rest; a relay that cuts circuits at 1 MiB relays no more than that per
//!   circuit during a 20 MiB get, and still grants new circuits after;
//! - oversize DHT records (over the 1 KiB value or the 16 KiB message limit)
//!   sent to b by a hostile peer are refused, and b stays healthy;
//! - `ferry get ID` by bare content id: the provider record in the DHT leads h1
//!   to h2;
//! - two nodes on one LAN behind one NAT, both with relayed addresses, talk
//!   over the LAN once they find each other by id.
//!
//! Run: `cargo test -p ferry --test nat_lab -- --nocapture --test-threads 1` (as
//! root). `FERRY_LAB_KEEP=1` keeps the namespaces, data directories and logs after
//! a run for a look; `RUST_LOG` sets the nodes' log filter.

use ferry_testkit::hostile;
mod world;

use ferry_testkit::lab;

use std::thread;
use std::time::{Duration, Instant};

use ferry_node::control::types::IdInfo;
use ferry_testkit::harness::output_with_deadline;
use ferry_testkit::wait::wait_until;

use world::*;

/// Cone NATs on both sides: found by id, hole-punched, chat, and 50 MiB over the
/// direct path.
#[test]
fn cone_nats_find_by_id_hole_punch_chat_and_get_direct() {
    if lab::skip_unless_root() {
        return;
    }
    let _turn = lab::take_turn();
    let t0 = Instant::now();
    let mut problems = Problems::default();
    let w = World::new(NatKind::Cone, 0);

    let relayed = w.wait_reserved(&w.h2);
    println!(
        "reservation: h2 reachable through b as {relayed} {} after start",
        secs(w.started.elapsed())
    );
    let found = w.find_h2();

    let t = Instant::now();
    let (connection, remote) = wait_until(
        "h1's `ferry nat` to show h2 hole-punched or direct",
        HOLE_PUNCH_TIMEOUT,
        || {
            let path = w.h1.path_to(&w.h2_id)?;
            match path.connection.as_str() {
                "hole-punched" | "direct" => Ok((path.connection, path.remote_addr)),
                other => Err(format!("connection {other}")),
            }
        },
    );
    println!(
        "hole punch: h1 -> h2 {connection} over {remote}, {} after find returned (find said {})",
        secs(t.elapsed()),
        found.connection
    );
    let h2_view =
        w.h2.connection_to(&w.h1_id)
            .unwrap_or_else(|e| panic!("{e}"));
    println!("hole punch: h2's `ferry nat` shows h1 {h2_view}");
    problems.check(h2_view != "relayed", || {
        format!("h1 reaches h2 directly, but h2's `ferry nat` shows h1 {h2_view}")
    });

    w.chat(&format!("hello across two NATs {}", tag()));

    let (rate, through_b) = w.transfer(50 * MIB, "over the hole-punched path");
    let after =
        w.h1.connection_to(&w.h2_id)
            .unwrap_or_else(|e| panic!("{e}"));
    problems.check(after != "relayed", || {
        "after the transfer, h1's `ferry nat` shows h2 relayed".to_owned()
    });
    problems.check(through_b < 5 * MIB as u64, || {
        format!("b received {through_b} bytes during a direct 50 MiB transfer: it went through the relay")
    });

    print_human_nat(&w.h1);
    let nat = w.nat_with_observers(&w.h1);
    println!(
        "nat: h1 mapping {} ({} UDP observers; all: {}), reachability {}, dht {}",
        nat.mapping,
        udp_observers(&nat),
        observed_summary(&nat),
        nat.reachability,
        nat.dht_mode
    );
    problems.check(nat.mapping == "endpoint-independent", || {
        format!(
            "h1 is behind a cone NAT and {} peers report its UDP address, so its mapping should be endpoint-independent, not {}: {nat:#?}",
            udp_observers(&nat),
            nat.mapping
        )
    });
    println!(
        "summary cone: find {} ms, {connection}, {rate:.1} MB/s direct; test took {}",
        found.elapsed_ms,
        secs(t0.elapsed())
    );
    problems.finish();
}

/// A symmetric NAT in front of h2: h1 still finds it, they stay relayed, and chat
/// and 50 MiB get through the relay.
#[test]
fn symmetric_nat_stays_relayed_and_still_works() {
    if lab::skip_unless_root() {
        return;
    }
    let _turn = lab::take_turn();
    let t0 = Instant::now();
    let mut problems = Problems::default();
    let w = World::new(NatKind::Symmetric, 0);

    let relayed = w.wait_reserved(&w.h2);
    println!(
        "reservation: h2 reachable through b as {relayed} {} after start",
        secs(w.started.elapsed())
    );
    let found = w.find_h2();
    let connection =
        w.h1.connection_to(&w.h2_id)
            .unwrap_or_else(|e| panic!("{e}"));
    println!("connection: h1's `ferry nat` shows h2 {connection}");
    assert_eq!(
        connection, "relayed",
        "h2 is behind a symmetric NAT, so only the relay can reach it"
    );
    let h2_view = w.h2.path_to(&w.h1_id).unwrap_or_else(|e| panic!("{e}"));
    println!(
        "connection: h2's `ferry nat` shows h1 {} ({})",
        h2_view.connection, h2_view.remote_addr
    );
    problems.check(h2_view.connection == "relayed", || {
        format!("h2 reaches h1 only through the relay, but h2's `ferry nat` says {h2_view:?}")
    });

    w.chat(&format!("hello through the relay {}", tag()));

    let (rate, through_b) = w.transfer(50 * MIB, "through the relay");
    problems.check(through_b >= 50 * MIB as u64, || {
        format!("b received only {through_b} bytes during a relayed 50 MiB transfer")
    });
    let after =
        w.h1.connection_to(&w.h2_id)
            .unwrap_or_else(|e| panic!("{e}"));
    println!("connection: after the transfer, h1's `ferry nat` shows h2 {after}");
    problems.check(after == "relayed", || {
        format!("after the transfer, h1's `ferry nat` shows h2 {after}, not relayed")
    });

    print_human_nat(&w.h2);
    let nat = w.nat_with_observers(&w.h2);
    let observers = udp_observers(&nat);
    println!(
        "nat: h2 mapping {} ({observers} UDP observers; all: {}), reachability {}, dht {}",
        nat.mapping,
        observed_summary(&nat),
        nat.reachability,
        nat.dht_mode
    );
    problems.check(nat.mapping == "endpoint-dependent", || {
        format!(
            "h2 is behind a symmetric NAT and {observers} peers report its UDP address, so its mapping should be endpoint-dependent, not {}: {nat:#?}",
            nat.mapping
        )
    });
    println!(
        "summary symmetric: find {} ms, {connection}, {rate:.1} MB/s relayed; test took {}",
        found.elapsed_ms,
        secs(t0.elapsed())
    );
    problems.finish();
}

/// Cone NATs with 5 % loss on both home links: still found, chat and a 10 MiB get.
#[test]
fn cone_nats_with_loss_still_chat_and_get() {
    if lab::skip_unless_root() {
        return;
    }
    let _turn = lab::take_turn();
    let t0 = Instant::now();
    let w = World::new(NatKind::Cone, 5);
    println!(
        "loss: home1 {} and home2 {} drop 5 % of IP frames",
        w.home1.ns, w.home2.ns
    );

    w.wait_reserved(&w.h2);
    let found = w.find_h2();
    w.chat(&format!("hello over lossy links {}", tag()));
    let (rate, _) = w.transfer(10 * MIB, "over lossy links");
    let connection =
        w.h1.connection_to(&w.h2_id)
            .unwrap_or_else(|e| panic!("{e}"));
    println!(
        "summary loss: find {} ms, connected {} then {connection}, {rate:.1} MB/s; test took {}",
        found.elapsed_ms,
        found.connection,
        secs(t0.elapsed())
    );
}

/// A node behind NAT never answers DHT queries; the public bootstrap node does,
/// once peers have dialled it back.
#[test]
fn only_reachable_nodes_become_dht_servers() {
    if lab::skip_unless_root() {
        return;
    }
    let _turn = lab::take_turn();
    let w = World::new(NatKind::Cone, 0);

    let mut home_modes = Vec::new();
    let check_home = |home_modes: &mut Vec<String>| {
        for node in [&w.h1, &w.h2] {
            let nat = node.nat().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                nat.dht_mode, "client",
                "{} is behind NAT but answers DHT queries: {nat:#?}",
                node.name
            );
            let seen = format!("{} {}", node.name, nat.reachability);
            if !home_modes.contains(&seen) {
                home_modes.push(seen);
            }
        }
    };
    w.wait_dht_server(&w.b, || check_home(&mut home_modes));
    // Watch the home nodes a while longer: they must stay clients.
    let watch = Duration::from_secs(15);
    let until = Instant::now() + watch;
    while Instant::now() < until {
        check_home(&mut home_modes);
        thread::sleep(Duration::from_secs(1));
    }
    let c = w.c.nat().unwrap_or_else(|e| panic!("{e}"));
    println!(
        "dht: h1 and h2 stayed clients for {watch:?} more (reachability seen: {}); c is {} (reachability {})",
        home_modes.join(", "),
        c.dht_mode,
        c.reachability
    );
}

/// Relay limits hold (reservations): b, allowed one reservation, grants it to
/// h1 or h2 and refuses the other, and then c too.
///
/// c starts after h1 and h2 here: b offers relaying only once AutoNAT finds
/// it reachable, and at that moment every node connected to it asks at once,
/// c among them (its own AutoNAT verdict is still pending), so with c
/// running from the start b's one slot goes to c about one run in three.
#[test]
fn relay_reservation_limit_holds() {
    if lab::skip_unless_root() {
        return;
    }
    let _turn = lab::take_turn();
    let t0 = Instant::now();
    let mut problems = Problems::default();
    let mut w = World::with(Setup {
        b_config: Some("relay_max_reservations = 1\n"),
        late: Some(Late::C),
        ..Setup::default()
    });

    wait_until(
        "b to grant one reservation and refuse another",
        REFUSAL_TIMEOUT,
        || {
            let (granted, refused) = w.b_reservations();
            if !granted.is_empty() && !refused.is_empty() {
                Ok(())
            } else {
                Err(format!("b granted {granted:?}, refused {refused:?}"))
            }
        },
    );
    println!(
        "relay limit: b granted and refused reservations {} after h1 and h2 started",
        secs(w.started.elapsed())
    );
    w.start_late(Late::C);
    wait_until("b to refuse c a reservation", REFUSAL_TIMEOUT, || {
        let (_, refused) = w.b_reservations();
        if refused.iter().any(|r| r == "c") {
            Ok(())
        } else {
            Err(format!("b refused {refused:?}"))
        }
    });
    println!("relay limit: watching {SETTLE:?} more");
    thread::sleep(SETTLE);
    let (granted, refused) = w.b_reservations();
    println!("relay limit: b's log: granted to {granted:?}, refused to {refused:?}");
    let mut holders = Vec::new();
    for node in [&w.h1, &w.h2, &w.c] {
        let seen = w.relay_b_seen_by(node);
        println!(
            "relay limit: {}'s `ferry nat` shows b {}",
            node.name,
            match &seen {
                Some(r) => format!(
                    "reserved {}, relayed address {:?}",
                    r.reserved, r.relayed_addr
                ),
                None => "not as a relay".to_owned(),
            }
        );
        if seen.is_some_and(|r| r.reserved) {
            holders.push(node.name.clone());
        }
    }
    assert_eq!(
        granted.len(),
        1,
        "b, allowed one reservation, granted {}: {granted:?}",
        granted.len()
    );
    problems.check(holders == granted, || {
        format!("b says it granted its reservation to {granted:?}, the nodes' `ferry nat` say {holders:?}")
    });
    problems.check(granted[0] == "h1" || granted[0] == "h2", || {
        format!(
            "b's one reservation went to {}, not to h1 or h2",
            granted[0]
        )
    });
    for node in ["h1", "h2", "c"] {
        if !granted.iter().any(|g| g == node) {
            problems.check(refused.iter().any(|r| r == node), || {
                format!("{node} holds no reservation, but b's log shows no refusal for it")
            });
        }
    }
    println!(
        "summary relay reservations: limit 1, granted to {}, refused {} time(s) ({refused:?}); test took {}",
        granted[0],
        refused.len(),
        secs(t0.elapsed())
    );
    problems.finish();
}

/// Relay limits hold (bytes): b cuts each circuit after 1 MiB, so a 20 MiB
/// get from h2 behind a symmetric NAT cannot go through one circuit; b never
/// relays more than the limit per circuit it accepted, and new circuits
/// (chat, a small get) still work afterwards.
#[test]
fn relay_circuit_byte_limit_holds() {
    if lab::skip_unless_root() {
        return;
    }
    let _turn = lab::take_turn();
    let t0 = Instant::now();
    let mut problems = Problems::default();
    const LIMIT: u64 = MIB as u64;
    let mut w = World::with(Setup {
        home2: Home2::Behind(NatKind::Symmetric),
        b_config: Some("relay_max_circuit_bytes = 1048576\n"),
        ..Setup::default()
    });
    let circuits_closed = |w: &World| w.b.log_lines("relay circuit closed");

    w.wait_reserved(&w.h2);
    let (rx0, _) = w.relay_bytes();
    let found = w.find_h2();
    assert_eq!(found.connection, "relayed", "{found:#?}");

    let size = 20 * MIB;
    let share = w.share_random(size);
    let big = w.get(&share.ticket, size, CUT_GET_TIMEOUT);
    let cut_so_far = circuits_closed(&w).len();
    let outcome = match &big.result {
        Ok(get) => {
            w.check_fetched(get, &share.id, size);
            format!(
                "finished in {} ({:.1} MB/s), blake3 identical",
                secs(big.took),
                size as f64 / big.took.as_secs_f64() / 1e6
            )
        }
        Err(e) => format!("did not finish, after {}: {e}", secs(big.took)),
    };
    println!(
        "get: 20 MiB h2 -> h1 through circuits cut at 1 MiB {outcome}; b received {:.1} MiB and sent {:.1} MiB meanwhile; {cut_so_far} circuit(s) closed so far",
        big.b_rx as f64 / MIB as f64,
        big.b_tx as f64 / MIB as f64,
    );

    // New circuits are still granted: find h2 again, chat, a small get.
    let again = w.find_h2();
    println!("after: h1 reaches h2 {} again", again.connection);
    w.chat(&format!("hello after the cut circuits {}", tag()));
    let small_size = 256 * 1024;
    let small = w.share_random(small_size);
    let fetched = w.get(&small.ticket, small_size, COMMAND_TIMEOUT);
    match &fetched.result {
        Ok(get) => {
            w.check_fetched(get, &small.id, small_size);
            println!(
                "after: a 256 KiB get through the relay took {}, blake3 identical",
                secs(fetched.took)
            );
        }
        Err(e) => problems.check(false, || {
            format!("after the cut circuits, a 256 KiB get through the relay failed: {e}")
        }),
    }

    // Every circuit ends once h1 and h2 are gone: count them all.
    w.stop_homes_and_wait_gone();
    let (rx1, _) = w.relay_bytes();
    let closed = circuits_closed(&w);
    let at_limit = closed
        .iter()
        .filter(|l| l.contains("Max circuit bytes"))
        .count();
    let through_b = rx1 - rx0;
    // What b may receive for the circuits: the limit for each (plus what
    // one read may overshoot), with room for encryption, multiplexing and
    // TCP/IP framing on the wire, plus the peers' own traffic with b.
    let allowed = closed.len() as u64 * (LIMIT + 64 * 1024) * 5 / 4 + 2 * MIB as u64;
    println!(
        "relay: b relayed {} circuit(s) in all, {at_limit} cut at the limit; b received {:.1} MiB from the find to the end, {:.1} MiB allowed for {} circuits of 1 MiB",
        closed.len(),
        through_b as f64 / MIB as f64,
        allowed as f64 / MIB as f64,
        closed.len()
    );
    for line in &closed {
        println!("b's log: {}", log_message(line));
    }
    assert!(
        !closed.is_empty(),
        "b's log shows no relayed circuit at all"
    );
    problems.check(through_b <= allowed, || {
        format!(
            "b received {through_b} bytes for {} circuits limited to {LIMIT} bytes each",
            closed.len()
        )
    });
    problems.check(through_b >= at_limit as u64 * LIMIT, || {
        format!(
            "{at_limit} circuits were cut at {LIMIT} bytes, but b received only {through_b} bytes"
        )
    });
    problems.check(big.result.is_ok() || at_limit > 0, || {
        "the 20 MiB get did not finish, yet no circuit was cut at the limit".to_owned()
    });
    println!(
        "summary relay bytes: limit 1 MiB, 20 MiB get {}, {} circuits ({at_limit} cut at the limit), b received {:.1} MiB; test took {}",
        if big.result.is_ok() {
            "finished"
        } else {
            "did not finish"
        },
        closed.len(),
        through_b as f64 / MIB as f64,
        secs(t0.elapsed())
    );
    problems.finish();
}

/// What `hostile_peer dht-oversize` prints.
#[derive(Debug, serde::Deserialize)]
struct OversizeReport {
    peer_id: String,
    target_serves_dht: bool,
    puts: Vec<PutReport>,
    still_connected: bool,
}

#[derive(Debug, serde::Deserialize)]
struct PutReport {
    what: String,
    value_bytes: usize,
    stored: bool,
    error: Option<String>,
    put_ms: u64,
    found_after: bool,
    get_error: Option<String>,
}

/// Oversize DHT records are refused: a peer on the internet stores records
/// on b (a DHT server) over ferry's Kademlia protocol: a small one is kept,
/// one over the 1 KiB value limit and one in a message over the 16 KiB packet
/// limit are not; b stays healthy, and still serves the DHT to h1.
#[test]
fn oversize_dht_records_are_refused() {
    if lab::skip_unless_root() {
        return;
    }
    let _turn = lab::take_turn();
    let t0 = Instant::now();
    let mut problems = Problems::default();
    let mut w = World::with(Setup {
        // The refusal of an oversize message is logged at trace level.
        b_log: Some("libp2p_kad::handler=trace"),
        ..Setup::default()
    });
    w.wait_dht_server(&w.b, || {});

    let x = w.public_host("x", 3);
    let data = w.dir.as_ref().unwrap().path().join("x");
    let target = format!(
        "/ip4/{}/tcp/{PUBLIC_PORT}/p2p/{}",
        lab_public_ip(B_OCTET),
        w.b_id
    );
    let mut command = x.command(hostile::binary());
    command
        .arg("dht-oversize")
        .arg(&data)
        .arg(&target)
        .env("RUST_LOG", "off");
    let out = output_with_deadline(command, b"", HOSTILE_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the hostile peer failed ({}): {stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let report: OversizeReport = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("the hostile peer's report ({e}): {stdout}"));
    println!(
        "hostile: x (10.80.0.3, {}) against b; b serves the DHT: {}",
        report.peer_id, report.target_serves_dht
    );
    for put in &report.puts {
        println!(
            "hostile: put {} ({} B value): {} in {} ms; {}",
            put.what,
            put.value_bytes,
            if put.stored {
                "stored".to_owned()
            } else {
                format!("refused ({})", put.error.as_deref().unwrap_or("no error"))
            },
            put.put_ms,
            if put.found_after {
                "b hands it out afterwards".to_owned()
            } else {
                format!(
                    "b does not have it afterwards ({})",
                    put.get_error.as_deref().unwrap_or("not found")
                )
            }
        );
    }
    println!(
        "hostile: still connected to b at the end: {}",
        report.still_connected
    );
    assert!(
        report.target_serves_dht,
        "b does not serve the DHT, so nothing was tested: {report:#?}"
    );
    assert_eq!(report.puts.len(), 3, "{report:#?}");
    let small = &report.puts[0];
    assert!(
        small.stored && small.found_after,
        "b should keep a small record (the control case): {small:#?}"
    );
    for put in &report.puts[1..] {
        problems.check(!put.stored && !put.found_after, || {
            format!("b kept a record it should have refused: {put:#?}")
        });
    }

    // b is healthy: it runs, answers, still serves the DHT, to h1 too.
    assert!(w.b.running(), "b exited; log:\n{}", w.b.log_tail(50));
    let id: IdInfo =
        w.b.json(&["id", "--json"])
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(id.peer_id, w.b_id);
    let nat = w.b.nat().unwrap_or_else(|e| panic!("{e}"));
    problems.check(nat.dht_mode == "server", || {
        format!("after the oversize records, b is a DHT {}", nat.dht_mode)
    });
    let value_refusals = w.b.log_lines("Record not stored");
    let packet_refusals = w.b.log_lines("exceeds maximum");
    for line in value_refusals.iter().chain(&packet_refusals) {
        println!("b's log: {}", log_message(line));
    }
    problems.check(!value_refusals.is_empty(), || {
        "b's log does not show the over-limit record refused (\"Record not stored\")".to_owned()
    });
    problems.check(!packet_refusals.is_empty(), || {
        "b's log does not show the oversize message refused (\"exceeds maximum\")".to_owned()
    });
    let found = w.find_h2();
    println!(
        "summary oversize dht: 2 KiB value {}, 64 KiB message {}, b healthy (find through it {} ms); test took {}",
        if report.puts[1].stored {
            "STORED"
        } else {
            "refused"
        },
        if report.puts[2].stored {
            "STORED"
        } else {
            "refused"
        },
        found.elapsed_ms,
        secs(t0.elapsed())
    );
    problems.finish();
}

/// `ferry get ID` with the bare content id: h1, connected to b and c but not
/// to h2, learns from the provider record in the DHT that h2 has it, and
/// fetches it.
///
/// h1 starts after h2 has shared: in a lab this small, every DHT walk reaches
/// every node (b lists nodes behind NAT too, with their relayed addresses),
/// so h2's announcement would otherwise connect it to h1 before the get.
/// h1's own first walk starts 0.5 s after it meets b; the get goes first.
#[test]
fn get_by_bare_id_through_the_dht() {
    if lab::skip_unless_root() {
        return;
    }
    let _turn = lab::take_turn();
    let t0 = Instant::now();
    let mut problems = Problems::default();
    let mut w = World::with(Setup {
        late: Some(Late::H1),
        ..Setup::default()
    });
    // The provider record goes to DHT servers: wait until there is one.
    w.wait_dht_server(&w.b, || {});
    w.wait_reserved(&w.h2);

    // Big enough to be in flight when the hole punch replaces the relayed
    // connection the get starts on.
    let size = 10 * MIB;
    let share = w.share_random(size);
    let shared = Instant::now();
    w.start_late(Late::H1);
    // b identified to h1 (so h1's DHT knows b): b reports h1's address.
    wait_until("b to identify itself to h1", COMMAND_TIMEOUT, || {
        let nat = w.h1.nat()?;
        if nat.observed.iter().any(|o| o.by_peer == w.b_id) {
            Ok(())
        } else {
            Err(format!("{nat:#?}"))
        }
    });
    let before = w.h1.path_to(&w.h2_id);
    problems.check(before.is_err(), || {
        format!(
            "h1 was already connected to h2 before the get ({before:?}): the DHT was not needed"
        )
    });
    // One attempt: the get starts on the relayed connection, and the hole
    // punch replaces it while requests are in flight; the download carries
    // on over the direct connection.
    let fetched = w.get(&share.id, size, GET_TIMEOUT);
    let took = fetched.took;
    let get = fetched.result.unwrap_or_else(|e| {
        // How it failed, as the nodes saw it.
        let mut lines: Vec<(String, &str)> = Vec::new();
        for (node, text) in [
            (&w.h1, "download failed"),
            (&w.h1, "disconnected"),
            (&w.h2, "closing the relayed one"),
            (&w.h2, "hole punched"),
        ] {
            for line in node.log_lines(text) {
                if line.contains(&w.h2_id) || line.contains(&w.h1_id) || text == "download failed" {
                    lines.push((line, &node.name));
                }
            }
        }
        lines.sort();
        for (line, name) in lines {
            println!("{name}'s log: {line}");
        }
        panic!("`ferry get ID` failed: {e}")
    });
    w.check_fetched(&get, &share.id, size);
    let path = w.h1.path_to(&w.h2_id).unwrap_or_else(|e| panic!("{e}"));
    println!(
        "get by id: {} MiB from h2 in {} ({:.1} MB/s), blake3 identical, {} after the share; h1 reaches h2 {} over {}",
        size / MIB,
        secs(took),
        size as f64 / took.as_secs_f64() / 1e6,
        secs(shared.elapsed()),
        path.connection,
        path.remote_addr
    );
    let from_dht =
        w.h1.log_lines("provider found in the DHT")
            .into_iter()
            .filter(|l| l.contains(&w.h2_id) && l.contains(&share.id))
            .collect::<Vec<_>>();
    for line in &from_dht {
        println!("h1's log: {}", log_message(line));
    }
    problems.check(!from_dht.is_empty(), || {
        "h1's log does not show h2 found as a provider in the DHT".to_owned()
    });

    println!(
        "summary get by id: {} MiB, {}, provider from the DHT: {}; test took {}",
        size / MIB,
        secs(took),
        !from_dht.is_empty(),
        secs(t0.elapsed())
    );
    problems.finish();
}

/// Two hosts on one home LAN, behind one NAT, each with a relayed address on
/// b and no LAN discovery: found by id (through the relay), they talk over
/// the LAN, not through the relay.
#[test]
fn lan_path_preferred_over_the_relay() {
    if lab::skip_unless_root() {
        return;
    }
    let _turn = lab::take_turn();
    let t0 = Instant::now();
    let w = World::with(Setup {
        home2: Home2::BesideH1,
        home_discovery: false,
        ..Setup::default()
    });
    let relayed1 = w.wait_reserved(&w.h1);
    let relayed2 = w.wait_reserved(&w.h2);
    println!("reservation: h1 as {relayed1}");
    println!("reservation: h2 as {relayed2}");
    let found = w.find_h2();
    let t = Instant::now();
    let (h1_view, h2_view) = wait_until("h1 and h2 to show each other as lan", LAN_TIMEOUT, || {
        let h1_view = w.h1.path_to(&w.h2_id)?;
        let h2_view = w.h2.path_to(&w.h1_id)?;
        if h1_view.connection == "lan" && h2_view.connection == "lan" {
            Ok((h1_view, h2_view))
        } else {
            Err(format!("h1 sees {h1_view:?}, h2 sees {h2_view:?}"))
        }
    });
    println!(
        "lan: h1 reaches h2 over {}, h2 reaches h1 over {}, {} after find returned (find said {})",
        h1_view.remote_addr,
        h2_view.remote_addr,
        secs(t.elapsed()),
        found.connection
    );
    w.chat(&format!("hello across the room {}", tag()));
    println!(
        "summary lan: find {} ms ({}), lan both ways; test took {}",
        found.elapsed_ms,
        found.connection,
        secs(t0.elapsed())
    );
}
