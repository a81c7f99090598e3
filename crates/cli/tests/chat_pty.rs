//! `ferry chat` as a person uses it, in a pseudo-terminal (`script` from
//! util-linux gives it one): it shows the channel's recent history, posts each
//! typed line (another node receives it), shows a message from the other node
//! as it arrives, and `/quit` ends it with exit code 0.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;

use ferry_testkit::harness::{
    Node, SPREAD_TIMEOUT, ferry_binary, short_id, wait_connected, wait_until,
};

/// `ferry chat CHANNEL` on `data_dir` inside a pseudo-terminal: what is written
/// to `input` is typed on the terminal, and everything the terminal shows is
/// collected in `screen`.
struct Terminal {
    child: Child,
    input: ChildStdin,
    screen: Arc<Mutex<String>>,
}

impl Terminal {
    fn chat(data_dir: &Path, channel: &str) -> Terminal {
        let command = format!(
            "exec '{}' --data-dir '{}' chat {channel}",
            ferry_binary(),
            data_dir.display()
        );
        // -q: no start and end lines; -f: flush as output comes; -e: exit
        // with the child's exit code; the typescript file is not wanted.
        let mut child = Command::new("script")
            .args(["-qfec", &command, "/dev/null"])
            .env_remove("FERRY_DATA_DIR")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run script (util-linux) for a pseudo-terminal");
        let input = child.stdin.take().unwrap();
        let screen = Arc::new(Mutex::new(String::new()));
        let mut output = child.stdout.take().unwrap();
        let collected = Arc::clone(&screen);
        thread::spawn(move || {
            let mut buffer = [0; 4096];
            while let Ok(n @ 1..) = output.read(&mut buffer) {
                let text = String::from_utf8_lossy(&buffer[..n]);
                collected.lock().unwrap().push_str(&text);
            }
        });
        Terminal {
            child,
            input,
            screen,
        }
    }

    fn type_line(&mut self, line: &str) {
        // A terminal sends Enter as a carriage return.
        self.input
            .write_all(format!("{line}\r").as_bytes())
            .unwrap();
        self.input.flush().unwrap();
    }

    #[track_caller]
    fn wait_for(&self, what: &str, text: &str) {
        wait_until(what, SPREAD_TIMEOUT, || {
            let screen = self.screen.lock().unwrap();
            if screen.contains(text) {
                Ok(())
            } else {
                Err(format!("the terminal shows:\n{screen}"))
            }
        });
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn chat_in_a_terminal_shows_history_posts_lines_shows_news_and_quits() {
    let ana = Node::start("ana");
    let bo = Node::start("bo");
    let (ana_id, bo_id) = (ana.id().peer_id, bo.id().peer_id);
    ana.ferry(&["connect", &bo.addr()]).ok();
    wait_connected(&ana, &bo, &bo_id);
    wait_connected(&bo, &ana, &ana_id);
    let history = ana.post("general", "said before the chat opened");

    let mut terminal = Terminal::chat(&ana.data_dir(), "general");
    terminal.wait_for(
        "the history",
        &format!("ana ({}): {}", short_id(&ana_id), history.text),
    );
    terminal.wait_for("the prompt line", "/quit leaves");
    // The terminal shows nothing from bo yet: what appears later is news.
    assert!(!terminal.screen.lock().unwrap().contains("bo ("));

    terminal.type_line("typed in the chat");
    wait_until("bo to receive the typed line", SPREAD_TIMEOUT, || {
        let texts: Vec<String> = bo.read("general").into_iter().map(|m| m.text).collect();
        if texts.iter().any(|t| t == "typed in the chat") {
            Ok(())
        } else {
            Err(format!("{texts:?}"))
        }
    });
    let typed: Vec<_> = ana
        .read("general")
        .into_iter()
        .filter(|m| m.text == "typed in the chat")
        .collect();
    assert_eq!(typed.len(), 1, "one line, one message: {typed:#?}");
    assert_eq!(typed[0].author, ana_id);

    bo.post("general", "an answer from bo");
    terminal.wait_for(
        "bo's message in the chat",
        &format!("bo ({}): an answer from bo", short_id(&bo_id)),
    );

    terminal.type_line("/quit");
    let status = wait_until("chat to end after /quit", SPREAD_TIMEOUT, || {
        terminal
            .child
            .try_wait()
            .unwrap()
            .ok_or_else(|| "still running".to_owned())
    });
    let mut stderr = String::new();
    terminal
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    // /quit is a command, not a message.
    assert!(ana.read("general").iter().all(|m| m.text != "/quit"));
}
