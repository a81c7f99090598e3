//! Text for people: message lines, tables, times, sizes. Everything a remote peer
//! chose (names, message text, file names) passes through [`printable`] first, so
//! it cannot drive the terminal with escape sequences.

pub(crate) mod dtn;
pub(crate) mod settings;

use chrono::{DateTime, Local};
use ferry_node::control::types::{
    BlobEntry, ChannelInfo, ConnectReply, Connection, ContentKind, FindReply, GetResult, IdInfo,
    JobKind, JobState, JobStatus, LeaveReply, MessageView, NatInfo, PeerInfo, ShareResult,
    StorageInfo,
};
use unicode_width::UnicodeWidthStr;

use crate::commands::StatusReport;

/// How many hex digits of a content id `ferry ls` shows; `ferry rm` takes them.
pub(crate) const SHORT_CONTENT_ID: usize = 12;

/// `[2026-11-27 14:03:05] ana (12D3Koo…abcd): hello`, in local time. Further
/// lines of a multi-line message are indented so they stay visibly one message.
pub(crate) fn message_line(message: &MessageView) -> String {
    let text = printable(&message.text, true).replace('\n', "\n    ");
    format!(
        "[{}] {} ({}): {text}",
        local_time(message.timestamp_ms),
        printable(&message.author_name, false),
        short_id(&message.author),
    )
}

pub(crate) fn id_text(id: &IdInfo) -> String {
    let mut text = format!(
        "peer id   {}\nname      {}\ndata dir  {}\nversion   {}\nstorage   {}\nlistening on\n",
        id.peer_id,
        printable(&id.name, false),
        id.data_dir,
        id.version,
        storage_text(&id.storage),
    );
    if id.listen_addrs.is_empty() {
        text.push_str("  (no addresses yet)\n");
    }
    for addr in &id.listen_addrs {
        text.push_str(&format!("  {addr}\n"));
    }
    text
}

/// `ok, 1.2 GiB free` or `full, 3.0 MiB free: WHAT FAILED`.
fn storage_text(storage: &StorageInfo) -> String {
    let mut text = storage.state.to_string();
    if let Some(free) = storage.free_bytes {
        text.push_str(&format!(", {} free", human_bytes(free)));
    }
    if let Some(problem) = &storage.problem {
        text.push_str(&format!(": {}", printable(problem, false)));
    }
    text
}

pub(crate) fn peers_table(peers: &[PeerInfo]) -> String {
    if peers.is_empty() {
        return "no peers known yet\n".to_owned();
    }
    let rows = peers.iter().map(|peer| {
        let status = if peer.connected {
            match peer.rtt_ms {
                Some(rtt) => format!("connected, {rtt} ms"),
                None => "connected".to_owned(),
            }
        } else {
            format!("seen {}", ago(peer.last_seen_ms_ago))
        };
        // The address in use says the most; the others are what could be dialled.
        let mut addrs: Vec<&str> = peer.connected_via.iter().map(String::as_str).collect();
        addrs.extend(
            peer.addrs
                .iter()
                .map(String::as_str)
                .filter(|addr| Some(*addr) != peer.connected_via.as_deref()),
        );
        vec![
            short_id(&peer.peer_id),
            peer.name
                .as_deref()
                .map_or("-".to_owned(), |name| printable(name, false)),
            peer.sources
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(","),
            status,
            addrs.join(" "),
        ]
    });
    table(&["PEER", "NAME", "FOUND VIA", "STATUS", "ADDRESSES"], rows)
}

/// What `ferry connect` prints.
pub(crate) fn connect_line(reply: &ConnectReply) -> String {
    format!(
        "connected to {} via {}\n",
        printable(&reply.peer_id, false),
        printable(&reply.connected_via, false)
    )
}

/// The line `ferry chat` starts with, on stderr.
pub(crate) fn chat_banner(channel: &str, name: &str, peer_id: &str) -> String {
    format!(
        "-- #{} as {} ({}); type a message and press Enter, /quit leaves --",
        printable(channel, false),
        printable(name, false),
        short_id(peer_id)
    )
}

/// What `/help` in `ferry chat` prints.
pub(crate) const CHAT_HELP: &str = "-- type a message and press Enter; /quit (or Ctrl-D) leaves --";

