//! weir's Kafka front end: the Kafka wire protocol over TCP, translated to calls on the
//! protocol-neutral [`weir_core::Broker`]. Every request and response goes through the
//! `kafka-protocol` crate's codecs; record batches pass through as the bytes the producer
//! sent and the log stored.
//!
//! # Layout
//! - `server`: the listener — accepts connections up to a cap, one task each.
//! - `connection`: framing (size-prefixed frames, bounded size and time), header decoding,
//!   responses in request order.
//! - [`guard`]: walks a request's wire shape before it is decoded, so no count or length
//!   from the wire makes the decoder allocate for bytes that are not there.
//! - [`api`]: one file per Kafka API (`api/produce.rs`, …) and the table of versions weir
//!   supports; [`api::dispatch`] routes a decoded request to its handler.
//! - [`acls`]: a connection's principal and host, ACL wire codes to core's model.
//! - `errors`: core errors as Kafka error codes.
//! - [`groups`]: runs the group coordinator — parks JoinGroup/SyncGroup until answered,
//!   waits for its records to be durable, and ticks it when a timeout is due.
//!
//! # What it deliberately does not do
//! No file access and no storage logic: it calls the broker core. Nothing a client sends
//! can panic it: a malformed request gets an error code or a closed connection.

pub mod acls;
pub mod api;
mod connection;
pub mod errors;
pub mod groups;
pub mod guard;
pub mod limits;
mod server;
pub mod txns;

pub use server::{KafkaConfig, serve};
