//! Every bound the Kafka front end keeps, named, with Kafka's defaults where Kafka has one.

use std::time::Duration;

/// Largest request frame accepted (Kafka's `socket.request.max.bytes`, 100 MiB).
pub const FRAME_BYTES_MAX: usize = 100 * 1024 * 1024;
/// Smallest valid frame: api key, api version and correlation id.
pub const FRAME_BYTES_MIN: usize = 8;
/// A frame must arrive whole within this time once its first byte is in.
pub const FRAME_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections open at once; further ones are closed at accept.
pub const CONNECTIONS_MAX: usize = 10_000;
/// Longest a Fetch may wait for data (clients ask for far less; Kafka's own cap is the
/// request timeout).
pub const FETCH_WAIT_MS_MAX: i32 = 60_000;
