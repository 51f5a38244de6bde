//! What the engine computes next: a pure function from the state of the running and waiting
//! sequences to a plan for one step. It never runs the model and keeps no state, so every
//! policy decision is testable as a table of inputs and plans.
//!
//! Policy, in priority order:
//! 1. Every running sequence that waits for one token (decoding) gets it: generation latency
//!    comes first. When the cache cannot hold a decoder's next block, the newest running
//!    sequences are preempted (their blocks freed, their tokens recomputed later).
//! 2. Running sequences still reading their prompt get chunks, oldest first, within the step's
//!    token budget (chunked prefill: a long prompt never stalls the decoders for long).
//! 3. Waiting requests are admitted in arrival order while there is a free sequence slot, budget
//!    left, and room in the cache for their whole prompt plus one block.

use crate::kv_cache::KvCache;

#[derive(Clone, Copy, Debug)]
pub struct SchedConfig {
    /// Most sequences running at once.
    pub max_seqs: usize,
    /// Most tokens computed in one step (decode tokens and prompt chunks together).
    pub token_budget: usize,
}

/// A running sequence, as the scheduler sees it. Slices of these are in admission order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Running {
    pub id: u64,
    /// Tokens known: the prompt plus every sampled token.
    pub n_tokens: usize,
    /// Tokens whose keys and values are in the cache.
    pub n_computed: usize,
    /// Blocks the sequence holds.
    pub n_blocks: usize,
}

/// A request waiting to start, in arrival order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Waiting {
    pub id: u64,
    pub n_tokens: usize,
    /// Leading tokens whose blocks are in the prefix cache (computed by nobody this time).
    pub n_cached: usize,
}

/// Compute the next `n_tokens` tokens of sequence `id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Work {
    pub id: u64,
    pub n_tokens: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Running sequences to stop and put back at the head of the queue.
    pub preempt: Vec<u64>,
    /// Waiting requests that start now (their prefix-cache hits are taken first).
    pub admit: Vec<u64>,
    /// The step's work: decoders first, then prompt chunks, in that order.
    pub work: Vec<Work>,
}

pub fn schedule(cfg: &SchedConfig, running: &[Running], waiting: &[Waiting], n_available_blocks: usize) -> Plan {
    let mut plan = Plan::default();
    let mut available = n_available_blocks;
    let mut budget = cfg.token_budget;
    // Sequences still running, newest last; preemption takes from the back.
    let mut alive: Vec<Running> = running.to_vec();

    // 1. Decoders.
    let mut i = 0;
    while i < alive.len() {
        let seq = alive[i];
        if seq.n_tokens - seq.n_computed != 1 || budget == 0 {
            i += 1;
            continue;
        }
        let need = KvCache::blocks_for(seq.n_computed + 1).saturating_sub(seq.n_blocks);
        while need > available && alive.len() > i + 1 {
            let victim = alive.pop().expect("more than one alive");
            available += victim.n_blocks;
            plan.preempt.push(victim.id);
            plan.work.retain(|w| w.id != victim.id);
        }
        if need > available {
            // Even alone it cannot grow: it waits for blocks held elsewhere (shared prefixes).
            alive.remove(i);
            available += seq.n_blocks;
            plan.preempt.push(seq.id);
            continue;
        }
        available -= need;
        budget -= 1;
        plan.work.push(Work { id: seq.id, n_tokens: 1 });
        i += 1;
    }

    // 2. Prompt chunks of running sequences.
    for seq in &alive {
        if plan.work.iter().any(|w| w.id == seq.id) {
            continue;
        }
        let remaining = seq.n_tokens - seq.n_computed;
        let n = remaining.min(budget).min(tokens_that_fit(seq.n_computed, seq.n_blocks, available));
        if n == 0 {
            continue;
        }
        available -= KvCache::blocks_for(seq.n_computed + n).saturating_sub(seq.n_blocks);
        budget -= n;
        plan.work.push(Work { id: seq.id, n_tokens: n });
    }

    // 3. Admission. Preempted sequences go back to the queue's head and are not readmitted in
    // the same step.
    for req in waiting {
        if alive.len() + plan.admit.len() >= cfg.max_seqs || budget == 0 {
            break;
        }
        // The whole prompt, counted without regard to cache hits, plus a block to grow into:
        // an admitted request should not be preempted by the next decode step.
        let need = KvCache::blocks_for(req.n_tokens) + 1;
        if need > available {
            break;
        }
        available -= need;
        let n = (req.n_tokens - req.n_cached).min(budget);
        budget -= n;
        plan.admit.push(req.id);
        plan.work.push(Work { id: req.id, n_tokens: n });
    }
    plan
}

