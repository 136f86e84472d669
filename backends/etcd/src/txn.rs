//! The reads of an etcd transaction with typed positions: each read added to [`Reads`] returns a [`ReadAt`],
//! and the answer to it is looked up in [`Answers`] by that position, never by index arithmetic over the
//! response list.

use campanile::coordinator::{CoordError, CoordResult};
use etcd_client::{GetOptions, GetResponse, KeyValue, TxnOp, TxnOpResponse, TxnResponse};

/// Where the answer to one read is: returned by [`Reads::get`], used with [`Answers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReadAt(usize);

/// The range reads of a transaction (its then branch, or the else branch of a write that reads back what
/// its compares depend on), in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Reads {
    ops: Vec<TxnOp>,
}

impl Reads {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds a read of `key` and returns where its answer will be.
    pub(crate) fn get(&mut self, key: impl Into<Vec<u8>>, options: Option<GetOptions>) -> ReadAt {
        self.ops.push(TxnOp::get(key, options));
        ReadAt(self.ops.len() - 1)
    }

    /// Adds a read of `key` that only counts (whether it exists).
    pub(crate) fn count(&mut self, key: impl Into<Vec<u8>>) -> ReadAt {
        self.get(key, Some(GetOptions::new().with_count_only()))
    }

    /// Adds a read of `key` without its value (its revisions).
    pub(crate) fn keys_only(&mut self, key: impl Into<Vec<u8>>) -> ReadAt {
        self.get(key, Some(GetOptions::new().with_keys_only()))
    }

    /// The operations, to put in a transaction branch.
    pub(crate) fn ops(&self) -> Vec<TxnOp> {
        self.ops.clone()
    }
}

/// The answers to [`Reads`], by position.
#[derive(Debug)]
pub(crate) struct Answers(Vec<GetResponse>);

impl Answers {
    /// The answers in `response` to `reads`. A response that does not hold exactly one range answer per
    /// read is an error, never a shifted list.
    pub(crate) fn of(response: &TxnResponse, reads: &Reads) -> CoordResult<Self> {
        let gets: Vec<GetResponse> = response
            .op_responses()
            .map_err(|e| {
                CoordError::unavailable(format!("etcd answered a transaction malformed: {e}"))
            })?
            .into_iter()
            .filter_map(|r| match r {
                TxnOpResponse::Get(get) => Some(get),
                _ => None,
            })
            .collect();
        if gets.len() != reads.ops.len() {
            return Err(CoordError::unavailable(format!(
                "etcd answered {} reads of a transaction that made {}",
                gets.len(),
                reads.ops.len()
            )));
        }
        Ok(Self(gets))
    }

    /// How many keys the read at `at` matched (for a count-only read: whether the key exists).
    pub(crate) fn count(&self, at: ReadAt) -> i64 {
        self.0[at.0].count()
    }

    /// The first key-value the read at `at` returned, if any.
    pub(crate) fn first(&self, at: ReadAt) -> Option<&KeyValue> {
        self.0[at.0].kvs().first()
    }
}
