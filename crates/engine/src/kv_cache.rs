//! The paged KV cache: keys and values of every layer in fixed-size blocks of positions, reached
//! through each sequence's block table. It owns the storage only; which sequence holds which
//! blocks is `prefix_cache::BlockManager`'s business.
//!
//! Keys and values are kept in f16, as llama.cpp keeps them by default: half the memory and
//! half the bytes attention reads per token, which is what bounds decoding on a long context.

use half::f16;
use half::vec::HalfBitsVecExt;

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
    k: Vec<f16>,
    v: Vec<f16>,
}

impl KvCache {
    /// A cache of `n_blocks` blocks. Memory is reserved zeroed, so the OS backs pages only as
    /// they are written: a long context costs nothing until it is used.
    pub fn new(n_layers: usize, n_kv_heads: usize, head_dim: usize, n_blocks: usize) -> KvCache {
        let len = n_layers * n_blocks * BLOCK_SIZE * n_kv_heads * head_dim;
        KvCache {
            n_layers,
            n_kv_heads,
            head_dim,
            n_blocks,
            // Zeroed u16s come from the allocator as untouched zero pages, which f16 values
            // would not: the bit patterns are the same.
            k: vec![0u16; len].reinterpret_into(),
            v: vec![0u16; len].reinterpret_into(),
        }
    }

    /// Blocks needed to hold `n_positions` positions.
    pub fn blocks_for(n_positions: usize) -> usize {
        n_positions.div_ceil(BLOCK_SIZE)
    }

    /// Bytes one block takes (keys and values of every layer), for sizing a cache to memory.
    pub fn bytes_per_block(n_layers: usize, kv_dim: usize) -> usize {
        2 * n_layers * BLOCK_SIZE * kv_dim * std::mem::size_of::<f16>()
    }

    pub fn n_blocks(&self) -> usize {
        self.n_blocks
    }

    pub fn bytes(&self) -> usize {
        (self.k.len() + self.v.len()) * std::mem::size_of::<f16>()
    }

    fn offset(&self, layer: usize, block: u32, kv_head: usize) -> usize {
        debug_assert!(layer < self.n_layers && (block as usize) < self.n_blocks && kv_head < self.n_kv_heads);
        (((layer * self.n_blocks + block as usize) * self.n_kv_heads + kv_head) * BLOCK_SIZE) * self.head_dim
    }

    /// Stores the keys and values (n_kv_heads, head_dim) of one position, rounded to f16.
    pub fn store(&mut self, layer: usize, blocks: &[u32], pos: usize, k: &[f32], v: &[f32]) {
        let block = blocks[pos / BLOCK_SIZE];
        let slot = pos % BLOCK_SIZE;
        let hd = self.head_dim;
        for h in 0..self.n_kv_heads {
            let base = self.offset(layer, block, h);
            for (d, &kd) in k[h * hd..(h + 1) * hd].iter().enumerate() {
                self.k[base + d * BLOCK_SIZE + slot] = f16::from_f32(kd);
            }
            for (dst, &vd) in self.v[base + slot * hd..base + (slot + 1) * hd].iter_mut().zip(&v[h * hd..(h + 1) * hd]) {
                *dst = f16::from_f32(vd);
            }
        }
    }

    /// Keys (head_dim, BLOCK_SIZE) and values (BLOCK_SIZE, head_dim) of one block for one head.
    pub fn block(&self, layer: usize, block: u32, kv_head: usize) -> (&[f16], &[f16]) {
        let start = self.offset(layer, block, kv_head);
        let end = start + BLOCK_SIZE * self.head_dim;
        (&self.k[start..end], &self.v[start..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_positions_read_back_per_head() {
        let mut kv = KvCache::new(2, 2, 3, 3);
        let blocks = [2, 0];
        kv.store(1, &blocks, 17, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[-1.0, -2.0, -3.0, -4.0, -5.0, -6.0]);
        let (k, v) = kv.block(1, 0, 1);
        let f32s = |xs: &[f16]| xs.iter().map(|x| x.to_f32()).collect::<Vec<_>>();
        // Position 17 is slot 1 of the second block; keys are stored transposed.
        assert_eq!(f32s(&[k[1], k[BLOCK_SIZE + 1], k[2 * BLOCK_SIZE + 1]]), [4.0, 5.0, 6.0]);
        assert_eq!(f32s(&v[3..6]), [-4.0, -5.0, -6.0]);
        let (k0, _) = kv.block(0, 0, 1);
        assert!(k0.iter().all(|&x| x == f16::ZERO), "other layers untouched");
        assert!(kv.block(1, 2, 1).0.iter().all(|&x| x == f16::ZERO), "other blocks untouched");
    }
}
