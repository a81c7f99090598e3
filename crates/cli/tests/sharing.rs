//! File sharing between real `ferry` processes on 127.0.0.1: `ferry share`,
//! `ferry get`, `ferry ls` and `ferry rm`, a folder tree copied exactly, four
//! seeders serving one leecher, a download resumed after kill -9, and the
//! refusals (an existing output, content nobody has, a bad id).

// The harness is shared with multi_process.rs, whose channel helpers these
// tests do not need; that file keeps the harness free of truly dead code.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use ferry_node::control::types::{BlobEntry, GetResult, ShareResult};
use ferry_testkit::harness::{
    Api, Node, Run, ferry_binary, random_bytes, run_with_deadline, wait_connected, wait_until,
};

const MIB: usize = 1024 * 1024;
/// How long a download of a few dozen MiB over loopback may take, in a debug
/// build on a busy two-core machine.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(180);
/// How long `ferry get` of content that no peer has may take to give up.
const NOT_FOUND_TIMEOUT: Duration = Duration::from_secs(60);

fn b3(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

fn b3_file(path: &Path) -> String {
    b3(&std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display())))
}

/// One entry of a folder tree, as far as a copy must keep it.
#[derive(Debug, PartialEq, Eq)]
enum Entry {
    Dir,
    File {
        len: u64,
        blake3: String,
        executable: bool,
    },
}

/// Every file and folder under `root`, by relative path.
fn tree(root: &Path) -> BTreeMap<String, Entry> {
    fn walk(root: &Path, dir: &Path, entries: &mut BTreeMap<String, Entry>) {
        for item in std::fs::read_dir(dir).unwrap() {
            let path = item.unwrap().path();
            let relative = path.strip_prefix(root).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                entries.insert(relative, Entry::Dir);
                walk(root, &path, entries);
            } else {
                assert!(
                    meta.is_file(),
                    "{} is neither file nor folder",
                    path.display()
                );
                entries.insert(
                    relative,
                    Entry::File {
                        len: meta.len(),
                        blake3: b3_file(&path),
                        executable: meta.permissions().mode() & 0o111 != 0,
                    },
                );
            }
        }
    }
    let mut entries = BTreeMap::new();
    walk(root, root, &mut entries);
    entries
}

