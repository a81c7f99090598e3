//! Collection manifests: `ferry_core::content::Manifest::decode` over a blob
//! any provider can send (`ferry get` of a shared directory).
//!
//! Properties: nothing panics; an accepted manifest encodes back to exactly
//! its bytes (one id per tree), holds at most `MAX_ENTRIES` entries, only
//! safe paths, and a total size that does not overflow.
#![no_main]

use ferry_core::content::{MAX_ENTRIES, Manifest, check_component};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(manifest) = Manifest::decode(data) else {
        return;
    };
    assert_eq!(
        manifest.encode(),
        data,
        "another encoding of a tree was accepted"
    );
    assert!(manifest.entries.len() <= MAX_ENTRIES);
    for entry in &manifest.entries {
        for component in entry.path.split('/') {
            assert!(
                check_component(component).is_ok(),
                "unsafe path {:?}",
                entry.path
            );
        }
    }
    let mut total: u64 = 0;
    for (_, size, _, _) in manifest.files() {
        total = total
            .checked_add(size)
            .expect("the sizes of an accepted manifest add up");
    }
    assert_eq!(manifest.total_size(), total);
    assert_eq!(
        Manifest::new(manifest.entries.clone()).as_ref(),
        Ok(&manifest)
    );
});
