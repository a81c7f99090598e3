//! The node's long-term ed25519 identity, created on first start and kept.

use std::fs;
use std::io::Write;
use std::path::Path;

use ferry_core::Keypair;

use crate::{DataDir, StoreError, data_dir::restrict_to_owner};

const IDENTITY_FILE: &str = "identity.key";

/// Loads the node's key, or creates and durably saves a new one.
pub fn load_or_create(dir: &DataDir) -> Result<Keypair, StoreError> {
    let path = dir.path().join(IDENTITY_FILE);
    match fs::read(&path) {
        Ok(bytes) => Keypair::from_protobuf_encoding(&bytes).map_err(|e| StoreError::BadIdentity {
            path,
            reason: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let keypair = Keypair::generate_ed25519();
            let bytes = keypair
                .to_protobuf_encoding()
                .expect("ed25519 keys always encode");
            write_atomically(&path, &bytes).map_err(|source| StoreError::DataDir {
                path: path.clone(),
                source,
            })?;
            Ok(keypair)
        }
        Err(source) => Err(StoreError::DataDir { path, source }),
    }
}

/// Writes `bytes` to a temporary file, syncs it, then renames it over `path`:
/// a crash leaves either no file or the whole file, never half of one.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = fs::File::create(&tmp)?;
    restrict_to_owner(&tmp, 0o600)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_created_once_and_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::lock(tmp.path()).unwrap();
        let first = load_or_create(&dir).unwrap();
        let again = load_or_create(&dir).unwrap();
        assert_eq!(first.public(), again.public());
    }

    #[test]
    fn a_corrupt_identity_is_an_error_not_a_new_identity() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::lock(tmp.path()).unwrap();
        fs::write(tmp.path().join(IDENTITY_FILE), b"garbage").unwrap();
        let err = load_or_create(&dir).err().unwrap();
        assert!(matches!(err, StoreError::BadIdentity { .. }));
        assert_eq!(
            fs::read(tmp.path().join(IDENTITY_FILE)).unwrap(),
            b"garbage"
        );
    }
}