fn write_file(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// `ferry ARGS` against `node`, run in `cwd` and given up on after `timeout`.
fn ferry_at(node: &Node, cwd: &Path, args: &[&str], timeout: Duration) -> Run {
    let mut command = Command::new(ferry_binary());
    command
        .arg("--data-dir")
        .arg(node.data_dir())
        .args(args)
        .current_dir(cwd);
    run_with_deadline(command, b"", timeout)
}

/// `ferry share PATH --json` (plus `extra` flags) on `node`.
fn share(node: &Node, path: &Path, extra: &[&str]) -> ShareResult {
    let mut args = vec!["share", path.to_str().unwrap(), "--json"];
    args.extend(extra);
    ferry_at(node, path.parent().unwrap(), &args, TRANSFER_TIMEOUT)
        .ok()
        .json()
}

/// `ferry get TARGET -o OUTPUT --json` on `node`.
fn get(node: &Node, target: &str, output: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["get", target, "-o", output.to_str().unwrap(), "--json"];
    args.extend(extra);
    ferry_at(node, output.parent().unwrap(), &args, TRANSFER_TIMEOUT)
}

fn ls(node: &Node) -> Vec<BlobEntry> {
    node.ferry(&["ls", "--json"]).ok().json()
}

/// Has `node` dial `peer` and waits until each lists the other as connected.
fn connect(node: &Node, peer: &Node) {
    let (node_id, peer_id) = (node.id().peer_id, peer.id().peer_id);
    node.ferry(&["connect", &peer.addr()]).ok();
    wait_connected(node, peer, &peer_id);
    wait_connected(peer, node, &node_id);
}

#[test]
fn share_a_folder_and_get_it_by_ticket() {
    let a = Node::start("ana");
    let b = Node::start("bo");
    let work = tempfile::tempdir().unwrap();

    let album = work.path().join("album");
    write_file(&album.join("readme.txt"), b"a folder shared with ferry\n");
    write_file(&album.join("empty.bin"), b"");
    let random = random_bytes("album", 3 * MIB);
    write_file(&album.join("nested/deeper/random.bin"), &random);
    write_file(&album.join("nested/deeper/notes.txt"), b"deep down\n");
    let script = album.join("nested/run.sh");
    write_file(&script, b"#!/bin/sh\necho hello\n");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(album.join("blank")).unwrap();
    let original = tree(&album);

    let shared = share(&a, &album, &[]);
    assert_eq!(shared.kind, "collection", "{shared:?}");
    assert_eq!(shared.name, "album", "{shared:?}");
    assert_eq!(shared.files, 5, "{shared:?}");
    let total: u64 = original
        .values()
        .map(|entry| match entry {
            Entry::File { len, .. } => *len,
            Entry::Dir => 0,
        })
        .sum();
    assert_eq!(shared.size, total, "{shared:?}");
    assert_eq!(shared.id.len(), 64, "{shared:?}");

    // The folder arrives on bo as the same tree: every file with the same bytes
    // and exec bit, the empty file and the empty folder too.
    let copies = tempfile::tempdir().unwrap();
    let copy = copies.path().join("copy");
    let got: GetResult = get(&b, &shared.ticket, &copy, &[]).ok().json();
    assert_eq!(got.id, shared.id, "{got:?}");
    assert_eq!(got.kind, "collection", "{got:?}");
    assert_eq!(Path::new(&got.output), copy, "{got:?}");
    assert_eq!(
        (got.size, got.files),
        (shared.size, shared.files),
        "{got:?}"
    );
    assert!(got.fetched_bytes >= shared.size, "{got:?}");
    assert_eq!(tree(&copy), original);
    assert!(copy.join("blank").is_dir());

    // A single file's id is its BLAKE3 hash, as b3sum prints it. The human
    // output ends with the ticket alone on its line, ready to be copied.
    let file = album.join("nested/deeper/random.bin");
    let run = ferry_at(
        &a,
        work.path(),
        &["share", file.to_str().unwrap()],
        TRANSFER_TIMEOUT,
    )
    .ok();
    assert!(run.stdout.contains(&b3(&random)), "{run:#?}");
    assert!(run.stdout.contains("random.bin"), "{run:#?}");
    let ticket = run.stdout.lines().last().unwrap().trim();
    assert!(!ticket.is_empty() && !ticket.contains(' '), "{run:#?}");
    let single = share(&a, &file, &[]);
    assert_eq!(single.id, b3(&random), "{single:?}");
    assert_eq!(
        (single.kind.as_str(), single.files),
        ("blob", 1),
        "{single:?}"
    );
    assert_eq!(single.size, random.len() as u64, "{single:?}");

    // Without -o, the content lands in the current directory under its name.
    let here = tempfile::tempdir().unwrap();
    let run = ferry_at(&b, here.path(), &["get", ticket], TRANSFER_TIMEOUT).ok();
    let written = here.path().join("random.bin");
    assert_eq!(b3_file(&written), b3(&random), "{run:#?}");
    assert!(
        run.stdout.contains(&written.display().to_string()),
        "{run:#?}"
    );

    // Both nodes list what they hold, complete.
    for node in [&a, &b] {
        let blobs = ls(node);
        for id in [&shared.id, &single.id] {
            let entry = blobs.iter().find(|blob| &blob.id == id);
            assert!(
                entry.is_some_and(|e| e.complete && e.verified_bytes == e.size),
                "{} lacks {id}: {blobs:#?}",
                node.name
            );
        }
        let text = node.ferry(&["ls"]).ok().stdout;
        assert!(text.contains(&single.id[..12]), "{text}");
        assert!(text.contains("complete"), "{text}");
    }
}

#[test]
fn four_seeders_serve_one_leecher() {
    let seeders: Vec<Node> = ["ana", "bo", "cy", "di"].map(Node::start).into();
    let leecher = Node::start("eve");
    let work = tempfile::tempdir().unwrap();
    let bytes = random_bytes("four seeders", 24 * MIB);
    let file = work.path().join("big.bin");
    write_file(&file, &bytes);
    let id = b3(&bytes);

    // The same bytes make the same id on every node, copied or in place.
    for (i, seeder) in seeders.iter().enumerate() {
        let extra: &[&str] = if i == 3 { &["--in-place"] } else { &[] };
        let shared = share(seeder, &file, extra);
        assert_eq!(shared.id, id, "{} shared {shared:?}", seeder.name);
    }
    let in_place = ls(&seeders[3]);
    assert!(
        in_place
            .iter()
            .any(|blob| blob.id == id && blob.in_place.as_deref() == file.to_str()),
        "{in_place:#?}"
    );

    for seeder in &seeders {
        connect(&leecher, seeder);
    }

    // A bare id carries no addresses: the providers are found among the
    // connected peers, and every one of them sends a share.
    let output = work.path().join("fetched.bin");
    let result: GetResult = get(&leecher, &id, &output, &[]).ok().json();
    assert_eq!(b3_file(&output), id);
    assert_eq!(result.size, bytes.len() as u64, "{result:?}");
    assert_eq!(result.fetched_bytes, bytes.len() as u64, "{result:?}");
    for seeder in &seeders {
        let peer_id = seeder.id().peer_id;
        let provider = result.providers.iter().find(|p| p.peer_id == peer_id);
        assert!(
            provider.is_some_and(|p| p.bytes > 0 && !p.dropped),
            "{} did not serve: {:#?}",
            seeder.name,
            result.providers
        );
    }
    let shares: Vec<u64> = result.providers.iter().map(|p| p.bytes).collect();
    eprintln!("bytes from each provider: {shares:?}");
    let sent: u64 = shares.iter().sum();
    assert!(sent >= bytes.len() as u64, "{:#?}", result.providers);

    // The same id again, now from the leecher's own store: nothing to fetch.
    let again = work.path().join("again.bin");
    let result: GetResult = get(&leecher, &id, &again, &[]).ok().json();
    assert_eq!(result.fetched_bytes, 0, "{result:?}");
    assert_eq!(b3_file(&again), id);
}

#[test]
fn a_download_killed_halfway_resumes() {
    let a = Node::start("ana");
    let mut b = Node::start("bo");
    let work = tempfile::tempdir().unwrap();
    let bytes = random_bytes("resume", 64 * MIB);
    let size = bytes.len() as u64;
    let file = work.path().join("movie.bin");
    write_file(&file, &bytes);
    drop(bytes);
    let shared = share(&a, &file, &[]);
    let output = work.path().join("copy.bin");

    let mut download = Command::new(ferry_binary())
        .arg("--data-dir")
        .arg(b.data_dir())
        .args(["get", &shared.ticket, "-o", output.to_str().unwrap()])
        .env_remove("FERRY_DATA_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // Watched as closely as the API allows, so the kill lands near half-way.
    let api = Api::of(&b);
    let deadline = Instant::now() + TRANSFER_TIMEOUT;
    let seen = loop {
        let blobs = api.blobs();
        let verified = blobs
            .iter()
            .find(|blob| blob.id == shared.id)
            .map_or(0, |blob| blob.verified_bytes);
        if verified * 2 >= size {
            b.kill();
            break verified;
        }
        assert!(
            Instant::now() < deadline,
            "bo never got half-way: {blobs:#?}"
        );
        thread::sleep(Duration::from_millis(2));
    };
    assert!(
        seen < size,
        "the download finished before the test could interrupt it"
    );
    let status = wait_until(
        "the interrupted ferry get to exit",
        NOT_FOUND_TIMEOUT,
        || {
            download
                .try_wait()
                .unwrap()
                .ok_or_else(|| "still running".to_owned())
        },
    );
    assert!(
        !status.success(),
        "ferry get cannot succeed without its node"
    );

    // What was verified before the crash is still there. (A node that takes
    // up the download again by itself may already have more, or all of it.)
    b.restart();
    let blobs = ls(&b);
    let partial = blobs
        .iter()
        .find(|blob| blob.id == shared.id)
        .unwrap_or_else(|| panic!("the partial download is gone: {blobs:#?}"));
    assert!(partial.verified_bytes > 0, "{partial:?}");
    if !partial.complete {
        let text = b.ferry(&["ls"]).ok().stdout;
        assert!(text.contains("partial"), "{text}");
    }

    // The same command again finishes the job, fetching only what was missing.
    let result: GetResult = get(&b, &shared.ticket, &output, &[]).ok().json();
    assert_eq!(b3_file(&output), shared.id);
    assert_eq!(result.size, size, "{result:?}");
    eprintln!(
        "killed at {seen} of {size} bytes; {} survived; the second run fetched {}",
        partial.verified_bytes, result.fetched_bytes
    );
    assert!(
        result.fetched_bytes <= size - seen + size / 10,
        "fetched {} bytes again after {seen} of {size} were verified before the kill \
         ({} of them survived it): {result:?}",
        result.fetched_bytes,
        partial.verified_bytes
    );
}

#[test]
fn existing_outputs_removal_and_missing_content() {
    let a = Node::start("ana");
    let b = Node::start("bo");
    connect(&b, &a);
    let work = tempfile::tempdir().unwrap();
    let bytes = random_bytes("small", 300 * 1024);
    let file = work.path().join("report.pdf");
    write_file(&file, &bytes);
    let shared = share(&a, &file, &[]);

    // An existing output is left alone without --force, and replaced with it.
    let output = work.path().join("existing.pdf");
    write_file(&output, b"keep me");
    let run = get(&b, &shared.ticket, &output, &[]);
    assert_eq!(run.status.code(), Some(1), "{run:#?}");
    assert!(run.stdout.is_empty(), "{run:#?}");
    // `get` runs with --json, so the error is a JSON object on stderr (it was
    // a line starting "error: " before --json covered errors).
    let error: serde_json::Value = serde_json::from_str(&run.stderr).expect("a JSON error");
    assert_eq!(error["kind"], "exists", "{run:#?}");
    assert!(run.stderr.contains("--force"), "{run:#?}");
    assert_eq!(std::fs::read(&output).unwrap(), b"keep me");
    let result: GetResult = get(&b, &shared.ticket, &output, &["--force"]).ok().json();
    assert_eq!(Path::new(&result.output), output, "{result:?}");
    assert_eq!(b3_file(&output), shared.id);

    // `ferry rm` by full id; the written copy stays, the store forgets it.
    let run = b.ferry(&["rm", &shared.id]).ok();
    assert!(run.stdout.contains("removed"), "{run:#?}");
    assert!(ls(&b).iter().all(|blob| blob.id != shared.id));
    assert_eq!(b3_file(&output), shared.id);
    let run = b.ferry(&["rm", &shared.id]);
    // Exit code 4: not found (1 before the exit codes were documented).
    assert_eq!(run.status.code(), Some(4), "{run:#?}");
    assert!(run.stderr.contains("not in this node's store"), "{run:#?}");

    // By the short id `ferry ls` shows.
    let short = &shared.id[..12];
    assert!(a.ferry(&["ls"]).ok().stdout.contains(short));
    let run = a.ferry(&["rm", short]).ok();
    assert!(run.stdout.contains(&shared.id), "{run:#?}");
    assert!(ls(&a).iter().all(|blob| blob.id != shared.id));
    assert!(!a.ferry(&["ls"]).ok().stdout.contains(short));

    for bad in ["not-an-id", "abc"] {
        let run = a.ferry(&["rm", bad]);
        assert_eq!(run.status.code(), Some(1), "{run:#?}");
        assert!(run.stderr.contains(bad), "{run:#?}");
    }

    // Content that nobody has: a clear failure, in bounded time.
    let nobody = b3(b"no node has this");
    let started = Instant::now();
    let run = ferry_at(&b, work.path(), &["get", &nobody], NOT_FOUND_TIMEOUT);
    assert_eq!(run.status.code(), Some(1), "{run:#?}");
    assert!(run.stderr.starts_with("error: "), "{run:#?}");
    assert!(run.stderr.len() > "error: \n".len(), "{run:#?}");
    eprintln!(
        "a get of missing content failed after {:?}",
        started.elapsed()
    );
    let run = b.ferry(&["get", "garbage"]);
    assert_eq!(run.status.code(), Some(1), "{run:#?}");
    assert!(run.stderr.starts_with("error: "), "{run:#?}");
    let missing: PathBuf = work.path().join("missing");
    let run = b.ferry(&["share", missing.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(1), "{run:#?}");
    assert!(run.stderr.contains("missing"), "{run:#?}");
}
