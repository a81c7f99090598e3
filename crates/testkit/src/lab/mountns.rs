//! A small disk of its own for a test: a tmpfs of a given size mounted in a
//! private mount namespace, so a node can be run out of space without touching
//! the machine's disks or anyone else's view of the filesystem. Needs root.
//!
//! The namespace is held by a `sleep` started with `unshare --mount
//! --propagation private`, which mounts the tmpfs first. Processes are run in it
//! with `nsenter --mount` ([`SmallDisk::command`]), so a node killed with -9 can
//! be started again on the same disk; the test reads and writes the disk's files
//! from outside through `/proc/PID/root` ([`SmallDisk::outside`]). Dropping the
//! [`SmallDisk`] ends the holder; the tmpfs goes when the last process in the
//! namespace exits.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A tmpfs mounted at `dir` inside a private mount namespace. See the module docs.
pub struct SmallDisk {
    holder: Child,
    /// Where the tmpfs is mounted (inside the namespace; outside it, this is
    /// an empty directory).
    pub dir: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size_mib` MiB at `dir` (created if needed) in a new
    /// private mount namespace.
    pub fn mount(dir: &Path, size_mib: u64) -> SmallDisk {
        std::fs::create_dir_all(dir).expect("create the mount point");
        let mut holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(r#"mount -t tmpfs -o "size=$1M,mode=0755" ferry-small-disk "$2" && echo mounted && exec sleep infinity"#)
            .arg("sh")
            .arg(size_mib.to_string())
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run unshare (util-linux)");
        let mut line = String::new();
        BufReader::new(holder.stdout.as_mut().expect("piped stdout"))
            .read_line(&mut line)
            .expect("read from unshare");
        if line.trim() != "mounted" {
            let mut stderr = String::new();
            let _ = holder
                .stderr
                .take()
                .map(|mut e| e.read_to_string(&mut stderr));
            let _ = holder.kill();
            let _ = holder.wait();
            panic!(
                "cannot mount a tmpfs at {} in a new mount namespace: {stderr}",
                dir.display()
            );
        }
        SmallDisk {
            holder,
            dir: dir.to_owned(),
        }
    }

    /// `nsenter --mount` into the disk's namespace, then `program`: add
    /// arguments, spawn or run it as usual.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("nsenter");
        command
            .args(["--target", &self.holder.id().to_string(), "--mount", "--"])
            .arg(program);
        command
    }

    /// `path` (absolute, as seen inside the namespace) as reachable from here.
    pub fn outside(&self, path: &Path) -> PathBuf {
        let relative = path.strip_prefix("/").expect("an absolute path");
        PathBuf::from(format!("/proc/{}/root", self.holder.id())).join(relative)
    }

    /// Bytes free on the tmpfs (`stat -f` on it through `/proc/PID/root`).
    pub fn free_bytes(&self) -> u64 {
        let out = super::run(
            Command::new("stat")
                .args(["-f", "-c", "%a %S"])
                .arg(self.outside(&self.dir)),
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let mut words = text.split_whitespace().map(|w| w.parse::<u64>().unwrap());
        let (blocks, block_size) = (words.next().unwrap(), words.next().unwrap());
        blocks * block_size
    }

    /// Fills the disk to the last byte with a file called `name` in its root;
    /// returns how many bytes it took.
    pub fn fill(&self, name: &str) -> u64 {
        let path = self.outside(&self.dir.join(name));
        let mut file = std::fs::File::create(&path).expect("create the filler");
        let chunk = vec![0xa5u8; 64 << 10];
        let mut written = 0u64;
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
        // The last pages may still fit a smaller write.
        for size in [4096usize, 512, 1] {
            while let Ok(n @ 1..) = file.write(&chunk[..size]) {
                written += n as u64;
            }
        }
        written
    }

    /// Deletes what [`SmallDisk::fill`] wrote.
    pub fn unfill(&self, name: &str) {
        std::fs::remove_file(self.outside(&self.dir.join(name))).expect("remove the filler");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}
