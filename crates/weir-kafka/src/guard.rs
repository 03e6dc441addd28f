//! A walk over a request frame's wire shape that runs before `kafka-protocol` decodes it.
//!
//! `kafka-protocol` 0.18 decodes an array by `Vec::with_capacity(count)` with the count read
//! from the wire, so a 20-byte frame that declares 2^31 elements makes the process abort on
//! allocation failure (not a panic: nothing can catch it). This module walks the frame by
//! the request's schema — every field, at this version, flexible or not — and checks that
//! every array count, string length and bytes length fits in the bytes that actually
//! follow. Only a frame that walks cleanly is handed to the decoder, so the decoder never
//! allocates for elements that are not in the frame.
//!
//! The shapes are weir's own table of the facts in Kafka's message schemas
//! (`clients/src/main/resources/common/message/*Request.json`): field order, the versions
//! each field exists in, nullable versions, tagged fields, and where flexible versions
//! begin. A (key, version) with no shape here is refused: the guard fails closed, so an
//! API added to `api::SUPPORTED` without a shape closes connections instead of decoding
//! unchecked.
//!
//! The walk reads integers with exactly the decoder's rules (big-endian fixed widths, the
//! decoder's unsigned varint), so when it accepts a frame it has consumed the same bytes
//! the decoder will; tests check that on real and mutated frames.

use kafka_protocol::messages::ApiKey;

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    #[error("frame ends at byte {at} where {needed} more bytes are required")]
    Truncated { at: usize, needed: usize },
    #[error("negative length {length} at byte {at}")]
    NegativeLength { at: usize, length: i64 },
    #[error("null at byte {at} in a field that is not nullable")]
    UnexpectedNull { at: usize },
    #[error("array of {count} elements at byte {at} cannot fit in the {remaining} bytes left")]
    CountTooLarge {
        at: usize,
        count: u64,
        remaining: usize,
    },
    #[error("malformed unsigned varint at byte {at}")]
    Varint { at: usize },
    #[error("tagged field {tag} at byte {at} declares {size} bytes but its value takes {used}")]
    TaggedSize {
        at: usize,
        tag: u32,
        size: usize,
        used: usize,
    },
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    #[error("no wire shape for api key {key} version {version}")]
    NoShape { key: i16, version: i16 },
    #[error("structs nest deeper than {DEPTH_MAX}")]
    TooDeep,
}

/// What a clean walk found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Walked {
    pub api_key: ApiKey,
    pub version: i16,
    /// Bytes of the frame the header and body occupy (the rest is trailing bytes).
    pub consumed: usize,
    /// The largest array count in the frame: at most the frame's length.
    pub count_max: u64,
}

/// Walks a whole request frame (header and body, without the 4-byte size prefix).
pub fn check_request(frame: &[u8]) -> Result<Walked, GuardError> {
    let mut cursor = Cursor::new(frame);
    let key = cursor.i16()?;
    let version = cursor.i16()?;
    let api_key = ApiKey::try_from(key).map_err(|_| GuardError::UnknownApiKey(key))?;
    let shape = shape(api_key, version).ok_or(GuardError::NoShape { key, version })?;
    cursor.take(4)?; // correlation id
    // Request header v1 and v2 both carry a nullable int16-length client id (the header's
    // only non-flexible string); v2 adds a tagged-field section, all unknown to weir.
    cursor.string(false, true)?;
    if api_key.request_header_version(version) >= 2 {
        cursor.tagged_fields(&[], version)?;
    }
    let flexible = version >= shape.flexible_from;
    cursor.fields(shape.fields, version, flexible)?;
    Ok(Walked {
        api_key,
        version,
        consumed: cursor.pos,
        count_max: cursor.count_max,
    })
}

/// The wire shape of (key, version), when weir has one.
pub fn shape(key: ApiKey, version: i16) -> Option<&'static Shape> {
    SHAPES
        .iter()
        .find(|s| s.key == key && (s.min..=s.max).contains(&version))
}

/// One request's wire shape over a range of versions.
pub struct Shape {
    pub key: ApiKey,
    pub min: i16,
    pub max: i16,
    flexible_from: i16,
    fields: &'static [Field],
}

