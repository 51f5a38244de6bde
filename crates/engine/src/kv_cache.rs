//! The paged KV cache: keys and values of every layer in fixed-size blocks of positions, reached
//! through each sequence's block table. It owns the storage only; which sequence holds which
//! blocks is `prefix_cache::BlockManager`'s business.
//!
//! Keys and values are kept in f16, as llama.cpp keeps them by default: half the memory and
//! half the bytes attention reads per token, which is what bounds decoding on a long context.
//! An f32 cache exists for exact evaluation (`herd logits --precision f32`), where the f16
//! rounding of keys and values alone would move logits by ~1e-3.

use half::f16;
use half::vec::HalfBitsVecExt;
use herd_kernels::ops::KvBlock;

/// The element type of the cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KvType {
    #[default]
    F16,
    F32,
}

enum Store {
    F16 { k: Vec<f16>, v: Vec<f16> },
    F32 { k: Vec<f32>, v: Vec<f32> },
}

/// Positions per block: the attention kernel's block.
pub const BLOCK_SIZE: usize = herd_kernels::ops::ATTN_BLOCK;

/// Storage for `n_blocks` blocks of every layer's keys and values.
///
/// Layout of `v`: (layer, block, kv_head, slot, head_dim); of `k` the same with each block's
/// keys transposed, (layer, block, kv_head, head_dim, slot), so a block's scores are a vector
/// multiply-add per dimension (`ops::attend_block`).
pub struct KvCache {
    n_layers: usize,
    n_kv_heads: usize,
    head_dim: usize,
    n_blocks: usize,
    store: Store,
}

impl KvCache {
    /// A cache of `n_blocks` blocks. Memory is reserved zeroed, so the OS backs pages only as
    /// they are written: a long context costs nothing until it is used.
    pub fn new(n_layers: usize, n_kv_heads: usize, head_dim: usize, n_blocks: usize, kv_type: KvType) -> KvCache {
        let len = n_layers * n_blocks * BLOCK_SIZE * n_kv_heads * head_dim;
        let store = match kv_type {
            // Zeroed u16s come from the allocator as untouched zero pages, which f16 values
            // would not: the bit patterns are the same.
            KvType::F16 => Store::F16 { k: vec![0u16; len].reinterpret_into(), v: vec![0u16; len].reinterpret_into() },
            KvType::F32 => Store::F32 { k: vec![0.0; len], v: vec![0.0; len] },
        };
        KvCache { n_layers, n_kv_heads, head_dim, n_blocks, store }
    }

    /// Blocks needed to hold `n_positions` positions.
    pub fn blocks_for(n_positions: usize) -> usize {
        n_positions.div_ceil(BLOCK_SIZE)
    }

    /// Bytes one block of the f16 (serving) cache takes, keys and values of every layer, for
    /// sizing a cache to memory.
    pub fn bytes_per_block(n_layers: usize, kv_dim: usize) -> usize {
        2 * n_layers * BLOCK_SIZE * kv_dim * std::mem::size_of::<f16>()
    }

    pub fn n_blocks(&self) -> usize {
        self.n_blocks
    }

    pub fn bytes(&self) -> usize {
        match &self.store {
            Store::F16 { k, v } => (k.len() + v.len()) * std::mem::size_of::<f16>(),
            Store::F32 { k, v } => (k.len() + v.len()) * std::mem::size_of::<f32>(),
        }
    }

    fn offset(&self, layer: usize, block: u32, kv_head: usize) -> usize {
        debug_assert!(layer < self.n_layers && (block as usize) < self.n_blocks && kv_head < self.n_kv_heads);
        (((layer * self.n_blocks + block as usize) * self.n_kv_heads + kv_head) * BLOCK_SIZE) * self.head_dim
    }

    /// Stores the keys and values (n_kv_heads, head_dim) of one position, in the cache's type.
    pub fn store(&mut self, layer: usize, blocks: &[u32], pos: usize, k: &[f32], v: &[f32]) {
        let block = blocks[pos / BLOCK_SIZE];
        let slot = pos % BLOCK_SIZE;
        let hd = self.head_dim;
        for h in 0..self.n_kv_heads {
            let base = self.offset(layer, block, h);
            let (k, v) = (&k[h * hd..(h + 1) * hd], &v[h * hd..(h + 1) * hd]);
            match &mut self.store {
                Store::F16 { k: ks, v: vs } => write(ks, vs, base, slot, hd, k, v, f16::from_f32),
                Store::F32 { k: ks, v: vs } => write(ks, vs, base, slot, hd, k, v, |x| x),
            }
        }
    }

    /// Keys (head_dim, BLOCK_SIZE) and values (BLOCK_SIZE, head_dim) of one block for one head.
    pub fn block(&self, layer: usize, block: u32, kv_head: usize) -> KvBlock<'_> {
        let start = self.offset(layer, block, kv_head);
        let end = start + BLOCK_SIZE * self.head_dim;
        match &self.store {
            Store::F16 { k, v } => KvBlock::F16 { keys_t: &k[start..end], values: &v[start..end] },
            Store::F32 { k, v } => KvBlock::F32 { keys_t: &k[start..end], values: &v[start..end] },
        }
    }
}

/// One head's key (transposed into its block) and value at `slot` of the block at `base`.
#[allow(clippy::too_many_arguments)]
fn write<T>(keys: &mut [T], values: &mut [T], base: usize, slot: usize, hd: usize, k: &[f32], v: &[f32], convert: impl Fn(f32) -> T) {
    for (d, &kd) in k.iter().enumerate() {
        keys[base + d * BLOCK_SIZE + slot] = convert(kd);
    }
    for (dst, &vd) in values[base + slot * hd..base + (slot + 1) * hd].iter_mut().zip(v) {
        *dst = convert(vd);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block as f32 values, whatever the cache's type.
    fn f32s(b: KvBlock<'_>) -> (Vec<f32>, Vec<f32>) {
        match b {
            KvBlock::F16 { keys_t, values } => (keys_t.iter().map(|x| x.to_f32()).collect(), values.iter().map(|x| x.to_f32()).collect()),
            KvBlock::F32 { keys_t, values } => (keys_t.to_vec(), values.to_vec()),
        }
    }

    #[test]
    fn stored_positions_read_back_per_head() {
        for kv_type in [KvType::F16, KvType::F32] {
            let mut kv = KvCache::new(2, 2, 3, 3, kv_type);
            let blocks = [2, 0];
            kv.store(1, &blocks, 17, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[-1.0, -2.0, -3.0, -4.0, -5.0, -6.0]);
            let (k, v) = f32s(kv.block(1, 0, 1));
            // Position 17 is slot 1 of the second block; keys are stored transposed.
            assert_eq!([k[1], k[BLOCK_SIZE + 1], k[2 * BLOCK_SIZE + 1]], [4.0, 5.0, 6.0]);
            assert_eq!(v[3..6], [-4.0, -5.0, -6.0]);
            assert!(f32s(kv.block(0, 0, 1)).0.iter().all(|&x| x == 0.0), "other layers untouched");
            assert!(f32s(kv.block(1, 2, 1)).0.iter().all(|&x| x == 0.0), "other blocks untouched");
        }
        // f32 keeps what f16 rounds.
        let mut kv = KvCache::new(1, 1, 1, 1, KvType::F32);
        kv.store(0, &[0], 0, &[0.1], &[0.1]);
        assert_eq!(f32s(kv.block(0, 0, 0)).0[0], 0.1);
    }
}
