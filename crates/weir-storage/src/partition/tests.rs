//! Unit tests of the partition log internals.