/// The text beside a job's progress bar: its phase and, for a download,
/// how many providers still send.
pub(crate) fn progress_message(status: &JobStatus) -> String {
    let phase = printable(&status.phase, false);
    if status.kind != JobKind::Get {
        return phase;
    }
    match status.providers.iter().filter(|p| !p.dropped).count() {
        1 => format!("{phase} · 1 peer"),
        n => format!("{phase} · {n} peers"),
    }
}

/// What `ferry find` prints: whom it reached, how, over which address, how
/// long it took, and every address the lookup turned up.
pub(crate) fn find_text(find: &FindReply) -> String {
    let mut text = format!(
        "found      {}\nconnected  {} via {}\ntook       {}\n",
        find.peer_id,
        connection_words(find.connection),
        printable(&find.connected_via, false),
        millis(find.elapsed_ms),
    );
    if find.connection == "relayed" {
        text.push_str(
            "           (a hole punch may still make it direct; `ferry nat` shows how it is connected now)\n",
        );
    }
    text.push_str("addresses\n");
    if find.addrs.is_empty() {
        text.push_str("  (none besides the one connected over)\n");
    }
    for addr in &find.addrs {
        text.push_str(&format!("  {}\n", printable(addr, false)));
    }
    text
}

/// What `ferry nat` prints: reachability and the NAT's behaviour first, then
/// the observed addresses, the relays and a table of the connected peers.
pub(crate) fn nat_text(nat: &NatInfo) -> String {
    let reachability = match nat.reachability.as_str() {
        "public" => "public (peers can dial this node)".to_owned(),
        "private" => {
            "private (peers cannot dial this node: it is behind NAT or a firewall)".to_owned()
        }
        "unknown" => "unknown (not enough peers have tried to dial back yet)".to_owned(),
        other => printable(other, false),
    };
    let mapping = match nat.mapping.as_str() {
        "endpoint-independent" => {
            "endpoint-independent (every peer sees the same address: a cone NAT or none; hole punching can work)".to_owned()
        }
        "endpoint-dependent" => {
            "endpoint-dependent (each peer sees another port: a symmetric NAT; connections through it stay relayed)".to_owned()
        }
        "unknown" => "unknown (fewer than two peers have reported this node's address)".to_owned(),
        other => printable(other, false),
    };
    let dht = match nat.dht_mode.as_str() {
        "server" => "server (answers DHT queries)".to_owned(),
        "client" => {
            "client (only asks: a node that is not publicly reachable answers none)".to_owned()
        }
        other => printable(other, false),
    };
    let relay = if nat.relay_server {
        "yes (serves reservations and circuits for nodes behind NAT)"
    } else {
        "no"
    };
    let mut text = format!(
        "reachability  {reachability}\npublic addr   {}\nmapping       {mapping}\nDHT mode      {dht}\nrelay server  {relay}\n",
        nat.public_addr
            .as_deref()
            .map_or("-".to_owned(), |addr| printable(addr, false)),
    );

    text.push_str("\nobserved addresses (this node as each peer sees it)\n");
    if nat.observed.is_empty() {
        text.push_str("  none yet\n");
    } else {
        let rows = nat.observed.iter().map(|o| {
            vec![
                format!("  {}", short_id(&o.by_peer)),
                printable(&o.addr, false),
            ]
        });
        text.push_str(&table(&["  SEEN BY", "ADDRESS"], rows));
    }

    text.push_str("\nrelays in use\n");
    if nat.relays.is_empty() {
        text.push_str("  none\n");
    } else {
        let rows = nat.relays.iter().map(|r| {
            vec![
                format!("  {}", short_id(&r.peer_id)),
                if r.reserved { "reserved" } else { "pending" }.to_owned(),
                r.relayed_addr
                    .as_deref()
                    .map_or("-".to_owned(), |addr| printable(addr, false)),
            ]
        });
        text.push_str(&table(&["  RELAY", "STATE", "RELAYED ADDRESS"], rows));
    }

    text.push_str("\nconnected peers\n");
    if nat.peers.is_empty() {
        text.push_str("  none\n");
    } else {
        let rows = nat.peers.iter().map(|p| {
            vec![
                format!("  {}", short_id(&p.peer_id)),
                p.name
                    .as_deref()
                    .map_or("-".to_owned(), |name| printable(name, false)),
                p.connection.to_string(),
                printable(&p.remote_addr, false),
            ]
        });
        text.push_str(&table(
            &["  PEER", "NAME", "CONNECTION", "REMOTE ADDRESS"],
            rows,
        ));
    }
    text
}

