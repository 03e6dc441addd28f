//! One client connection: read a size-prefixed frame (bounded in size and in time), check
//! its wire shape ([`crate::guard`]), decode its header and body, dispatch, write the
//! response.
//!
//! Pipelining keeps Kafka's order: each request runs up to its first wait (a produce has
//! appended, a fetch has looked for data) before the next one is read, so requests take
//! effect in arrival order; only the waits overlap — an acks=all produce waiting for its
//! fsync while the next request appends, so they share the WAL's group commit — and the
//! responses leave in request order. At most [`PIPELINE_DEPTH_MAX`] answers wait at once.
//!
//! Nothing here trusts the peer: a frame's claimed length only bounds the read, memory
//! grows with the bytes that actually arrive, and a frame that is malformed in any way
//! closes the connection (ApiVersions at an unknown version gets error 35 instead).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::api::{self, Context};
use crate::guard::{self, GuardError};
#[cfg(test)]
use crate::limits::FRAME_BYTES_IN_FLIGHT_MAX;
use crate::limits::{
    CONNECTION_IDLE_MAX, FRAME_BYTES_MAX, FRAME_BYTES_MIN, FRAME_CHUNK_BYTES, FRAME_READ_TIMEOUT,
};

#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectionError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {0} bytes is outside [{FRAME_BYTES_MIN}, {FRAME_BYTES_MAX}]")]
    FrameSize(i32),
    #[error("frame not received within the read timeout")]
    FrameTimeout,
    #[error("connection idle longer than {CONNECTION_IDLE_MAX:?}")]
    Idle,
    #[error("response not written within {CONNECTION_IDLE_MAX:?}")]
    WriteTimeout,
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    #[error("unsupported version {version} of API key {api_key}")]
    UnsupportedVersion { api_key: i16, version: i16 },
    #[error("malformed request: {0}")]
    Malformed(#[from] GuardError),
    #[error("undecodable request (api key {api_key}, version {version}): {reason}")]
    Decode {
        api_key: i16,
        version: i16,
        reason: String,
    },
    #[error("encoding the response failed: {0}")]
    Encode(String),
    #[error("acks=0 produce failed; closing as Kafka does")]
    AcksZeroFailed,
    #[error("the frame memory budget is closed")]
    BudgetClosed,
}

/// Requests read but not yet answered on one connection (a client's in-flight requests:
/// librdkafka's default is 5 per connection for idempotent producers).
pub(crate) const PIPELINE_DEPTH_MAX: usize = 16;

/// A request's answer: the response frame to write (none for acks=0), once its wait is over.
type Answer<'a> = Pin<Box<dyn Future<Output = Result<Option<Bytes>, ConnectionError>> + Send + 'a>>;

/// Serves one connection. `budget` holds the bytes of request frames that all connections
/// may hold at once ([`crate::limits::FRAME_BYTES_IN_FLIGHT_MAX`]); a frame's share is
/// released once the request has taken effect (its first poll), before any wait.
pub(crate) async fn run(
    stream: TcpStream,
    context: &Context,
    budget: &Semaphore,
) -> Result<(), ConnectionError> {
    stream.set_nodelay(true)?;
    // Kafka shows a group member's host as "/" and its address.
    let client_host = stream
        .peer_addr()
        .map(|peer| format!("/{}", peer.ip()))
        .unwrap_or_default();
    let (reader, writer) = stream.into_split();
    let mut writer = BufWriter::new(writer);
    let mut pending: VecDeque<Answer<'_>> = VecDeque::new();
    // The frame being read lives across loop turns, so answering a request never drops a
    // half-read frame; it owns the read half and hands it back with the frame.
    let mut reading = Some(Box::pin(read_next(reader, budget)));
    loop {
        tokio::select! {
            biased;
            answer = async {
                match pending.front_mut() {
                    Some(answer) => answer.as_mut().await,
                    None => std::future::pending().await,
                }
            }, if !pending.is_empty() => {
                pending.pop_front();
                if let Some(response) = answer? {
                    write_response(&mut writer, &response).await?;
                }
            }
            (reader, frame) = async {
                match reading.as_mut() {
                    Some(read) => read.as_mut().await,
                    None => std::future::pending().await,
                }
            }, if reading.is_some() && pending.len() < PIPELINE_DEPTH_MAX => {
                let Some((frame, held)) = frame? else {
                    // End of stream: answer what is pending, then close.
                    reading = None;
                    continue;
                };
                reading = Some(Box::pin(read_next(reader, budget)));
                let mut answer: Answer<'_> = Box::pin(handle_frame(frame, context, &client_host));
                let first = std::future::poll_fn(|cx| Poll::Ready(answer.as_mut().poll(cx))).await;
                // The request has taken effect (or failed); its frame's bytes are no longer
                // needed, whatever it still waits for.
                drop(held);
                match first {
                    Poll::Ready(result) => pending.push_back(Box::pin(std::future::ready(result))),
                    Poll::Pending => pending.push_back(answer),
                }
            }
            else => return Ok(()),
        }
    }
}

