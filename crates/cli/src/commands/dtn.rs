//! `ferry dtn …`: delay-tolerant messaging through the node's bundle agent.

use std::path::Path;

use anyhow::{Context, anyhow};
use ferry_node::control::types::{
    DtnExportRequest, DtnImportRequest, DtnSaveReply, DtnSaveRequest, DtnSendReply, DtnSendRequest,
    DtnStatus, ExportReport, ImportReport, InboxItem,
};
use ferry_node::dtn::safe_file_name;

use super::content::utf8;
use super::print;
use crate::args::{DtnCommand, DtnSaveArgs, DtnSendArgs};
use crate::client::Client;
use crate::output::{human_bytes, printable, short_id};

pub fn run(client: &Client, command: DtnCommand) -> anyhow::Result<()> {
    match command {
        DtnCommand::Send(args) => send(client, args),
        DtnCommand::Inbox(args) => {
            let items: Vec<InboxItem> = client.get("/v1/dtn/inbox")?;
            print(args.json, &items, || inbox_text(&items))
        }
        DtnCommand::Save(args) => save(client, args),
        DtnCommand::Status(args) => {
            let status: DtnStatus = client.get("/v1/dtn/status")?;
            print(args.json, &status, || status_text(&status))
        }
        DtnCommand::Export(args) => {
            let report: ExportReport = client.post(
                "/v1/dtn/export",
                &DtnExportRequest {
                    dir: absolute(&args.dir)?,
                    to: args.to,
                    content: args.content,
                },
            )?;
            print(args.output.json, &report, || {
                format!(
                    "exported {} bundles ({} new), {} acks, {} content blobs to {}\n",
                    report.bundles,
                    human_bytes(report.bytes),
                    report.acks,
                    report.content,
                    report.folder
                )
            })
        }
        DtnCommand::Import(args) => {
            let report: ImportReport = client.post(
                "/v1/dtn/import",
                &DtnImportRequest {
                    dir: absolute(&args.dir)?,
                },
            )?;
            print(args.output.json, &report, || import_text(&report))
        }
    }
}

fn absolute(path: &Path) -> anyhow::Result<String> {
    utf8(&std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))?)
}

fn send(client: &Client, args: DtnSendArgs) -> anyhow::Result<()> {
    let text = (!args.text.is_empty()).then(|| args.text.join(" "));
    let file = args.file.as_deref().map(absolute).transpose()?;
    let reply: DtnSendReply = client.post(
        "/v1/dtn/send",
        &DtnSendRequest {
            destination: args.destination,
            text,
            file,
            lifetime_secs: args.lifetime,
            priority: args.priority,
        },
    )?;
    print(args.output.json, &reply, || {
        format!(
            "queued {} ({}) for {}\n",
            reply.id,
            human_bytes(reply.bytes),
            reply.destination
        )
    })
}

fn save(client: &Client, args: DtnSaveArgs) -> anyhow::Result<()> {
    let path = match &args.output {
        Some(path) => absolute(path)?,
        None => {
            let items: Vec<InboxItem> = client.get("/v1/dtn/inbox")?;
            let item = items
                .iter()
                .find(|i| i.id == args.id.trim())
                .ok_or_else(|| {
                    anyhow!("no bundle {} in the inbox; see `ferry dtn inbox`", args.id)
                })?;
            let sent = item.file_name.as_deref().ok_or_else(|| {
                anyhow!(
                    "bundle {} carries no file name; give one with -o PATH",
                    item.id
                )
            })?;
            // The sender chose this name: never a hidden or otherwise special
            // one unless the user names the file with -o.
            let name = safe_file_name(sent);
            if name != sent {
                eprintln!(
                    "the sender named the file {:?}; saving it as {:?} (choose the name with -o PATH)",
                    printable(sent, false),
                    printable(&name, false)
                );
            }
            absolute(Path::new(&name))?
        }
    };
    let reply: DtnSaveReply = client.post(
        "/v1/dtn/save",
        &DtnSaveRequest {
            id: args.id.trim().to_owned(),
            path,
            force: args.force,
        },
    )?;
    print(args.json.json, &reply, || {
        format!("wrote {} to {}\n", human_bytes(reply.bytes), reply.path)
    })
}

/// A node id `dtn://12D3KooW…/` shortened like a peer id.
fn short_node(node: &str) -> String {
    match node
        .strip_prefix("dtn://")
        .and_then(|rest| rest.split_once('/'))
    {
        Some((peer, service)) => format!("dtn://{}/{service}", short_id(peer)),
        None => node.to_owned(),
    }
}

fn inbox_text(items: &[InboxItem]) -> String {
    if items.is_empty() {
        return "inbox is empty\n".into();
    }
    let mut text = String::new();
    for item in items {
        let what = match (item.kind.as_str(), &item.text, &item.file_name) {
            ("text", Some(message), _) => printable(message, true),
            ("file", _, Some(name)) => format!(
                "file {} ({}): `ferry dtn save {}`",
                printable(name, false),
                human_bytes(item.size),
                item.id
            ),
            (kind, _, _) => format!("{kind}, {}", human_bytes(item.size)),
        };
        text.push_str(&format!(
            "{} from {}\n  {}\n",
            item.id,
            short_node(&item.source),
            what
        ));
    }
    text
}

fn status_text(status: &DtnStatus) -> String {
    let mut text = format!(
        "node {}  strategy {}\nholding {} bundles, {} of {}; {} acks known; inbox {}\nreceived {}, delivered {}, forwarded {}, refused {}\n",
        status.node_id,
        status.strategy,
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
                b.id,
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
                c.via,
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

fn import_text(report: &ImportReport) -> String {
    let mut text = format!(
        "imported from {}: {} delivered here, {} to carry on, {} already known; {} acks freed {} copies; {} content blobs\n",
        report.folder,
        report.delivered,
        report.stored,
        report.duplicates,
        report.acks,
        report.freed,
        report.content
    );
    for (file, why) in &report.rejected {
        text.push_str(&format!("  rejected {file}: {why}\n"));
    }
    text
}
