//! What the fuzz targets share: a small input format that the seed generator
//! can write and every target reads back, fixed identities, and the switches
//! that say which properties are checked.
//!
//! The structured targets read their input as a script of operations, each a
//! tag byte and its fields (integers little-endian, byte strings prefixed by a
//! 16-bit length). [`Script`] never fails: a field cut short by the end of the
//! input reads as zeros or as the bytes that are left, so every input is a
//! valid script and libFuzzer's mutations always reach the code under test.
//! [`ScriptWriter`] writes the same format, so seeds are real encodings made
//! with ferry's own encoders wrapped in the operations that feed them.

use std::sync::OnceLock;

use ferry_core::{Keypair, PeerId};

pub mod tcpcl;

/// Reads a fuzz input as a sequence of operations.
pub struct Script<'a> {
    data: &'a [u8],
}

impl<'a> Script<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn u8(&mut self) -> u8 {
        self.bytes(1).first().copied().unwrap_or(0)
    }

    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    pub fn u16(&mut self) -> u16 {
        let mut buf = [0u8; 2];
        let got = self.bytes(2);
        buf[..got.len()].copy_from_slice(got);
        u16::from_le_bytes(buf)
    }

    pub fn u32(&mut self) -> u32 {
        let mut buf = [0u8; 4];
        let got = self.bytes(4);
        buf[..got.len()].copy_from_slice(got);
        u32::from_le_bytes(buf)
    }

    pub fn u64(&mut self) -> u64 {
        let mut buf = [0u8; 8];
        let got = self.bytes(8);
        buf[..got.len()].copy_from_slice(got);
        u64::from_le_bytes(buf)
    }

    /// Up to `n` bytes: fewer at the end of the input.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.data.split_at(n.min(self.data.len()));
        self.data = tail;
        head
    }

    /// A byte string written by [`ScriptWriter::chunk`].
    pub fn chunk(&mut self) -> &'a [u8] {
        let len = usize::from(self.u16());
        self.bytes(len)
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        self.bytes(self.data.len())
    }
}

/// Writes what [`Script`] reads.
#[derive(Default)]
pub struct ScriptWriter {
    out: Vec<u8>,
}

impl ScriptWriter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.out.push(v);
        self
    }

    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(u8::from(v))
    }

    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.out.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.out.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.out.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.out.extend_from_slice(bytes);
        self
    }

    /// A byte string of at most 65,535 bytes (longer ones are cut, as a
    /// script could not say more).
    pub fn chunk(&mut self, bytes: &[u8]) -> &mut Self {
        let bytes = &bytes[..bytes.len().min(usize::from(u16::MAX))];
        self.u16(bytes.len() as u16).raw(bytes)
    }

    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }
}

/// How many distinct peers a script can name.
pub const PEERS: usize = 4;

/// Fixed keys, so that a crash reproduces with the same identities.
pub fn keys() -> &'static [Keypair; PEERS] {
    static KEYS: OnceLock<[Keypair; PEERS]> = OnceLock::new();
    KEYS.get_or_init(|| {
        std::array::from_fn(|i| {
            let mut secret = [0u8; 32];
            secret[0] = i as u8 + 1;
            Keypair::ed25519_from_bytes(secret).expect("32 bytes make an ed25519 key")
        })
    })
}

/// The peer a script names with byte `n`.
pub fn peer(n: u8) -> PeerId {
    keys()[usize::from(n) % PEERS].public().to_peer_id()
}

/// Bundle parsing runs bp7 under `catch_unwind`, so a panic inside bp7 costs
/// one bundle, not the node. libFuzzer's default hook would abort on such a
/// caught panic; this hook prints the first few and lets them unwind, so
/// only panics that escape (which still abort, see libfuzzer-sys) count as
/// crashes (run a crash input alone to see its message). Call it at the
/// start of a target that relies on a catch.
pub fn let_caught_panics_unwind() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let shown = std::sync::atomic::AtomicU32::new(0);
        std::panic::set_hook(Box::new(move |info| {
            if shown.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < 3 {
                eprintln!("{info}");
                eprintln!("(a panic inside catch_unwind is tolerated; one that escapes aborts)");
            }
        }));
    });
}

/// The layout of a signed envelope, as ferry's channel messages and beacons
/// write it (postcard; the field names differ, the bytes do not). Lets a
/// target sign bytes of its choosing, so its mutations reach the decoding of
/// what the signature covers, and re-encode what was decoded.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Envelope {
    pub key: Vec<u8>,
    pub signed: Vec<u8>,
    pub signature: Vec<u8>,
}

/// The signing domains (private in ferry-core; kept equal by the seeds,
/// which fail to decode if they drift).
pub const CHANNEL_DOMAIN: &[u8] = b"ferry/channel-message/v1\0";
pub const BEACON_DOMAIN: &[u8] = b"ferry/beacon/v1\0";

/// An envelope around `signed`, signed by fixed key `n` for `domain`.
pub fn envelope(n: u8, domain: &[u8], signed: &[u8]) -> Vec<u8> {
    let key = &keys()[usize::from(n) % PEERS];
    let signature = key
        .sign(&[domain, signed].concat())
        .expect("ed25519 keys sign");
    postcard::to_stdvec(&Envelope {
        key: key.public().encode_protobuf(),
        signed: signed.to_vec(),
        signature,
    })
    .expect("an envelope encodes")
}
