//! Text for people: message lines, tables, times. Everything a remote peer chose
//! (names, message text) passes through [`printable`] first, so a message cannot
//! drive the terminal with escape sequences.

use chrono::{DateTime, Local};
use ferry_node::control::types::{ChannelInfo, IdInfo, MessageView, PeerInfo};

/// `[2026-11-27 14:03:05] ana (12D3Koo…abcd): hello`, in local time. Further
/// lines of a multi-line message are indented so they stay visibly one message.
pub fn message_line(message: &MessageView) -> String {
    let text = printable(&message.text, true).replace('\n', "\n    ");
    format!(
        "[{}] {} ({}): {text}",
        local_time(message.timestamp_ms),
        printable(&message.author_name, false),
        short_id(&message.author),
    )
}

pub fn id_text(id: &IdInfo) -> String {
    let mut text = format!(
        "peer id   {}\nname      {}\ndata dir  {}\nversion   {}\nlistening on\n",
        id.peer_id,
        printable(&id.name, false),
        id.data_dir,
        id.version
    );
    if id.listen_addrs.is_empty() {
        text.push_str("  (no addresses yet)\n");
    }
    for addr in &id.listen_addrs {
        text.push_str(&format!("  {addr}\n"));
    }
    text
}

pub fn peers_table(peers: &[PeerInfo]) -> String {
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
            peer.sources.join(","),
            status,
            addrs.join(" "),
        ]
    });
    table(&["PEER", "NAME", "FOUND VIA", "STATUS", "ADDRESSES"], rows)
}

pub fn channels_table(channels: &[ChannelInfo]) -> String {
    if channels.is_empty() {
        return "no channels joined yet; `ferry chat general` joins one\n".to_owned();
    }
    let rows = channels
        .iter()
        .map(|channel| vec![channel.channel.clone(), channel.messages.to_string()]);
    table(&["CHANNEL", "MESSAGES"], rows)
}

/// Columns padded to their widest cell; the last one is left ragged so long
/// address lists do not pad every line.
fn table(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let mut lines: Vec<Vec<String>> = vec![header.iter().map(|h| (*h).to_owned()).collect()];
    lines.extend(rows);
    let mut widths = vec![0; header.len()];
    for line in &lines {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for line in &lines {
        let last = line.len() - 1;
        for (i, cell) in line.iter().enumerate() {
            if i == last {
                text.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                text.push_str(cell);
                text.push_str(&" ".repeat(pad + 2));
            }
        }
        text.push('\n');
    }
    text
}

/// `12D3Koo…abcd`: enough to tell peers apart at a glance.
pub fn short_id(peer_id: &str) -> String {
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
fn printable(text: &str, keep_newlines: bool) -> String {
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

#[cfg(test)]
mod tests {
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
    fn short_ids_keep_both_ends() {
        assert_eq!(short_id("12D3KooWabcdefgh1234"), "12D3Koo…1234");
        assert_eq!(short_id("short"), "short");
    }
}
