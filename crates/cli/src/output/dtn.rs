//! What the `ferry dtn` commands print. Bundle ids, endpoint ids and file names
//! come from other nodes (over the network or on a drive), so every one of them
//! passes through [`printable`].

use ferry_node::control::types::{
    DtnSaveReply, DtnSendReply, DtnStatus, ExportReport, ImportReport, InboxItem, PayloadKind,
};

use super::{human_bytes, printable, short_id};

/// A node id `dtn://12D3KooW…/` shortened like a peer id.
fn short_node(node: &str) -> String {
    let short = match node
        .strip_prefix("dtn://")
        .and_then(|rest| rest.split_once('/'))
    {
        Some((peer, service)) => format!("dtn://{}/{service}", short_id(peer)),
        None => node.to_owned(),
    };
    printable(&short, false)
}

/// What `ferry dtn send` prints.
pub(crate) fn queued_line(reply: &DtnSendReply) -> String {
    format!(
        "queued {} ({}) for {}\n",
        printable(&reply.id, false),
        human_bytes(reply.bytes),
        printable(&reply.destination, false)
    )
}

/// What `ferry dtn save` prints.
pub(crate) fn saved_line(reply: &DtnSaveReply) -> String {
    format!(
        "wrote {} to {}\n",
        human_bytes(reply.bytes),
        printable(&reply.path, false)
    )
}

/// What `ferry dtn export` prints.
pub(crate) fn export_line(report: &ExportReport) -> String {
    format!(
        "exported {} bundles ({} new), {} acks, {} content blobs to {}\n",
        report.bundles,
        human_bytes(report.bytes),
        report.acks,
        report.content,
        printable(&report.folder, false)
    )
}

/// What `ferry dtn inbox` prints: each bundle, who sent it, its text or file.
pub(crate) fn inbox_text(items: &[InboxItem]) -> String {
    if items.is_empty() {
        return "inbox is empty\n".into();
    }
    let mut text = String::new();
    for item in items {
        let id = printable(&item.id, false);
        let what = match (item.kind, &item.text, &item.file_name) {
            (PayloadKind::Text, Some(message), _) => printable(message, true),
            (PayloadKind::File, _, Some(name)) => format!(
                "file {} ({}): `ferry dtn save {id}`",
                printable(name, false),
                human_bytes(item.size),
            ),
            (kind, _, _) => format!("{kind}, {}", human_bytes(item.size)),
        };
        text.push_str(&format!(
            "{id} from {}\n  {what}\n",
            short_node(&item.source),
        ));
    }
    text
}

/// The warning `ferry dtn save` without `-o` prints when the sender's file
/// name is special and the file is saved under a safe one.
pub(crate) fn renamed_line(sent: &str, saved: &str) -> String {
    format!(
        "the sender named the file {:?}; saving it as {:?} (choose the name with -o PATH)",
        printable(sent, false),
        printable(saved, false)
    )
}

/// What `ferry dtn status` prints.
pub(crate) fn status_text(status: &DtnStatus) -> String {
    let mut text = format!(
        "node {}  strategy {}\nholding {} bundles, {} of {}; {} acks known; inbox {}\nreceived {}, delivered {}, forwarded {}, refused {}\n",
        printable(&status.node_id, false),
        printable(&status.strategy, false),
        status.bundles.len(),
        human_bytes(status.bytes_held),
        human_bytes(status.quota_bytes),
        status.acks,
        status.inbox,
        status.received,
        status.delivered,
        status.forwarded,
        status.refused,
    );
    if !status.by_destination.is_empty() {
        text.push_str("\nby destination:\n");
        for (destination, count, bytes) in &status.by_destination {
            text.push_str(&format!(
                "  {}  {count} bundles, {}\n",
                short_node(destination),
                human_bytes(*bytes)
            ));
        }
    }
    if !status.bundles.is_empty() {
        text.push_str("\nbundles (id, to, size, age, expires in, origin):\n");
        for b in &status.bundles {
            let age = b.age_secs.map_or("?".into(), duration);
            let origin = match (&b.received_from, b.own) {
                (_, true) => "own".to_owned(),
                (Some(from), false) => format!("from {}", short_node(from)),
                (None, false) => "from a folder or TCPCL".to_owned(),
            };
            text.push_str(&format!(
                "  {}  {}  {}  {}  {}  {origin}\n",
                printable(&b.id, false),
                short_node(&b.destination),
                human_bytes(b.size),
                age,
                duration(b.expires_in_secs)
            ));
        }
    }
    if !status.contacts.is_empty() {
        text.push_str("\ncontacts:\n");
        for c in &status.contacts {
            text.push_str(&format!(
                "  {}  {}  {}  sent {}, received {}\n",
                short_node(&c.node),
                printable(&c.via, false),
                if c.connected { "connected" } else { "gone" },
                c.bundles_sent,
                c.bundles_received
            ));
        }
    }
    text
}

