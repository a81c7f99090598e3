//! Interoperability of ferry's TCPCLv4 convergence layer with dtn7-rs's `dtnd`
//! (dtn7 0.21.0), both directions, on 127.0.0.1 only.
//!
//! Needs `dtnd`, `dtnsend` and `dtnrecv` in `$HOME/.cache/ferry-dtn7/bin` or
//! on PATH (`tests/run-all.sh` installs them); skips with a message otherwise.
//! The dtnd harness (`ferry_testkit::dtnd`) is shared with the ferry CLI's
//! `dtn_tcpcl.rs`: every process runs with a deadline and is killed at the end,
//! and dtnd's log is printed when a test fails, or always with
//! `FERRY_SHOW_DTND_LOG=1`.

use std::time::{Duration, Instant};

use bp7::{Bundle, EndpointID};
use ferry_net::tcpcl::{TcpclOptions, TcpclSession};
use ferry_testkit::dtnd::{Dtnd, pattern, tools};
use tokio::net::TcpListener;

fn payload_of(bundle: &Bundle) -> Vec<u8> {
    bundle
        .payload()
        .expect("bundle has a payload block")
        .clone()
}

fn make_bundle(src: &str, dst: &str, payload: Vec<u8>) -> Vec<u8> {
    let src = EndpointID::try_from(src).unwrap();
    let dst = EndpointID::try_from(dst).unwrap();
    let mut b = bp7::bundle::new_std_payload_bundle(src, dst, payload);
    b.set_crc(bp7::crc::CRC_32);
    b.to_cbor()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferry_sends_bundles_to_dtnd() {
    let Some(tools) = tools() else {
        return;
    };
    let dtnd = Dtnd::start(&tools, "alpha", &["-e", "incoming"]);

    let mut opts = TcpclOptions::new("dtn://ferry/");
    // A short keepalive, so that staying idle proves ferry's keepalives keep
    // dtnd from ending the session (it ends one silent for an interval).
    opts.session.keepalive_secs = 2;
    // Smaller segments than dtnd's 64,000-byte MRU, to exercise
    // segmentation and dtnd's cumulative acknowledgements.
    opts.session.max_send_segment = 16 * 1024;
    let session = tokio::time::timeout(
        Duration::from_secs(15),
        TcpclSession::connect_with(dtnd.tcpcl_addr(), opts),
    )
    .await
    .expect("connect in time")
    .expect("session with dtnd");
    let peer = session.peer().clone();
    assert_eq!(peer.node_id, "dtn://alpha/");
    assert_eq!(peer.keepalive_secs, 2);
    assert_eq!(peer.segment_mru, 64_000);
    assert_eq!(peer.transfer_mru, 64_000);
    eprintln!("ferry -> dtnd: established, dtnd offers {peer:?}");

    // A text message in one segment.
    let text = b"hello dtnd, this is ferry".to_vec();
    let small = make_bundle("dtn://ferry/sender", "dtn://alpha/incoming", text.clone());
    tokio::time::timeout(Duration::from_secs(15), session.send_bundle(small))
        .await
        .expect("ack in time")
        .expect("dtnd acknowledged the small bundle");

    // Idle for more than two keepalive intervals.
    tokio::time::sleep(Duration::from_secs(5)).await;

    // A bundle of ~60 KB: four segments of at most 16 KiB.
    let big_payload = pattern(60_000, 7);
    let big = make_bundle(
        "dtn://ferry/sender",
        "dtn://alpha/incoming",
        big_payload.clone(),
    );
    assert!(big.len() <= 64_000, "within dtnd's transfer MRU");
    tokio::time::timeout(Duration::from_secs(15), session.send_bundle(big))
        .await
        .expect("ack in time")
        .expect("dtnd acknowledged the big bundle after the idle period");

    // Bigger than dtnd's transfer MRU: refused locally, session intact.
    let too_big = make_bundle(
        "dtn://ferry/sender",
        "dtn://alpha/incoming",
        vec![1; 70_000],
    );
    let err = session.send_bundle(too_big).await.unwrap_err();
    eprintln!("ferry -> dtnd: oversized bundle: {err}");

    // dtnd delivered both to its `incoming` endpoint.
    let mut got = Vec::new();
    for _ in 0..2 {
        let raw = tokio::task::block_in_place(|| dtnd.recv("incoming", Duration::from_secs(20)));
        let b = Bundle::try_from(raw).expect("dtnrecv output parses as a bundle");
        assert_eq!(b.primary.source.to_string(), "dtn://ferry/sender");
        assert_eq!(b.primary.destination.to_string(), "dtn://alpha/incoming");
        got.push(payload_of(&b));
    }
    got.sort_by_key(|p| p.len());
    assert_eq!(got[0], text);
    assert_eq!(got[1], big_payload);
    eprintln!(
        "ferry -> dtnd: dtnrecv received {} and {} payload bytes intact",
        got[0].len(),
        got[1].len()
    );

    tokio::time::timeout(Duration::from_secs(15), session.close())
        .await
        .expect("close in time")
        .expect("clean SESS_TERM exchange with dtnd");
    dtnd.assert_no_tcpcl_errors();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtnd_forwards_bundles_to_ferry() {
    let Some(tools) = tools() else {
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ferry_port = listener.local_addr().unwrap().port();
    let dtnd = Dtnd::start(
        &tools,
        "beta",
        &["-s", &format!("tcp://127.0.0.1:{ferry_port}/ferry")],
    );

    // dtnd connects to its static peer once it has something to forward.
    let text = "hello ferry, this is dtnd".to_string();
    let big_payload = pattern(20_000, 3);
    for payload in [text.as_bytes(), &big_payload] {
        dtnd.send("dtn://ferry/incoming", payload);
    }

    let (stream, from) = tokio::time::timeout(Duration::from_secs(30), listener.accept())
        .await
        .expect("dtnd connects to ferry's listener within 30 s")
        .unwrap();
    let mut opts = TcpclOptions::new("dtn://ferry/");
    // A small segment MRU makes dtnd split the 20 KB bundle.
    opts.session.segment_mru = 1000;
    let mut session = tokio::time::timeout(
        Duration::from_secs(15),
        TcpclSession::accept_with(stream, opts),
    )
    .await
    .expect("handshake in time")
    .expect("session accepted from dtnd");
    assert_eq!(session.peer().node_id, "dtn://beta/");
    eprintln!(
        "dtnd -> ferry: dtnd connected from {from}, {:?}",
        session.peer()
    );

    let mut payloads = Vec::new();
    for _ in 0..2 {
        let received = tokio::time::timeout(Duration::from_secs(30), session.recv_bundle())
            .await
            .expect("bundle from dtnd within 30 s")
            .expect("bundle from dtnd");
        let (bytes, ack) = received.into_parts();
        // dtnsend bundles carry no CRC at all; bp7 parses them regardless.
        let bundle = Bundle::try_from(bytes).expect("dtnd's bundle parses");
        assert_eq!(
            bundle.primary.destination.to_string(),
            "dtn://ferry/incoming"
        );
        // dtnd drops bundles whose source is not one of its endpoints, so
        // dtnsend runs without -s and the source is the node itself.
        assert_eq!(bundle.primary.source.to_string(), "dtn://beta/");
        payloads.push(payload_of(&bundle));
        // "Durably stored": acknowledge.
        ack.ack();
    }
    payloads.sort_by_key(|p| p.len());
    assert_eq!(payloads[0], text.as_bytes());
    assert_eq!(payloads[1], big_payload);
    eprintln!(
        "dtnd -> ferry: received {} and {} payload bytes intact",
        payloads[0].len(),
        payloads[1].len()
    );

    // Give dtnd a moment to take the acknowledgements, then end cleanly.
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::time::timeout(Duration::from_secs(15), session.close())
        .await
        .expect("close in time")
        .expect("clean SESS_TERM exchange with dtnd");
    dtnd.assert_no_tcpcl_errors();
}

/// A bundle ferry does not store (the ack handle is dropped, which refuses the
/// transfer) stays with dtnd, which sends it again later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtnd_keeps_and_resends_a_bundle_ferry_refused() {
    let Some(tools) = tools() else {
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ferry_port = listener.local_addr().unwrap().port();
    // A 1 s janitor makes dtnd retry stored bundles quickly.
    let dtnd = Dtnd::start(
        &tools,
        "gamma",
        &[
            "-s",
            &format!("tcp://127.0.0.1:{ferry_port}/ferry"),
            "-j",
            "1s",
        ],
    );
    dtnd.send("dtn://ferry/incoming", b"store me next time");

    let (stream, _) = tokio::time::timeout(Duration::from_secs(30), listener.accept())
        .await
        .expect("dtnd connects within 30 s")
        .unwrap();
    let mut session = TcpclSession::accept(stream, "dtn://ferry/").await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(30), session.recv_bundle())
        .await
        .expect("first delivery within 30 s")
        .unwrap();
    let first_id = Bundle::try_from(first.data().to_vec()).unwrap().id();
    // Not stored: dropping the handle sends XFER_REFUSE (retransmit).
    drop(first);

    // dtnd may resend on this session or open a new one.
    let again = tokio::select! {
        r = session.recv_bundle() => r.expect("second delivery on the same session"),
        a = listener.accept() => {
            let (stream, _) = a.unwrap();
            let mut s2 = TcpclSession::accept(stream, "dtn://ferry/").await.unwrap();
            let b = s2.recv_bundle().await.unwrap();
            session = s2;
            b
        }
        _ = tokio::time::sleep(Duration::from_secs(30)) => panic!("dtnd did not resend within 30 s"),
    };
    let again_bundle = Bundle::try_from(again.data().to_vec()).unwrap();
    assert_eq!(again_bundle.id(), first_id);
    assert_eq!(payload_of(&again_bundle), b"store me next time");
    again.into_parts().1.ack();
    eprintln!("refused bundle {first_id} was resent by dtnd and acknowledged");

    // dtnd records the success once the final ack arrives.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !dtnd.log_text().contains("Sending bundle succeeded") {
        assert!(
            Instant::now() < deadline,
            "dtnd never saw the acknowledgement"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::timeout(Duration::from_secs(15), session.close())
        .await
        .expect("close in time")
        .expect("clean SESS_TERM exchange with dtnd");
    dtnd.assert_no_tcpcl_errors();
}