#[derive(Clone, Copy)]
enum Kind {
    /// A fixed-width value: bool and int8 (1), int16 (2), int32 (4), int64 and float64 (8),
    /// uuid (16).
    Fixed(usize),
    String,
    /// `bytes` and `records`: int32 length, or a compact length when flexible.
    Bytes,
    /// An array of primitives or strings.
    Array(&'static Kind),
    /// An array of structs.
    Structs(&'static [Field]),
    /// A single struct (only as a tagged field here).
    Struct(&'static [Field]),
    /// A struct behind an int8 presence marker: 1 = present, anything else = null, as
    /// the decoder reads it (DescribeTopicPartitions' cursor).
    OptionalStruct(&'static [Field]),
}

#[derive(Clone, Copy)]
struct Field {
    min: i16,
    max: i16,
    nullable_from: i16,
    tag: Option<u32>,
    kind: Kind,
}

/// "and every later version".
const UP: i16 = i16::MAX;

const fn f(min: i16, max: i16, kind: Kind) -> Field {
    Field {
        min,
        max,
        nullable_from: UP,
        tag: None,
        kind,
    }
}

impl Field {
    const fn null(mut self, from: i16) -> Field {
        self.nullable_from = from;
        self
    }
    const fn tag(mut self, tag: u32) -> Field {
        self.tag = Some(tag);
        self
    }
    fn present(&self, version: i16) -> bool {
        (self.min..=self.max).contains(&version)
    }
}

const BOOL: Kind = Kind::Fixed(1);
const I8: Kind = Kind::Fixed(1);
const I16: Kind = Kind::Fixed(2);
const I32: Kind = Kind::Fixed(4);
const I64: Kind = Kind::Fixed(8);
const UUID: Kind = Kind::Fixed(16);
const STR: Kind = Kind::String;

const SHAPES: &[Shape] = &[
    Shape {
        key: ApiKey::Produce,
        min: 3,
        max: 11,
        flexible_from: 9,
        fields: &[
            f(3, UP, STR).null(3), // transactional id
            f(0, UP, I16),         // acks
            f(0, UP, I32),         // timeout ms
            f(
                0,
                UP,
                Kind::Structs(&[
                    f(0, UP, STR), // topic name
                    f(
                        0,
                        UP,
                        Kind::Structs(&[
                            f(0, UP, I32),                 // partition index
                            f(0, UP, Kind::Bytes).null(0), // records
                        ]),
                    ),
                ]),
            ),
        ],
    },
    Shape {
        key: ApiKey::Fetch,
        min: 4,
        max: 17,
        flexible_from: 12,
        fields: &[
            f(12, UP, STR).null(12).tag(0), // cluster id
            f(0, 14, I32),                  // replica id
            f(15, UP, Kind::Struct(&[f(15, UP, I32), f(15, UP, I64)])).tag(1), // replica state
            f(0, UP, I32),                  // max wait ms
            f(0, UP, I32),                  // min bytes
            f(3, UP, I32),                  // max bytes
            f(4, UP, I8),                   // isolation level
            f(7, UP, I32),                  // session id
            f(7, UP, I32),                  // session epoch
            f(
                0,
                UP,
                Kind::Structs(&[
                    f(0, 12, STR),   // topic name
                    f(13, UP, UUID), // topic id
                    f(
                        0,
                        UP,
                        Kind::Structs(&[
                            f(0, UP, I32),          // partition
                            f(9, UP, I32),          // current leader epoch
                            f(0, UP, I64),          // fetch offset
                            f(12, UP, I32),         // last fetched epoch
                            f(5, UP, I64),          // log start offset
                            f(0, UP, I32),          // partition max bytes
                            f(17, UP, UUID).tag(0), // replica directory id
                        ]),
                    ),
                ]),
            ),
            f(
                7,
                UP,
                Kind::Structs(&[
                    f(7, 12, STR),               // topic name
                    f(13, UP, UUID),             // topic id
                    f(7, UP, Kind::Array(&I32)), // partitions
                ]),
            ),
            f(11, UP, STR), // rack id
        ],
    },
    Shape {
        key: ApiKey::ListOffsets,
        min: 1,
        max: 10,
        flexible_from: 6,
        fields: &[
            f(0, UP, I32), // replica id
            f(2, UP, I8),  // isolation level
            f(
                0,
                UP,
                Kind::Structs(&[
                    f(0, UP, STR), // topic name
                    f(
                        0,
                        UP,
                        Kind::Structs(&[
                            f(0, UP, I32), // partition index
                            f(4, UP, I32), // current leader epoch
                            f(0, UP, I64), // timestamp
                            f(0, 0, I32),  // max num offsets
                        ]),
                    ),
                ]),
            ),
            f(10, UP, I32), // timeout ms
        ],
    },
    Shape {
        key: ApiKey::Metadata,
        min: 0,
        max: 13,
        flexible_from: 9,
        fields: &[
            f(
                0,
                UP,
                Kind::Structs(&[
                    f(10, UP, UUID),        // topic id
                    f(0, UP, STR).null(10), // topic name
                ]),
            )
            .null(1),
            f(4, UP, BOOL), // allow auto topic creation
            f(8, 10, BOOL), // include cluster authorized operations
            f(8, UP, BOOL), // include topic authorized operations
        ],
    },
    Shape {
        key: ApiKey::ApiVersions,
        min: 0,
        max: 4,
        flexible_from: 3,
        fields: &[
            f(3, UP, STR), // client software name
            f(3, UP, STR), // client software version
        ],
    },
    Shape {
        key: ApiKey::CreateTopics,
        min: 2,
        max: 7,
        flexible_from: 5,
        fields: &[
            f(
                0,
                UP,
                Kind::Structs(&[
                    f(0, UP, STR), // name
                    f(0, UP, I32), // num partitions
                    f(0, UP, I16), // replication factor
                    f(
                        0,
                        UP,
                        Kind::Structs(&[
                            f(0, UP, I32),               // partition index
                            f(0, UP, Kind::Array(&I32)), // broker ids
                        ]),
                    ),
                    f(
                        0,
                        UP,
                        Kind::Structs(&[
                            f(0, UP, STR),         // config name
                            f(0, UP, STR).null(0), // config value
                        ]),
                    ),
                ]),
            ),
            f(0, UP, I32),  // timeout ms
            f(1, UP, BOOL), // validate only
        ],
    },
    Shape {
        key: ApiKey::DeleteTopics,
        min: 1,
        max: 6,
        flexible_from: 4,
        fields: &[
            f(
                6,
                UP,
                Kind::Structs(&[
                    f(6, UP, STR).null(6), // name
                    f(6, UP, UUID),        // topic id
                ]),
            ),
            f(0, 5, Kind::Array(&STR)), // topic names
            f(0, UP, I32),              // timeout ms
        ],
    },
    Shape {
        key: ApiKey::DeleteRecords,
        min: 0,
        max: 2,
        flexible_from: 2,
        fields: &[
            f(
                0,
                UP,
                Kind::Structs(&[
                    f(0, UP, STR), // topic name
                    f(
                        0,
                        UP,
                        Kind::Structs(&[
                            f(0, UP, I32), // partition index
                            f(0, UP, I64), // offset
                        ]),
                    ),
                ]),
            ),
            f(0, UP, I32), // timeout ms
        ],
    },
    Shape {
        key: ApiKey::DescribeConfigs,
        min: 1,
        max: 4,
        flexible_from: 4,
        fields: &[
            f(
                0,
                UP,
                Kind::Structs(&[
                    f(0, UP, I8),                        // resource type
                    f(0, UP, STR),                       // resource name
                    f(0, UP, Kind::Array(&STR)).null(0), // configuration keys
                ]),
            ),
            f(1, UP, BOOL), // include synonyms
            f(3, UP, BOOL), // include documentation
        ],
    },
    Shape {
        key: ApiKey::AlterConfigs,
        min: 0,
        max: 2,
        flexible_from: 2,
        fields: &[
            f(
                0,
                UP,
                Kind::Structs(&[
                    f(0, UP, I8),  // resource type
                    f(0, UP, STR), // resource name
                    f(
                        0,
                        UP,
                        Kind::Structs(&[
                            f(0, UP, STR),         // config name
                            f(0, UP, STR).null(0), // config value
                        ]),
                    ),
                ]),
            ),
            f(0, UP, BOOL), // validate only
        ],
    },
    Shape {
        key: ApiKey::DescribeLogDirs,
        min: 1,
        max: 4,
        flexible_from: 2,
        fields: &[f(
            0,
            UP,
            Kind::Structs(&[
                f(0, UP, STR),               // topic
                f(0, UP, Kind::Array(&I32)), // partitions
            ]),
        )
        .null(0)],
    },
    Shape {
        key: ApiKey::CreatePartitions,
        min: 0,
        max: 3,
        flexible_from: 2,
        fields: &[
            f(
                0,
                UP,
                Kind::Structs(&[
                    f(0, UP, STR),                                                   // name
                    f(0, UP, I32),                                                   // count
                    f(0, UP, Kind::Structs(&[f(0, UP, Kind::Array(&I32))])).null(0), // assignments
                ]),
            ),
            f(0, UP, I32),  // timeout ms
            f(0, UP, BOOL), // validate only
        ],
    },
    Shape {
        key: ApiKey::IncrementalAlterConfigs,
        min: 0,
        max: 1,
        flexible_from: 1,
        fields: &[
            f(
                0,
                UP,
                Kind::Structs(&[
                    f(0, UP, I8),  // resource type
                    f(0, UP, STR), // resource name
                    f(
                        0,
                        UP,
                        Kind::Structs(&[
                            f(0, UP, STR),         // config name
                            f(0, UP, I8),          // config operation
                            f(0, UP, STR).null(0), // config value
                        ]),
                    ),
                ]),
            ),
            f(0, UP, BOOL), // validate only
        ],
    },
    Shape {
        key: ApiKey::InitProducerId,
        min: 0,
        max: 4,
        flexible_from: 2,
        fields: &[
            f(0, UP, STR).null(0), // transactional id
            f(0, UP, I32),         // transaction timeout ms
            f(3, UP, I64),         // producer id
            f(3, UP, I16),         // producer epoch
        ],
    },
    Shape {
        key: ApiKey::DescribeCluster,
        min: 0,
        max: 1,
        flexible_from: 0,
        fields: &[
            f(0, UP, BOOL), // include cluster authorized operations
            f(1, UP, I8),   // endpoint type
        ],
    },
    // Consumer groups (issue 4).
    Shape {
        key: ApiKey::FindCoordinator,
        min: 0,
        max: 6,
        flexible_from: 3,
        fields: &[
            f(0, 3, STR),                // key
            f(1, UP, I8),                // key type
            f(4, UP, Kind::Array(&STR)), // coordinator keys
        ],
    },
    // v10+ (topic ids) is beyond kafka-protocol 0.18, hence beyond SUPPORTED.
    Shape {
        key: ApiKey::OffsetCommit,
        min: 2,
        max: 9,
        flexible_from: 8,
        fields: &[
            f(0, UP, STR),         // group id
            f(1, UP, I32),         // generation id or member epoch
            f(1, UP, STR),         // member id
            f(7, UP, STR).null(7), // group instance id
            f(2, 4, I64),          // retention time ms
            f(
                0,
                UP,
                Kind::Structs(&[
                    f(0, UP, STR), // topic name
                    f(
                        0,
                        UP,
                        Kind::Structs(&[
                            f(0, UP, I32),         // partition index
                            f(0, UP, I64),         // committed offset
                            f(6, UP, I32),         // committed leader epoch
                            f(1, 1, I64),          // commit timestamp
                            f(0, UP, STR).null(0), // committed metadata
                        ]),
                    ),
                ]),
            ),
        ],
    },
    // v10+ (topic ids) is beyond kafka-protocol 0.18, hence beyond SUPPORTED.
    Shape {
        key: ApiKey::OffsetFetch,
        min: 1,
        max: 9,
        flexible_from: 6,
        fields: &[
            f(0, 7, STR), // group id
            f(
                0,
                7,
                Kind::Structs(&[
                    f(0, 7, STR),               // topic name
                    f(0, 7, Kind::Array(&I32)), // partition indexes
                ]),
            )
            .null(2),
            f(
                8,
                UP,
                Kind::Structs(&[
                    f(8, UP, STR),         // group id
                    f(9, UP, STR).null(9), // member id
                    f(9, UP, I32),         // member epoch
                    f(
                        8,
                        UP,
                        Kind::Structs(&[
                            f(8, UP, STR),               // topic name
                            f(8, UP, Kind::Array(&I32)), // partition indexes
                        ]),
                    )
                    .null(8),
                ]),
            ),
            f(7, UP, BOOL), // require stable
        ],
    },
    Shape {
        key: ApiKey::JoinGroup,
        min: 0,
        max: 9,
        flexible_from: 6,
        fields: &[
            f(0, UP, STR),         // group id
            f(0, UP, I32),         // session timeout ms
            f(1, UP, I32),         // rebalance timeout ms
            f(0, UP, STR),         // member id
            f(5, UP, STR).null(5), // group instance id
            f(0, UP, STR),         // protocol type
            f(
                0,
                UP,
                Kind::Structs(&[
                    f(0, UP, STR),         // protocol name
                    f(0, UP, Kind::Bytes), // protocol metadata
                ]),
            ),
            f(8, UP, STR).null(8), // reason
        ],
    },
    Shape {
        key: ApiKey::Heartbeat,
        min: 0,
        max: 4,
        flexible_from: 4,
        fields: &[
            f(0, UP, STR),         // group id
            f(0, UP, I32),         // generation id
            f(0, UP, STR),         // member id
            f(3, UP, STR).null(3), // group instance id
        ],
    },
    Shape {
        key: ApiKey::LeaveGroup,
        min: 0,
        max: 5,
        flexible_from: 4,
        fields: &[
            f(0, UP, STR), // group id
            f(0, 2, STR),  // member id
            f(
                3,
                UP,
                Kind::Structs(&[
                    f(3, UP, STR),         // member id
                    f(3, UP, STR).null(3), // group instance id
                    f(5, UP, STR).null(5), // reason
                ]),
            ),
        ],
    },
    Shape {
        key: ApiKey::SyncGroup,
        min: 0,
        max: 5,
        flexible_from: 4,
        fields: &[
            f(0, UP, STR),         // group id
            f(0, UP, I32),         // generation id
            f(0, UP, STR),         // member id
            f(3, UP, STR).null(3), // group instance id
            f(5, UP, STR).null(5), // protocol type
            f(5, UP, STR).null(5), // protocol name
            f(
                0,
                UP,
                Kind::Structs(&[
                    f(0, UP, STR),         // member id
                    f(0, UP, Kind::Bytes), // assignment
                ]),
            ),
        ],
    },
    // v6 changes only the response.
    Shape {
        key: ApiKey::DescribeGroups,
        min: 0,
        max: 6,
        flexible_from: 5,
        fields: &[
            f(0, UP, Kind::Array(&STR)), // groups
            f(3, UP, BOOL),              // include authorized operations
        ],
    },
    Shape {
        key: ApiKey::ListGroups,
        min: 0,
        max: 5,
        flexible_from: 3,
        fields: &[
            f(4, UP, Kind::Array(&STR)), // states filter
            f(5, UP, Kind::Array(&STR)), // types filter
        ],
    },
    Shape {
        key: ApiKey::DeleteGroups,
        min: 0,
        max: 2,
        flexible_from: 2,
        fields: &[f(0, UP, Kind::Array(&STR))], // group names
    },
    Shape {
        key: ApiKey::OffsetDelete,
        min: 0,
        max: 0,
        flexible_from: UP, // never flexible
        fields: &[
            f(0, UP, STR), // group id
            f(
                0,
                UP,
                Kind::Structs(&[
                    f(0, UP, STR),                             // topic name
                    f(0, UP, Kind::Structs(&[f(0, UP, I32)])), // partition indexes
                ]),
            ),
        ],
    },
    Shape {
        key: ApiKey::ConsumerGroupHeartbeat,
        min: 0,
        max: 1,
        flexible_from: 0,
        fields: &[
            f(0, UP, STR),                       // group id
            f(0, UP, STR),                       // member id
            f(0, UP, I32),                       // member epoch
            f(0, UP, STR).null(0),               // instance id
            f(0, UP, STR).null(0),               // rack id
            f(0, UP, I32),                       // rebalance timeout ms
            f(0, UP, Kind::Array(&STR)).null(0), // subscribed topic names
            f(1, UP, STR).null(1),               // subscribed topic regex
            f(0, UP, STR).null(0),               // server assignor
            f(
                0,
                UP,
                Kind::Structs(&[
                    f(0, UP, UUID),              // topic id
                    f(0, UP, Kind::Array(&I32)), // partitions
                ]),
            )
            .null(0), // topic partitions
        ],
    },
    // v1 changes only the response.
    Shape {
        key: ApiKey::ConsumerGroupDescribe,
        min: 0,
        max: 1,
        flexible_from: 0,
        fields: &[
            f(0, UP, Kind::Array(&STR)), // group ids
            f(0, UP, BOOL),              // include authorized operations
        ],
    }, // Replica administration (one node: nothing to elect, move or reassign).
    Shape {
        key: ApiKey::ElectLeaders,
        min: 0,
        max: 2,
        flexible_from: 2,
        fields: &[
            f(1, UP, I8), // election type
            f(
                0,
                UP,
                Kind::Structs(&[
                    f(0, UP, STR),               // topic
                    f(0, UP, Kind::Array(&I32)), // partitions
                ]),
            )
            .null(0), // topic partitions
            f(0, UP, I32), // timeout ms
        ],
    },
    Shape {
        key: ApiKey::AlterPartitionReassignments,
        min: 0,
        max: 1,
        flexible_from: 0,
        fields: &[
            f(0, UP, I32),  // timeout ms
            f(1, UP, BOOL), // allow replication factor change
            f(
                0,
                UP,
                Kind::Structs(&[
                    f(0, UP, STR), // name
                    f(
                        0,
                        UP,
                        Kind::Structs(&[
                            f(0, UP, I32),                       // partition index
                            f(0, UP, Kind::Array(&I32)).null(0), // replicas
                        ]),
                    ),
                ]),
            ),
        ],
    },
    Shape {
        key: ApiKey::ListPartitionReassignments,
        min: 0,
        max: 0,
        flexible_from: 0,
        fields: &[
            f(0, UP, I32), // timeout ms
            f(
                0,
                UP,
                Kind::Structs(&[
                    f(0, UP, STR),               // name
                    f(0, UP, Kind::Array(&I32)), // partition indexes
                ]),
            )
            .null(0), // topics
        ],
    },
    // v0 was removed in Kafka 4.0 and is not in kafka-protocol 0.18.
    Shape {
        key: ApiKey::AlterReplicaLogDirs,
        min: 1,
        max: 2,
        flexible_from: 2,
        fields: &[f(
            0,
            UP,
            Kind::Structs(&[
                f(0, UP, STR), // path
                f(
                    0,
                    UP,
                    Kind::Structs(&[
                        f(0, UP, STR),               // name
                        f(0, UP, Kind::Array(&I32)), // partitions
                    ]),
                ),
            ]),
        )],
    },
    // Admin APIs of a one-node cluster (kafka-python's admin tests).
    Shape {
        key: ApiKey::DescribeTopicPartitions,
        min: 0,
        max: 0,
        flexible_from: 0,
        fields: &[
            f(0, UP, Kind::Structs(&[f(0, UP, STR)])), // topics (name)
            f(0, UP, I32),                             // response partition limit
            f(
                0,
                UP,
                Kind::OptionalStruct(&[
                    f(0, UP, STR), // topic name
                    f(0, UP, I32), // partition index
                ]),
            )
            .null(0), // cursor
        ],
    },
    Shape {
        key: ApiKey::DescribeQuorum,
        min: 0,
        max: 2,
        flexible_from: 0,
        fields: &[f(
            0,
            UP,
            Kind::Structs(&[
                f(0, UP, STR),                             // topic name
                f(0, UP, Kind::Structs(&[f(0, UP, I32)])), // partitions (index)
            ]),
        )],
    },
    // Transactions (v4+ of AddPartitionsToTxn, KIP-890's batched form, is not offered).
    Shape {
        key: ApiKey::AddPartitionsToTxn,
        min: 0,
        max: 3,
        flexible_from: 3,
        fields: &[
            f(0, 3, STR), // transactional id
            f(0, 3, I64), // producer id
            f(0, 3, I16), // producer epoch
            f(
                0,
                3,
                Kind::Structs(&[
                    f(0, UP, STR),               // topic name
                    f(0, UP, Kind::Array(&I32)), // partitions
                ]),
            ),
        ],
    },
    Shape {
        key: ApiKey::AddOffsetsToTxn,
        min: 0,
        max: 3,
        flexible_from: 3,
        fields: &[
            f(0, UP, STR), // transactional id
            f(0, UP, I64), // producer id
            f(0, UP, I16), // producer epoch
            f(0, UP, STR), // group id
        ],
    },
    Shape {
        key: ApiKey::EndTxn,
        min: 0,
        max: 3,
        flexible_from: 3,
        fields: &[
            f(0, UP, STR),  // transactional id
            f(0, UP, I64),  // producer id
            f(0, UP, I16),  // producer epoch
            f(0, UP, BOOL), // committed
        ],
    },
    Shape {
        key: ApiKey::TxnOffsetCommit,
        min: 0,
        max: 3,
        flexible_from: 3,
        fields: &[
            f(0, UP, STR),         // transactional id
            f(0, UP, STR),         // group id
            f(0, UP, I64),         // producer id
            f(0, UP, I16),         // producer epoch
            f(3, UP, I32),         // generation id
            f(3, UP, STR),         // member id
            f(3, UP, STR).null(3), // group instance id
            f(
                0,
                UP,
                Kind::Structs(&[
                    f(0, UP, STR), // topic name
                    f(
                        0,
                        UP,
                        Kind::Structs(&[
                            f(0, UP, I32),         // partition index
                            f(0, UP, I64),         // committed offset
                            f(2, UP, I32),         // committed leader epoch
                            f(0, UP, STR).null(0), // committed metadata
                        ]),
                    ),
                ]),
            ),
        ],
    },
    Shape {
        key: ApiKey::CreateAcls,
        min: 1,
        max: 3,
        flexible_from: 2,
        fields: &[f(
            0,
            UP,
            Kind::Structs(&[
                f(0, UP, I8),  // resource type
                f(0, UP, STR), // resource name
                f(1, UP, I8),  // resource pattern type
                f(0, UP, STR), // principal
                f(0, UP, STR), // host
                f(0, UP, I8),  // operation
                f(0, UP, I8),  // permission type
            ]),
        )],
    },
    Shape {
        key: ApiKey::DescribeAcls,
        min: 1,
        max: 3,
        flexible_from: 2,
        fields: ACL_FILTER,
    },
    Shape {
        key: ApiKey::DeleteAcls,
        min: 1,
        max: 3,
        flexible_from: 2,
        fields: &[f(0, UP, Kind::Structs(ACL_FILTER))], // filters
    },
];

/// DescribeAcls' request and each of DeleteAcls' filters.
const ACL_FILTER: &[Field] = &[
    f(0, UP, I8),          // resource type filter
    f(0, UP, STR).null(0), // resource name filter
    f(1, UP, I8),          // pattern type filter
    f(0, UP, STR).null(0), // principal filter
    f(0, UP, STR).null(0), // host filter
    f(0, UP, I8),          // operation
    f(0, UP, I8),          // permission type
];

/// How far a walk may nest: the deepest shape above is three structs deep plus one
/// tagged struct. A bound keeps a wrong table from recursing without limit.
const DEPTH_MAX: usize = 8;

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    count_max: u64,
    depth: usize,
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Cursor {
            buf,
            pos: 0,
            count_max: 0,
            depth: 0,
        }
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], GuardError> {
        let truncated = GuardError::Truncated {
            at: self.pos,
            needed: n,
        };
        let end = self.pos.checked_add(n).ok_or(truncated.clone())?;
        let bytes = self.buf.get(self.pos..end).ok_or(truncated)?;
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], GuardError> {
        let at = self.pos;
        <[u8; N]>::try_from(self.take(N)?).map_err(|_| GuardError::Truncated { at, needed: N })
    }

    fn i16(&mut self) -> Result<i16, GuardError> {
        self.array().map(i16::from_be_bytes)
    }

    fn i32(&mut self) -> Result<i32, GuardError> {
        self.array().map(i32::from_be_bytes)
    }

    /// The decoder's unsigned varint: at most 5 bytes, 7 bits each. A fifth byte that
    /// carries bits beyond 32 or a continuation bit is refused (the decoder would drop
    /// them silently; no honest encoder writes one).
    fn uvarint(&mut self) -> Result<u32, GuardError> {
        let at = self.pos;
        let mut value: u32 = 0;
        for i in 0..5u32 {
            let [b] = self.array::<1>()?;
            if i == 4 && b > 0x0f {
                return Err(GuardError::Varint { at });
            }
            value |= u32::from(b & 0x7f) << (i * 7);
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err(GuardError::Varint { at })
    }

    /// A length or count: `None` for null. Compact forms store length + 1 (0 = null).
    fn length(
        &mut self,
        compact: bool,
        wide: bool,
        nullable: bool,
    ) -> Result<Option<usize>, GuardError> {
        let at = self.pos;
        let length: i64 = if compact {
            i64::from(self.uvarint()?) - 1
        } else if wide {
            i64::from(self.i32()?)
        } else {
            i64::from(self.i16()?)
        };
        match length {
            -1 if nullable => Ok(None),
            -1 => Err(GuardError::UnexpectedNull { at }),
            n if n < 0 => Err(GuardError::NegativeLength { at, length: n }),
            // Non-negative and at most u32::MAX: fits in usize on every target weir runs on.
            n => usize::try_from(n)
                .map(Some)
                .map_err(|_| GuardError::CountTooLarge {
                    at,
                    count: n.unsigned_abs(),
                    remaining: self.remaining(),
                }),
        }
    }

    fn string(&mut self, flexible: bool, nullable: bool) -> Result<(), GuardError> {
        if let Some(len) = self.length(flexible, false, nullable)? {
            self.take(len)?;
        }
        Ok(())
    }

    fn bytes(&mut self, flexible: bool, nullable: bool) -> Result<(), GuardError> {
        if let Some(len) = self.length(flexible, true, nullable)? {
            self.take(len)?;
        }
        Ok(())
    }

    fn fields(&mut self, fields: &[Field], version: i16, flexible: bool) -> Result<(), GuardError> {
        self.depth += 1;
        if self.depth > DEPTH_MAX {
            return Err(GuardError::TooDeep);
        }
        for field in fields.iter().filter(|f| f.present(version)) {
            // A tagged field lives in the tagged section when the version is flexible.
            if field.tag.is_some() && flexible {
                continue;
            }
            self.value(field, version, flexible)?;
        }
        if flexible {
            self.tagged_fields(fields, version)?;
        }
        self.depth -= 1;
        Ok(())
    }

    fn value(&mut self, field: &Field, version: i16, flexible: bool) -> Result<(), GuardError> {
        let nullable = version >= field.nullable_from;
        match field.kind {
            Kind::Fixed(n) => self.take(n).map(|_| ()),
            Kind::String => self.string(flexible, nullable),
            Kind::Bytes => self.bytes(flexible, nullable),
            Kind::Array(element) => {
                let Some(count) = self.count(flexible, nullable)? else {
                    return Ok(());
                };
                let element = Field {
                    min: version,
                    max: version,
                    nullable_from: UP,
                    tag: None,
                    kind: *element,
                };
                for _ in 0..count {
                    self.value(&element, version, flexible)?;
                }
                Ok(())
            }
            Kind::Structs(fields) => {
                let Some(count) = self.count(flexible, nullable)? else {
                    return Ok(());
                };
                for _ in 0..count {
                    self.fields(fields, version, flexible)?;
                }
                Ok(())
            }
            Kind::Struct(fields) => self.fields(fields, version, flexible),
            Kind::OptionalStruct(fields) => {
                let at = self.pos;
                let [marker] = self.array::<1>()?;
                match marker {
                    1 => self.fields(fields, version, flexible),
                    _ if nullable => Ok(()),
                    _ => Err(GuardError::UnexpectedNull { at }),
                }
            }
        }
    }

    /// An array count, refused at once when it exceeds the bytes left (every element in
    /// these shapes takes at least one byte); the elements are then walked one by one, so
    /// a count the frame only pretends to hold fails at the first missing element, before
    /// the decoder ever sees it.
    fn count(&mut self, flexible: bool, nullable: bool) -> Result<Option<usize>, GuardError> {
        let at = self.pos;
        let Some(count) = self.length(flexible, true, nullable)? else {
            return Ok(None);
        };
        if count > self.remaining() {
            return Err(GuardError::CountTooLarge {
                at,
                count: count as u64,
                remaining: self.remaining(),
            });
        }
        self.count_max = self.count_max.max(count as u64);
        Ok(Some(count))
    }

    /// A flexible struct's tagged section: a count, then (tag, size, value) each. A tag the
    /// shape names is walked by its shape and must fill exactly its declared size; others
    /// are skipped by size, as the decoder does.
    fn tagged_fields(&mut self, fields: &[Field], version: i16) -> Result<(), GuardError> {
        let count = self.uvarint()?;
        for _ in 0..count {
            let tag = self.uvarint()?;
            let size_at = self.pos;
            let size = self.uvarint()? as usize;
            let known = fields
                .iter()
                .find(|f| f.tag == Some(tag) && f.present(version));
            let Some(field) = known else {
                self.take(size)?;
                continue;
            };
            let start = self.pos;
            if size > self.remaining() {
                return Err(GuardError::Truncated {
                    at: start,
                    needed: size,
                });
            }
            let untagged = Field {
                tag: None,
                ..*field
            };
            self.value(&untagged, version, true)?;
            let used = self.pos - start;
            if used != size {
                return Err(GuardError::TaggedSize {
                    at: size_at,
                    tag,
                    size,
                    used,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
