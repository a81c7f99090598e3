//! Delay-tolerant networking in the network lab (needs root; skips otherwise).
//!
//! Three hosts in namespaces: `village`, `bus` and `town`. Segment `vb` (a bridge)
//! joins village and bus, segment `bt` joins bus and town; village and town never
//! share a segment, and the bus does not forward IP. Every node runs `ferry start`
//! with no address given: peers on a segment find each other by beacons and mDNS.
//! "Cutting" a link sets the bus's interface on that segment down, "linking" sets it
//! up again; nothing else is done to make nodes meet. Bundles travel village → bus
//! → town as the links allow (the bus is a data mule), and the town's delivery
//! acknowledgement rides back the same way so every carrier frees its copy.
//!
//! - `dtn_lab_data_mule`: a text and a 5 MiB file, byte-identical at the town,
//!   each exactly once; the bus frees its copies on handing them over, the village
//!   when the ack reaches it.
//! - `dtn_lab_bus_killed`: the bus is killed with -9 while carrying (and again
//!   while receiving a batch) and restarted on its data directory; nothing is lost,
//!   nothing arrives twice.
//! - `dtn_lab_two_thousand_bundles`: 2,000 small bundles on one trip.
//! - `dtn_lab_sneakernet`: village and town with no network at all, a folder as
//!   the carrier: bundles there, acks back, and shared content for `ferry get`.
//!
//! Times are printed, never judged. Run:
//! `cargo test -p ferry --test dtn_lab -- --nocapture --test-threads=1` (as root).
//! `FERRY_LAB_KEEP=1` keeps the namespaces, data directories and logs.

mod world;

use ferry_testkit::ferry_binary;
use ferry_testkit::lab;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use ferry_node::control::types::{
    DtnSendReply, ExportReport, GetResult, ImportReport, PeerInfo, ShareResult,
};
use ferry_testkit::wait::wait_timed;
use lab::node::Node;

use world::*;

#[test]
fn dtn_lab_data_mule() {
    if lab::skip_unless_root() {
        return;
    }
    let _turn = lab::take_turn();
    let t0 = Instant::now();
    let w = World::village_bus_town();
    let [village, bus, town] = &w.nodes[..] else {
        unreachable!()
    };

    // The bus is at the village: the village sends a text and a file to the town.
    w.link(BUS_TO_VILLAGE, true);
    let met = wait_met(village, bus);
    eprintln!("village and bus met {} after linking", secs(met));
    let text = format!(
        "hello town, from the village {:08x}",
        lab::random_u64() as u32
    );
    let mut letter = Letter::write(w.dir(), "harvest", text);
    let sent = Instant::now();
    let ids = letter.send(village, town);
    wait_holds(bus, &ids, TRANSFER_LIMIT);
    let took = sent.elapsed();
    eprintln!(
        "village -> bus: text + 5 MiB file held by the bus {} after sending ({})",
        secs(took),
        mib_per_s(5 * MIB, took)
    );
    assert_eq!(
        village.held().unwrap(),
        ids,
        "the village keeps its own copies"
    );
    assert!(
        town.inbox().unwrap().is_empty(),
        "the town got mail with no link"
    );

    // The bus drives to town.
    w.link(BUS_TO_VILLAGE, false);
    let cut = Instant::now();
    w.link(BUS_TO_TOWN, true);
    let linked = Instant::now();
    let arrival = wait_inbox(town, bus, &ids, TRANSFER_LIMIT);
    eprintln!("bus -> town: text + 5 MiB file: {}", arrival.describe());
    letter.assert_arrived(&arrival.inbox, village, town);
    wait_holds_none(bus, Duration::from_secs(10));
    eprintln!(
        "bus holds nothing {} after linking to town",
        secs(linked.elapsed())
    );
    let status = bus.status().unwrap();
    assert!(
        status.forwarded >= 2,
        "the bus says it forwarded {} bundles",
        status.forwarded
    );
    assert_eq!(
        village.held().unwrap(),
        ids,
        "the village must keep its copies until it hears of the delivery"
    );

    // The bus drives back: the town's acknowledgement reaches the village. The
    // trip is long enough for the village to notice the bus is gone (its pings
    // go unanswered), so they meet afresh by discovery.
    wait_timed(
        "the village to notice the bus is gone",
        MEET_LIMIT,
        POLL,
        || {
            if village.connected_to(&bus.peer_id) {
                Err("still listed as connected".into())
            } else {
                Ok(())
            }
        },
    );
    eprintln!(
        "the village noticed the bus gone {} after the cut",
        secs(cut.elapsed())
    );
    w.bus_to_village();
    let linked = Instant::now();
    let met = wait_met(village, bus);
    wait_holds_none(village, TRANSFER_LIMIT);
    let took = linked.elapsed();
    eprintln!(
        "ack back: village and bus met again {} after linking; the village freed its \
         copies {} after linking",
        secs(met),
        secs(took)
    );
    let status = village.status().unwrap();
    assert!(status.acks >= 2, "the village knows {} acks", status.acks);
    // Nothing more arrives at the town later on.
    std::thread::sleep(Duration::from_secs(2));
    assert_inbox_exactly(town, &ids);
    assert!(bus.held().unwrap().is_empty());
    eprintln!("data mule: total {}", secs(t0.elapsed()));
}

