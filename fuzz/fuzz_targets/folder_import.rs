//! Folder import (`ferry dtn import`, sneakernet): a directory tree from a
//! drive anyone could have written, read by
//! `ferry_node::dtn::folder::import` into a real store in a temporary
//! directory.
//!
//! Script: a byte says whether the tree is `DIR/ferry-dtn/...` or `DIR`
//! itself; then operations that build the tree:
//! - 0 `chunk chunk`: `bundles/NAME.bundle` with these bytes
//! - 1 `chunk bool`: a content file named by the BLAKE3 hash of these bytes
//!   (with `.collection` when the bool is set: a manifest)
//! - 2 `chunk chunk`: `content/NAME` with these bytes
//! - 3 `chunk`: `acks.json` with these bytes
//! - 4 `chunk`: a directory where a file is expected (`bundles/NAME.bundle`)
//! - 5 `chunk chunk`: a file of this name beside the others (`ferry-dtn/NAME`)
//!
//! Names are cut to safe characters (the tree must stay inside its
//! directory). Links, FIFOs and device files are not made here: the import
//! must not open them, which is tested against a real node elsewhere.
//!
//! Properties: nothing panics; every bundle file is counted once, as stored,
//! delivered, duplicate or rejected.
#![no_main]

use std::fs;
use std::path::Path;
use std::sync::Arc;

use ferry_fuzz::{Script, keys};
use ferry_node::dtn::folder::{FOLDER, import};
use ferry_node::dtn::{Dtn, DtnSettings};
use ferry_store::{DataDir, Store};
use libfuzzer_sys::fuzz_target;

/// A file name made of the fuzzer's bytes: safe characters only, never
/// empty, `.` or `..`.
fn name(bytes: &[u8]) -> String {
    let kept: String = bytes
        .iter()
        .map(|&b| b as char)
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .take(64)
        .collect();
    if kept.is_empty() || kept.chars().all(|c| c == '.') {
        format!("x{kept}")
    } else {
        kept
    }
}

fn write(path: &Path, bytes: &[u8]) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("a temporary directory is writable");
    }
    // A name taken by a directory already stays a directory.
    let _ = fs::write(path, bytes);
}

fuzz_target!(|data: &[u8]| {
    let mut s = Script::new(data);
    let temp = tempfile::tempdir().expect("a temporary directory");
    let drive = temp.path().join("drive");
    let root = if s.bool() {
        drive.join(FOLDER)
    } else {
        drive.clone()
    };
    fs::create_dir_all(root.join("bundles")).expect("a temporary directory is writable");
    let mut steps = 0;
    while !s.is_empty() && steps < 64 {
        steps += 1;
        match s.u8() % 6 {
            0 => {
                let file = format!("{}.bundle", name(s.chunk()));
                write(&root.join("bundles").join(file), s.chunk());
            }
            1 => {
                let bytes = s.chunk();
                let mut file = blake3::hash(bytes).to_hex().to_string();
                if s.bool() {
                    file.push_str(".collection");
                }
                write(&root.join("content").join(file), bytes);
            }
            2 => {
                let file = name(s.chunk());
                write(&root.join("content").join(file), s.chunk());
            }
            3 => write(&root.join("acks.json"), s.chunk()),
            4 => {
                let dir = format!("{}.bundle", name(s.chunk()));
                let _ = fs::create_dir_all(root.join("bundles").join(dir));
            }
            _ => {
                let file = name(s.chunk());
                write(&root.join(file), s.chunk());
            }
        }
    }
    let bundle_files = fs::read_dir(root.join("bundles"))
        .expect("the folder was made")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "bundle"))
        .count() as u64;

    let data_dir = DataDir::lock(&temp.path().join("data")).expect("a data directory");
    let store = Arc::new(Store::open(&data_dir).expect("a store opens"));
    let dtn = Dtn::open(store, keys()[0].clone(), DtnSettings::default()).expect("the agent opens");
    if let Ok(report) = import(&dtn, &drive) {
        let rejected_bundles = report
            .rejected
            .iter()
            .filter(|(file, _)| file.contains("/bundles/"))
            .count() as u64;
        assert_eq!(
            report.stored + report.delivered + report.duplicates + rejected_bundles,
            bundle_files,
            "{report:?}"
        );
    }
});
