//! `control.json` in the data directory: where a running node's control API
//! listens and the token it wants. The file is readable by its owner only, so
//! only the user who runs the node can drive it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const CONTROL_FILE: &str = "control.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlFile {
    /// Base URL of the API, always on loopback, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// Sent as `Authorization: Bearer TOKEN`.
    pub token: String,
    pub pid: u32,
}

impl ControlFile {
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(CONTROL_FILE)
    }

    /// Reads the control file of `data_dir`; `None` if there is none.
    pub fn read(data_dir: &Path) -> std::io::Result<Option<Self>> {
        match fs::read(Self::path(data_dir)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes the file with owner-only permissions. It is created with them, so
    /// the token is never readable by others, not even for an instant.
    pub fn write(&self, data_dir: &Path) -> std::io::Result<()> {
        let path = Self::path(data_dir);
        let tmp = path.with_extension("tmp");
        let _ = fs::remove_file(&tmp);
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp)?;
        file.write_all(&serde_json::to_vec_pretty(self)?)?;
        file.sync_all()?;
        fs::rename(&tmp, &path)
    }

    /// Removes the file at shutdown, so a CLI does not try a port that is gone.
    pub fn remove(data_dir: &Path) {
        let _ = fs::remove_file(Self::path(data_dir));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_is_private() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(ControlFile::read(tmp.path()).unwrap(), None);
        let file = ControlFile {
            url: "http://127.0.0.1:1234".into(),
            token: "abc".into(),
            pid: 7,
        };
        file.write(tmp.path()).unwrap();
        assert_eq!(ControlFile::read(tmp.path()).unwrap(), Some(file));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(ControlFile::path(tmp.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        ControlFile::remove(tmp.path());
        assert_eq!(ControlFile::read(tmp.path()).unwrap(), None);
    }
}
