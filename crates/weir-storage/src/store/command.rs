//! What a WAL entry says: the commands the store applies to its partitions, in a small
//! binary form (a kind byte, the partition, then the command's fields). Decoding treats the
//! bytes as untrusted: a WAL entry passed its CRC, but a bug or an older version must still
//! not panic the broker.

use super::TopicPartition;

const KIND_APPEND: u8 = 1;
const KIND_DELETE_RECORDS: u8 = 2;
const KIND_CREATE_PARTITION: u8 = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Command<'a> {
    /// Stamped record batches for a partition.
    Append {
        partition: TopicPartition,
        incarnation: u64,
        batches: &'a [u8],
    },
    /// DeleteRecords: the log start offset moves to `offset`.
    DeleteRecords {
        partition: TopicPartition,
        incarnation: u64,
        offset: i64,
    },
    /// A partition was created at this entry's index (its incarnation).
    CreatePartition { partition: TopicPartition },
}

impl<'a> Command<'a> {
    /// The bytes before an append's batches; the caller appends the batches themselves, so
    /// they are copied once, into the WAL payload, where they are stamped.
    pub(super) fn encode_append_prefix(
        partition: &TopicPartition,
        incarnation: u64,
        batches_len: usize,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 2 + partition.topic.len() + 4 + 8 + batches_len);
        out.push(KIND_APPEND);
        put_partition(&mut out, partition);
        out.extend_from_slice(&incarnation.to_be_bytes());
        out
    }

    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Command::Append {
                partition,
                incarnation,
                batches,
            } => {
                out = Self::encode_append_prefix(partition, *incarnation, batches.len());
                out.extend_from_slice(batches);
            }
            Command::DeleteRecords {
                partition,
                incarnation,
                offset,
            } => {
                out.push(KIND_DELETE_RECORDS);
                put_partition(&mut out, partition);
                out.extend_from_slice(&incarnation.to_be_bytes());
                out.extend_from_slice(&offset.to_be_bytes());
            }
            Command::CreatePartition { partition } => {
                out.push(KIND_CREATE_PARTITION);
                put_partition(&mut out, partition);
            }
        }
        out
    }

    pub(super) fn decode(buf: &'a [u8]) -> Result<Self, &'static str> {
        let mut cursor = Cursor { buf };
        let kind = cursor.take::<1>()?[0];
        let partition = cursor.partition()?;
        match kind {
            KIND_APPEND => {
                let incarnation = u64::from_be_bytes(cursor.take()?);
                Ok(Command::Append {
                    partition,
                    incarnation,
                    batches: cursor.buf,
                })
            }
            KIND_DELETE_RECORDS => {
                let incarnation = u64::from_be_bytes(cursor.take()?);
                let offset = i64::from_be_bytes(cursor.take()?);
                Ok(Command::DeleteRecords {
                    partition,
                    incarnation,
                    offset,
                })
            }
            KIND_CREATE_PARTITION => Ok(Command::CreatePartition { partition }),
            _ => Err("unknown command kind"),
        }
    }
}

fn put_partition(out: &mut Vec<u8>, partition: &TopicPartition) {
    // Topic names are at most 249 bytes (checked at creation), so the length fits.
    let len = u16::try_from(partition.topic.len()).expect("topic names are at most 249 bytes");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(partition.topic.as_bytes());
    out.extend_from_slice(&partition.partition.to_be_bytes());
}

struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], &'static str> {
        let (head, rest) = self
            .buf
            .split_first_chunk::<N>()
            .ok_or("command truncated")?;
        self.buf = rest;
        Ok(*head)
    }

    fn partition(&mut self) -> Result<TopicPartition, &'static str> {
        let len = u16::from_be_bytes(self.take()?) as usize;
        if len > self.buf.len() {
            return Err("topic name exceeds the command");
        }
        let (name, rest) = self.buf.split_at(len);
        self.buf = rest;
        let topic = std::str::from_utf8(name)
            .map_err(|_| "topic name is not UTF-8")?
            .to_string();
        let partition = i32::from_be_bytes(self.take()?);
        Ok(TopicPartition { topic, partition })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip() {
        let partition = TopicPartition::new("orders", 3);
        for command in [
            Command::Append {
                partition: partition.clone(),
                incarnation: 7,
                batches: b"xyz",
            },
            Command::DeleteRecords {
                partition: partition.clone(),
                incarnation: 7,
                offset: 42,
            },
            Command::CreatePartition {
                partition: partition.clone(),
            },
        ] {
            assert_eq!(Command::decode(&command.encode()), Ok(command.clone()));
        }
    }

    #[test]
    fn truncated_commands_are_refused() {
        let encoded = Command::DeleteRecords {
            partition: TopicPartition::new("t", 0),
            incarnation: 1,
            offset: 9,
        }
        .encode();
        for len in 0..encoded.len() {
            assert!(
                Command::decode(&encoded[..len]).is_err(),
                "prefix of {len} bytes"
            );
        }
        assert!(Command::decode(&[9, 0, 0, 0, 0, 0, 0]).is_err());
    }
}
