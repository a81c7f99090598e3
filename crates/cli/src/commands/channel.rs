//! Channels: `ferry post`, `ferry read`, `ferry chat` and `ferry leave`.

use std::io::{BufRead, Read, Write};

use anyhow::{Context, bail};
use ferry_core::channel::{ChannelName, MAX_TEXT_BYTES};
use ferry_node::control::types::{IdInfo, LeaveReply, MessageView, ReadQuery};

use crate::args::{LeaveArgs, PostArgs, ReadArgs};
use crate::client::{Client, NodeNotRunning};
use crate::output;

/// How long one `--follow` request waits for news before asking again; well
/// under the node's MAX_WAIT_MS, and short enough that a dead connection is
/// noticed.
const FOLLOW_WAIT_MS: u64 = 30_000;
/// How much history `ferry chat` shows when it opens.
const CHAT_HISTORY: usize = 50;

pub(super) fn post(client: &Client, args: PostArgs) -> anyhow::Result<()> {
    let channel = channel_name(&args.channel)?;
    let text = if args.text == ["-"] {
        read_stdin()?
    } else {
        args.text.join(" ")
    };
    check_text(&text)?;
    let message = client.post_message(&channel, text)?;
    let line = if args.output.json {
        serde_json::to_string(&message)?
    } else {
        output::message_line(&message)
    };
    writeln!(std::io::stdout().lock(), "{line}")?;
    Ok(())
}

pub(super) fn read(client: &Client, args: ReadArgs) -> anyhow::Result<()> {
    let channel = channel_name(&args.channel)?;
    let print = |message: &MessageView| print_message(message, args.json);
    let recent = client.read_messages(
        &channel,
        &ReadQuery {
            limit: Some(args.limit),
            ..ReadQuery::default()
        },
    )?;
    recent.messages.iter().try_for_each(print)?;
    if args.follow {
        follow(client, &channel, recent.next, print)?;
    }
    Ok(())
}

pub(super) fn leave(client: &Client, args: LeaveArgs) -> anyhow::Result<()> {
    let channel = channel_name(&args.channel)?;
    let reply: LeaveReply = client.post(
        &format!("/v1/channels/{channel}/leave"),
        &serde_json::json!({}),
    )?;
    let line = if args.output.json {
        serde_json::to_string(&reply)?
    } else {
        output::leave_line(&reply)
    };
    writeln!(std::io::stdout().lock(), "{line}")?;
    Ok(())
}

pub(super) fn chat(client: &Client, channel: &str) -> anyhow::Result<()> {
    let channel = channel_name(channel)?;
    let me: IdInfo = client.get("/v1/id")?;
    let recent = client.read_messages(
        &channel,
        &ReadQuery {
            limit: Some(CHAT_HISTORY),
            ..ReadQuery::default()
        },
    )?;
    let print = |message: &MessageView| print_message(message, false);
    recent.messages.iter().try_for_each(print)?;
    eprintln!(
        "{}",
        output::chat_banner(channel.as_str(), &me.name, &me.peer_id)
    );

    // New messages, our own included, arrive through this thread; the main
    // thread only sends, so typing never waits on the network.
    let follower = client.clone();
    let followed = channel.clone();
    std::thread::spawn(move || {
        if let Err(error) = follow(&follower, &followed, recent.next, print) {
            eprintln!("error: {error:#}");
            std::process::exit(1);
        }
    });

    for line in std::io::stdin().lock().lines() {
        let line = line.context("cannot read from the terminal")?;
        match line.trim() {
            "/quit" => break,
            "/help" => eprintln!("{}", output::CHAT_HELP),
            "" => {}
            _ => {
                if let Err(error) =
                    check_text(&line).and_then(|()| client.post_message(&channel, line).map(drop))
                {
                    // Without a node there is nothing left to chat with; any
                    // other failure concerns only this line.
                    if error.downcast_ref::<NodeNotRunning>().is_some() {
                        return Err(error);
                    }
                    eprintln!("error: {error:#}");
                }
            }
        }
    }
    Ok(())
}

/// Long-polls for messages after `next`, printing each, until an error.
fn follow(
    client: &Client,
    channel: &ChannelName,
    mut next: u64,
    print: impl Fn(&MessageView) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    loop {
        let reply = client.read_messages(
            channel,
            &ReadQuery {
                after: Some(next),
                limit: None,
                wait_ms: Some(FOLLOW_WAIT_MS),
            },
        )?;
        reply.messages.iter().try_for_each(&print)?;
        next = reply.next;
    }
}

/// One message on stdout: a line of text, or a JSON object on one line (JSON
/// Lines), so `--follow --json` can be read line by line as it arrives.
fn print_message(message: &MessageView, json: bool) -> anyhow::Result<()> {
    let line = if json {
        serde_json::to_string(message)?
    } else {
        output::message_line(message)
    };
    writeln!(std::io::stdout().lock(), "{line}")?;
    Ok(())
}

fn channel_name(name: &str) -> anyhow::Result<ChannelName> {
    name.parse()
        .with_context(|| format!("invalid channel name {name:?}"))
}

/// The node checks these too; checking here first gives the clearer message
/// and spares sending 64 KiB to be refused.
fn check_text(text: &str) -> anyhow::Result<()> {
    if text.trim().is_empty() {
        bail!("a message cannot be empty");
    }
    if text.len() > MAX_TEXT_BYTES {
        bail!(
            "the message is {} bytes; a message holds at most {MAX_TEXT_BYTES} bytes (64 KiB)",
            text.len()
        );
    }
    Ok(())
}

/// The whole of stdin as the message, less the newline that ends the last
/// line, so `echo hi | ferry post general -` posts "hi".
fn read_stdin() -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut bytes)
        .context("cannot read the message from stdin")?;
    let mut text = String::from_utf8(bytes).context("the message on stdin is not UTF-8 text")?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_limits() {
        assert!(check_text(&"a".repeat(MAX_TEXT_BYTES)).is_ok());
        let error = check_text(&"a".repeat(MAX_TEXT_BYTES + 1)).unwrap_err();
        assert!(error.to_string().contains("65536"), "{error}");
        assert!(check_text(" \n").is_err());
    }

    #[test]
    fn channel_names_are_checked_with_the_reason() {
        assert!(channel_name("general").is_ok());
        let error = format!("{:#}", channel_name("no spaces").unwrap_err());
        assert!(
            error.contains("invalid channel name \"no spaces\""),
            "{error}"
        );
        assert!(error.contains("' '"), "{error}");
    }
}
