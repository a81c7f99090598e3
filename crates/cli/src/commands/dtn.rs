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
use crate::output::dtn::{
    export_line, import_text, inbox_text, queued_line, renamed_line, saved_line, status_text,
};

pub(super) fn run(client: &Client, command: DtnCommand) -> anyhow::Result<()> {
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
            print(args.output.json, &report, || export_line(&report))
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
    print(args.output.json, &reply, || queued_line(&reply))
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
                eprintln!("{}", renamed_line(sent, &name));
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
    print(args.json.json, &reply, || saved_line(&reply))
}
