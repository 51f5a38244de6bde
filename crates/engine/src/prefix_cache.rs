//! Ownership of KV-cache blocks for many sequences, with prefix caching: a full block of prompt
//! tokens, once computed, is remembered by the chain of token ids leading to it, so a later
//! request that starts with the same tokens (a shared system prompt, a growing conversation)
//! reuses the block instead of recomputing it. Blocks nobody uses stay cached until space is
//! needed, then go least recently used first.
//!
//! Cached blocks are always full and a sequence always computes at least its last prompt token
//! itself, so no sequence ever writes into a block another one reads. Only blocks computed from
//! prompt tokens are cached: generated tokens are computed at a
//! different precision (see `Precision`), and reusing their keys for a later prompt would make
//! that prompt's results depend on the cache's history.

use std::collections::HashMap;

use crate::kv_cache::BLOCK_SIZE;

/// Identity of a full block: the hash of its tokens chained with the hash of its predecessor.
type ChainHash = u64;

struct CachedBlock {
    hash: ChainHash,
    /// The block's own tokens, compared on lookup so a hash collision can never reuse a block.
    tokens: [u32; BLOCK_SIZE],
    parent: ChainHash,
}

pub struct BlockManager {
    ref_counts: Vec<u32>,
    cached: Vec<Option<CachedBlock>>,
    by_hash: HashMap<ChainHash, u32>,
    /// Never-cached blocks nobody holds.
    free: Vec<u32>,
    /// Cached blocks nobody holds, by last use; evicted oldest first.
    evictable: std::collections::BTreeMap<u64, u32>,
    last_use: Vec<u64>,
    clock: u64,
}

impl BlockManager {
    pub fn new(n_blocks: usize) -> BlockManager {
        BlockManager {
            ref_counts: vec![0; n_blocks],
            cached: (0..n_blocks).map(|_| None).collect(),
            by_hash: HashMap::new(),
            free: (0..n_blocks as u32).rev().collect(),
            evictable: Default::default(),
            last_use: vec![0; n_blocks],
            clock: 0,
        }
    }

    pub fn n_blocks(&self) -> usize {
        self.ref_counts.len()
    }

    /// Blocks that can be handed out now (free, or cached but unused).
    pub fn n_available(&self) -> usize {
        self.free.len() + self.evictable.len()
    }

    /// Blocks held by at least one sequence.
    pub fn n_in_use(&self) -> usize {
        self.n_blocks() - self.n_available()
    }

    /// A block for new keys, evicting the least recently used cached block if need be.
    pub fn allocate(&mut self) -> Option<u32> {
        let block = match self.free.pop() {
            Some(b) => b,
            None => {
                let (_, b) = self.evictable.pop_first()?;
                let old = self.cached[b as usize].take().expect("evictable blocks are cached");
                self.by_hash.remove(&old.hash);
                b
            }
        };
        self.ref_counts[block as usize] = 1;
        Some(block)
    }

    /// How many leading full blocks of `tokens` are cached, without taking them. At least one
    /// token is always left uncached, because the model must run on it to give logits.
    pub fn peek_prefix(&self, tokens: &[u32]) -> usize {
        self.prefix_blocks(tokens).len()
    }

    /// Takes the cached leading blocks of `tokens` for a new sequence (see `peek_prefix`).
    pub fn acquire_prefix(&mut self, tokens: &[u32]) -> Vec<u32> {
        let blocks = self.prefix_blocks(tokens);
        for &b in &blocks {
            if self.ref_counts[b as usize] == 0 {
                self.evictable.remove(&self.last_use[b as usize]);
            }
            self.ref_counts[b as usize] += 1;
        }
        blocks
    }

    fn prefix_blocks(&self, tokens: &[u32]) -> Vec<u32> {
        let n_full = tokens.len().saturating_sub(1) / BLOCK_SIZE;
        let mut blocks = Vec::new();
        let mut parent = 0;
        for chunk in tokens.chunks_exact(BLOCK_SIZE).take(n_full) {
            let hash = chain_hash(parent, chunk);
            match self.by_hash.get(&hash) {
                Some(&b) if self.cached[b as usize].as_ref().is_some_and(|c| c.tokens == chunk && c.parent == parent) => blocks.push(b),
                _ => break,
            }
            parent = hash;
        }
        blocks
    }