fn duration(secs: u64) -> String {
    match secs {
        0..120 => format!("{secs}s"),
        120..7200 => format!("{}m", secs / 60),
        7200..172_800 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// What `ferry dtn import` prints. The rejected files are named by whoever wrote
/// the folder, and the reasons quote them.
pub(crate) fn import_text(report: &ImportReport) -> String {
    let mut text = format!(
        "imported from {}: {} delivered here, {} to carry on, {} already known; {} acks freed {} copies; {} content blobs\n",
        printable(&report.folder, false),
        report.delivered,
        report.stored,
        report.duplicates,
        report.acks,
        report.freed,
        report.content
    );
    for (file, why) in &report.rejected {
        text.push_str(&format!(
            "  rejected {}: {}\n",
            printable(file, false),
            printable(why, false)
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_renamed_file_is_named_printably() {
        assert_eq!(
            renamed_line(".bashrc\u{1b}[2J", "bashrc"),
            "the sender named the file \".bashrc\u{fffd}[2J\"; saving it as \"bashrc\" (choose the name with -o PATH)"
        );
    }

    #[test]
    fn import_defuses_the_file_names_a_foreign_folder_chose() {
        let report = ImportReport {
            folder: "/media/usb/ferry-dtn".into(),
            stored: 1,
            delivered: 2,
            duplicates: 0,
            rejected: vec![(
                "evil\u{1b}]0;pwned\u{7}.bundle".into(),
                "\"evil\u{1b}[2J\" is not a bundle".into(),
            )],
            acks: 0,
            freed: 0,
            content: 0,
        };
        let text = import_text(&report);
        assert!(!text.contains('\u{1b}'), "{text:?}");
        assert!(!text.contains('\u{7}'), "{text:?}");
        assert!(
            text.contains("  rejected evil\u{FFFD}]0;pwned\u{FFFD}.bundle: \"evil\u{FFFD}[2J\" is not a bundle\n"),
            "{text:?}"
        );
        assert!(
            text.starts_with("imported from /media/usb/ferry-dtn: 2 delivered here, 1 to carry on"),
            "{text}"
        );
    }

    #[test]
    fn inbox_defuses_names_and_sources_and_shortens_node_ids() {
        let item = InboxItem {
            id: "dtn://12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo/file-1-0".into(),
            source: "dtn://12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo/\u{1b}[2J".into(),
            destination: "dtn://me/file/x".into(),
            kind: PayloadKind::File,
            text: None,
            file_name: Some("report\u{202E}fdp.exe".into()),
            size: 2048,
            created_unix_ms: None,
            delivered_unix_ms: 0,
        };
        let text = inbox_text(&[item]);
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{202E}'),
            "{text:?}"
        );
        assert!(
            text.contains("from dtn://12D3Koo…e2Xo/\u{FFFD}[2J\n"),
            "{text}"
        );
        assert!(
            text.contains("file report\u{FFFD}fdp.exe (2.0 KiB)"),
            "{text}"
        );
        assert_eq!(inbox_text(&[]), "inbox is empty\n");
    }

    #[test]
    fn durations_pick_a_readable_unit() {
        assert_eq!(duration(119), "119s");
        assert_eq!(duration(120), "2m");
        assert_eq!(duration(7200), "2h");
        assert_eq!(duration(3 * 86_400), "3d");
    }
}