/// [`read_frame`] owning the read half, so the read can outlive one `select!` turn.
async fn read_next(
    mut reader: OwnedReadHalf,
    budget: &Semaphore,
) -> (
    OwnedReadHalf,
    Result<Option<(Bytes, SemaphorePermit<'_>)>, ConnectionError>,
) {
    let frame = read_frame(&mut reader, budget).await;
    (reader, frame)
}

async fn write_response(
    writer: &mut BufWriter<tokio::net::tcp::OwnedWriteHalf>,
    response: &[u8],
) -> Result<(), ConnectionError> {
    let write = async {
        writer.write_all(response).await?;
        writer.flush().await
    };
    tokio::time::timeout(CONNECTION_IDLE_MAX, write)
        .await
        .map_err(|_| ConnectionError::WriteTimeout)?
        .map_err(ConnectionError::from)
}

/// Reads one frame body (without its size prefix) and the share of `budget` its buffer
/// holds; `None` at a clean end of stream between frames.
pub(crate) async fn read_frame<'b, R: AsyncRead + Unpin>(
    reader: &mut R,
    budget: &'b Semaphore,
) -> Result<Option<(Bytes, SemaphorePermit<'b>)>, ConnectionError> {
    let mut size = [0u8; 4];
    // Between frames a client may stay quiet for long (Kafka's connections.max.idle.ms).
    let first = tokio::time::timeout(CONNECTION_IDLE_MAX, reader.read(&mut size[..1]))
        .await
        .map_err(|_| ConnectionError::Idle)??;
    if first == 0 {
        return Ok(None);
    }
    let rest = async {
        reader.read_exact(&mut size[1..]).await?;
        let claimed = i32::from_be_bytes(size);
        let len = usize::try_from(claimed)
            .ok()
            .filter(|len| (FRAME_BYTES_MIN..=FRAME_BYTES_MAX).contains(len))
            .ok_or(ConnectionError::FrameSize(claimed))?;
        read_body(reader, len, budget).await
    };
    tokio::time::timeout(FRAME_READ_TIMEOUT, rest)
        .await
        .map_err(|_| ConnectionError::FrameTimeout)?
        .map(Some)
}

/// Reads `len` bytes, growing the buffer only as bytes arrive: a peer that claims 100 MiB
/// and sends 10 bytes costs [`FRAME_CHUNK_BYTES`], not 100 MiB. Every growth first takes
/// its bytes from `budget`, so all connections together hold at most the budget; when it
/// is spent, reads wait (within the frame deadline) for other frames to be answered.
async fn read_body<'b, R: AsyncRead + Unpin>(
    reader: &mut R,
    len: usize,
    budget: &'b Semaphore,
) -> Result<(Bytes, SemaphorePermit<'b>), ConnectionError> {
    let first = len.min(FRAME_CHUNK_BYTES);
    let mut held = reserve(budget, first).await?;
    let mut body: Vec<u8> = Vec::with_capacity(first);
    while body.len() < len {
        if body.len() == body.capacity() {
            // Double, so a large frame costs few copies, but never past the claimed length.
            let target = body
                .capacity()
                .saturating_mul(2)
                .clamp(FRAME_CHUNK_BYTES, len);
            held.merge(reserve(budget, target - body.capacity()).await?);
            body.reserve_exact(target - body.len());
        }
        let room = body.capacity() - body.len();
        let limit = u64::try_from(room).unwrap_or(u64::MAX);
        let read = (&mut *reader).take(limit).read_buf(&mut body).await?;
        if read == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
    }
    Ok((Bytes::from(body), held))
}

async fn reserve(budget: &Semaphore, bytes: usize) -> Result<SemaphorePermit<'_>, ConnectionError> {
    // At most FRAME_BYTES_MAX, far below u32::MAX.
    let bytes = u32::try_from(bytes).map_err(|_| ConnectionError::FrameSize(i32::MAX))?;
    budget
        .acquire_many(bytes)
        .await
        .map_err(|_| ConnectionError::BudgetClosed)
}

