//! A request-response codec for ferry's own protocols: each message is a
//! 4-byte big-endian length and a postcard body, with a size limit for each
//! direction that is checked before anything is allocated.
//!
//! A body is read in pieces, its buffer growing as bytes arrive, so a peer
//! that claims a large message and sends nothing costs nothing. A protocol
//! whose requests may be large (a DTN bundle) also has a budget shared by
//! every connection: the bytes of requests being read at once, node-wide.
//! A request waits for room before its body is read (its stream's timeout
//! still runs), so however many peers and streams send at once, the memory
//! they hold is bounded (see `docs/limits.md`).

use std::io;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use libp2p::request_response::Codec;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

/// A body is read in pieces of this many bytes at first, the buffer doubling
/// as bytes arrive (never past the length the frame claims).
const FIRST_PIECE: usize = 64 * 1024;

/// The budget's unit: permits are KiB, so a 16 MiB frame fits a `u32`.
const BUDGET_UNIT: usize = 1024;

pub struct PostcardCodec<Req, Resp> {
    max_request: usize,
    max_response: usize,
    /// Bytes of requests being read at once, shared by every clone (every
    /// connection and stream of the protocol); `None`: unbudgeted.
    request_budget: Option<Arc<Semaphore>>,
    _types: PhantomData<fn() -> (Req, Resp)>,
}

impl<Req, Resp> PostcardCodec<Req, Resp> {
    pub fn new(max_request: usize, max_response: usize) -> Self {
        Self {
            max_request,
            max_response,
            request_budget: None,
            _types: PhantomData,
        }
    }

    /// Reads at most `frames` maximal requests at once, node-wide: past
    /// that, a request waits for room before its body is read.
    pub fn with_request_budget(mut self, frames: usize) -> Self {
        let permits = frames.max(1) * self.max_request.div_ceil(BUDGET_UNIT);
        self.request_budget = Some(Arc::new(Semaphore::new(permits)));
        self
    }
}

impl<Req, Resp> Clone for PostcardCodec<Req, Resp> {
    fn clone(&self) -> Self {
        Self {
            max_request: self.max_request,
            max_response: self.max_response,
            request_budget: self.request_budget.clone(),
            _types: PhantomData,
        }
    }
}

async fn read_frame<T: AsyncRead + Unpin, M: DeserializeOwned>(
    io: &mut T,
    limit: usize,
    budget: Option<&Semaphore>,
    protocol: &StreamProtocol,
) -> io::Result<M> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = usize::try_from(u32::from_be_bytes(len)).unwrap_or(usize::MAX);
    if len > limit {
        warn_oversize(protocol, len, limit);
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("message of {len} bytes is over the {limit}-byte limit"),
        ));
    }
    // Held until the body is decoded; `len <= limit`, which the budget holds.
    let _room = match budget {
        Some(budget) => {
            let permits = u32::try_from(len.div_ceil(BUDGET_UNIT)).map_err(io::Error::other)?;
            Some(
                budget
                    .acquire_many(permits)
                    .await
                    .map_err(io::Error::other)?,
            )
        }
        None => None,
    };
    let body = read_body(io, len).await?;
    postcard::from_bytes(&body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Reads exactly `len` bytes, growing the buffer only as they arrive: at
/// most twice what was received so far, never more than `len` in all.
async fn read_body<T: AsyncRead + Unpin>(io: &mut T, len: usize) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    while body.len() < len {
        let start = body.len();
        let end = len.min(start + start.max(FIRST_PIECE));
        body.reserve_exact(end - start);
        body.resize(end, 0);
        io.read_exact(&mut body[start..]).await?;
    }
    Ok(body)
}

/// Over-limit messages are logged at most this often (a peer can send them as
/// fast as it opens streams).
const OVERSIZE_LOG_MS: u64 = 10_000;

/// Logs a message refused for its size. libp2p reports a request that fails to
/// read only at debug level, and not to the behaviour, so without this the
/// refusal would leave no trace.
fn warn_oversize(protocol: &StreamProtocol, len: usize, limit: usize) {
    static LAST_MS: AtomicU64 = AtomicU64::new(0);
    static SUPPRESSED: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_millis() as u64)
        .max(1);
    let last = LAST_MS.load(Ordering::Relaxed);
    let due = last == 0 || now.saturating_sub(last) >= OVERSIZE_LOG_MS;
    if !due
        || LAST_MS
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        SUPPRESSED.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let more = match SUPPRESSED.swap(0, Ordering::Relaxed) {
        0 => String::new(),
        n => format!(" ({n} more refused since the last warning)"),
    };
    tracing::warn!(%protocol, "message from a peer refused unread: {len} bytes is over the {limit}-byte limit{more}");
}

/// Encodes a message as a frame. Done before any await, so the message
/// itself never has to cross threads.
fn encode_frame<M: Serialize>(message: &M, limit: usize) -> io::Result<Vec<u8>> {
    let body =
        postcard::to_stdvec(message).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    if body.len() > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "message of {} bytes is over the {limit}-byte limit",
                body.len()
            ),
        ));
    }
    let len =
        u32::try_from(body.len()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    Ok([len.to_be_bytes().as_slice(), &body].concat())
}

