//! A real crash: a child process stores bundles as fast as it can, noting each one
//! "acknowledged" as `put_bundle` returns, and aborts at an arbitrary moment (no
//! destructors, no flush). The parent reopens its store: every acknowledged bundle is
//! there, whole, and nothing half-written is visible.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::*;
use crate::crash_child;

const DELAY_ENV: &str = "FERRY_STORE_BUNDLE_CRASH_DELAY_MS";
const ACKED: &str = "acked";

/// Bundle `n` of the child: every seventh is large (a file), the rest small.
fn spec(n: u64) -> Spec {
    Spec::new(
        n,
        if n % 7 == 3 {
            150_000
        } else {
            200 + n as usize % 500
        },
    )
}

/// The child's part: stores bundles until it aborts, `DELAY_ENV` ms after it
/// started and once it has acknowledged at least one more bundle (so every
/// crash tests something however slow the machine).
fn store_until_crash(root: &Path) -> ! {
    let delay: u64 = std::env::var(DELAY_ENV).unwrap().parse().unwrap();
    let (store, _dir) = open(&root.join("node"));
    let mut acked = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(root.join(ACKED))
        .unwrap();
    let progressed = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&progressed);
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(delay));
        while !seen.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::process::abort();
    });
    // Resume after what an earlier child stored.
    let start = store
        .bundle_metas()
        .unwrap()
        .iter()
        .map(|m| m.id.created().time - NOW)
        .filter(|&n| n < 1_000_000)
        .max()
        .map_or(0, |n| n + 1);
    for n in start.. {
        let (bytes, meta) = spec(n).build();
        if n % 5 == 4 {
            // Some batches, and some removals, in the mix.
            let (b2, m2) = spec(n + 1_000_000).build();
            store
                .put_bundles(&[(&bytes, &meta), (&b2, &m2)], &unlimited(), NOW)
                .unwrap();
            store.remove_bundle(&m2.id).unwrap();
        } else {
            store.put_bundle(&bytes, &meta, &unlimited(), NOW).unwrap();
        }
        // "The sender is told it arrived": only now.
        writeln!(acked, "{n}").unwrap();
        progressed.store(true, Ordering::Release);
    }
    unreachable!("the loop stores bundles until the process aborts")
}

#[test]
fn a_crash_at_any_moment_loses_no_acknowledged_bundle() {
    crash_child::child(store_until_crash);
    let tmp = tempfile::tempdir().unwrap();
    let mut before = 0;
    // Several crashes into the same store, each at another moment.
    for delay_ms in [150, 40, 400, 95, 250] {
        crash_child::crash(tmp.path(), &[(DELAY_ENV, delay_ms.to_string())]);
        let acked: Vec<u64> = fs::read_to_string(tmp.path().join(ACKED))
            .unwrap()
            .lines()
            .map(|l| l.parse().unwrap())
            .collect();
        let (store, _dir) = open(&tmp.path().join("node"));
        // Every acknowledged bundle is there, byte for byte.
        for &n in &acked {
            let (bytes, meta) = spec(n).build();
            assert_eq!(
                store.bundle_bytes(&meta.id).unwrap().as_ref(),
                Some(&bytes),
                "acknowledged bundle {n} lost (delay {delay_ms} ms)"
            );
        }
        // Everything stored is whole: at most the one put in flight is there
        // unacknowledged, and it is complete too.
        let metas = store.bundle_metas().unwrap();
        let acked_max = acked.iter().max().copied();
        for meta in &metas {
            let n = meta.id.created().time - NOW;
            // The second of a batch, not yet removed when the child died.
            let base = n % 1_000_000;
            assert!(
                Some(base) <= acked_max.map(|m| m + 1),
                "bundle {n} from nowhere"
            );
            assert_eq!(
                store.bundle_bytes(&meta.id).unwrap(),
                Some(spec(n).build().0)
            );
        }
        assert!(metas.len() >= acked.len());
        assert_eq!(tmp_files(&store), 0, "leftovers are cleaned on open");
        let large = metas.iter().filter(|m| m.size > INLINE_MAX as u64).count();
        assert_eq!(files(&store, "bundle"), large, "only named files remain");
        assert!(metas.len() > before, "the child made progress");
        before = metas.len();
    }
}
