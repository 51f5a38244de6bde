//! Once its scratch buffers have grown, `matmul` allocates nothing, at any SIMD level, either
//! precision and any thread count: a forward pass issues hundreds of them per token. A counting
//! global allocator (this test binary's alone) checks it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use herd_kernels::{matmul_with, quantize_row, DType, Kernels, Level, MatRef, MatmulScratch, Precision, ThreadPool};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged, only counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn warm_matmul_allocates_nothing() {
    let (rows, cols) = (48, 512);
    let x: Vec<f32> = (0..rows.max(20) * cols).map(|i| (i % 17) as f32 * 0.1 - 0.8).collect();
    let pools = [ThreadPool::new(1), ThreadPool::new(2)];
    for dtype in [DType::Q4_1, DType::Q4_K, DType::F16, DType::Q8_1] {
        let row_bytes = cols / dtype.block_len() * dtype.block_bytes();
        let mut data = vec![0u8; rows * row_bytes];
        for r in 0..rows {
            quantize_row(dtype, &x[r * cols..(r + 1) * cols], &mut data[r * row_bytes..(r + 1) * row_bytes]).unwrap();
        }
        let w = MatRef { dtype, rows, cols, data: &data };
        let mut out = vec![0.0; 20 * rows];
        for level in Level::available() {
            let k = Kernels::for_level(level).expect("available");
            for pool in &pools {
                for precision in [Precision::Int8, Precision::Exact] {
                    let mut scratch = MatmulScratch::default();
                    // The largest call first grows every buffer; smaller ones must reuse them.
                    matmul_with(k, pool, w, &x[..20 * cols], 20, &mut out, &mut scratch, precision);
                    // Counted three times: the count is the whole process's, and a thread the
                    // test does not control (a worker starting up, the harness) may allocate once
                    // at any moment; a warm matmul that allocated would do so every time.
                    let allocated = (0..3)
                        .map(|_| {
                            let before = ALLOCATIONS.load(Ordering::Relaxed);
                            for n in [1, 7, 20] {
                                matmul_with(k, pool, w, &x[..n * cols], n, &mut out[..n * rows], &mut scratch, precision);
                            }
                            ALLOCATIONS.load(Ordering::Relaxed) - before
                        })
                        .min()
                        .unwrap();
                    assert_eq!(allocated, 0, "{level:?} {dtype} {precision:?} on {} threads allocated", pool.n_threads());
                }
            }
        }
    }
}