async fn write_frame<T: AsyncWrite + Unpin>(
    io: &mut T,
    frame: io::Result<Vec<u8>>,
) -> io::Result<()> {
    io.write_all(&frame?).await?;
    io.close().await
}

impl<Req, Resp> Codec for PostcardCodec<Req, Resp>
where
    Req: Serialize + DeserializeOwned + Send + 'static,
    Resp: Serialize + DeserializeOwned + Send + 'static,
{
    type Protocol = StreamProtocol;
    type Request = Req;
    type Response = Resp;

    async fn read_request<T>(&mut self, protocol: &StreamProtocol, io: &mut T) -> io::Result<Req>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(
            io,
            self.max_request,
            self.request_budget.as_deref(),
            protocol,
        )
        .await
    }

    async fn read_response<T>(&mut self, protocol: &StreamProtocol, io: &mut T) -> io::Result<Resp>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.max_response, None, protocol).await
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, req: Req) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, encode_frame(&req, self.max_request)).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Resp,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, encode_frame(&res, self.max_response)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::Cursor;

    #[test]
    fn frames_round_trip_and_limits_hold() {
        futures::executor::block_on(async {
            let mut buf = Cursor::new(Vec::new());
            write_frame(&mut buf, encode_frame(&vec![7u8; 100], 1000))
                .await
                .unwrap();
            buf.set_position(0);
            let protocol = StreamProtocol::new("/test/1");
            let back: Vec<u8> = read_frame(&mut buf, 1000, None, &protocol).await.unwrap();
            assert_eq!(back, vec![7u8; 100]);

            buf.set_position(0);
            let err = read_frame::<_, Vec<u8>>(&mut buf, 50, None, &protocol)
                .await
                .unwrap_err();
            assert!(err.to_string().contains("limit"), "{err}");

            assert!(encode_frame(&vec![0u8; 100], 50).is_err());
        });
    }

    #[test]
    fn a_claimed_length_is_not_allocated_before_its_bytes_arrive() {
        futures::executor::block_on(async {
            // 16 MiB claimed, 1,000 bytes sent, then the stream ends.
            let mut frame = (16u32 << 20).to_be_bytes().to_vec();
            frame.extend([0u8; 1000]);
            let mut io = Cursor::new(frame);
            let mut len = [0u8; 4];
            io.read_exact(&mut len).await.unwrap();
            let err = read_body(&mut io, 16 << 20).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);

            // A complete body comes back whole, in a buffer of its size.
            let sent: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
            let body = read_body(&mut Cursor::new(sent.clone()), sent.len())
                .await
                .unwrap();
            assert_eq!(body, sent);
            assert_eq!(body.capacity(), sent.len());
        });
    }

    #[test]
    fn budgeted_reads_wait_for_room_and_release_it() {
        futures::executor::block_on(async {
            let protocol = StreamProtocol::new("/test/1");
            let budget = Semaphore::new(2);
            let frame = encode_frame(&vec![1u8; 1500], 4096).unwrap();
            let back: Vec<u8> = read_frame(&mut Cursor::new(frame), 4096, Some(&budget), &protocol)
                .await
                .unwrap();
            assert_eq!(back.len(), 1500);
            assert_eq!(budget.available_permits(), 2, "the room is given back");
        });
    }

    mod peer_input {
        //! Whatever bytes a peer sends on ferry's request-response protocols,
        //! the codecs the node runs decode them or fail with an error, never a
        //! panic; and what decodes is a value that encodes back to the same
        //! message and passes the checks the node applies next.

        use super::*;
        use ferry_core::dtn::Bundle;
        use ferry_core::dtn::wire::{self, DtnRequest, DtnResponse};
        use ferry_core::sync::{SyncRequest, SyncResponse};
        use ferry_core::transfer::{self, BlobRequest, BlobResponse, check_have};
        use libp2p::request_response::cbor;
        use proptest::prelude::*;

        /// A frame of `body` whose length prefix is the true length, or one
        /// the peer made up.
        fn frame(body: &[u8], claimed: Option<u32>) -> Vec<u8> {
            let len = claimed.unwrap_or(body.len() as u32);
            [len.to_be_bytes().as_slice(), body].concat()
        }

        /// Decodes `bytes` as an `M` with ferry's codec; a success must
        /// re-encode to a frame that decodes to the same value.
        fn decode_and_round_trip<M>(bytes: &[u8], limit: usize) -> Option<M>
        where
            M: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug,
        {
            let protocol = StreamProtocol::new("/ferry/test/1");
            let decoded: M = futures::executor::block_on(read_frame(
                &mut Cursor::new(bytes.to_vec()),
                limit,
                None,
                &protocol,
            ))
            .ok()?;
            let again =
                encode_frame(&decoded, limit).expect("what decoded within the limit encodes");
            let back: M = futures::executor::block_on(read_frame(
                &mut Cursor::new(again),
                limit,
                None,
                &protocol,
            ))
            .expect("a re-encoded message decodes");
            assert_eq!(back, decoded);
            Some(decoded)
        }

        fn sync_round_trip(bytes: &[u8]) {
            let protocol = StreamProtocol::new(ferry_core::sync::PROTOCOL);
            let mut codec = cbor::codec::Codec::<SyncRequest, SyncResponse>::default();
            futures::executor::block_on(async {
                if let Ok(request) = codec
                    .read_request(&protocol, &mut Cursor::new(bytes.to_vec()))
                    .await
                {
                    let mut out = Cursor::new(Vec::new());
                    codec
                        .write_request(&protocol, &mut out, request.clone())
                        .await
                        .unwrap();
                    let back = codec
                        .read_request(&protocol, &mut Cursor::new(out.into_inner()))
                        .await
                        .unwrap();
                    assert_eq!(back, request);
                }
                if let Ok(response) = codec
                    .read_response(&protocol, &mut Cursor::new(bytes.to_vec()))
                    .await
                {
                    let mut out = Cursor::new(Vec::new());
                    codec
                        .write_response(&protocol, &mut out, response.clone())
                        .await
                        .unwrap();
                    let back = codec
                        .read_response(&protocol, &mut Cursor::new(out.into_inner()))
                        .await
                        .unwrap();
                    assert_eq!(back, response);
                }
            });
        }

        proptest! {
            #[test]
            fn blob_messages_from_any_bytes(
                body in proptest::collection::vec(any::<u8>(), 0..512),
                claimed in proptest::option::of(any::<u32>()),
            ) {
                let bytes = frame(&body, claimed);
                if let Some(request) =
                    decode_and_round_trip::<BlobRequest>(&bytes, transfer::MAX_REQUEST_BYTES)
                {
                    let _ = request.check();
                }
                if let Some(BlobResponse::Have { size, groups, .. }) =
                    decode_and_round_trip::<BlobResponse>(&bytes, transfer::MAX_RESPONSE_BYTES)
                    && let Some(field) = &groups
                {
                    // A decoded bitfield is consistent whatever its size claim.
                    prop_assert!(field.count() <= field.groups());
                    let _ = field.get(field.groups().saturating_sub(1));
                    let _ = check_have(size, groups.as_ref(), u64::MAX);
                }
            }

            #[test]
            fn dtn_messages_from_any_bytes(
                body in proptest::collection::vec(any::<u8>(), 0..1024),
                claimed in proptest::option::of(any::<u32>()),
            ) {
                let bytes = frame(&body, claimed);
                if let Some(DtnRequest::Bundle { bytes: bundle, .. }) =
                    decode_and_round_trip::<DtnRequest>(&bytes, wire::MAX_REQUEST_BYTES)
                {
                    let _ = Bundle::parse(&bundle);
                }
                let _ = decode_and_round_trip::<DtnResponse>(&bytes, wire::MAX_RESPONSE_BYTES);
            }

            #[test]
            fn sync_messages_from_any_bytes(
                body in proptest::collection::vec(any::<u8>(), 0..1024),
            ) {
                sync_round_trip(&body);
            }

            /// Bytes that are a real message's, with a few changed: these get
            /// past the first byte far more often than noise does.
            #[test]
            fn mutated_messages_decode_safely(
                flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
                cut in any::<usize>(),
            ) {
                let id = ferry_core::content::ContentId::of(b"x");
                let have = BlobResponse::Have {
                    size: 40_000,
                    kind: ferry_core::content::ContentKind::Blob,
                    groups: Some(ferry_core::content::Bitfield::full(3).unwrap()),
                };
                let request = BlobRequest::Groups { id, first: 1, last: 3 };
                let sync = SyncRequest::History {
                    channel: "general".parse().unwrap(),
                    have: vec![],
                };
                let mut bodies = vec![
                    postcard::to_stdvec(&have).unwrap(),
                    postcard::to_stdvec(&request).unwrap(),
                ];
                let mut cbor_sync = Cursor::new(Vec::new());
                futures::executor::block_on(
                    cbor::codec::Codec::<SyncRequest, SyncResponse>::default().write_request(
                        &StreamProtocol::new(ferry_core::sync::PROTOCOL),
                        &mut cbor_sync,
                        sync,
                    ),
                )
                .unwrap();
                bodies.push(cbor_sync.into_inner());
                for body in &mut bodies {
                    for (at, byte) in &flips {
                        let len = body.len();
                        body[at % len] ^= byte;
                    }
                    body.truncate(cut % (body.len() + 1));
                }
                let have_frame = frame(&bodies[0], None);
                let _ = decode_and_round_trip::<BlobResponse>(&have_frame, transfer::MAX_RESPONSE_BYTES);
                let request_frame = frame(&bodies[1], None);
                let _ = decode_and_round_trip::<BlobRequest>(&request_frame, transfer::MAX_REQUEST_BYTES);
                sync_round_trip(&bodies[2]);
            }
        }
    }
}
