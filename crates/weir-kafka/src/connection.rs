//! One client connection: read a size-prefixed frame (bounded in size and in time), decode
//! its header and body, dispatch, write the response. Requests are handled one at a time,
//! as Kafka does, so responses leave in request order.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;

use crate::api::{self, Context};
use crate::limits::{FRAME_BYTES_MAX, FRAME_BYTES_MIN, FRAME_READ_TIMEOUT};

#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectionError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {0} bytes is outside [{FRAME_BYTES_MIN}, {FRAME_BYTES_MAX}]")]
    FrameSize(i64),
    #[error("frame not received within the read timeout")]
    FrameTimeout,
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
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
}

pub(crate) async fn run(stream: TcpStream, context: &Context) -> Result<(), ConnectionError> {
    stream.set_nodelay(true)?;
    let (mut reader, writer) = stream.into_split();
    let mut writer = BufWriter::new(writer);
    loop {
        let Some(frame) = read_frame(&mut reader).await? else {
            return Ok(());
        };
        match handle_frame(frame, context).await? {
            Some(response) => {
                writer.write_all(&response).await?;
                writer.flush().await?;
            }
            None => continue,
        }
    }
}

/// Reads one frame; `None` at a clean end of stream between frames.
async fn read_frame(
    reader: &mut tokio::net::tcp::OwnedReadHalf,
) -> Result<Option<Bytes>, ConnectionError> {
    let mut size = [0u8; 4];
    match reader.read_exact(&mut size[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let rest = async {
        reader.read_exact(&mut size[1..]).await?;
        let len = i32::from_be_bytes(size);
        if len < FRAME_BYTES_MIN as i32 || len as usize > FRAME_BYTES_MAX {
            return Err(ConnectionError::FrameSize(i64::from(len)));
        }
        let mut frame = BytesMut::zeroed(len as usize);
        reader.read_exact(&mut frame).await?;
        Ok(frame.freeze())
    };
    match tokio::time::timeout(FRAME_READ_TIMEOUT, rest).await {
        Ok(frame) => frame.map(Some),
        Err(_) => Err(ConnectionError::FrameTimeout),
    }
}

/// Decodes and handles one request frame; returns the response frame to send, if any.
async fn handle_frame(
    mut frame: Bytes,
    context: &Context,
) -> Result<Option<Bytes>, ConnectionError> {
    // The frame holds at least FRAME_BYTES_MIN bytes: key, version, correlation id.
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let key = ApiKey::try_from(api_key).map_err(|_| ConnectionError::UnknownApiKey(api_key))?;
    if !api::is_supported(key, version) {
        if key == ApiKey::ApiVersions {
            // KIP-511: answer an unknown ApiVersions version with v0 and error 35.
            let response = api::api_versions::unsupported_version_response();
            return encode_response(key, 0, correlation_id, response).map(Some);
        }
        return Err(ConnectionError::Decode {
            api_key,
            version,
            reason: "unsupported version".to_string(),
        });
    }
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
            "trailing bytes after request"
        );
    }
    match api::dispatch(context, &header, request).await {
        api::Outcome::Respond(response) => {
            encode_response(key, version, correlation_id, *response).map(Some)
        }
        api::Outcome::NoResponse => Ok(None),
        api::Outcome::Close => Err(ConnectionError::AcksZeroFailed),
    }
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
