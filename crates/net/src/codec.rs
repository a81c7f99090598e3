//! A request-response codec for ferry's own protocols: each message is a
//! 4-byte big-endian length and a postcard body, with a size limit for each
//! direction that is checked before anything is allocated.

use std::io;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use libp2p::request_response::Codec;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub struct PostcardCodec<Req, Resp> {
    max_request: usize,
    max_response: usize,
    _types: PhantomData<fn() -> (Req, Resp)>,
}

impl<Req, Resp> PostcardCodec<Req, Resp> {
    pub fn new(max_request: usize, max_response: usize) -> Self {
        Self {
            max_request,
            max_response,
            _types: PhantomData,
        }
    }
}

impl<Req, Resp> Clone for PostcardCodec<Req, Resp> {
    fn clone(&self) -> Self {
        Self::new(self.max_request, self.max_response)
    }
}

async fn read_frame<T: AsyncRead + Unpin, M: DeserializeOwned>(
    io: &mut T,
    limit: usize,
    protocol: &StreamProtocol,
) -> io::Result<M> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > limit {
        warn_oversize(protocol, len, limit);
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("message of {len} bytes is over the {limit}-byte limit"),
        ));
    }
    let mut body = vec![0u8; len];
    io.read_exact(&mut body).await?;
    postcard::from_bytes(&body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
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
        read_frame(io, self.max_request, protocol).await
    }

    async fn read_response<T>(&mut self, protocol: &StreamProtocol, io: &mut T) -> io::Result<Resp>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.max_response, protocol).await
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
            let back: Vec<u8> = read_frame(&mut buf, 1000, &protocol).await.unwrap();
            assert_eq!(back, vec![7u8; 100]);

            buf.set_position(0);
            let err = read_frame::<_, Vec<u8>>(&mut buf, 50, &protocol)
                .await
                .unwrap_err();
            assert!(err.to_string().contains("limit"), "{err}");

            assert!(encode_frame(&vec![0u8; 100], 50).is_err());
        });
    }
}
