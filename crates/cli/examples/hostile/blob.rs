//! The hostile peer's `/ferry/blob/1` modes: it serves a real file, but its
//! answers are written byte by byte, so they can say what ferry's own types
//! can no longer express.
//!
//! ```text
//! hostile_peer blob-bad-bitfield DATA_DIR FILE
//! ```
//!
//! - `blob-bad-bitfield`: every "what do you have" is answered with the file's
//!   true size and a bitfield whose group count matches that size but whose
//!   words are missing (an empty vector). A node that trusts the group count
//!   indexes past the end. Groups are served honestly.
//!
//! Like the other serving modes it prints one JSON line (`peer_id`, `addr`,
//! `id`, `ticket`) and serves until killed, on 127.0.0.1 with no discovery.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::swarm::{RawEvent, raw_swarm};
use anyhow::bail;
use ferry_core::content::{ContentKind, group_count};
use ferry_core::transfer::{BlobRequest, BlobResponse, MAX_REQUEST_BYTES, PROTOCOL};
use ferry_net::libp2p::StreamProtocol;
use ferry_net::libp2p::futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use ferry_net::libp2p::request_response::{self, Codec, Message};
use ferry_net::libp2p::swarm::SwarmEvent;
use ferry_store::{DataDir, Store, identity};

use crate::announce::announce_provider;

pub(crate) async fn run(mode: &str, data_dir: PathBuf, rest: &[String]) -> anyhow::Result<()> {
    match (mode, rest) {
        ("blob-bad-bitfield", [file]) => serve_bad_bitfield(&data_dir, Path::new(file)).await,
        _ => bail!("usage: hostile_peer blob-bad-bitfield DATA_DIR FILE"),
    }
}

async fn serve_bad_bitfield(data_dir: &Path, file: &Path) -> anyhow::Result<()> {
    let dir = DataDir::lock(data_dir)?;
    let keypair = identity::load_or_create(&dir)?;
    let store = Store::open(&dir)?;
    let info = store.import_file(file, false, None, &mut |_| {})?;
    let mut swarm = raw_swarm(
        keypair,
        PROTOCOL,
        RawCodec,
        request_response::ProtocolSupport::Inbound,
        request_response::Config::default(),
        Duration::from_secs(60),
    )?;
    swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse()?)?;
    announce_provider(&mut swarm, info.id, ContentKind::Blob, "hostile").await;
    loop {
        let SwarmEvent::Behaviour(RawEvent::Proto(request_response::Event::Message {
            message: Message::Request {
                request, channel, ..
            },
            ..
        })) = swarm.select_next_some().await
        else {
            continue;
        };
        let body = match request {
            BlobRequest::Have { id } if id == info.id => {
                have_with_empty_bitfield(info.size, info.kind)
            }
            BlobRequest::Groups { id, first, last } if id == info.id => {
                match store.encode_groups(&id, first, last) {
                    Ok(encoded) => postcard::to_stdvec(&BlobResponse::Groups { encoded })?,
                    Err(_) => postcard::to_stdvec(&BlobResponse::NotFound)?,
                }
            }
            _ => postcard::to_stdvec(&BlobResponse::NotFound)?,
        };
        let _ = swarm.behaviour_mut().proto.send_response(channel, body);
    }
}

/// `BlobResponse::Have { size, kind, groups: Some(Bitfield { groups:
/// group_count(size), bits: [] }) }` in postcard, written field by field:
/// the variant index, the size, the kind, `Some`, the group count, and a
/// vector of length 0.
fn have_with_empty_bitfield(size: u64, kind: ContentKind) -> Vec<u8> {
    const HAVE_VARIANT: u8 = 0;
    const SOME: u8 = 1;
    const EMPTY_VEC: u8 = 0;
    let mut body = vec![HAVE_VARIANT];
    body.extend(varint(size));
    body.push(match kind {
        ContentKind::Blob => 0,
        ContentKind::Collection => 1,
    });
    body.push(SOME);
    body.extend(varint(group_count(size)));
    body.push(EMPTY_VEC);
    body
}

/// postcard's unsigned integer encoding: 7 bits a byte, low bits first.
fn varint(mut value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// Reads real requests; writes whatever response bytes it is given as one
/// frame (4-byte big-endian length, then the body).
#[derive(Clone, Copy)]
struct RawCodec;

impl Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = BlobRequest;
    type Response = Vec<u8>;

    async fn read_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<BlobRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut len = [0u8; 4];
        io.read_exact(&mut len).await?;
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_REQUEST_BYTES {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "request over the limit",
            ));
        }
        let mut body = vec![0u8; len];
        io.read_exact(&mut body).await?;
        postcard::from_bytes(&body)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, _: &mut T) -> std::io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        Err(std::io::Error::other("this peer asks nothing"))
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
        _: BlobRequest,
    ) -> std::io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        Err(std::io::Error::other("this peer asks nothing"))
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        body: Vec<u8>,
    ) -> std::io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let len = u32::try_from(body.len())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        io.write_all(&len.to_be_bytes()).await?;
        io.write_all(&body).await?;
        io.close().await
    }
}
