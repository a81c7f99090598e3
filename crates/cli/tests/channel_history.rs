//! Catching up on channels' history between real nodes on 127.0.0.1.

use std::thread;
use std::time::{Duration, Instant};

use ferry_testkit::harness::{Node, wait_connected, wait_until};

/// Channels joined at once: more than the 20 history requests a peer may make
/// at once, so some of them are refused and must be asked again.
const CHANNELS: usize = 26;
/// Well before the periodic exchange (every 30 s) could bring what a refused
/// request missed: only the retry of the failed requests can be this quick.
const CATCH_UP: Duration = Duration::from_secs(20);

/// A node that joins many channels at once has more history requests refused
/// by the busy peer (its rate limit); each refused one is asked again shortly,
/// so every channel's history arrives without waiting for the periodic exchange.
#[test]
fn joining_many_channels_at_once_brings_every_history_soon() {
    let alice = Node::start("alice");
    let bob = Node::start("bob");
    let channels: Vec<String> = (0..CHANNELS).map(|n| format!("room-{n}")).collect();
    let posts: Vec<String> = channels
        .iter()
        .map(|channel| alice.post(channel, &format!("history of {channel}")).id)
        .collect();
    bob.ferry(&["connect", &alice.addr()]).ok();
    wait_connected(&bob, &alice, &alice.id().peer_id);

    // Join every channel at once (each `ferry read` joins and asks alice).
    let joined = Instant::now();
    thread::scope(|scope| {
        for channel in &channels {
            let bob = &bob;
            scope.spawn(move || bob.read(channel));
        }
    });
    wait_until("bob to have every channel's history", CATCH_UP, || {
        let missing: Vec<&String> = channels
            .iter()
            .zip(&posts)
            .filter(|(channel, id)| !bob.read(channel).iter().any(|m| &m.id == *id))
            .map(|(channel, _)| channel)
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("{} missing: {missing:?}", missing.len()))
        }
    });
    println!(
        "{CHANNELS} channels' history in {:.1} s after joining",
        joined.elapsed().as_secs_f64()
    );
}