/// How many shells `send_many` runs side by side.
const SENDERS: usize = 4;

/// Sends `count` texts `"{prefix} {i}"` (i from 0) from `node` to `to`, one
/// `ferry dtn send` per text, from [`SENDERS`] shells side by side inside the
/// node's namespace (shell j sends i = j, j + SENDERS, ... in order, its replies
/// to a file of its own). Returns each text's bundle id, by i.
fn send_many(node: &Node, to: &str, prefix: &str, count: usize) -> Vec<String> {
    let out = node
        .log_dir
        .join(format!("send-{:08x}", lab::random_u64() as u32));
    let script = r#"
        ferry=$1 data=$2 to=$3 count=$4 prefix=$5 senders=$6 out=$7
        pids=()
        for ((j = 0; j < senders; j++)); do
            (
                for ((i = j; i < count; i += senders)); do
                    "$ferry" --data-dir "$data" dtn send --json "$to" "$prefix $i" || exit 1
                done > "$out.$j"
            ) &
            pids+=($!)
        done
        for pid in "${pids[@]}"; do wait "$pid" || exit 1; done
    "#;
    let run = node
        .host
        .command("bash")
        .args(["-c", script, "send_many", ferry_binary()])
        .arg(&node.data_dir)
        .args([to, &count.to_string(), prefix, &SENDERS.to_string()])
        .arg(&out)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "sending {count} texts from {} failed: {}",
        node.name,
        String::from_utf8_lossy(&run.stderr)
    );
    let mut ids = vec![String::new(); count];
    for j in 0..SENDERS {
        let path = PathBuf::from(format!("{}.{j}", out.display()));
        let bytes = std::fs::read(&path).unwrap();
        let replies: Vec<DtnSendReply> = serde_json::Deserializer::from_slice(&bytes)
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
        let slots: Vec<usize> = (j..count).step_by(SENDERS).collect();
        assert_eq!(replies.len(), slots.len(), "replies in {}", path.display());
        for (i, reply) in slots.into_iter().zip(replies) {
            ids[i] = reply.id;
        }
    }
    ids
}

