//! Throughput, not a timed test: `bench/store-speed.sh` runs these
//! (`cargo test --release -p ferry-store -- --ignored --nocapture speed`).

use std::time::Instant;

use super::recovery::written_not_committed;
use super::*;

const MIB: f64 = (1 << 20) as f64;

fn rate(bytes: usize, start: Instant) -> String {
    let secs = start.elapsed().as_secs_f64();
    format!("{:7.0} MB/s ({secs:.3} s)", bytes as f64 / secs / 1e6)
}

#[test]
#[ignore = "a measurement; run in release mode"]
fn speed_of_hashing_serving_and_receiving_256_mib() {
    let size = 256 << 20;
    let tmp = tempfile::tempdir().unwrap();
    let content = bytes(size, 1);
    let path = write_file(tmp.path(), "big", &content);
    let (seeder, _s) = open(&tmp.path().join("seeder"));
    let (leecher, _l) = open(&tmp.path().join("leecher"));

    let start = Instant::now();
    let reference = blake3::hash(&content);
    println!(
        "blake3::hash, one thread, in memory:     {}",
        rate(size, start)
    );

    let start = Instant::now();
    let mut calls = 0;
    let info = seeder
        .import_file(&path, true, None, &mut |_| calls += 1)
        .unwrap();
    println!(
        "import_file in place (hash + outboard):  {}",
        rate(size, start)
    );
    assert_eq!(info.id, ContentId::from(reference));

    let start = Instant::now();
    let copied = leecher
        .import_file(&path, false, None, &mut |_| {})
        .unwrap();
    println!(
        "import_file copying into the store:      {}",
        rate(size, start)
    );
    assert_eq!(copied.id, info.id);
    leecher.remove_blob(&copied.id).unwrap();
    println!(
        "progress calls: {calls} ({:.1} MiB apart)",
        size as f64 / MIB / calls as f64
    );

    let step = 64; // 1 MiB requests
    let all = ranges(size as u64, step);
    let start = Instant::now();
    let encoded: Vec<Vec<u8>> = all
        .iter()
        .map(|&(a, b)| seeder.encode_groups(&info.id, a, b).unwrap())
        .collect();
    println!(
        "encode_groups, 1 MiB ranges (validated): {}",
        rate(size, start)
    );

    let start = Instant::now();
    let mut buf = Vec::new();
    for &(a, b) in &all {
        buf.clear();
        seeder.encode_groups_into(&info.id, a, b, &mut buf).unwrap();
    }
    println!(
        "encode_groups_into, one reused buffer:   {}",
        rate(size, start)
    );

    leecher
        .begin_partial(&info.id, size as u64, BlobKind::Blob, None)
        .unwrap();
    let start = Instant::now();
    for (&(a, b), enc) in all.iter().zip(&encoded) {
        leecher.write_verified(&info.id, a, b, enc).unwrap();
    }
    println!(
        "write_verified, 1 MiB ranges:            {}",
        rate(size, start)
    );
    assert!(leecher.blob(&info.id).unwrap().unwrap().complete);

    let start = Instant::now();
    leecher
        .export_blob(&info.id, &tmp.path().join("out"), false)
        .unwrap();
    println!(
        "export_blob (copy + verify + fsync):     {}",
        rate(size, start)
    );
}

#[test]
#[ignore = "a measurement; run in release mode"]
fn speed_of_recovering_64_mib_written_but_not_committed() {
    let tmp = tempfile::tempdir().unwrap();
    let u = written_not_committed(tmp.path());
    let start = Instant::now();
    u.leecher
        .begin_partial(&u.id, u.size as u64, BlobKind::Blob, None)
        .unwrap();
    println!(
        "begin_partial recovering 64 MiB:         {}",
        rate(u.size, start)
    );
}
