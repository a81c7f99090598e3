//! What `ferry dtn status` and `ferry dtn inbox` show: the agent's state as plain,
//! serialisable views.

use std::collections::BTreeMap;

use ferry_core::dtn::{Bundle, BundleId, unix_ms_from_dtn_ms};
use ferry_store::StoreError;
use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};

use super::{Dtn, FILE_SERVICE, TEXT_SERVICE, dtn_now};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DtnStatus {
    /// This node's DTN node id, `dtn://PEER_ID/`.
    pub node_id: String,
    pub strategy: String,
    pub bundles: Vec<HeldView>,
    /// Held bundles grouped by destination node: (destination, count, bytes).
    pub by_destination: Vec<(String, u64, u64)>,
    pub bytes_held: u64,
    pub quota_bytes: u64,
    /// Deliveries this node knows of (its own and those it heard of).
    pub acks: u64,
    pub inbox: u64,
    pub contacts: Vec<ContactView>,
    pub received: u64,
    pub delivered: u64,
    pub forwarded: u64,
    pub refused: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeldView {
    pub id: String,
    pub destination: String,
    pub size: u64,
    pub priority: String,
    /// Seconds since the bundle was made (`None` when its source had no clock).
    pub age_secs: Option<u64>,
    pub expires_in_secs: u64,
    /// Made by this node.
    pub own: bool,
    /// Spray-and-wait copies held (1 under other strategies).
    pub copies: u32,
    pub received_from: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContactView {
    pub node: String,
    /// `libp2p` or `tcpcl ADDR`.
    pub via: String,
    pub connected: bool,
    /// The router holds a contact with this node (what it knows the peer holds, the
    /// transfers in flight): exactly while `connected`, never after it left.
    #[serde(default)]
    pub routing: bool,
    pub first_seen_unix_ms: u64,
    pub last_seen_unix_ms: u64,
    pub bundles_sent: u64,
    pub bundles_received: u64,
    /// Summaries read from the peer (applied, or ignored once it had left).
    #[serde(default)]
    pub summaries_received: u64,
}

/// A bundle delivered to this node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InboxItem {
    pub id: String,
    pub source: String,
    pub destination: String,
    pub kind: PayloadKind,
    /// The message, for `text` bundles.
    pub text: Option<String>,
    /// The file's name, for `file` bundles.
    pub file_name: Option<String>,
    /// Payload bytes.
    pub size: u64,
    pub created_unix_ms: Option<u64>,
    pub delivered_unix_ms: u64,
}

/// What a delivered bundle's payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PayloadKind {
    /// A message (`ferry dtn send --text`).
    Text,
    /// A file, with the name its service carries.
    File,
    /// An administrative record from another DTN node.
    StatusReport,
    /// Anything else.
    Data,
}

ferry_core::named_enum!(PayloadKind {
    Text => "text",
    File => "file",
    StatusReport => "status-report",
    Data => "data",
});

/// What a destination's service says the payload is: `(kind, file name)`. A file
/// name is only its last component, so a hostile name cannot point elsewhere.
pub fn payload_kind(service: &str) -> (PayloadKind, Option<String>) {
    if service == TEXT_SERVICE {
        return (PayloadKind::Text, None);
    }
    if let Some(encoded) = service
        .strip_prefix(FILE_SERVICE)
        .and_then(|rest| rest.strip_prefix('/'))
    {
        let decoded = percent_decode_str(encoded).decode_utf8_lossy();
        let name = decoded
            .rsplit(['/', '\\'])
            .next()
            .filter(|n| !n.is_empty() && *n != "." && *n != "..")
            .map(str::to_owned);
        return (PayloadKind::File, name);
    }
    (PayloadKind::Data, None)
}

/// The longest file name `ferry dtn save` writes (most file systems' limit).
const MAX_SAVED_NAME_BYTES: usize = 255;

/// The name `ferry dtn save` writes a file under when the sender chose it: never
/// a hidden file (a leading `.`: `.bashrc`, `.profile` run at login), an option
/// to a command (`-rf`), a home directory (`~`), a path, control or
/// direction-changing characters, or a desktop launcher (`*.desktop` runs a
/// command when opened). Each such character becomes `_`; a launcher gets `.txt`
/// added. Names already safe are returned unchanged.
pub fn safe_file_name(sent: &str) -> String {
    let mut name: String = sent
        .chars()
        .map(|c| {
            let bidi = matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
            if c.is_control() || bidi || matches!(c, '/' | '\\') {
                '_'
            } else {
                c
            }
        })
        .collect();
    let leading = name
        .find(|c: char| !matches!(c, '.' | '-' | '~' | ' '))
        .unwrap_or(name.len());
    name.replace_range(..leading, &"_".repeat(leading));
    if name.to_ascii_lowercase().ends_with(".desktop") {
        name.push_str(".txt");
    }
    if name.is_empty() {
        name.push_str("file");
    }
    if name.len() > MAX_SAVED_NAME_BYTES {
        let mut end = MAX_SAVED_NAME_BYTES;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name.truncate(end);
    }
    name
}

