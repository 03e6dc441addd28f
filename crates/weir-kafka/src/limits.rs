//! Every bound the Kafka front end keeps, named, with Kafka's defaults where Kafka has one.

use std::time::Duration;

/// Largest request frame accepted (Kafka's `socket.request.max.bytes`, 100 MiB).
pub const FRAME_BYTES_MAX: usize = 100 * 1024 * 1024;
/// Smallest valid frame: api key, api version and correlation id.
pub const FRAME_BYTES_MIN: usize = 8;
/// A frame must arrive whole within this time once its first byte is in, so a peer that
/// stops mid-frame releases its connection slot and its buffer.
pub const FRAME_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// The frame buffer starts at this size and doubles as bytes arrive (up to the frame's
/// length), so memory follows the bytes received, not the length a peer claims.
pub const FRAME_CHUNK_BYTES: usize = 64 * 1024;
/// A connection with no request for this long is closed, and so is one that does not take
/// a response for this long (Kafka's `connections.max.idle.ms`, 10 minutes): an idle or
/// stuck peer cannot hold a connection slot forever.
pub const CONNECTION_IDLE_MAX: Duration = Duration::from_secs(600);
/// After a failed accept (out of file descriptors, typically) the listener pauses this
/// long instead of spinning on the same error.
pub const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);
/// Bytes of request frames all connections may hold at once (Kafka's
/// `queued.max.request.bytes`, unbounded there by default). Without it 10,000 connections
/// could each hold a 100 MiB frame. A frame's buffer takes its share as it grows, so a
/// peer only holds what it has sent; when the budget is spent, reads wait for answers.
pub const FRAME_BYTES_IN_FLIGHT_MAX: usize = 512 * 1024 * 1024;
// One whole frame of the largest size must always fit, or it could never be read.
const _: () = assert!(FRAME_BYTES_IN_FLIGHT_MAX >= FRAME_BYTES_MAX);
/// Connections open at once; further ones are closed at accept.
pub const CONNECTIONS_MAX: usize = 10_000;
/// Longest a Fetch may wait for data (clients ask for far less; Kafka's own cap is the
/// request timeout).
pub const FETCH_WAIT_MS_MAX: i32 = 60_000;
