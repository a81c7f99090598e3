//! ferry's TCPCLv4 driver against itself over 127.0.0.1: both directions,
//! multi-segment bundles, acknowledgement only after the receiver says the
//! bundle is stored, refusal, and clean termination.

use std::time::Duration;

use ferry_net::tcpcl::codec::XferRefuseReason;
use ferry_net::tcpcl::{TcpclError, TcpclOptions, TcpclSession};
use tokio::net::TcpListener;
use tokio::time::timeout;

const T: Duration = Duration::from_secs(10);

async fn pair(
    server_opts: TcpclOptions,
    client_opts: TcpclOptions,
) -> (TcpclSession, TcpclSession) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        TcpclSession::accept_with(stream, server_opts).await
    });
    let client = timeout(T, TcpclSession::connect_with(addr, client_opts))
        .await
        .unwrap()
        .unwrap();
    let server = timeout(T, server).await.unwrap().unwrap().unwrap();
    (client, server)
}

#[tokio::test]
async fn bundles_both_ways_with_deferred_acks() {
    let mut server_opts = TcpclOptions::new("dtn://server/");
    server_opts.session.segment_mru = 1000;
    server_opts.session.keepalive_secs = 10;
    let client_opts = TcpclOptions::new("dtn://client/");
    let (client, mut server) = pair(server_opts, client_opts).await;
    assert_eq!(client.peer().node_id, "dtn://server/");
    assert_eq!(server.peer().node_id, "dtn://client/");
    assert_eq!(client.peer().keepalive_secs, 10);
    assert_eq!(client.peer().segment_mru, 1000);

    // 50 KB to a peer with a 1000-byte segment MRU: 50 segments.
    let big: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    let sender = client.sender();
    let send = tokio::spawn({
        let big = big.clone();
        async move { sender.send_bundle(big).await }
    });
    let got = timeout(T, server.recv_bundle()).await.unwrap().unwrap();
    assert_eq!(got.data(), &big[..]);
    // Not acknowledged until the receiver says so.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !send.is_finished(),
        "send completed before the receiver acknowledged"
    );
    let (_bytes, ack) = got.into_parts();
    ack.ack();
    timeout(T, send).await.unwrap().unwrap().unwrap();

    // The other way.
    let mut client = client;
    let sender = server.sender();
    let send = tokio::spawn(async move { sender.send_bundle(b"reply".to_vec()).await });
    let got = timeout(T, client.recv_bundle()).await.unwrap().unwrap();
    assert_eq!(got.data(), b"reply");
    got.into_parts().1.ack();
    timeout(T, send).await.unwrap().unwrap().unwrap();

    // A refused bundle reports the reason to the sender.
    let sender = client.sender();
    let send = tokio::spawn(async move { sender.send_bundle(vec![9; 10]).await });
    let got = timeout(T, server.recv_bundle()).await.unwrap().unwrap();
    got.into_parts().1.refuse(XferRefuseReason::NOT_ACCEPTABLE);
    let err = timeout(T, send).await.unwrap().unwrap().unwrap_err();
    assert!(
        matches!(err, TcpclError::Refused(XferRefuseReason::NOT_ACCEPTABLE)),
        "{err}"
    );

    // Dropping the handle unsettled refuses with "retransmit".
    let sender = client.sender();
    let send = tokio::spawn(async move { sender.send_bundle(vec![8; 10]).await });
    drop(timeout(T, server.recv_bundle()).await.unwrap().unwrap());
    let err = timeout(T, send).await.unwrap().unwrap().unwrap_err();
    assert!(
        matches!(err, TcpclError::Refused(XferRefuseReason::RETRANSMIT)),
        "{err}"
    );

    // Clean end, seen by both sides.
    timeout(T, client.close()).await.unwrap().unwrap();
    let end = timeout(T, server.recv_bundle()).await.unwrap();
    assert!(matches!(end, Err(TcpclError::Closed)), "{:?}", end.err());
}

#[tokio::test]
async fn oversized_bundles_are_refused_by_the_receiver_limit() {
    let mut server_opts = TcpclOptions::new("dtn://server/");
    server_opts.session.transfer_mru = 1000;
    let (client, _server) = pair(server_opts, TcpclOptions::new("dtn://client/")).await;
    let err = client.send_bundle(vec![0; 1001]).await.unwrap_err();
    assert!(matches!(err, TcpclError::Send(_)), "{err}");
    assert!(err.to_string().contains("transfer MRU of 1000"), "{err}");
}

#[tokio::test]
async fn bare_node_names_are_rejected_before_connecting() {
    let err = TcpclSession::connect("127.0.0.1:9", "ferry")
        .await
        .err()
        .unwrap();
    assert!(matches!(err, TcpclError::Config(_)), "{err}");
}

#[tokio::test]
async fn a_non_tcpcl_peer_fails_the_handshake() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let (mut s, _) = listener.accept().await.unwrap();
        let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    });
    let err = timeout(T, TcpclSession::connect(addr, "dtn://client/"))
        .await
        .unwrap()
        .err()
        .unwrap();
    assert!(err.to_string().contains("dtn!"), "{err}");
}
