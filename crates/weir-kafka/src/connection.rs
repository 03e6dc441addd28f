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
//! A Fetch response's large record sets are not read into memory: they stay slices of their
//! segment files until the frame is written, then go to the socket in chunks
//! ([`defer_records`]).
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
use kafka_protocol::messages::{FetchResponse, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;
use weir_storage::partition::ReadSlice;

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
type Answer<'a> = Pin<Box<dyn Future<Output = Result<Option<Frame>, ConnectionError>> + Send + 'a>>;

/// Bytes read ahead from the socket per connection: one `recv` usually brings a whole small
/// request (or several pipelined ones) instead of three reads per frame (first byte, rest of
/// the size, body). Larger frames bypass it. Not counted in the frame budget: it is fixed
/// per connection, like the socket's own buffers.
const READ_AHEAD_BYTES: usize = 8 << 10;

/// An encoded response: one buffer, or — for a Fetch response with large record sets — the
/// encoded fields with the record sets between them, read from their segment files while
/// the frame is written (see [`defer_records`]).
pub(crate) enum Frame {
    One(Bytes),
    Parts(Vec<Part>),
}

pub(crate) enum Part {
    Bytes(Bytes),
    File(ReadSlice),
}

impl Frame {
    #[cfg(test)]
    fn to_vec(&self) -> Vec<u8> {
        match self {
            Frame::One(bytes) => bytes.to_vec(),
            Frame::Parts(parts) => parts
                .iter()
                .flat_map(|part| match part {
                    Part::Bytes(bytes) => bytes.to_vec(),
                    Part::File(slice) => slice.read_to_vec().expect("read slice"),
                })
                .collect(),
        }
    }
}

/// Bytes read from a segment file per write while a record set streams out: large enough
/// for few syscalls, small enough that one buffer is reused instead of a fresh one (and
/// its page faults) the size of the whole response.
const FILE_CHUNK_BYTES: usize = 1 << 20;

/// Record sets at least this large are not read while the Fetch response is built but
/// streamed from the file as it is written ([`defer_records`]).
pub(crate) const DEFER_RECORD_BYTES_MIN: u64 = 64 << 10;

tokio::task_local! {
    /// The record sets a request being handled on this connection deferred, in order.
    static DEFERRED: std::cell::RefCell<Vec<ReadSlice>>;
}

/// Called by Fetch for a large record set: instead of reading it into memory (a 50 MiB
/// response was a 50 MiB buffer, then copied again into the encoded frame: profiles of a
/// 1 GiB read showed those copies and their page faults as most of the broker's time),
/// the connection keeps the slice and the response carries a 16-byte marker where the
/// records go; [`encode_fetch`] cuts the frame there and the records are read from the file
/// as the frame is written. None outside a connection (the caller then reads the records).
pub(crate) fn defer_records(slice: ReadSlice) -> Option<Bytes> {
    DEFERRED
        .try_with(|deferred| {
            let mut deferred = deferred.borrow_mut();
            let placeholder = Bytes::copy_from_slice(&marker(deferred.len()));
            deferred.push(slice);
            placeholder
        })
        .ok()
}

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
    // ACL hosts are bare IP addresses; every principal is anonymous until SASL exists.
    let session = crate::acls::Session {
        principal: crate::acls::ANONYMOUS.to_string(),
        host: client_host.trim_start_matches('/').to_string(),
    };
    let context = &context.for_session(session);
    let (reader, writer) = stream.into_split();
    let reader = BufReader::with_capacity(READ_AHEAD_BYTES, reader);
    let mut writer = BufWriter::new(writer);
    let mut pending: VecDeque<Answer<'_>> = VecDeque::new();
    // The frame being read lives across loop turns, so answering a request never drops a
    // half-read frame; it owns the read half and hands it back with the frame.
    let mut reading = Some(Box::pin(read_next(reader, budget)));
    // The idle deadline is re-armed lazily: a frame only notes its time, and the timer,
    // when it fires, moves itself to that time + CONNECTION_IDLE_MAX. A timeout around each
    // read registered and cancelled a timer per request (profiled under 5,000 requests/s).
    let mut last_frame = Instant::now();
    let idle = tokio::time::sleep(CONNECTION_IDLE_MAX);
    tokio::pin!(idle);
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
                // Answers that are ready together leave in one write: the buffer is flushed
                // only once the next answer (if any) still waits.
                while let Some(next) = pending.front_mut() {
                    let Poll::Ready(answer) =
                        std::future::poll_fn(|cx| Poll::Ready(next.as_mut().poll(cx))).await
                    else {
                        break;
                    };
                    pending.pop_front();
                    if let Some(response) = answer? {
                        write_response(&mut writer, &response).await?;
                    }
                }
                flush(&mut writer).await?;
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
                last_frame = Instant::now();
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
            () = &mut idle, if reading.is_some() => {
                let deadline = last_frame + CONNECTION_IDLE_MAX;
                if Instant::now() >= deadline {
                    return Err(ConnectionError::Idle);
                }
                idle.as_mut().reset(deadline);
            }
            else => return Ok(()),
        }
    }
}