    /// Records that `blocks` (a sequence's table) hold the keys of `prompt`'s full blocks, so
    /// later requests can reuse them. Blocks already cached, or whose content another block
    /// already caches, are left alone.
    pub fn register_prompt(&mut self, blocks: &[u32], prompt: &[u32]) {
        let mut parent = 0;
        for (chunk, &b) in prompt.chunks_exact(BLOCK_SIZE).zip(blocks) {
            let hash = chain_hash(parent, chunk);
            if self.cached[b as usize].is_none() && !self.by_hash.contains_key(&hash) {
                let mut tokens = [0; BLOCK_SIZE];
                tokens.copy_from_slice(chunk);
                self.cached[b as usize] = Some(CachedBlock { hash, tokens, parent });
                self.by_hash.insert(hash, b);
            }
            parent = hash;
        }
    }

    /// Drops one reference to each block; unreferenced blocks become free, or evictable if cached.
    pub fn release(&mut self, blocks: &[u32]) {
        for &b in blocks {
            let count = &mut self.ref_counts[b as usize];
            debug_assert!(*count > 0, "block {b} released more often than taken");
            *count -= 1;
            if *count == 0 {
                if self.cached[b as usize].is_some() {
                    self.clock += 1;
                    self.last_use[b as usize] = self.clock;
                    self.evictable.insert(self.clock, b);
                } else {
                    self.free.push(b);
                }
            }
        }
    }
}

/// FNV-1a over the parent hash and the block's tokens: fast, and collisions are harmless
/// because lookups compare the tokens too.
fn chain_hash(parent: ChainHash, tokens: &[u32]) -> ChainHash {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for word in std::iter::once(parent).chain(tokens.iter().map(|&t| u64::from(t))) {
        for byte in word.to_le_bytes() {
            h ^= u64::from(byte);
            h = h.wrapping_mul(0x0000_0100_0000_01B3);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(n: usize, salt: u32) -> Vec<u32> {
        (0..n as u32).map(|i| i * 7 + salt).collect()
    }

    fn take(m: &mut BlockManager, n: usize) -> Vec<u32> {
        (0..n).map(|_| m.allocate().unwrap()).collect()
    }

    #[test]
    fn shared_prefixes_are_reused_whole_blocks_only() {
        let mut m = BlockManager::new(8);
        let p = prompt(40, 0); // 2 full blocks + 8 tokens
        let a = take(&mut m, 3);
        m.register_prompt(&a, &p);
        // Same first 33 tokens: both full blocks hit; the last token is never taken from cache.
        let mut q = p[..33].to_vec();
        q.push(999);
        assert_eq!(m.peek_prefix(&q), 2);
        assert_eq!(m.acquire_prefix(&q), a[..2].to_vec());
        // Exactly 32 tokens: only the first block, so one token is left to compute.
        assert_eq!(m.peek_prefix(&p[..32]), 1);
        // A different first block shares nothing, even with the same second block.
        let mut r = p.clone();
        r[0] = 12345;
        assert_eq!(m.peek_prefix(&r), 0);
    }

    #[test]
    fn released_cached_blocks_are_evicted_lru_and_forgotten() {
        let mut m = BlockManager::new(3);
        let (p1, p2) = (prompt(17, 1), prompt(17, 2));
        let a = take(&mut m, 2);
        m.register_prompt(&a, &p1);
        m.release(&a);
        let b = take(&mut m, 2);
        m.register_prompt(&b, &p2);
        m.release(&b);
        assert_eq!(m.n_available(), 3);
        assert_eq!(m.n_in_use(), 0);
        // One free block, then the least recently released cached block (p1's) is evicted.
        take(&mut m, 2);
        assert_eq!(m.peek_prefix(&p1), 0, "evicted");
        assert_eq!(m.peek_prefix(&p2), 1, "still cached");
    }

    #[test]
    fn reference_counts_keep_shared_blocks_alive() {
        let mut m = BlockManager::new(2);
        let p = prompt(20, 3);
        let a = take(&mut m, 2);
        m.register_prompt(&a, &p);
        let shared = m.acquire_prefix(&p);
        assert_eq!(shared, vec![a[0]]);
        m.release(&a);
        assert_eq!(m.n_in_use(), 1, "the shared block is still held");
        assert!(m.allocate().is_some(), "the unshared one came back");
        assert!(m.allocate().is_none());
        m.release(&shared);
        assert_eq!(m.n_available(), 1);
    }
}