/// Decodes and handles one request frame; returns the response frame to send, if any.
async fn handle_frame(
    mut frame: Bytes,
    context: &Context,
    client_host: &str,
) -> Result<Option<Bytes>, ConnectionError> {
    let (key, version, correlation_id) = peek_header(&frame)?;
    let api_key = key as i16;
    if !api::is_supported(key, version) {
        if key == ApiKey::ApiVersions {
            // KIP-511: answer an unknown ApiVersions version with v0 and error 35.
            let response = api::api_versions::unsupported_version_response();
            return encode_response(key, 0, correlation_id, response).map(Some);
        }
        return Err(ConnectionError::UnsupportedVersion { api_key, version });
    }
    // Before the decoder sees a single count: see `guard` for why.
    let walked = guard::check_request(&frame)?;
    let decode_err = |reason: String| ConnectionError::Decode {
        api_key,
        version,
        reason,
    };
    let header = RequestHeader::decode(&mut frame, key.request_header_version(version))
        .map_err(|e| decode_err(e.to_string()))?;
    let request =
        RequestKind::decode(key, &mut frame, version).map_err(|e| decode_err(e.to_string()))?;
    if frame.has_remaining() {
        tracing::debug!(
            api_key,
            version,
            trailing = frame.remaining(),
            walked = walked.consumed,
            "trailing bytes after request"
        );
    }
    match api::dispatch(context, &header, request, client_host).await {
        api::Outcome::Respond(response) => {
            encode_response(key, version, correlation_id, *response).map(Some)
        }
        api::Outcome::NoResponse => Ok(None),
        api::Outcome::Close => Err(ConnectionError::AcksZeroFailed),
    }
}

/// The API key, version and correlation id every request starts with.
fn peek_header(frame: &[u8]) -> Result<(ApiKey, i16, i32), ConnectionError> {
    let short = || ConnectionError::FrameSize(i32::try_from(frame.len()).unwrap_or(i32::MAX));
    let field = |range: std::ops::Range<usize>| frame.get(range).ok_or_else(short);
    let api_key = i16::from_be_bytes(field(0..2)?.try_into().map_err(|_| short())?);
    let version = i16::from_be_bytes(field(2..4)?.try_into().map_err(|_| short())?);
    let correlation_id = i32::from_be_bytes(field(4..8)?.try_into().map_err(|_| short())?);
    let key = ApiKey::try_from(api_key).map_err(|_| ConnectionError::UnknownApiKey(api_key))?;
    Ok((key, version, correlation_id))
}