/// [`read_frame`] owning the read half, so the read can outlive one `select!` turn.
async fn read_next(
    mut reader: BufReader<OwnedReadHalf>,
    budget: &Semaphore,
) -> (
    BufReader<OwnedReadHalf>,
    Result<Option<(Bytes, SemaphorePermit<'_>)>, ConnectionError>,
) {
    let frame = read_frame(&mut reader, budget).await;
    (reader, frame)
}

/// Puts a response into the write buffer (parts larger than the buffer go straight to the
/// socket); [`flush`] sends what is buffered.
async fn write_response(
    writer: &mut BufWriter<OwnedWriteHalf>,
    response: &Frame,
) -> Result<(), ConnectionError> {
    let write = async {
        match response {
            Frame::One(bytes) => writer.write_all(bytes).await,
            Frame::Parts(parts) => {
                let mut chunk = Vec::new();
                for part in parts {
                    match part {
                        Part::Bytes(bytes) => writer.write_all(bytes).await?,
                        Part::File(slice) => write_slice(writer, slice, &mut chunk).await?,
                    }
                }
                Ok(())
            }
        }
    };
    tokio::time::timeout(CONNECTION_IDLE_MAX, write)
        .await
        .map_err(|_| ConnectionError::WriteTimeout)?
        .map_err(ConnectionError::from)
}

/// Copies a record set from its segment file to the socket in [`FILE_CHUNK_BYTES`] reads.
/// The frame's length is already written: a read that fails or comes up short can only end
/// the connection, and the client retries. The slice holds the file open, so retention,
/// compaction and topic deletion (which unlink or replace files) cannot change what it
/// reads; only an in-place cut of a segment could (`PartitionLog::truncate_after`, unused
/// by the broker today: when replication uses it, it must wait for such readers).
async fn write_slice(
    writer: &mut BufWriter<OwnedWriteHalf>,
    slice: &ReadSlice,
    chunk: &mut Vec<u8>,
) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut done = 0u64;
    while done < slice.len {
        let want = usize::try_from((slice.len - done).min(FILE_CHUNK_BYTES as u64))
            .unwrap_or(FILE_CHUNK_BYTES);
        chunk.resize(want, 0);
        slice.file.read_exact_at(chunk, slice.position + done)?;
        writer.write_all(chunk).await?;
        done += want as u64;
    }
    Ok(())
}

async fn flush(writer: &mut BufWriter<OwnedWriteHalf>) -> Result<(), ConnectionError> {
    tokio::time::timeout(CONNECTION_IDLE_MAX, writer.flush())
        .await
        .map_err(|_| ConnectionError::WriteTimeout)?
        .map_err(ConnectionError::from)
}

