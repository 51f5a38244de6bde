//! Once its buffers have grown, decoding allocates nothing, for every family (experts, sliding
//! windows, fused projections and LongRoPE included): a counting global allocator (this test
//! binary's alone) watches steps after a warm-up of the same shape.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use herd_engine::model::Logits;
use herd_engine::session::Session;
use herd_engine::Model;
use herd_kernels::ThreadPool;

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
fn warm_decoding_allocates_nothing_in_any_family() {
    let Some(dir) = common::testdata("arch") else { return };
    let pool = ThreadPool::new(2);
    for family in ["llama", "mixtral", "qwen2", "qwen3", "qwen3moe", "gemma2", "gemma3", "phi3", "phi3-longrope"] {
        let model = Model::load(&dir.join(family).join("model-f16.gguf")).unwrap();
        let mut session = Session::new(&model, &pool, Some(128)).unwrap();
        session.eval(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], Logits::Last).unwrap();
        // Warm-up steps grow every decode buffer (and cross a 16-position block).
        for t in 0..8 {
            session.step(11 + t).unwrap();
        }
        // Counted three times: the count is the whole process's, and a thread the test does
        // not control (the harness, a worker's first moments) may allocate once at any moment;
        // decoding that allocated would do so every time.
        let allocated = (0..3)
            .map(|round| {
                let before = ALLOCATIONS.load(Ordering::Relaxed);
                for t in 0..24 {
                    session.step(20 + 24 * round + t).unwrap();
                }
                ALLOCATIONS.load(Ordering::Relaxed) - before
            })
            .min()
            .unwrap();
        assert_eq!(allocated, 0, "{family}: {allocated} allocations in 24 warm decoding steps, each of three times");
    }
}
