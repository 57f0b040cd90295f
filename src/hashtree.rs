//! BLAKE3 tree math for verified streaming: the outboard built while bytes stream in, range
//! validation for device GETs, and the plan of a pre-order verified slice.
//!
//! Pure: no I/O. The store (`store/blobs.rs`) feeds bytes in, keeps the outboard rows and
//! fills a [`SlicePart`] plan with stored bytes.
//!
//! The outboard is kept at 4 KiB blocks (chunk_log 2): for every node of the blob's BLAKE3
//! tree that spans more than one block, the 64-byte pair (left CV ‖ right CV), in post-order.
//! A node over blocks `[s, e)` sits at pair index `s - popcount(s) + (e - s - 2)`: the pairs of
//! the perfect subtrees left of `s`, then its own descendants. Every group size of
//! chunk_log 2..=6 is a power-of-two number of blocks, so any of them is served from this one
//! outboard (a group is a subtree; the nodes above it are a subset of the stored ones).

use blake3::hazmat::{
    ChainingValue, HasherExt, Mode, merge_subtrees_non_root, merge_subtrees_root,
};

/// Bytes per block of the stored outboard (chunk_log 2).
pub const BLOCK: u64 = 4096;
/// Bytes of one stored parent pair.
pub const PAIR: usize = 64;
pub const CHUNK_LOG_MIN: u8 = 2;
pub const CHUNK_LOG_MAX: u8 = 6;

/// Group size in bytes for a chunk_log: 1024 · 2^chunk_log.
pub fn group_size(chunk_log: u8) -> u64 {
    1024u64 << chunk_log
}

/// Number of 4 KiB blocks of a blob (at least one).
pub fn block_count(size: u64) -> u64 {
    size.div_ceil(BLOCK).max(1)
}

/// Number of stored pairs for a blob of `size` bytes.
pub fn pair_count(size: u64) -> u64 {
    block_count(size) - 1
}

/// Post-order pair index of the node over blocks `[start, end)` (`end - start >= 2`).
pub fn pair_index(start: u64, end: u64) -> u64 {
    start - u64::from(start.count_ones()) + (end - start - 2)
}

/// Largest power of two strictly below `n` (n ≥ 2): where BLAKE3 splits a node of n units.
fn left_len(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

/// Streaming hasher that yields the root hash and the post-order outboard pairs.
pub struct OutboardBuilder {
    block: Vec<u8>,
    blocks_done: u64,
    stack: Vec<ChainingValue>,
    pairs: Vec<u8>,
}

impl Default for OutboardBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl OutboardBuilder {
    pub fn new() -> Self {
        Self {
            block: Vec::with_capacity(BLOCK as usize),
            blocks_done: 0,
            stack: Vec::new(),
            pairs: Vec::new(),
        }
    }

    /// Total bytes fed so far.
    pub fn len(&self) -> u64 {
        self.blocks_done * BLOCK + self.block.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            // A full block is hashed only once more input follows it, so it is never the root.
            if self.block.len() == BLOCK as usize {
                self.push_full_block();
            }
            let room = BLOCK as usize - self.block.len();
            let take = room.min(data.len());
            let (head, rest) = data.split_at(take);
            self.block.extend_from_slice(head);
            data = rest;
        }
    }

    fn push_full_block(&mut self) {
        let mut cv = blake3::Hasher::new()
            .set_input_offset(self.blocks_done * BLOCK)
            .update(&self.block)
            .finalize_non_root();
        self.block.clear();
        self.blocks_done += 1;
        let mut total = self.blocks_done;
        while total & 1 == 0 {
            let Some(left) = self.stack.pop() else { break };
            self.pairs.extend_from_slice(&left);
            self.pairs.extend_from_slice(&cv);
            cv = merge_subtrees_non_root(&left, &cv, Mode::Hash);
            total >>= 1;
        }
        self.stack.push(cv);
    }

    /// Pairs produced so far, removed from the builder (stream them to storage).
    pub fn take_pairs(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pairs)
    }

    /// Finishes the tree: returns the root hash; the remaining pairs are left to `take_pairs`.
    pub fn finalize(&mut self) -> blake3::Hash {
        // The stack is empty exactly when everything fits in one block: a plain hash.
        let Some(mut left) = self.stack.pop() else {
            return blake3::hash(&self.block);
        };
        let mut right = blake3::Hasher::new()
            .set_input_offset(self.blocks_done * BLOCK)
            .update(&self.block)
            .finalize_non_root();
        loop {
            self.pairs.extend_from_slice(&left);
            self.pairs.extend_from_slice(&right);
            match self.stack.pop() {
                None => return merge_subtrees_root(&left, &right, Mode::Hash),
                Some(next) => {
                    right = merge_subtrees_non_root(&left, &right, Mode::Hash);
                    left = next;
                }
            }
        }
    }
}