/// How many more tokens a sequence holding `n_blocks` blocks, with `n_computed` positions
/// filled, can compute with `available` more blocks.
fn tokens_that_fit(n_computed: usize, n_blocks: usize, available: usize) -> usize {
    ((n_blocks + available) * crate::kv_cache::BLOCK_SIZE).saturating_sub(n_computed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: u64, n_tokens: usize, n_computed: usize, n_blocks: usize) -> Running {
        Running { id, n_tokens, n_computed, n_blocks }
    }

    fn wait(id: u64, n_tokens: usize, n_cached: usize) -> Waiting {
        Waiting { id, n_tokens, n_cached }
    }

    fn work(pairs: &[(u64, usize)]) -> Vec<Work> {
        pairs.iter().map(|&(id, n_tokens)| Work { id, n_tokens }).collect()
    }

    #[test]
    fn plans() {
        let cfg = SchedConfig { max_seqs: 3, token_budget: 64 };
        // (running, waiting, available blocks, preempt, admit, work)
        #[allow(clippy::type_complexity)]
        let cases: Vec<(Vec<Running>, Vec<Waiting>, usize, Vec<u64>, Vec<u64>, Vec<(u64, usize)>)> = vec![
            // Idle.
            (vec![], vec![], 10, vec![], vec![], vec![]),
            // One request: admitted, its whole prompt in one chunk.
            (vec![], vec![wait(1, 40, 0)], 10, vec![], vec![1], vec![(1, 40)]),
            // A long prompt is chunked to the budget.
            (vec![], vec![wait(1, 100, 0)], 10, vec![], vec![1], vec![(1, 64)]),
            // Cached prefix tokens are not computed.
            (vec![], vec![wait(1, 40, 32)], 10, vec![], vec![1], vec![(1, 8)]),
            // Decoders first, then the rest of a prompt, then admission within the budget.
            (vec![run(1, 20, 19, 2), run(2, 100, 64, 4)], vec![wait(3, 10, 0)], 20, vec![], vec![3], vec![(1, 1), (2, 36), (3, 10)]),
            // Budget spent on a prompt: nobody else is admitted this step.
            (vec![run(1, 200, 0, 0)], vec![wait(2, 10, 0)], 20, vec![], vec![], vec![(1, 64)]),
            // Sequence slots full: the queue waits.
            (vec![run(1, 9, 8, 1), run(2, 9, 8, 1), run(3, 9, 8, 1)], vec![wait(4, 5, 0)], 20, vec![], vec![], vec![(1, 1), (2, 1), (3, 1)]),
            // Not enough blocks for a whole prompt (+1): it waits.
            (vec![], vec![wait(1, 40, 0)], 3, vec![], vec![], vec![]),
            // A decoder needs a new block and none is free: the newest sequence is preempted.
            (vec![run(1, 33, 32, 2), run(2, 20, 19, 2)], vec![], 0, vec![2], vec![], vec![(1, 1)]),
            // A decoder that needs no new block runs even with nothing free.
            (vec![run(1, 31, 30, 2)], vec![], 0, vec![], vec![], vec![(1, 1)]),
            // Alone and out of blocks: preempted itself rather than deadlocking.
            (vec![run(1, 33, 32, 2)], vec![], 0, vec![1], vec![], vec![]),
            // A prompt chunk is cut to the blocks available.
            (vec![run(1, 100, 0, 0)], vec![], 2, vec![], vec![], vec![(1, 32)]),
        ];
        for (i, (running, waiting, available, preempt, admit, w)) in cases.into_iter().enumerate() {
            let plan = schedule(&cfg, &running, &waiting, available);
            assert_eq!(plan, Plan { preempt, admit, work: work(&w) }, "case {i}");
        }
    }

    #[test]
    fn a_plan_never_overspends() {
        // Pseudo-random states: the plan must stay within budget, slots, and blocks.
        let cfg = SchedConfig { max_seqs: 4, token_budget: 48 };
        let mut seed = 1u64;
        let mut next = |m: usize| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            (seed >> 33) as usize % m
        };
        for _ in 0..2000 {
            let running: Vec<Running> = (0..next(5))
                .map(|i| {
                    let n_computed = next(80);
                    let n_tokens = n_computed + 1 + next(3) * next(60);
                    run(i as u64, n_tokens, n_computed, KvCache::blocks_for(n_computed))
                })
                .collect();
            let waiting: Vec<Waiting> = (0..next(4)).map(|i| wait(100 + i as u64, 1 + next(90), 0)).collect();
            let available = next(12);
            let plan = schedule(&cfg, &running, &waiting, available);
            let total: usize = plan.work.iter().map(|w| w.n_tokens).sum();
            assert!(total <= cfg.token_budget);
            assert!(running.len() - plan.preempt.len() + plan.admit.len() <= cfg.max_seqs.max(running.len()));
            let freed: usize = running.iter().filter(|r| plan.preempt.contains(&r.id)).map(|r| r.n_blocks).sum();
            let mut used = 0;
            for w in &plan.work {
                assert!(!plan.preempt.contains(&w.id), "preempted sequences do no work");
                if let Some(r) = running.iter().find(|r| r.id == w.id) {
                    assert!(w.n_tokens <= r.n_tokens - r.n_computed);
                    used += KvCache::blocks_for(r.n_computed + w.n_tokens).saturating_sub(r.n_blocks);
                } else {
                    let q = waiting.iter().find(|q| q.id == w.id).unwrap();
                    used += KvCache::blocks_for(q.n_tokens) + 1;
                }
            }
            assert!(used <= available + freed, "plan uses {used} blocks, {available} + {freed} available");
        }
    }
}
