//! weir's broker core: what both front ends (Kafka, RocketMQ) share, in their terms-free
//! form — topics with stable ids and partition counts, topic configs, appends that wake
//! waiting readers, auto-creation. Later: groups, transactions, retries, delay.
//!
//! # Layout
//! - [`acl`]: Kafka's ACL model, its authorizer's rules, the bindings in `<data>/acls`.
//! - [`catalog`]: the topics (name, id, partition count, settings), persisted beside the data.
//! - [`broker`]: [`Broker`], the store plus the catalog plus append notifications.
//! - [`producer_ids`]: producer ids for idempotent producers, never reused.
//!
//! # What it deliberately does not do
//! No sockets, no async runtime, no wire versions or error codes: front ends translate.
//! Readers wait for appends through [`event_listener`] listeners, which any executor can
//! poll. Time and topic ids are passed in.

pub mod acl;
pub mod append_wait;
pub mod broker;
pub mod catalog;
pub mod group_log;
pub mod groups;
mod log_dirs;
pub mod producer_ids;
mod record_bytes;
pub mod txn;
pub mod txn_log;

pub use broker::{Broker, BrokerConfig, CoreError};
pub use catalog::{TopicId, TopicInfo};