/// `hole-punched` as a person says it.
fn connection_words(connection: Connection) -> &'static str {
    match connection {
        Connection::Lan => "on the LAN",
        Connection::Direct => "directly",
        Connection::HolePunched => "directly, through a hole punch",
        Connection::Relayed => "through a relay",
    }
}

/// `850 ms`, `1.23 s`.
fn millis(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.2} s", ms as f64 / 1000.0)
    }
}

pub(crate) fn channels_table(channels: &[ChannelInfo]) -> String {
    if channels.is_empty() {
        return "no channels joined yet; `ferry chat general` joins one\n".to_owned();
    }
    let rows = channels
        .iter()
        .map(|channel| vec![channel.channel.clone(), channel.messages.to_string()]);
    table(&["CHANNEL", "MESSAGES"], rows)
}

/// What `ferry leave` prints.
pub(crate) fn leave_line(reply: &LeaveReply) -> String {
    if reply.left {
        format!(
            "left #{}; its stored messages stay readable until retention removes them",
            reply.channel
        )
    } else {
        format!("not in #{}: nothing to leave", reply.channel)
    }
}

/// What `ferry share` prints: the ticket alone on the last line, so it can be
/// copied with a triple click.
pub(crate) fn share_text(share: &ShareResult) -> String {
    format!(
        "shared  {} ({})\nid      {}\nticket  (on another node, `ferry get TICKET` fetches it)\n{}\n",
        printable(&share.name, false),
        describe(share.kind, share.files, share.size),
        share.id,
        share.ticket,
    )
}

/// What `ferry get` prints: where it went, how much came over the network from
/// how many peers, and which peers were dropped.
pub(crate) fn get_text(get: &GetResult) -> String {
    let peers = get.providers.iter().filter(|p| p.bytes > 0).count();
    let from = match peers {
        0 => String::new(),
        1 => " from 1 peer".to_owned(),
        n => format!(" from {n} peers"),
    };
    let fetched = if get.fetched_bytes == 0 {
        "nothing: this node already had all of it".to_owned()
    } else if get.fetched_bytes >= get.size {
        format!("{}{from}", human_bytes(get.fetched_bytes))
    } else {
        format!(
            "{}{from}; the other {} was already here",
            human_bytes(get.fetched_bytes),
            human_bytes(get.size - get.fetched_bytes)
        )
    };
    let mut text = format!(
        "wrote   {} ({})\nid      {}\nfetched {fetched}\n",
        printable(&get.output, false),
        describe(get.kind, get.files, get.size),
        get.id,
    );
    for peer in get.providers.iter().filter(|p| p.dropped) {
        text.push_str(&format!(
            "dropped {} (it sent bad data or failed too often)\n",
            short_id(&peer.peer_id)
        ));
    }
    text
}

/// `file, 3.1 MiB` or `folder, 12 files, 3.1 MiB`.
fn describe(kind: ContentKind, files: u64, size: u64) -> String {
    let size = human_bytes(size);
    match (kind, files) {
        (ContentKind::Collection, 1) => format!("folder, 1 file, {size}"),
        (ContentKind::Collection, n) => format!("folder, {n} files, {size}"),
        (ContentKind::Blob, _) => format!("file, {size}"),
    }
}

pub(crate) fn blobs_table(blobs: &[BlobEntry]) -> String {
    if blobs.is_empty() {
        return "the store is empty; `ferry share PATH` adds a file or folder\n".to_owned();
    }
    let rows = blobs.iter().map(|blob| {
        let state = if blob.complete {
            "complete".to_owned()
        } else {
            format!("partial {}%", percent(blob.verified_bytes, blob.size))
        };
        vec![
            blob.id.chars().take(SHORT_CONTENT_ID).collect(),
            match blob.kind {
                ContentKind::Collection => "folder".to_owned(),
                ContentKind::Blob => "file".to_owned(),
            },
            blob.name
                .as_deref()
                .map_or("-".to_owned(), |name| printable(name, false)),
            human_bytes(blob.size),
            state,
            if blob.pinned { "yes" } else { "no" }.to_owned(),
            blob.in_place
                .as_deref()
                .map_or(String::new(), |path| printable(path, false)),
        ]
    });
    table(
        &["ID", "KIND", "NAME", "SIZE", "STATE", "PINNED", "IN PLACE"],
        rows,
    )
}