impl Dtn {
    pub fn status(&self) -> Result<DtnStatus, StoreError> {
        let now = dtn_now();
        let inbox = self.store.inbox()?.len() as u64;
        let inner = self.lock();
        let mut by_destination: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        let mut bundles = Vec::new();
        for meta in inner.router.bundles() {
            let entry = by_destination
                .entry(meta.destination.to_string())
                .or_default();
            entry.0 += 1;
            entry.1 += meta.size;
            let created = meta.id.created().time;
            bundles.push(HeldView {
                id: meta.id.to_string(),
                destination: meta.destination.to_string(),
                size: meta.size,
                priority: meta.priority.to_string(),
                age_secs: (created != 0).then(|| now.saturating_sub(created) / 1000),
                expires_in_secs: meta.expires_at.saturating_sub(now) / 1000,
                own: meta.own,
                copies: inner.router.held(&meta.id).map_or(1, |h| h.copies),
                received_from: meta.received_from.as_ref().map(ToString::to_string),
            });
        }
        let routing: std::collections::BTreeSet<&ferry_core::dtn::NodeId> =
            inner.router.contacts().collect();
        let contacts = inner
            .contacts
            .iter()
            .map(|(node, log)| ContactView {
                node: node.to_string(),
                via: log.via.clone(),
                connected: log.up,
                routing: routing.contains(node),
                first_seen_unix_ms: log.first_seen_unix_ms,
                last_seen_unix_ms: log.last_seen_unix_ms,
                bundles_sent: log.sent,
                bundles_received: log.received,
                summaries_received: log.summaries,
            })
            .collect();
        Ok(DtnStatus {
            node_id: self.local.to_string(),
            strategy: inner.router.strategy().to_string(),
            bytes_held: bundles.iter().map(|b| b.size).sum(),
            bundles,
            by_destination: by_destination
                .into_iter()
                .map(|(d, (count, bytes))| (d, count, bytes))
                .collect(),
            quota_bytes: self.quota.max_bytes,
            acks: inner.router.ack_count() as u64,
            inbox,
            contacts,
            received: inner.counters.received,
            delivered: inner.counters.delivered,
            forwarded: inner.counters.forwarded,
            refused: inner.counters.refused,
        })
    }

    /// The inbox, oldest delivery first.
    pub fn inbox(&self) -> Result<Vec<InboxItem>, StoreError> {
        let mut items = Vec::new();
        for entry in self.store.inbox()? {
            let Some(bytes) = self.store.inbox_bytes(&entry.meta.id)? else {
                continue;
            };
            let Ok(bundle) = Bundle::parse(&bytes) else {
                tracing::warn!(bundle = %entry.meta.id, "inbox entry is not a bundle any more; skipped");
                continue;
            };
            items.push(inbox_item(&bundle, unix_ms_from_dtn_ms(entry.delivered_at)));
        }
        Ok(items)
    }

    /// One delivered bundle and its payload.
    pub fn inbox_payload(&self, id: &BundleId) -> Result<Option<(InboxItem, Vec<u8>)>, StoreError> {
        let Some(entry) = self.store.inbox()?.into_iter().find(|e| &e.meta.id == id) else {
            return Ok(None);
        };
        let Some(bytes) = self.store.inbox_bytes(id)? else {
            return Ok(None);
        };
        let Ok(bundle) = Bundle::parse(&bytes) else {
            return Ok(None);
        };
        let item = inbox_item(&bundle, unix_ms_from_dtn_ms(entry.delivered_at));
        Ok(Some((item, bundle.payload().to_vec())))
    }
}

fn inbox_item(bundle: &Bundle, delivered_unix_ms: u64) -> InboxItem {
    let service = bundle.destination().service();
    let (kind, file_name) = if bundle.is_admin_record() {
        (PayloadKind::StatusReport, None)
    } else {
        payload_kind(&service)
    };
    let created = bundle.created().time;
    InboxItem {
        id: bundle.id().to_string(),
        source: bundle.source().to_string(),
        destination: bundle.destination().to_string(),
        kind,
        text: (kind == PayloadKind::Text)
            .then(|| String::from_utf8_lossy(bundle.payload()).into_owned()),
        file_name,
        size: bundle.payload().len() as u64,
        created_unix_ms: (created != 0).then(|| unix_ms_from_dtn_ms(created)),
        delivered_unix_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_say_what_a_payload_is() {
        assert_eq!(payload_kind("text"), (PayloadKind::Text, None));
        assert_eq!(
            payload_kind("file/report%20v2.pdf"),
            (PayloadKind::File, Some("report v2.pdf".into()))
        );
        assert_eq!(payload_kind("incoming"), (PayloadKind::Data, None));
    }

    #[test]
    fn a_hostile_file_name_keeps_only_its_last_part() {
        assert_eq!(
            payload_kind("file/..%2F..%2Fetc%2Fpasswd"),
            (PayloadKind::File, Some("passwd".into()))
        );
        assert_eq!(payload_kind("file/.."), (PayloadKind::File, None));
        assert_eq!(payload_kind("file/"), (PayloadKind::File, None));
    }

    #[test]
    fn a_sender_chosen_name_is_never_hidden_special_or_a_path() {
        for (sent, saved) in [
            ("report v2.pdf", "report v2.pdf"),
            (".bashrc", "_bashrc"),
            ("..x", "__x"),
            ("-rf", "_rf"),
            ("~root", "_root"),
            (". .profile", "___profile"),
            ("../x", "___x"),
            ("a\nb\u{202e}fdp.exe", "a_b_fdp.exe"),
            ("launch.Desktop", "launch.Desktop.txt"),
            ("", "file"),
        ] {
            assert_eq!(safe_file_name(sent), saved, "{sent:?}");
        }
        let long = "é".repeat(200);
        let saved = safe_file_name(&long);
        assert!(saved.len() <= MAX_SAVED_NAME_BYTES && long.starts_with(&saved));
    }
}
