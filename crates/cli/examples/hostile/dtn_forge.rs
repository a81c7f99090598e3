//! The hostile peer's forgery modes: bundles and acknowledgements in another node's
//! name, and summaries no honest node sends.
//!
//! ```text
//! hostile_peer dtn-forge-source DATA_DIR ADDR COUNT
//! hostile_peer dtn-forge-acks DATA_DIR ADDR DESTINATION_PEER_ID...
//! hostile_peer dtn-ack-flood DATA_DIR ADDR COUNT
//! hostile_peer dtn-ack-bloat DATA_DIR ADDR COUNT
//! hostile_peer dtn-summary-leave DATA_DIR ADDR
//! ```
//!
//! - `dtn-forge-source`: COUNT bundles whose source is the node's own
//!   `dtn://TARGET/text`, for a peer that is nowhere; the first made at the far end
//!   of time (`u64::MAX` ms, sequence `u64::MAX`), the others now. None is signed
//!   (only the target's key could).
//! - `dtn-forge-acks`: asks the node's summary, then claims every bundle it holds
//!   delivered: for each DESTINATION and for itself, one ack without a signature,
//!   one signed by this peer in the destination's name, one signed by this peer as
//!   destination; all in one summary.
//! - `dtn-ack-flood`: COUNT fake acks for made-up bundles, this peer as their
//!   destination, expiring at the far end of time, in summaries of
//!   [`ACKS_PER_SUMMARY`]; all carry one signature (valid for the first only), as
//!   a cheap flood would.
//! - `dtn-ack-bloat`: COUNT acks each validly signed by this peer as destination,
//!   with ids as long as the node accepts (1 KiB sources), meant to grow the
//!   node's own summary past the frame; then 40 summaries at once (a flood); then
//!   asks the node's summary and reports its encoded size (`sent`'s last entry,
//!   `bytes`).
//! - `dtn-summary-leave`: speaks `/ferry/dtn/1` outbound only, so the node's own
//!   summary request fails and the node ends the DTN contact while the connection
//!   stays; then, [`LEAVE_ROUNDS`] times: a summary of 100,000 ids out of order,
//!   [`LINGER`], a hang-up, and a new connection. A node that reads a summary from
//!   a peer with no open contact re-creates a contact that nothing ever frees.
//!
//! The modes that send acks stay connected [`LINGER`] after their last summary, so
//! the node reads it while the contact is open.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use ferry_core::dtn::wire::{DtnRequest, DtnResponse};
use ferry_core::dtn::{
    Ack, Bundle, BundleId, CreationTimestamp, Eid, NewBundle, NodeId, Priority, Summary,
    dtn_ms_from_unix_ms,
};
use ferry_net::libp2p::PeerId;
use ferry_net::libp2p::request_response::ProtocolSupport;

use super::{Contact, Outcome, Report, Sent, bundle_frame, frame};

/// Acks per summary: 20,000 short ones are ~4 MB, well inside a frame.
const ACKS_PER_SUMMARY: usize = 20_000;
/// Long acks per summary: 10,000 of ~1.2 KB, inside a 16 MiB frame.
const LONG_ACKS_PER_SUMMARY: usize = 10_000;
/// Summaries the bloat mode fires at once.
const SUMMARY_FLOOD: usize = 40;
/// How long the ack modes stay connected after their last summary.
const LINGER: std::time::Duration = std::time::Duration::from_secs(3);
/// Longest the bloat mode waits for the node's summary to stop growing.
const SETTLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(70);
/// Connections `dtn-summary-leave` makes.
const LEAVE_ROUNDS: usize = 2;
/// How often a summary turned away by the node's rate limit is sent again.
const LIMIT_RETRIES: usize = 10;
/// Ids in the summary `dtn-summary-leave` hangs up after.
const LEAVE_IDS: u64 = 100_000;

/// How a mode speaks `/ferry/dtn/1`: `dtn-summary-leave` only asks, never answers.
pub(super) fn support(mode: &str) -> ProtocolSupport {
    if mode == "dtn-summary-leave" {
        ProtocolSupport::Outbound
    } else {
        ProtocolSupport::Full
    }
}