/// Whole percent, rounded down so that partial content never shows 100 %.
fn percent(part: u64, whole: u64) -> u64 {
    if whole == 0 {
        return 0;
    }
    (u128::from(part.min(whole)) * 100 / u128::from(whole)) as u64
}

/// `512 B`, `1.5 KiB`, `3.1 MiB`: binary units, as the progress bars use.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Columns padded to their widest cell, measured in terminal columns (a CJK
/// character or an emoji takes two); the last one is left ragged so long address
/// lists do not pad every line.
fn table(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let mut lines: Vec<Vec<String>> = vec![header.iter().map(|h| (*h).to_owned()).collect()];
    lines.extend(rows);
    let mut widths = vec![0; header.len()];
    for line in &lines {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.width());
        }
    }
    let mut text = String::new();
    for line in &lines {
        let last = line.len() - 1;
        for (i, cell) in line.iter().enumerate() {
            if i == last {
                text.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.width());
                text.push_str(cell);
                text.push_str(&" ".repeat(pad + 2));
            }
        }
        // An empty last cell would leave the padding behind it.
        text.truncate(text.trim_end_matches(' ').len());
        text.push('\n');
    }
    text
}

/// `12D3Koo…abcd`: enough to tell peers apart at a glance.
pub(crate) fn short_id(peer_id: &str) -> String {
    let chars: Vec<char> = peer_id.chars().collect();
    if chars.len() <= 12 {
        return peer_id.to_owned();
    }
    let head: String = chars[..7].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

/// Local wall-clock time of a Unix timestamp in milliseconds.
fn local_time(timestamp_ms: u64) -> String {
    i64::try_from(timestamp_ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .map_or_else(
            || "????-??-?? ??:??:??".to_owned(),
            |time| {
                time.with_timezone(&Local)
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string()
            },
        )
}

fn ago(ms: u64) -> String {
    let secs = ms / 1000;
    match secs {
        0..60 => format!("{secs}s ago"),
        60..3600 => format!("{}m ago", secs / 60),
        3600..86400 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86400),
    }
}

/// Replaces control characters (escape sequences start with one) and bidi
/// overrides (which make text read differently than it is) with U+FFFD.
/// `keep_newlines` lets message text keep its line breaks and tabs.
pub(crate) fn printable(text: &str, keep_newlines: bool) -> String {
    text.chars()
        .map(|c| {
            let allowed = keep_newlines && (c == '\n' || c == '\t');
            let bidi = matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
            if (c.is_control() && !allowed) || bidi {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

/// `ferry jobs`: each transfer, its state and progress.
pub(crate) fn jobs_table(jobs: &[JobStatus]) -> String {
    if jobs.is_empty() {
        return "no transfers since the node started\n".to_owned();
    }
    let rows = jobs.iter().map(|job| {
        let progress = match job.total_bytes {
            Some(total) => format!(
                "{} / {} ({}%)",
                human_bytes(job.done_bytes),
                human_bytes(total),
                percent(job.done_bytes, total)
            ),
            None => human_bytes(job.done_bytes),
        };
        let state = match job.state {
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        };
        let what = job
            .error
            .as_deref()
            .map_or_else(|| printable(&job.phase, false), |e| printable(e, false));
        vec![
            job.job.to_string(),
            job.kind.to_string(),
            state.to_owned(),
            progress,
            what,
        ]
    });
    table(&["ID", "KIND", "STATE", "PROGRESS", "PHASE"], rows)
}

/// What `ferry jobs cancel` prints.
pub(crate) fn cancelled_line(job: &JobStatus, keep: bool) -> String {
    let kept = if keep {
        "; its partial data is kept, and `ferry get` of the same ticket resumes from it"
    } else {
        "; its partial data is removed"
    };
    format!(
        "cancelled job {} after {}{kept}\n",
        job.job,
        human_bytes(job.done_bytes)
    )
}

/// `ferry status`: the node on one screen.
pub(crate) fn status_text(status: &StatusReport) -> String {
    let id = &status.id;
    let nat = &status.nat;
    let mut text = format!(
        "node      {} ({})\nversion   {}\nstorage   {}\n",
        printable(&id.name, false),
        id.peer_id,
        id.version,
        storage_text(&id.storage),
    );
    text.push_str("listening\n");
    if id.listen_addrs.is_empty() {
        text.push_str("  (no addresses yet)\n");
    }
    for addr in &id.listen_addrs {
        text.push_str(&format!("  {addr}\n"));
    }
    let external: Vec<&str> = nat
        .public_addr
        .iter()
        .map(String::as_str)
        .chain(nat.relays.iter().filter_map(|r| r.relayed_addr.as_deref()))
        .collect();
    if !external.is_empty() {
        text.push_str("reachable from outside at\n");
        for addr in external {
            text.push_str(&format!("  {}\n", printable(addr, false)));
        }
    }
    text.push_str(&format!(
        "NAT       {}, mapping {}, DHT {}{}\n",
        nat.reachability,
        nat.mapping,
        nat.dht_mode,
        if nat.relay_server {
            ", serving as a relay"
        } else {
            ""
        },
    ));
    let connected: usize = status.connected.values().map(Vec::len).sum();
    text.push_str(&format!(
        "peers     {connected} connected, {} known but not connected\n",
        status.known_not_connected
    ));
    for (how, peers) in &status.connected {
        let names: Vec<String> = peers
            .iter()
            .map(|p| match &p.name {
                Some(name) => format!("{} ({})", printable(name, false), short_id(&p.peer_id)),
                None => short_id(&p.peer_id),
            })
            .collect();
        text.push_str(&format!(
            "  {}: {}\n",
            connection_words(*how),
            names.join(", ")
        ));
    }
    let channels: Vec<String> = status
        .channels
        .iter()
        .map(|c| format!("#{} ({})", printable(&c.channel, false), c.messages))
        .collect();
    text.push_str(&format!(
        "channels  {}\n",
        if channels.is_empty() {
            "none".to_owned()
        } else {
            channels.join(", ")
        }
    ));
    if status.jobs.is_empty() {
        text.push_str("transfers none running\n");
    } else {
        text.push_str("transfers\n");
        for line in jobs_table(&status.jobs).lines() {
            text.push_str(&format!("  {line}\n"));
        }
    }
    let dtn = &status.dtn;
    text.push_str(&format!(
        "DTN       {} bundles held, {} of {} quota; {} in the inbox; {} contacts; strategy {}\n",
        dtn.bundles,
        human_bytes(dtn.bytes_held),
        human_bytes(dtn.quota_bytes),
        dtn.inbox,
        dtn.contacts_connected,
        printable(&dtn.strategy, false),
    ));
    text
}

#[cfg(test)]
mod tests {
    use ferry_node::control::types::{
        DhtMode, Mapping, ProviderProgress, Reachability, StorageState,
    };

    #[test]
    fn connect_and_chat_lines_filter_what_they_show() {
        let reply = ConnectReply {
            peer_id: "12D3KooWabcdefgh1234".into(),
            connected_via: "/dns4/evil\u{1b}[2J.example/tcp/1".into(),
        };
        assert_eq!(
            connect_line(&reply),
            "connected to 12D3KooWabcdefgh1234 via /dns4/evil\u{fffd}[2J.example/tcp/1\n"
        );
        assert_eq!(
            chat_banner("news", "ana\u{202e}", "12D3KooWabcdefgh1234"),
            "-- #news as ana\u{fffd} (12D3Koo…1234); type a message and press Enter, /quit leaves --"
        );
    }

    #[test]
    fn progress_counts_the_peers_still_sending() {
        let mut status = job(1, JobState::Running, 0, None);
        assert_eq!(progress_message(&status), "fetching\u{fffd}[2J · 0 peers");
        let provider = |dropped| ProviderProgress {
            peer_id: "p".into(),
            bytes: 0,
            dropped,
        };
        status.providers = vec![provider(false), provider(true)];
        assert_eq!(progress_message(&status), "fetching\u{fffd}[2J · 1 peer");
        status.providers.push(provider(false));
        assert_eq!(progress_message(&status), "fetching\u{fffd}[2J · 2 peers");
        status.kind = JobKind::Share;
        assert_eq!(progress_message(&status), "fetching\u{fffd}[2J");
    }

    use super::*;

    fn message(text: &str, name: &str) -> MessageView {
        MessageView {
            seq: 1,
            id: "ab".repeat(32),
            channel: "general".into(),
            author: "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo".into(),
            author_name: name.into(),
            timestamp_ms: 1_700_000_000_000,
            text: text.into(),
        }
    }

    #[test]
    fn a_message_line_has_time_name_short_id_and_text() {
        let line = message_line(&message("hello", "ana"));
        let expected_time = local_time(1_700_000_000_000);
        assert_eq!(line, format!("[{expected_time}] ana (12D3Koo…e2Xo): hello"));
        assert_eq!(expected_time.len(), "2023-11-14 22:13:20".len());
    }

    #[test]
    fn the_storage_line_says_the_state_the_space_and_what_failed() {
        let mut storage = StorageInfo {
            state: StorageState::Ok,
            problem: None,
            free_bytes: Some(3 << 30),
            reserve_bytes: 64 << 20,
        };
        assert_eq!(
            storage_text(&storage),
            format!("ok, {} free", human_bytes(3 << 30))
        );
        storage.state = StorageState::Full;
        storage.free_bytes = Some(0);
        storage.problem = Some("writing the database: No space left on device".into());
        assert_eq!(
            storage_text(&storage),
            format!(
                "full, {} free: writing the database: No space left on device",
                human_bytes(0)
            )
        );
    }

    #[test]
    fn escape_sequences_from_peers_are_defused() {
        let line = message_line(&message("a\u{1b}[2Jb\nsecond", "e\u{1b}]0;x\u{7}ve\n"));
        assert!(!line.contains('\u{1b}'));
        assert!(!line.contains('\u{7}'));
        assert!(line.contains("a\u{FFFD}[2Jb\n    second"), "{line}");
        assert!(line.contains("e\u{FFFD}]0;x\u{FFFD}ve\u{FFFD} ("), "{line}");
    }

    #[test]
    fn tables_align_all_but_the_last_column() {
        let text = table(
            &["A", "BB", "C"],
            [vec![
                "xxx".to_owned(),
                "y".to_owned(),
                "long tail".to_owned(),
            ]]
            .into_iter(),
        );
        assert_eq!(text, "A    BB  C\nxxx  y   long tail\n");
    }

    #[test]
    fn tables_align_wide_characters_by_their_display_width() {
        let rows = [
            vec![
                "12D3Koo…aaaa".to_owned(),
                "漢字ana".to_owned(),
                "lan".to_owned(),
            ],
            vec![
                "12D3Koo…bbbb".to_owned(),
                "bo🚌".to_owned(),
                "relayed".to_owned(),
            ],
            vec![
                "12D3Koo…cccc".to_owned(),
                "cy".to_owned(),
                "direct".to_owned(),
            ],
        ];
        let text = table(&["PEER", "NAME", "CONNECTION"], rows.into_iter());
        let columns: Vec<usize> = text
            .lines()
            .map(|line| {
                let at = line.rfind("  ").unwrap() + 2;
                line[..at].width()
            })
            .collect();
        // "漢字ana" is 7 columns wide (each ideograph takes two), "bo🚌" 4.
        assert_eq!(columns, [23, 23, 23, 23], "{text}");
        assert!(text.contains("漢字ana  lan\n"), "{text}");
        assert!(text.contains("bo🚌     relayed\n"), "{text}");
    }

    #[test]
    fn sizes_in_binary_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1.0 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 + 100 * 1024), "3.1 MiB");
        assert_eq!(human_bytes(1 << 30), "1.0 GiB");
        assert_eq!(human_bytes(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn partial_content_never_shows_100_percent() {
        assert_eq!(percent(999, 1000), 99);
        assert_eq!(percent(1000, 1000), 100);
        assert_eq!(percent(0, 0), 0);
        assert_eq!(percent(u64::MAX - 1, u64::MAX), 99);
    }

    fn blob(complete: bool, in_place: Option<&str>) -> BlobEntry {
        BlobEntry {
            id: "ab".repeat(32),
            kind: ContentKind::Blob,
            name: Some("big\u{1b}[2J.iso".into()),
            size: 4 << 20,
            complete,
            verified_bytes: if complete { 4 << 20 } else { 1 << 20 },
            pinned: complete,
            in_place: in_place.map(str::to_owned),
        }
    }

    #[test]
    fn the_store_table_shows_short_ids_state_and_in_place_paths() {
        let text = blobs_table(&[blob(true, Some("/srv/big.iso")), blob(false, None)]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("ID "), "{text}");
        assert!(lines[1].starts_with("abababababab  file"), "{text}");
        assert!(lines[1].contains("4.0 MiB"), "{text}");
        assert!(lines[1].contains("complete"), "{text}");
        assert!(lines[1].ends_with("yes     /srv/big.iso"), "{text}");
        assert!(lines[2].contains("partial 25%"), "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(blobs_table(&[]).contains("ferry share"));
    }

    #[test]
    fn the_ticket_is_alone_on_the_last_line() {
        let share = ShareResult {
            id: "cd".repeat(32),
            kind: ContentKind::Collection,
            name: "photos".into(),
            size: 3 << 20,
            files: 12,
            ticket: "ferry1ticket".into(),
        };
        let text = share_text(&share);
        assert_eq!(text.lines().last(), Some("ferry1ticket"), "{text}");
        assert!(
            text.contains("photos (folder, 12 files, 3.0 MiB)"),
            "{text}"
        );
        assert!(text.contains(&"cd".repeat(32)), "{text}");
    }

    fn provider(peer_id: &str, bytes: u64, dropped: bool) -> ProviderProgress {
        ProviderProgress {
            peer_id: peer_id.into(),
            bytes,
            dropped,
        }
    }

    #[test]
    fn get_says_what_came_over_the_network() {
        let mut get = GetResult {
            id: "ef".repeat(32),
            kind: ContentKind::Blob,
            output: "/home/ana/big.iso".into(),
            size: 4 << 20,
            files: 1,
            fetched_bytes: 4 << 20,
            providers: ["a", "b", "c", "d"]
                .map(|peer| provider(peer, 1 << 20, false))
                .into(),
        };
        let text = get_text(&get);
        assert!(
            text.contains("wrote   /home/ana/big.iso (file, 4.0 MiB)"),
            "{text}"
        );
        assert!(text.contains("fetched 4.0 MiB from 4 peers\n"), "{text}");
        assert!(!text.contains("dropped"), "{text}");

        get.fetched_bytes = 1 << 20;
        get.providers = vec![
            provider("12D3KooWgoodgoodgood1234", 1 << 20, false),
            provider("12D3KooWbadbadbadbad9876", 0, true),
        ];
        let text = get_text(&get);
        assert!(
            text.contains("fetched 1.0 MiB from 1 peer; the other 3.0 MiB was already here"),
            "{text}"
        );
        assert!(
            text.ends_with("dropped 12D3Koo…9876 (it sent bad data or failed too often)\n"),
            "{text}"
        );

        get.fetched_bytes = 0;
        get.providers.clear();
        assert!(get_text(&get).contains("fetched nothing"));
    }

    #[test]
    fn find_says_how_and_how_long() {
        let mut find = FindReply {
            peer_id: "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo".into(),
            addrs: vec!["/ip4/10.80.0.2/udp/4001/quic-v1".into()],
            connected_via: "/ip4/10.80.0.1/udp/4001/quic-v1/p2p/R/p2p-circuit".into(),
            connection: Connection::Relayed,
            elapsed_ms: 1234,
        };
        let text = find_text(&find);
        assert!(text.starts_with("found      12D3KooWQY"), "{text}");
        assert!(
            text.contains("connected  through a relay via /ip4/10.80.0.1/"),
            "{text}"
        );
        assert!(text.contains("took       1.23 s\n"), "{text}");
        assert!(text.contains("ferry nat"), "{text}");
        assert!(
            text.ends_with("addresses\n  /ip4/10.80.0.2/udp/4001/quic-v1\n"),
            "{text}"
        );
        find.connection = Connection::HolePunched;
        find.elapsed_ms = 80;
        find.addrs.clear();
        let text = find_text(&find);
        assert!(text.contains("directly, through a hole punch"), "{text}");
        assert!(text.contains("took       80 ms"), "{text}");
        assert!(!text.contains("ferry nat"), "{text}");
        assert!(text.contains("(none besides"), "{text}");
    }

    fn nat(relay_server: bool) -> NatInfo {
        use ferry_node::control::types::{ObservedAddr, PeerPath, RelayInfo};
        NatInfo {
            reachability: Reachability::Private,
            public_addr: None,
            observed: vec![
                ObservedAddr {
                    by_peer: "12D3KooWaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1111".into(),
                    addr: "/ip4/10.80.0.11/udp/4001/quic-v1".into(),
                },
                ObservedAddr {
                    by_peer: "12D3KooWbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb2222".into(),
                    addr: "/ip4/10.80.0.11/udp/4001/quic-v1".into(),
                },
            ],
            mapping: Mapping::EndpointIndependent,
            dht_mode: DhtMode::Client,
            relay_server,
            relays: vec![RelayInfo {
                peer_id: "12D3KooWaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1111".into(),
                relayed_addr: Some("/ip4/10.80.0.1/tcp/4001/p2p/A/p2p-circuit/p2p/US".into()),
                reserved: true,
            }],
            peers: vec![
                PeerPath {
                    peer_id: "12D3KooWaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1111".into(),
                    name: Some("relay\u{1b}[2J".into()),
                    connection: Connection::Direct,
                    remote_addr: "/ip4/10.80.0.1/tcp/4001".into(),
                },
                PeerPath {
                    peer_id: "12D3KooWbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb2222".into(),
                    name: None,
                    connection: Connection::HolePunched,
                    remote_addr: "/ip4/10.80.0.12/udp/4001/quic-v1".into(),
                },
            ],
        }
    }

    #[test]
    fn nat_shows_every_part() {
        let text = nat_text(&nat(false));
        assert!(text.starts_with("reachability  private ("), "{text}");
        assert!(text.contains("public addr   -\n"), "{text}");
        assert!(
            text.contains("mapping       endpoint-independent ("),
            "{text}"
        );
        assert!(text.contains("DHT mode      client ("), "{text}");
        assert!(text.contains("relay server  no\n"), "{text}");
        assert!(
            text.contains("  12D3Koo…1111  /ip4/10.80.0.11/udp/4001/quic-v1\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "  12D3Koo…1111  reserved  /ip4/10.80.0.1/tcp/4001/p2p/A/p2p-circuit/p2p/US\n"
            ),
            "{text}"
        );
        let peer_lines: Vec<&str> = text
            .lines()
            .skip_while(|l| *l != "connected peers")
            .collect();
        assert_eq!(peer_lines.len(), 4, "{text}");
        assert!(peer_lines[1].starts_with("  PEER "), "{text}");
        assert!(peer_lines[2].contains("direct"), "{text}");
        assert!(
            peer_lines[3].ends_with("hole-punched  /ip4/10.80.0.12/udp/4001/quic-v1"),
            "{text}"
        );
        assert!(!text.contains('\u{1b}'), "{text}");

        let mut empty = nat(true);
        empty.observed.clear();
        empty.relays.clear();
        empty.peers.clear();
        empty.reachability = Reachability::Public;
        empty.public_addr = Some("/ip4/10.80.0.1/tcp/4001".into());
        empty.dht_mode = DhtMode::Server;
        empty.mapping = Mapping::Unknown;
        let text = nat_text(&empty);
        assert!(
            text.contains("public addr   /ip4/10.80.0.1/tcp/4001\n"),
            "{text}"
        );
        assert!(text.contains("relay server  yes ("), "{text}");
        assert!(text.contains("DHT mode      server ("), "{text}");
        assert!(text.contains("none yet"), "{text}");
        assert!(text.ends_with("connected peers\n  none\n"), "{text}");
    }

    #[test]
    fn short_ids_keep_both_ends() {
        assert_eq!(short_id("12D3KooWabcdefgh1234"), "12D3Koo…1234");
        assert_eq!(short_id("short"), "short");
    }

    fn job(job: u64, state: JobState, done: u64, total: Option<u64>) -> JobStatus {
        JobStatus {
            job,
            kind: JobKind::Get,
            state,
            phase: "fetching\u{1b}[2J".into(),
            done_bytes: done,
            total_bytes: total,
            providers: Vec::new(),
            error: None,
            error_kind: None,
            share: None,
            get: None,
        }
    }

    #[test]
    fn the_jobs_table_shows_state_and_progress_and_filters_the_phase() {
        let text = jobs_table(&[
            job(1, JobState::Running, 512 * 1024, Some(2 * 1024 * 1024)),
            job(2, JobState::Cancelled, 0, None),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("ID  KIND  STATE"), "{text}");
        assert!(
            lines[1].contains("running") && lines[1].contains("512.0 KiB / 2.0 MiB (25%)"),
            "{text}"
        );
        assert!(lines[2].contains("cancelled"), "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
        assert_eq!(jobs_table(&[]), "no transfers since the node started\n");
    }

    #[test]
    fn the_cancel_line_says_what_became_of_the_data() {
        let status = job(3, JobState::Cancelled, 2048, None);
        assert!(cancelled_line(&status, false).contains("removed"));
        assert!(cancelled_line(&status, true).contains("kept"));
    }
}