/// Reads one frame body (without its size prefix) and the share of `budget` its buffer
/// holds; `None` at a clean end of stream between frames. A client may stay quiet between
/// frames for long (Kafka's connections.max.idle.ms): the caller bounds that wait.
pub(crate) async fn read_frame<'b, R: AsyncRead + Unpin>(
    reader: &mut R,
    budget: &'b Semaphore,
) -> Result<Option<(Bytes, SemaphorePermit<'b>)>, ConnectionError> {
    let mut size = [0u8; 4];
    let first = reader.read(&mut size[..1]).await?;
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
) -> Result<Option<Frame>, ConnectionError> {
    let (key, version, correlation_id) = peek_header(&frame)?;
    let api_key = key as i16;
    if !api::is_supported(key, version) {
        if key == ApiKey::ApiVersions {
            // KIP-511: answer an unknown ApiVersions version with v0 and error 35.
            let response = api::api_versions::unsupported_version_response();
            return encode_response(key, 0, correlation_id, &response).map(|b| Some(Frame::One(b)));
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
    // Only Fetch defers record sets; the task-local costs every poll of the request it wraps.
    let (outcome, deferred) = if key == ApiKey::Fetch {
        DEFERRED
            .scope(std::cell::RefCell::new(Vec::new()), async {
                let outcome = api::dispatch(context, &header, request, client_host).await;
                (outcome, DEFERRED.with(|d| d.take()))
            })
            .await
    } else {
        (
            api::dispatch(context, &header, request, client_host).await,
            Vec::new(),
        )
    };
    match outcome {
        api::Outcome::Respond(response) => match *response {
            ResponseKind::Fetch(fetch) => {
                encode_fetch(version, correlation_id, fetch, deferred).map(Some)
            }
            response => encode_response(key, version, correlation_id, &response)
                .map(|b| Some(Frame::One(b))),
        },
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
    response: &ResponseKind,
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

/// Record sets stand in the encoded fields as 16-byte markers: this process's random
/// 12 bytes (so no client can name them, e.g. as a topic id it asks for) and a counter.
fn marker_prefix() -> &'static [u8; 12] {
    static PREFIX: std::sync::OnceLock<[u8; 12]> = std::sync::OnceLock::new();
    PREFIX.get_or_init(|| {
        let random = uuid::Uuid::new_v4().into_bytes();
        let mut prefix = [0u8; 12];
        prefix.copy_from_slice(&random[..12]);
        prefix
    })
}

fn marker(index: usize) -> [u8; 16] {
    let mut marker = [0u8; 16];
    marker[..12].copy_from_slice(marker_prefix());
    // Record sets per response are bounded by the partitions asked for, far below u32::MAX.
    marker[12..].copy_from_slice(&u32::try_from(index).unwrap_or(u32::MAX).to_be_bytes());
    marker
}

/// A Fetch response whose large record sets were deferred: the response (markers where
/// those records go) is encoded as usual, so every field stays kafka-protocol's encoding,
/// then cut at the markers, each record set going between the cuts behind its real length.
/// Markers not where expected (they cannot be, short of a bug) fall back to reading the
/// records and encoding them in place.
fn encode_fetch(
    version: i16,
    correlation_id: i32,
    response: FetchResponse,
    deferred: Vec<ReadSlice>,
) -> Result<Frame, ConnectionError> {
    let mut response = ResponseKind::Fetch(response);
    let body = encode_response(ApiKey::Fetch, version, correlation_id, &response)?;
    if deferred.is_empty() {
        return Ok(Frame::One(body));
    }
    if let Some(parts) = splice(body, deferred.clone(), version >= FLEXIBLE_FETCH_VERSION) {
        return Ok(Frame::Parts(parts));
    }
    tracing::warn!(
        version,
        "fetch response markers not where expected; reading records"
    );
    if let ResponseKind::Fetch(fetch) = &mut response {
        for partition in fetch.responses.iter_mut().flat_map(|t| &mut t.partitions) {
            let Some(records) = partition.records.as_mut() else {
                continue;
            };
            let index = (0..deferred.len()).find(|&i| records[..] == marker(i));
            if let Some(slice) = index.and_then(|i| deferred.get(i)) {
                *records = Bytes::from(slice.read_to_vec()?);
            }
        }
    }
    encode_response(ApiKey::Fetch, version, correlation_id, &response).map(Frame::One)
}

/// First Fetch version with compact (flexible) encodings: records as unsigned varint
/// length + 1 instead of an i32 length.
const FLEXIBLE_FETCH_VERSION: i16 = 12;

/// Cuts `body` (a whole frame with its size prefix, record sets encoded as the markers of
/// [`marker`], in order) into parts with the record sets between them, and rewrites the
/// size prefix. None when a marker or the length before it is not as expected.
fn splice(body: Bytes, records: Vec<ReadSlice>, flexible: bool) -> Option<Vec<Part>> {
    let mut cuts = Vec::with_capacity(records.len());
    let mut from = 4;
    for index in 0..records.len() {
        let marker = marker(index);
        let at = from
            + body
                .get(from..)?
                .windows(marker.len())
                .position(|w| w == marker)?;
        // The marker's own length, as encoded just before it.
        let prefix_len = if flexible { 1 } else { 4 };
        let prefix_start = at.checked_sub(prefix_len).filter(|p| *p >= from)?;
        let expected: &[u8] = if flexible { &[17] } else { &[0, 0, 0, 16] };
        if body.get(prefix_start..at)? != expected {
            return None;
        }
        cuts.push((prefix_start, at + marker.len()));
        from = at + marker.len();
    }
    let mut parts = Vec::with_capacity(records.len() * 3 + 1);
    let mut start = 0;
    let mut size = 0usize;
    for ((cut_start, cut_end), records) in cuts.into_iter().zip(records) {
        let len = usize::try_from(records.len).ok()?;
        let length = if flexible {
            uvarint(u64::try_from(len).ok()?.checked_add(1)?)
        } else {
            Bytes::copy_from_slice(&i32::try_from(len).ok()?.to_be_bytes())
        };
        size += cut_start - start + length.len() + len;
        parts.push(Part::Bytes(body.slice(start..cut_start)));
        parts.push(Part::Bytes(length));
        parts.push(Part::File(records));
        start = cut_end;
    }
    size += body.len() - start;
    parts.push(Part::Bytes(body.slice(start..)));
    // The frame's size prefix, rewritten for the real record sets.
    let size = i32::try_from(size.checked_sub(4)?).ok()?;
    let Some(Part::Bytes(first)) = parts.first_mut() else {
        return None;
    };
    let mut head = BytesMut::from(&first[..]);
    head.get_mut(..4)?.copy_from_slice(&size.to_be_bytes());
    *first = head.freeze();
    Some(parts)
}

fn uvarint(mut value: u64) -> Bytes {
    let mut out = BytesMut::with_capacity(10);
    while value >= 0x80 {
        out.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
    out.freeze()
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
        let harness = crate::api::produce::testing::harness();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        let budget = Semaphore::new(FRAME_BYTES_IN_FLIGHT_MAX);
        let started = Instant::now();
        let err = run(server, &harness.context, &budget)
            .await
            .expect_err("idle");
        assert!(matches!(err, ConnectionError::Idle), "{err}");
        assert!(started.elapsed() >= CONNECTION_IDLE_MAX);
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn requests_keep_a_connection_open_past_the_idle_limit() {
        let harness = crate::api::produce::testing::harness();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let mut client = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        let budget = Semaphore::new(FRAME_BYTES_IN_FLIGHT_MAX);
        let started = Instant::now();
        let serving = run(server, &harness.context, &budget);
        let talking = async {
            // ApiVersions v0 (key 18), correlation id 1, no client id: 10 bytes.
            let request = [0u8, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 1, 0xff, 0xff];
            for _ in 0..3 {
                tokio::time::sleep(CONNECTION_IDLE_MAX / 2).await;
                client.write_all(&request).await.expect("request");
                let mut size = [0u8; 4];
                client.read_exact(&mut size).await.expect("response size");
                let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
                client.read_exact(&mut body).await.expect("response");
            }
        };
        let mut serving = std::pin::pin!(serving);
        tokio::select! {
            result = &mut serving => panic!("closed while talking: {result:?}"),
            () = talking => {}
        }
        assert!(started.elapsed() >= CONNECTION_IDLE_MAX * 3 / 2);
        let err = serving.await.expect_err("idle after the last request");
        assert!(matches!(err, ConnectionError::Idle), "{err}");
        assert!(started.elapsed() >= CONNECTION_IDLE_MAX * 5 / 2);
    }

    fn fetch_response(records: Vec<Bytes>) -> FetchResponse {
        use kafka_protocol::messages::TopicName;
        use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
        let partitions = records
            .into_iter()
            .enumerate()
            .map(|(i, records)| {
                PartitionData::default()
                    .with_partition_index(i as i32)
                    .with_high_watermark(1000 + i as i64)
                    .with_last_stable_offset(1000 + i as i64)
                    .with_log_start_offset(3)
                    .with_aborted_transactions(Some(Vec::new()))
                    .with_records(Some(records))
            })
            .collect();
        FetchResponse::default().with_responses(vec![
            FetchableTopicResponse::default()
                .with_topic(TopicName(
                    kafka_protocol::protocol::StrBytes::from_static_str("topic"),
                ))
                .with_topic_id(uuid::Uuid::from_bytes([5; 16]))
                .with_partitions(partitions),
        ])
    }

    /// Record sets of the given sizes, each deferred (a slice of one file, as Fetch defers
    /// them) when `defer` says so, else in memory.
    fn record_sets(sizes: &[(usize, bool)]) -> (Vec<Bytes>, Vec<Bytes>, Vec<ReadSlice>) {
        use std::io::Write;
        let mut file = tempfile::tempfile().expect("temp file");
        let mut actual = Vec::new();
        let mut carried = Vec::new();
        let mut deferred = Vec::new();
        let mut position = 7u64;
        file.write_all(&[9; 7]).expect("write");
        for (i, &(len, defer)) in sizes.iter().enumerate() {
            let bytes: Vec<u8> = (0..len).map(|b| (b * 7 + i) as u8).collect();
            file.write_all(&bytes).expect("write");
            actual.push(Bytes::from(bytes.clone()));
            if defer {
                carried.push(Bytes::copy_from_slice(&marker(deferred.len())));
                deferred.push(position);
            } else {
                carried.push(Bytes::from(bytes));
            }
            position += len as u64;
        }
        let file = std::sync::Arc::new(file);
        let slices = deferred
            .into_iter()
            .zip(sizes.iter().filter(|(_, d)| *d))
            .map(|(position, &(len, _))| ReadSlice {
                file: file.clone(),
                position,
                len: len as u64,
                first_offset: 0,
                last_offset: 0,
            })
            .collect();
        (actual, carried, slices)
    }

    #[test]
    fn streamed_fetch_responses_are_byte_for_byte_the_plain_encoding() {
        let shapes: &[&[(usize, bool)]] = &[
            &[(0, false)],
            &[(100, false), (200, false)],
            &[(70_000, true)],
            &[(1 << 20, true), (0, false), (5, false), (300 << 10, true)],
            &[
                (200, false),
                (70_000, true),
                (16_383, false),
                (2_097_152, true),
            ],
        ];
        for version in 4..=17 {
            for shape in shapes {
                let (actual, carried, slices) = record_sets(shape);
                let plain = encode_response(
                    ApiKey::Fetch,
                    version,
                    42,
                    &ResponseKind::Fetch(fetch_response(actual)),
                )
                .expect("plain");
                let deferred = slices.len();
                let frame =
                    encode_fetch(version, 42, fetch_response(carried), slices).expect("spliced");
                if let Frame::Parts(parts) = &frame {
                    assert_eq!(parts.len(), deferred * 3 + 1, "version {version}");
                } else {
                    assert_eq!(deferred, 0, "version {version} shape {shape:?}");
                }
                assert!(
                    frame.to_vec() == plain[..],
                    "version {version} shape {shape:?} differs"
                );
            }
        }
    }

    #[tokio::test]
    async fn records_are_deferred_only_inside_a_request() {
        let (_, _, slices) = record_sets(&[(10, true)]);
        assert!(defer_records(slices[0].clone()).is_none());
        let taken = DEFERRED
            .scope(std::cell::RefCell::new(Vec::new()), async {
                let first = defer_records(slices[0].clone()).expect("deferred");
                let second = defer_records(slices[0].clone()).expect("deferred");
                assert_eq!(&first[..], &marker(0));
                assert_eq!(&second[..], &marker(1));
                DEFERRED.with(|d| d.take())
            })
            .await;
        assert_eq!(taken.len(), 2);
    }

    #[test]
    fn a_misplaced_marker_is_refused() {
        let (_, _, slices) = record_sets(&[(10, true)]);
        // The marker without the length a record set encodes before it.
        let mut body = vec![0u8; 8];
        body.extend_from_slice(&marker(0));
        body.extend_from_slice(&[0, 0]);
        assert!(splice(Bytes::from(body.clone()), slices.clone(), true).is_none());
        assert!(splice(Bytes::from(body), slices.clone(), false).is_none());
        // No marker at all.
        assert!(splice(Bytes::from(vec![0u8; 40]), slices, true).is_none());
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