#[test]
fn dtn_lab_two_thousand_bundles() {
    if lab::skip_unless_root() {
        return;
    }
    let _turn = lab::take_turn();
    const COUNT: usize = 2_000;
    let t0 = Instant::now();
    let w = World::village_bus_town();
    let [village, bus, town] = &w.nodes[..] else {
        unreachable!()
    };
    let tag = format!("{:08x}", lab::random_u64() as u32);
    let prefix = format!("bulk {tag}");

    // Queued at the village while the bus is away.
    let start = Instant::now();
    let ids = send_many(village, &town.peer_id, &prefix, COUNT);
    let took = start.elapsed();
    eprintln!(
        "village: {COUNT} `ferry dtn send` in {} ({:.1} ms each)",
        secs(took),
        took.as_secs_f64() * 1000.0 / COUNT as f64
    );
    let id_set: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(id_set.len(), COUNT, "bundle ids are not distinct");
    assert_eq!(village.held().unwrap(), id_set);

    // The bus comes to the village and takes everything.
    w.link(BUS_TO_VILLAGE, true);
    let linked = Instant::now();
    let met = wait_met(village, bus);
    wait_holds(bus, &id_set, TRANSFER_LIMIT);
    let total = linked.elapsed();
    eprintln!(
        "village -> bus: {COUNT} bundles held by the bus {} after linking (met after {}, \
         {} of transfer: {:.0} bundles/s)",
        secs(total),
        secs(met),
        secs(total.saturating_sub(met)),
        COUNT as f64 / total.saturating_sub(met).as_secs_f64()
    );

    // To town.
    w.bus_to_town();
    let arrival = wait_inbox(town, bus, &id_set, TRANSFER_LIMIT);
    let transfer = arrival.done.saturating_sub(arrival.met);
    eprintln!(
        "bus -> town: {COUNT} bundles: {} ({:.0} bundles/s)",
        arrival.describe(),
        COUNT as f64 / transfer.as_secs_f64()
    );
    let took = wait_holds_none(bus, TRANSFER_LIMIT);
    eprintln!("bus: holds nothing {} later", secs(took));
    assert_texts(&arrival.inbox, &ids, &prefix);

    // Back to the village with the acks.
    w.bus_to_village();
    let took = wait_holds_none(village, TRANSFER_LIMIT);
    eprintln!(
        "ack back: the village freed all {COUNT} copies {} after the bus linked to it again",
        secs(took)
    );
    assert_inbox_exactly(town, &id_set);
    assert_eq!(town.inbox().unwrap().len(), COUNT);
    eprintln!("2,000 bundles: total {}", secs(t0.elapsed()));
}