pub(super) async fn run(
    mode: &str,
    contact: &mut Contact,
    rest: &[String],
) -> anyhow::Result<Report> {
    match (mode, rest) {
        ("dtn-forge-source", [count]) => forge_source(contact, count.parse()?).await,
        ("dtn-forge-acks", destinations) => {
            let destinations = destinations
                .iter()
                .map(|d| d.parse::<PeerId>().context("DESTINATION is not a peer id"))
                .collect::<anyhow::Result<Vec<_>>>()?;
            forge_acks(contact, &destinations).await
        }
        ("dtn-ack-flood", [count]) => ack_flood(contact, count.parse()?, false).await,
        ("dtn-ack-bloat", [count]) => ack_flood(contact, count.parse()?, true).await,
        ("dtn-summary-leave", []) => summary_leave(contact).await,
        _ => bail!(
            "usage: hostile_peer dtn-forge-source DATA_DIR ADDR COUNT | dtn-forge-acks DATA_DIR ADDR PEER_ID... | dtn-ack-flood|dtn-ack-bloat DATA_DIR ADDR COUNT | dtn-summary-leave DATA_DIR ADDR"
        ),
    }
}

fn dtn_now() -> anyhow::Result<u64> {
    Ok(dtn_ms_from_unix_ms(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)?
            .as_millis()
            .try_into()?,
    ))
}

async fn forge_source(contact: &mut Contact, count: u64) -> anyhow::Result<Report> {
    let victim = contact.target;
    let nowhere = PeerId::random();
    let now = dtn_now()?;
    let mut sent = Vec::new();
    for k in 0..count {
        let created = match k {
            0 => CreationTimestamp {
                time: u64::MAX,
                seq: u64::MAX,
            },
            k => CreationTimestamp { time: now, seq: k },
        };
        let bundle = Bundle::new(NewBundle {
            source: Eid::for_peer(&victim, "text")?,
            destination: Eid::for_peer(&nowhere, "text")?,
            created,
            lifetime_ms: 3_600_000,
            priority: Priority::Normal,
            payload: vec![0x46; 20_000],
        })?;
        let bytes = bundle.to_bytes();
        let what = format!("forged {}", bundle.id());
        let len = bytes.len();
        let mut entry = contact.exchange("forged", len, bundle_frame(bytes)).await;
        entry.what = what;
        sent.push(entry);
    }
    Ok(Report {
        sent,
        ..contact.report()
    })
}

