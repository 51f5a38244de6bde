//! The paged KV cache: keys and values of every layer in fixed-size blocks of positions, reached
//! through each sequence's block table. It owns the storage only; which sequence holds which
//! blocks is `prefix_cache::BlockManager`'s business.

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
    k: Vec<f32>,
    v: Vec<f32>,
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
            k: vec![0.0; len],
            v: vec![0.0; len],
        }
    }

    /// Blocks needed to hold `n_positions` positions.
    pub fn blocks_for(n_positions: usize) -> usize {
        n_positions.div_ceil(BLOCK_SIZE)
    }

    /// Bytes one block takes (keys and values of every layer), for sizing a cache to memory.
    pub fn bytes_per_block(n_layers: usize, kv_dim: usize) -> usize {
        2 * n_layers * BLOCK_SIZE * kv_dim * std::mem::size_of::<f32>()
    }

    pub fn n_blocks(&self) -> usize {
        self.n_blocks
    }

    pub fn bytes(&self) -> usize {
        (self.k.len() + self.v.len()) * std::mem::size_of::<f32>()
    }

    fn offset(&self, layer: usize, block: u32, kv_head: usize) -> usize {
        debug_assert!(layer < self.n_layers && (block as usize) < self.n_blocks && kv_head < self.n_kv_heads);
        (((layer * self.n_blocks + block as usize) * self.n_kv_heads + kv_head) * BLOCK_SIZE) * self.head_dim
    }

    /// Stores the keys and values (n_kv_heads, head_dim) of one position.
    pub fn store(&mut self, layer: usize, blocks: &[u32], pos: usize, k: &[f32], v: &[f32]) {
        let block = blocks[pos / BLOCK_SIZE];
        let slot = pos % BLOCK_SIZE;
        let hd = self.head_dim;
        for h in 0..self.n_kv_heads {
            let base = self.offset(layer, block, h);
            for (d, &kd) in k[h * hd..(h + 1) * hd].iter().enumerate() {
                self.k[base + d * BLOCK_SIZE + slot] = kd;
            }
            self.v[base + slot * hd..base + (slot + 1) * hd].copy_from_slice(&v[h * hd..(h + 1) * hd]);
        }
    }

    /// Keys (head_dim, BLOCK_SIZE) and values (BLOCK_SIZE, head_dim) of one block for one head.
    pub fn block(&self, layer: usize, block: u32, kv_head: usize) -> (&[f32], &[f32]) {
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
        // Position 17 is slot 1 of the second block; keys are stored transposed.
        assert_eq!([k[1], k[BLOCK_SIZE + 1], k[2 * BLOCK_SIZE + 1]], [4.0, 5.0, 6.0]);
        assert_eq!(&v[3..6], &[-4.0, -5.0, -6.0]);
        let (k0, _) = kv.block(0, 0, 1);
        assert!(k0.iter().all(|&x| x == 0.0), "other layers untouched");
        assert!(kv.block(1, 2, 1).0.iter().all(|&x| x == 0.0), "other blocks untouched");
    }
}