#[test]
fn dtn_lab_bus_killed() {
    if lab::skip_unless_root() {
        return;
    }
    let _turn = lab::take_turn();
    const BATCH: usize = 600;
    /// The bus is killed once its status shows this many of the batch.
    const KILL_AT: usize = 50;
    let t0 = Instant::now();
    let mut w = World::village_bus_town();
    let tag = format!("{:08x}", lab::random_u64() as u32);

    // (a) The bus takes a text and a file at the village, leaves, and is killed on
    // the road before it reaches town.
    w.link(BUS_TO_VILLAGE, true);
    wait_met(&w.nodes[0], &w.nodes[1]);
    let (village, bus, town) = (&w.nodes[0], &w.nodes[1], &w.nodes[2]);
    let mut letter = Letter::write(w.dir(), "seeds", format!("survives a crash {tag}"));
    let first = letter.send(village, town);
    wait_holds(bus, &first, TRANSFER_LIMIT);
    w.link(BUS_TO_VILLAGE, false);
    w.nodes[1].kill9();
    let restarted = Instant::now();
    w.nodes[1].start_and_wait(START_LIMIT);
    let (village, bus, town) = (&w.nodes[0], &w.nodes[1], &w.nodes[2]);
    assert_eq!(
        bus.held().unwrap(),
        first,
        "after kill -9 and restart the bus must still carry exactly what it took"
    );
    eprintln!(
        "(a) bus killed with the bundles on board; answers again {} after restart, still holds both",
        secs(restarted.elapsed())
    );
    w.link(BUS_TO_TOWN, true);
    let arrival = wait_inbox(town, bus, &first, TRANSFER_LIMIT);
    eprintln!("(a) bus -> town after the restart: {}", arrival.describe());
    letter.assert_arrived(&arrival.inbox, village, town);
    wait_holds_none(bus, Duration::from_secs(10));
    w.link(BUS_TO_TOWN, false);

    // (b) The village has queued a batch (texts and two files) while the bus was
    // away; the bus comes, and is killed while it is receiving it.
    let mut batch: Vec<String> = Vec::new();
    let mut files = Vec::new();
    for n in 0..2 {
        let path = w.dir().join(format!("batch{n}.bin"));
        let bytes = random_file(&path, 4 * MIB);
        batch.push(w.nodes[0].send_file(&w.nodes[2].peer_id, &path));
        files.push(bytes);
    }
    let texts_prefix = format!("batch {tag}");
    batch.extend(send_many(
        &w.nodes[0],
        &w.nodes[2].peer_id,
        &texts_prefix,
        BATCH,
    ));
    let batch_set: BTreeSet<String> = batch.iter().cloned().collect();
    w.link(BUS_TO_VILLAGE, true);
    let linked = Instant::now();
    let (before_kill, _) = wait_timed(
        "the bus to be part-way through the batch",
        TRANSFER_LIMIT,
        POLL,
        || {
            let held = w.nodes[1].held()?;
            let got = held.intersection(&batch_set).count();
            if got >= KILL_AT {
                Ok(held)
            } else {
                Err(format!("{got} of {} so far", batch_set.len()))
            }
        },
    );
    w.nodes[1].kill9();
    let got_before = before_kill.intersection(&batch_set).count();
    eprintln!(
        "(b) bus killed {} after linking, when its status showed {got_before} of {} batch bundles",
        secs(linked.elapsed()),
        batch_set.len()
    );
    w.nodes[1].start_and_wait(START_LIMIT);
    let after = w.nodes[1].held().unwrap();
    let kept = after.intersection(&batch_set).count();
    let lost: Vec<&String> = before_kill.difference(&after).collect();
    assert!(
        lost.is_empty(),
        "the bus lost {} bundles it had shown as held before kill -9: {lost:?}",
        lost.len()
    );
    eprintln!(
        "(b) after restart the bus holds {kept} of the batch ({} more than its last status \
         before the kill showed)",
        kept - got_before
    );
    assert!(
        kept < batch_set.len(),
        "the kill came after the whole batch arrived; make it bigger"
    );
    let took = wait_holds(&w.nodes[1], &batch_set, TRANSFER_LIMIT);
    eprintln!(
        "(b) the village sent the rest again: the bus holds the whole batch {} after it \
         answered again",
        secs(took)
    );

    // To town: everything arrives, once each.
    let (village, bus, town) = (&w.nodes[0], &w.nodes[1], &w.nodes[2]);
    w.bus_to_town();
    let arrival = wait_inbox(town, bus, &batch_set, TRANSFER_LIMIT);
    eprintln!(
        "(b) bus -> town, the batch of {}: {}",
        batch_set.len(),
        arrival.describe()
    );
    for (n, bytes) in files.iter().enumerate() {
        assert_saved_file(
            town,
            &batch[n],
            bytes,
            &w.dir().join(format!("batch{n}.saved")),
        );
    }
    assert_texts(&arrival.inbox, &batch[2..], &texts_prefix);
    wait_holds_none(bus, Duration::from_secs(30));
    let all: BTreeSet<String> = first.union(&batch_set).cloned().collect();

    // The acks go back; the village frees everything.
    w.bus_to_village();
    let took = wait_holds_none(village, TRANSFER_LIMIT);
    eprintln!(
        "ack back: the village freed every copy {} after linking",
        secs(took)
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_inbox_exactly(town, &all);
    eprintln!("bus killed: total {}", secs(t0.elapsed()));
}

/// Every file and folder under `root`, by relative path: `None` for a folder, the
/// BLAKE3 of the bytes for a file.
fn tree(root: &Path) -> BTreeMap<String, Option<String>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Option<String>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            if path.is_dir() {
                out.insert(rel, None);
                walk(root, &path, out);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                out.insert(rel, Some(blake3::hash(&bytes).to_hex().to_string()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

#[test]
fn dtn_lab_sneakernet() {
    if lab::skip_unless_root() {
        return;
    }
    let _turn = lab::take_turn();
    let t0 = Instant::now();
    let w = World::village_and_town_apart();
    let [village, town] = &w.nodes[..] else {
        unreachable!()
    };
    let base = w.dir();
    let tag = format!("{:08x}", lab::random_u64() as u32);

    // A text and a 5 MiB file, carried on a "USB drive" (a folder both can see).
    let mut letter = Letter::write(base, "letter", format!("by hand {tag}"));
    let ids = letter.send(village, town);
    let drive = base.join("drive");
    let drive_str = drive.to_str().unwrap();
    let start = Instant::now();
    let report: ExportReport = village.must(&["dtn", "export", drive_str, "--json"]);
    eprintln!(
        "village exported {} bundles ({} bytes) in {}",
        report.bundles,
        report.bytes,
        secs(start.elapsed())
    );
    assert_eq!(report.bundles, 2);
    let start = Instant::now();
    let report: ImportReport = town.must(&["dtn", "import", drive_str, "--json"]);
    eprintln!(
        "town imported {} bundles in {}",
        report.delivered,
        secs(start.elapsed())
    );
    assert_eq!(report.delivered, 2, "{report:?}");
    assert!(report.rejected.is_empty(), "{report:?}");
    let inbox = assert_inbox_exactly(town, &ids);
    letter.assert_arrived(&inbox, village, town);
    // Importing the same drive again changes nothing.
    let again: ImportReport = town.must(&["dtn", "import", drive_str, "--json"]);
    assert_eq!((again.delivered, again.duplicates), (0, 2), "{again:?}");
    assert_inbox_exactly(town, &ids);
    assert_eq!(
        village.held().unwrap(),
        ids,
        "the village keeps its copies until the acks come back"
    );

    // The acks ride back on another drive.
    let back = base.join("drive-back");
    let back_str = back.to_str().unwrap();
    let report: ExportReport = town.must(&["dtn", "export", back_str, "--json"]);
    assert_eq!(report.bundles, 0);
    assert!(report.acks >= 2, "{report:?}");
    let report: ImportReport = village.must(&["dtn", "import", back_str, "--json"]);
    assert_eq!(report.freed, 2, "{report:?}");
    assert!(
        village.held().unwrap().is_empty(),
        "the village still holds copies"
    );

    // Shared content by folder: the town gets a whole directory with no network.
    let shared = base.join("songs");
    std::fs::create_dir_all(shared.join("old")).unwrap();
    random_file(&shared.join("first.ogg"), 300_000);
    random_file(&shared.join("old").join("second.ogg"), 70_000);
    std::fs::write(shared.join("lyrics.txt"), format!("la la {tag}\n")).unwrap();
    let share: ShareResult = village.must(&["share", shared.to_str().unwrap(), "--json"]);
    assert_eq!(share.files, 3);
    let carry = base.join("drive-content");
    let carry_str = carry.to_str().unwrap();
    let report: ExportReport =
        village.must(&["dtn", "export", carry_str, "--content", &share.id, "--json"]);
    assert_eq!(report.content, 4, "a manifest and three files: {report:?}");
    let report: ImportReport = town.must(&["dtn", "import", carry_str, "--json"]);
    assert_eq!(report.content, 4, "{report:?}");
    assert!(report.rejected.is_empty(), "{report:?}");
    let out = base.join("town-songs");
    let start = Instant::now();
    let got: GetResult = town.must(&["get", &share.id, "-o", out.to_str().unwrap(), "--json"]);
    eprintln!(
        "town: `ferry get` of the carried folder took {} ({} bytes fetched from peers)",
        secs(start.elapsed()),
        got.fetched_bytes
    );
    assert_eq!(got.fetched_bytes, 0, "the town has no peer to fetch from");
    let peers: Vec<PeerInfo> = town.must(&["peers", "--json"]);
    assert!(peers.is_empty(), "the town knows peers: {peers:?}");
    assert_eq!(tree(&out), tree(&shared), "the folder arrived different");
    eprintln!("sneakernet: total {}", secs(t0.elapsed()));
}