/// The node's summary, asked for (again after a pause while its rate limit turns
/// the request away), and its encoded size.
async fn their_summary(contact: &mut Contact) -> anyhow::Result<(Summary, usize)> {
    let mut last_failure = String::new();
    for _ in 0..=LIMIT_RETRIES {
        let id = contact.send(frame(&DtnRequest::Summary(Summary::default())));
        let outcome = loop {
            let (done, outcome) = contact.next_outcome().await?;
            if done == id {
                break outcome;
            }
        };
        match outcome {
            Outcome::Answered(DtnResponse::Summary(summary)) => {
                let size = postcard::to_stdvec(&summary)?.len();
                return Ok((summary, size));
            }
            Outcome::Answered(other) => bail!("the node answered a summary with {other:?}"),
            Outcome::Failed(e) => last_failure = e,
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    bail!("the node did not answer the summary: {last_failure}")
}

async fn forge_acks(contact: &mut Contact, destinations: &[PeerId]) -> anyhow::Result<Report> {
    let (theirs, _) = their_summary(contact).await?;
    let me = contact.local();
    let far = u64::MAX;
    let mut acks = Vec::new();
    for id in &theirs.holds {
        for peer in destinations.iter().chain([&me]) {
            let destination = NodeId::from_peer(peer);
            acks.push(Ack {
                id: id.clone(),
                destination: destination.clone(),
                expires_at: far,
                signature: None,
            });
            // Signed with this peer's key, whoever the destination is: only the
            // one naming this peer checks out.
            let mut signed =
                Ack::signed(&contact.keypair, id.clone(), NodeId::from_peer(&me), far)?;
            signed.destination = destination;
            acks.push(signed);
        }
    }
    let count = acks.len();
    let summary = Summary {
        acks,
        ..Summary::default()
    };
    let mut entry = contact
        .exchange("forged acks", count, frame(&DtnRequest::Summary(summary)))
        .await;
    entry.what = format!(
        "{count} forged acks for {} held bundles",
        theirs.holds.len()
    );
    contact.wait_hangup(LINGER).await;
    Ok(Report {
        sent: vec![entry],
        ..contact.report()
    })
}

/// A made-up bundle id; `long` gives it a source of 1,000 characters.
fn made_up_id(k: usize, long: bool) -> anyhow::Result<BundleId> {
    let node = if long {
        format!("{:x<1000}", format!("n{k}"))
    } else {
        format!("n{k}")
    };
    Ok(BundleId::new(
        Eid::dtn(&node, "x")?,
        CreationTimestamp {
            time: k as u64,
            seq: 0,
        },
    ))
}

async fn ack_flood(contact: &mut Contact, count: usize, long: bool) -> anyhow::Result<Report> {
    let me = NodeId::from_peer(&contact.local());
    let per_summary = if long {
        LONG_ACKS_PER_SUMMARY
    } else {
        ACKS_PER_SUMMARY
    };
    let mut sent = Vec::new();
    let first = Ack::signed(&contact.keypair, made_up_id(0, long)?, me.clone(), u64::MAX)?;
    let mut k = 0;
    while k < count {
        let batch = per_summary.min(count - k);
        let acks = (k..k + batch)
            .map(|i| {
                let id = made_up_id(i, long)?;
                Ok(if long {
                    Ack::signed(&contact.keypair, id, me.clone(), u64::MAX)?
                } else {
                    Ack {
                        id,
                        ..first.clone()
                    }
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        k += batch;
        let summary = Summary {
            acks,
            ..Summary::default()
        };
        let body = frame(&DtnRequest::Summary(summary));
        sent.push(exchange_within_limit(contact, "acks", body).await);
    }
    if long {
        // A burst of summaries at once: the node may read a few, not all.
        let started = Instant::now();
        let ids: Vec<_> = (0..SUMMARY_FLOOD)
            .map(|_| contact.send(frame(&DtnRequest::Summary(Summary::default()))))
            .collect();
        let mut answered = 0;
        let mut pending = ids.len();
        while pending > 0 {
            let (done, outcome) = contact.next_outcome().await?;
            if ids.contains(&done) {
                pending -= 1;
                answered += usize::from(matches!(outcome, Outcome::Answered(_)));
            }
        }
        sent.push(Sent {
            what: format!("{SUMMARY_FLOOD} summaries at once"),
            bytes: answered,
            answer: Some(format!("{answered} answered")),
            failure: None,
            ms: started.elapsed().as_millis() as u64,
        });
        // Past the burst, the node's limit lets one through again. The node checks
        // every signature before it keeps an ack (slow in a debug build), so ask
        // until what it says stops growing.
        let started = Instant::now();
        let mut last: Option<(usize, usize)> = None;
        let (answer, bytes, failure) = loop {
            match their_summary(contact).await {
                Ok((summary, size)) => {
                    let now = (summary.acks.len(), size);
                    let settled = last == Some(now) && now.0 > 0;
                    if settled || started.elapsed() > SETTLE_LIMIT {
                        break (Some(format!("summary of {} acks", now.0)), size, None);
                    }
                    last = Some(now);
                }
                Err(e) => break (None, 0, Some(e.to_string())),
            }
            contact.wait_hangup(std::time::Duration::from_secs(2)).await;
        };
        sent.push(Sent {
            what: "the node's summary".into(),
            bytes,
            answer,
            failure,
            ms: started.elapsed().as_millis() as u64,
        });
    }
    contact.wait_hangup(LINGER).await;
    Ok(Report {
        sent,
        ..contact.report()
    })
}

/// Sends a summary, again after a pause while the node's rate limit turns it away
/// (it drops such a request unanswered), at most [`LIMIT_RETRIES`] times.
async fn exchange_within_limit(contact: &mut Contact, what: &'static str, body: Vec<u8>) -> Sent {
    let len = body.len();
    let mut entry = contact.exchange(what, len, body.clone()).await;
    for _ in 0..LIMIT_RETRIES {
        if entry.answer.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        entry = contact.exchange(what, len, body.clone()).await;
    }
    entry
}

async fn summary_leave(contact: &mut Contact) -> anyhow::Result<Report> {
    // Descending: out of order, so the node cannot take them in one go.
    let holds = (0..LEAVE_IDS)
        .rev()
        .map(|k| made_up_id(k as usize, false))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let body = frame(&DtnRequest::Summary(Summary {
        holds,
        ..Summary::default()
    }));
    let len = body.len();
    let mut sent = Vec::new();
    for round in 0..LEAVE_ROUNDS {
        if round > 0 {
            contact.dial().await?;
        }
        // Time for the node's summary request to fail here, and its contact to end.
        contact.wait_hangup(LINGER).await;
        sent.push(
            contact
                .exchange("summary after the contact ended", len, body.clone())
                .await,
        );
        contact.wait_hangup(LINGER).await;
        let _ = contact.swarm.disconnect_peer_id(contact.target);
        contact.wait_hangup(std::time::Duration::from_secs(5)).await;
    }
    Ok(Report {
        sent,
        ..contact.report()
    })
}