/// Why a device range was refused (OCP BAD_RANGE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("chunk_log {0} is outside 2-6")]
    ChunkLog(u8),
    #[error("offset is not a multiple of the group size")]
    Unaligned,
    #[error("offset is at or past the end of the blob")]
    PastEnd,
    #[error("length must be at least 1 and a multiple of the group size unless it reaches the end")]
    Length,
}

/// Checks a GET range against the blob and returns the clipped data length.
pub fn check_range(size: u64, chunk_log: u8, offset: u64, length: u32) -> Result<u32, RangeError> {
    if !(CHUNK_LOG_MIN..=CHUNK_LOG_MAX).contains(&chunk_log) {
        return Err(RangeError::ChunkLog(chunk_log));
    }
    let g = group_size(chunk_log);
    if !offset.is_multiple_of(g) {
        return Err(RangeError::Unaligned);
    }
    if offset >= size {
        return Err(RangeError::PastEnd);
    }
    if length == 0 {
        return Err(RangeError::Length);
    }
    let remaining = size - offset;
    if u64::from(length) >= remaining {
        // Clipped to the end; remaining < length ≤ u32::MAX, so it fits.
        return u32::try_from(remaining).map_err(|_| RangeError::Length);
    }
    if !u64::from(length).is_multiple_of(g) {
        return Err(RangeError::Length);
    }
    Ok(length)
}

/// One piece of a verified slice, in wire order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlicePart {
    /// The stored pair with this post-order index (64 bytes).
    Pair(u64),
    /// Blob bytes `[start, end)`.
    Data { start: u64, end: u64 },
}

/// Plans the pre-order verified slice of `[offset, offset+length)` at `chunk_log`, for a range
/// already accepted by [`check_range`]. Adjacent data groups are merged into one part.
pub fn slice_plan(size: u64, chunk_log: u8, offset: u64, length: u32) -> Vec<SlicePart> {
    let blocks_per_group = group_size(chunk_log) / BLOCK;
    let range_end = offset + u64::from(length);
    let mut parts = Vec::new();
    let mut stack = vec![(0u64, block_count(size))];
    while let Some((s, e)) = stack.pop() {
        let byte_start = s * BLOCK;
        let byte_end = e.saturating_mul(BLOCK).min(size);
        if byte_start >= range_end || byte_end <= offset {
            continue;
        }
        if e - s <= blocks_per_group {
            match parts.last_mut() {
                Some(SlicePart::Data { end, .. }) if *end == byte_start => *end = byte_end,
                _ => parts.push(SlicePart::Data {
                    start: byte_start,
                    end: byte_end,
                }),
            }
            continue;
        }
        parts.push(SlicePart::Pair(pair_index(s, e)));
        let mid = s + left_len(e - s);
        // Right first so that the left child is visited first.
        stack.push((mid, e));
        stack.push((s, mid));
    }
    parts
}

/// Wire length of a verified slice: 64 bytes per pair plus the data bytes.
pub fn slice_len(parts: &[SlicePart]) -> u64 {
    parts
        .iter()
        .map(|p| match p {
            SlicePart::Pair(_) => PAIR as u64,
            SlicePart::Data { start, end } => end - start,
        })
        .sum()
}