fn encode_response(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    response: kafka_protocol::messages::ResponseKind,
) -> Result<Bytes, ConnectionError> {
    let mut body = BytesMut::with_capacity(64);
    body.put_i32(0); // size, filled below
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    // ApiVersions responses always use header v0 (so clients can parse them first).
    let header_version = key.response_header_version(version);
    header
        .encode(&mut body, header_version)
        .map_err(|e| ConnectionError::Encode(e.to_string()))?;
    response
        .encode(&mut body, version)
        .map_err(|e| ConnectionError::Encode(e.to_string()))?;
    let len = i32::try_from(body.len() - 4)
        .map_err(|_| ConnectionError::Encode("response too large".into()))?;
    body[..4].copy_from_slice(&len.to_be_bytes());
    Ok(body.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_claimed_length_is_not_allocated_before_its_bytes_arrive() {
        // 100 MiB claimed, 10 bytes sent, then end of stream.
        let mut input = Vec::from((FRAME_BYTES_MAX as i32).to_be_bytes());
        input.extend_from_slice(&[0u8; 10]);
        let mut reader = &input[..];
        let budget = Semaphore::new(FRAME_BYTES_IN_FLIGHT_MAX);
        let err = read_frame(&mut reader, &budget)
            .await
            .expect_err("truncated frame");
        assert!(
            matches!(&err, ConnectionError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof),
            "{err}"
        );
    }

    #[tokio::test]
    async fn frames_grow_across_chunks_and_keep_their_bytes() {
        let len = FRAME_CHUNK_BYTES * 3 + 17;
        let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let mut input = Vec::from((len as i32).to_be_bytes());
        input.extend_from_slice(&payload);
        input.extend_from_slice(&9i32.to_be_bytes()); // the next frame's prefix, unread
        let mut reader = &input[..];
        let budget = Semaphore::new(FRAME_BYTES_IN_FLIGHT_MAX);
        let (frame, held) = read_frame(&mut reader, &budget)
            .await
            .expect("read")
            .expect("frame");
        assert_eq!(&frame[..], &payload[..]);
        assert_eq!(reader.len(), 4);
        // The buffer doubled from one chunk to the frame's length, and holds that much.
        assert_eq!(held.num_permits(), len);
        drop(held);
        assert_eq!(budget.available_permits(), FRAME_BYTES_IN_FLIGHT_MAX);
    }

    #[tokio::test]
    async fn sizes_outside_the_bounds_are_refused() {
        for claimed in [i32::MIN, -1, 0, 7, FRAME_BYTES_MAX as i32 + 1, i32::MAX] {
            let input = claimed.to_be_bytes();
            let mut reader = &input[..];
            let budget = Semaphore::new(FRAME_BYTES_IN_FLIGHT_MAX);
            let err = read_frame(&mut reader, &budget)
                .await
                .expect_err("bad size");
            assert!(
                matches!(err, ConnectionError::FrameSize(c) if c == claimed),
                "{err}"
            );
        }
        let mut empty: &[u8] = &[];
        let budget = Semaphore::new(FRAME_BYTES_IN_FLIGHT_MAX);
        assert!(
            read_frame(&mut empty, &budget)
                .await
                .expect("eof")
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_spent_budget_makes_reads_wait_for_other_frames() {
        let len = FRAME_CHUNK_BYTES * 2;
        let mut input = Vec::from((len as i32).to_be_bytes());
        input.extend_from_slice(&vec![1u8; len]);
        let budget = Semaphore::new(FRAME_BYTES_IN_FLIGHT_MAX);
        let others = budget
            .acquire_many(FRAME_BYTES_IN_FLIGHT_MAX as u32 - FRAME_CHUNK_BYTES as u32)
            .await
            .expect("others' frames");
        let mut reader = &input[..];
        // One chunk fits; growing past it waits while the others hold the budget.
        let waiting = read_frame(&mut reader, &budget);
        let waited = tokio::time::timeout(std::time::Duration::from_millis(200), waiting).await;
        assert!(waited.is_err(), "read a frame past a spent budget");
        assert_eq!(budget.available_permits(), FRAME_CHUNK_BYTES);
        drop(others);
        let mut reader = &input[..];
        let (frame, _held) = read_frame(&mut reader, &budget)
            .await
            .expect("read")
            .expect("frame");
        assert_eq!(frame.len(), len);
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_stops_mid_frame_is_closed_at_the_frame_deadline() {
        let (mut client, mut server) = tokio::io::duplex(1024);
        client.write_all(&100i32.to_be_bytes()).await.expect("size");
        client
            .write_all(&[0u8; 10])
            .await
            .expect("ten of 100 bytes");
        let budget = Semaphore::new(FRAME_BYTES_IN_FLIGHT_MAX);
        let started = tokio::time::Instant::now();
        let err = read_frame(&mut server, &budget).await.expect_err("stalled");
        assert!(matches!(err, ConnectionError::FrameTimeout), "{err}");
        assert!(started.elapsed() >= FRAME_READ_TIMEOUT);
        // The stalled frame's share of the budget is back.
        assert_eq!(budget.available_permits(), FRAME_BYTES_IN_FLIGHT_MAX);
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_is_closed_when_idle_too_long() {
        let (client, mut server) = tokio::io::duplex(1024);
        let budget = Semaphore::new(FRAME_BYTES_IN_FLIGHT_MAX);
        let started = tokio::time::Instant::now();
        let err = read_frame(&mut server, &budget).await.expect_err("idle");
        assert!(matches!(err, ConnectionError::Idle), "{err}");
        assert!(started.elapsed() >= CONNECTION_IDLE_MAX);
        drop(client);
    }

    #[test]
    fn a_short_frame_is_refused_without_indexing() {
        for len in 0..8 {
            let frame = vec![0u8; len];
            assert!(peek_header(&frame).is_err());
        }
        let (key, version, correlation) = peek_header(&[0, 18, 0, 3, 0, 0, 0, 7]).expect("header");
        assert_eq!((key, version, correlation), (ApiKey::ApiVersions, 3, 7));
        assert!(matches!(
            peek_header(&[0x7f, 0, 0, 0, 0, 0, 0, 0]),
            Err(ConnectionError::UnknownApiKey(0x7f00))
        ));
    }
}