/// Why a verified slice was refused by [`verify_slice`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("bad range: {0}")]
    Range(#[from] RangeError),
    #[error("slice ends early")]
    Truncated,
    #[error("slice has {0} bytes too many")]
    Trailing(usize),
    #[error("hash mismatch in the node starting at byte {0}")]
    Mismatch(u64),
}

/// Verifies the pre-order slice of `[offset, offset+length)` against the root hash and
/// returns the data bytes. This is what a device does; it shares no code with the encoder
/// (`slice_plan`) beyond the range rule.
pub fn verify_slice(
    root: &[u8; 32],
    size: u64,
    chunk_log: u8,
    offset: u64,
    length: u32,
    slice: &[u8],
) -> Result<Vec<u8>, VerifyError> {
    let clipped = check_range(size, chunk_log, offset, length)?;
    let g = group_size(chunk_log);
    let groups = size.div_ceil(g).max(1);
    let end = offset + u64::from(clipped);
    let mut rest = slice;
    let mut take = |n: usize| -> Result<&[u8], VerifyError> {
        if rest.len() < n {
            return Err(VerifyError::Truncated);
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let mut data = Vec::with_capacity(clipped as usize);
    // (first group, end group, expected chaining value; None = the root, checked as a hash)
    let mut stack: Vec<(u64, u64, Option<ChainingValue>)> = vec![(0, groups, None)];
    while let Some((s, e, expected)) = stack.pop() {
        let byte_start = s * g;
        if e - s == 1 {
            let byte_end = e.saturating_mul(g).min(size);
            let bytes = take((byte_end - byte_start) as usize)?;
            let ok = match expected {
                None => blake3::hash(bytes).as_bytes() == root,
                Some(cv) => {
                    blake3::Hasher::new()
                        .set_input_offset(byte_start)
                        .update(bytes)
                        .finalize_non_root()
                        == cv
                }
            };
            if !ok {
                return Err(VerifyError::Mismatch(byte_start));
            }
            data.extend_from_slice(bytes);
            continue;
        }
        let pair = take(PAIR)?;
        let mut left = [0u8; 32];
        let mut right = [0u8; 32];
        left.copy_from_slice(&pair[..32]);
        right.copy_from_slice(&pair[32..]);
        let ok = match expected {
            None => merge_subtrees_root(&left, &right, Mode::Hash).as_bytes() == root,
            Some(cv) => merge_subtrees_non_root(&left, &right, Mode::Hash) == cv,
        };
        if !ok {
            return Err(VerifyError::Mismatch(byte_start));
        }
        let mid = s + left_len(e - s);
        if mid.saturating_mul(g) < end {
            stack.push((mid, e, Some(right)));
        }
        if mid.saturating_mul(g) > offset {
            stack.push((s, mid, Some(left)));
        }
    }
    if !rest.is_empty() {
        return Err(VerifyError::Trailing(rest.len()));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| (i.wrapping_mul(31) ^ (i >> 7)) as u8)
            .collect()
    }

    fn build(bytes: &[u8], step: usize) -> (blake3::Hash, Vec<u8>) {
        let mut b = OutboardBuilder::new();
        for piece in bytes.chunks(step.max(1)) {
            b.update(piece);
        }
        let root = b.finalize();
        (root, b.take_pairs())
    }

    /// Recomputes a node's CV straight from the data with the hazmat API.
    fn node_cv(bytes: &[u8], s: u64, e: u64) -> ChainingValue {
        let start = (s * BLOCK) as usize;
        let end = ((e * BLOCK) as usize).min(bytes.len());
        blake3::Hasher::new()
            .set_input_offset(s * BLOCK)
            .update(&bytes[start..end])
            .finalize_non_root()
    }

    #[test]
    fn root_matches_blake3_for_many_sizes() {
        for n in [
            0usize,
            1,
            1023,
            1024,
            1025,
            4095,
            4096,
            4097,
            8192,
            8193,
            12_288,
            20_000,
            65_536,
            100_001,
            1 << 20,
        ] {
            for step in [1usize, 1000, 4096, 7777, 1 << 20] {
                if step == 1 && n > 20_000 {
                    continue;
                }
                let bytes = data(n);
                let (root, pairs) = build(&bytes, step);
                assert_eq!(root, blake3::hash(&bytes), "size {n} step {step}");
                assert_eq!(
                    pairs.len() as u64,
                    pair_count(n as u64) * PAIR as u64,
                    "size {n}"
                );
            }
        }
    }

    #[test]
    fn pairs_sit_at_their_post_order_index() {
        for n in [8193usize, 5 * 4096 + 3, 7 * 4096, 13 * 4096 + 1, 33 * 4096] {
            let bytes = data(n);
            let (_, pairs) = build(&bytes, 3000);
            let mut todo = vec![(0u64, block_count(n as u64))];
            while let Some((s, e)) = todo.pop() {
                if e - s < 2 {
                    continue;
                }
                let mid = s + left_len(e - s);
                let at = pair_index(s, e) as usize * PAIR;
                assert_eq!(
                    &pairs[at..at + 32],
                    &node_cv(&bytes, s, mid),
                    "left of [{s},{e})"
                );
                assert_eq!(
                    &pairs[at + 32..at + 64],
                    &node_cv(&bytes, mid, e),
                    "right of [{s},{e})"
                );
                todo.push((s, mid));
                todo.push((mid, e));
            }
        }
    }

    #[test]
    fn left_len_is_largest_power_below() {
        assert_eq!(left_len(2), 1);
        assert_eq!(left_len(3), 2);
        assert_eq!(left_len(4), 2);
        assert_eq!(left_len(5), 4);
        assert_eq!(left_len(1 << 40), 1 << 39);
        assert_eq!(left_len((1 << 40) + 1), 1 << 40);
    }

    #[test]
    fn range_rules() {
        let g = group_size(2) as u32;
        assert_eq!(check_range(10_000, 2, 0, g), Ok(g));
        assert_eq!(check_range(10_000, 2, 4096, 2 * g), Ok(10_000 - 4096));
        assert_eq!(check_range(10_000, 2, 8192, 1808), Ok(1808));
        assert_eq!(check_range(10_000, 2, 8192, 1), Err(RangeError::Length));
        assert_eq!(check_range(10_000, 2, 0, 100), Err(RangeError::Length));
        assert_eq!(check_range(10_000, 2, 0, 0), Err(RangeError::Length));
        assert_eq!(check_range(10_000, 2, 100, g), Err(RangeError::Unaligned));
        assert_eq!(check_range(10_000, 2, 12_288, g), Err(RangeError::PastEnd));
        assert_eq!(check_range(10_000, 1, 0, g), Err(RangeError::ChunkLog(1)));
        assert_eq!(check_range(10_000, 7, 0, g), Err(RangeError::ChunkLog(7)));
        assert_eq!(check_range(100, 6, 0, u32::MAX), Ok(100));
        assert_eq!(
            check_range(u64::MAX, 6, 0, u32::MAX),
            Err(RangeError::Length)
        );
    }

    #[test]
    fn plan_of_small_blob_is_its_bytes() {
        assert_eq!(
            slice_plan(3000, 2, 0, 3000),
            vec![SlicePart::Data {
                start: 0,
                end: 3000
            }]
        );
        assert_eq!(
            slice_plan(20_000, 6, 0, 20_000),
            vec![SlicePart::Data {
                start: 0,
                end: 20_000
            }]
        );
    }

    #[test]
    fn plan_middle_range_has_spine_pairs() {
        // 5 blocks at chunk_log 2: tree ((0,1),(2,3)),4
        let size = 4 * 4096 + 10;
        let plan = slice_plan(size, 2, 8192, 4096);
        assert_eq!(
            plan,
            vec![
                SlicePart::Pair(pair_index(0, 5)),
                SlicePart::Pair(pair_index(0, 4)),
                SlicePart::Pair(pair_index(2, 4)),
                SlicePart::Data {
                    start: 8192,
                    end: 12_288
                },
            ]
        );
        assert_eq!(slice_len(&plan), 3 * 64 + 4096);
    }
}
