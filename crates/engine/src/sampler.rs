//! Turning logits into the next token: logit bias, repetition/presence/frequency penalties,
//! then greedy, or top-k, top-p, min-p and temperature followed by a seeded draw. The order is
//! llama.cpp's default chain, so the same settings mean the same thing as there.

use std::collections::HashMap;

#[derive(Clone, Debug, PartialEq)]
pub struct SamplingParams {
    /// 0 (or below) means greedy: always the most likely token.
    pub temperature: f32,
    /// Keep only the k most likely tokens; 0 disables.
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability reaches p; 1 disables.
    pub top_p: f32,
    /// Drop tokens less likely than min_p times the most likely one; 0 disables.
    pub min_p: f32,
    /// Divides positive logits (multiplies negative ones) of recently seen tokens; 1 disables.
    pub repetition_penalty: f32,
    /// Subtracted once from the logit of every recently seen token.
    pub presence_penalty: f32,
    /// Subtracted from the logit of recently seen tokens once per occurrence.
    pub frequency_penalty: f32,
    /// How many of the most recent tokens the penalties look at.
    pub penalty_last_n: usize,
    /// Added to the logits of the given tokens before anything else.
    pub logit_bias: Vec<(u32, f32)>,
    /// Seed of the draw; the same seed and inputs give the same tokens.
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repetition_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            penalty_last_n: 64,
            logit_bias: Vec::new(),
            seed: 0,
        }
    }
}

impl SamplingParams {
    /// Checks the ranges users can get wrong; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        let finite = [
            ("temperature", self.temperature),
            ("top_p", self.top_p),
            ("min_p", self.min_p),
            ("repetition_penalty", self.repetition_penalty),
            ("presence_penalty", self.presence_penalty),
            ("frequency_penalty", self.frequency_penalty),
        ];
        if let Some((name, v)) = finite.iter().find(|(_, v)| !v.is_finite()) {
            return Err(format!("{name} must be a finite number, got {v}"));
        }
        if self.temperature < 0.0 {
            return Err(format!("temperature must be >= 0, got {}", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(format!("top_p must be in (0, 1], got {}", self.top_p));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return Err(format!("min_p must be in [0, 1], got {}", self.min_p));
        }
        if self.repetition_penalty <= 0.0 {
            return Err(format!("repetition_penalty must be > 0, got {}", self.repetition_penalty));
        }
        Ok(())
    }
}

/// A small, fast, seedable generator (xoshiro256**), so runs are reproducible across platforms.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // splitmix64 spreads any seed, 0 included, over the whole state.
        let mut z = seed;
        let mut next = || {
            z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            x ^ (x >> 31)
        };
        Rng { s: [next(), next(), next(), next()] }
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A token still in the running, with its (biased, penalised) logit.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    id: u32,
    logit: f32,
}

/// Samples tokens for one sequence. Owns its random state and scratch space.
pub struct Sampler {
    params: SamplingParams,
    rng: Rng,
    candidates: Vec<Candidate>,
    /// Probabilities, then draw weights, of the candidates (reused between tokens).
    probs: Vec<f64>,
    counts: HashMap<u32, u32>,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Sampler {
        let rng = Rng::new(params.seed);
        Sampler { params, rng, candidates: Vec::new(), probs: Vec::new(), counts: HashMap::new() }
    }

    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Picks the next token from `logits` (n_vocab), given the sequence so far in `history`.
    /// `logits` is modified in place (bias and penalties).
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        let p = &self.params;
        for &(id, bias) in &p.logit_bias {
            if let Some(l) = logits.get_mut(id as usize) {
                *l += bias;
            }
        }
        self.apply_penalties(logits, history);
        let p = &self.params;
        if p.temperature <= 0.0 {
            return argmax(logits);
        }

        // top-k in one pass: candidates collect while they reach the running threshold (the
        // k-th best so far), and are cut back to k whenever 2k have gathered. Ties are broken
        // by id, so the set is exactly the k best by (logit, lower id).
        let k = if p.top_k == 0 { logits.len() } else { p.top_k.min(logits.len()) };
        let by_logit = |a: &Candidate, b: &Candidate| b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id));
        self.candidates.clear();
        let mut threshold = f32::NEG_INFINITY;
        for (id, &logit) in logits.iter().enumerate() {
            if logit >= threshold {
                self.candidates.push(Candidate { id: id as u32, logit });
                if self.candidates.len() >= 2 * k && k < logits.len() {
                    self.candidates.select_nth_unstable_by(k - 1, by_logit);
                    self.candidates.truncate(k);
                    threshold = self.candidates[k - 1].logit;
                }
            }
        }
        if k < self.candidates.len() {
            self.candidates.select_nth_unstable_by(k - 1, by_logit);
            self.candidates.truncate(k);
        }
        self.candidates.sort_unstable_by(by_logit);

        // Probabilities at temperature 1 decide top-p and min-p, as in llama.cpp's chain.
        let max = self.candidates[0].logit;
        let probs = &mut self.probs;
        probs.clear();
        probs.extend(self.candidates.iter().map(|c| f64::from(c.logit - max).exp()));
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|x| *x /= total);

        let mut keep = probs.len();
        if p.top_p < 1.0 {
            let mut cum = 0.0;
            for (i, &pr) in probs.iter().enumerate() {
                cum += pr;
                if cum >= f64::from(p.top_p) {
                    keep = i + 1;
                    break;
                }
            }
        }
        if p.min_p > 0.0 {
            let floor = probs[0] * f64::from(p.min_p);
            keep = keep.min(probs.iter().take_while(|&&pr| pr >= floor).count().max(1));
        }
        self.candidates.truncate(keep);

        // Temperature, then the draw.
        let inv_t = 1.0 / f64::from(p.temperature);
        let weights = &mut self.probs;
        weights.clear();
        weights.extend(self.candidates.iter().map(|c| (f64::from(c.logit - max) * inv_t).exp()));
        let total: f64 = weights.iter().sum();
        let mut r = self.rng.next_f64() * total;
        for (c, w) in self.candidates.iter().zip(weights.iter()) {
            if r < *w {
                return c.id;
            }
            r -= w;
        }
        self.candidates[self.candidates.len() - 1].id
    }

    fn apply_penalties(&mut self, logits: &mut [f32], history: &[u32]) {
        let p = &self.params;
        if p.repetition_penalty == 1.0 && p.presence_penalty == 0.0 && p.frequency_penalty == 0.0 {
            return;
        }
        self.counts.clear();
        for &t in &history[history.len().saturating_sub(p.penalty_last_n)..] {
            *self.counts.entry(t).or_default() += 1;
        }
        for (&id, &count) in &self.counts {
            let Some(l) = logits.get_mut(id as usize) else { continue };
            if *l > 0.0 {
                *l /= p.repetition_penalty;
            } else {
                *l *= p.repetition_penalty;
            }
            *l -= count as f32 * p.frequency_penalty + p.presence_penalty;
        }
    }
}

/// Index of the largest logit; the lowest index wins a tie, so greedy decoding is deterministic.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(f: impl FnOnce(&mut SamplingParams)) -> SamplingParams {
        let mut p = SamplingParams { temperature: 1.0, top_k: 0, top_p: 1.0, min_p: 0.0, ..Default::default() };
        f(&mut p);
        p
    }

    fn draw_counts(p: SamplingParams, logits: &[f32], n: usize) -> Vec<usize> {
        let mut s = Sampler::new(p);
        let mut counts = vec![0; logits.len()];
        for _ in 0..n {
            counts[s.sample(&mut logits.to_vec(), &[]) as usize] += 1;
        }
        counts
    }

    #[test]
    fn greedy_takes_the_argmax() {
        let mut s = Sampler::new(params(|p| p.temperature = 0.0));
        assert_eq!(s.sample(&mut [1.0, 3.0, 2.0, 3.0], &[]), 1);
    }

    #[test]
    fn same_seed_same_tokens_other_seed_other_tokens() {
        let logits: Vec<f32> = (0..50).map(|i| (i % 7) as f32 * 0.3).collect();
        let run = |seed| {
            let mut s = Sampler::new(params(|p| p.seed = seed));
            (0..40).map(|_| s.sample(&mut logits.clone(), &[])).collect::<Vec<_>>()
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
    }

    #[test]
    fn filters_keep_only_what_they_should() {
        let logits = [2.0f32, 1.0, 0.0, -1.0, -8.0];
        // (params, tokens that may appear, tokens that must appear)
        let cases: Vec<(SamplingParams, Vec<usize>)> = vec![
            (params(|p| p.top_k = 2), vec![0, 1]),
            (params(|p| p.top_p = 0.7), vec![0, 1]),   // p = .64, .24, ...: two reach 0.7
            (params(|p| p.min_p = 0.3), vec![0, 1]),   // .24/.64 = .37 kept, .09/.64 dropped
            (params(|p| p.temperature = 100.0), vec![0, 1, 2, 3, 4]),
        ];
        for (p, allowed) in cases {
            let counts = draw_counts(p.clone(), &logits, 3000);
            for (id, &c) in counts.iter().enumerate() {
                assert_eq!(c > 0, allowed.contains(&id), "{p:?}: token {id} drawn {c} times");
            }
        }
    }

    /// The one-pass top-k keeps exactly the k best (ties to the lower id), as a full sort does.
    #[test]
    fn one_pass_top_k_equals_a_full_sort() {
        let mut rng = Rng::new(3);
        for (n, k) in [(1000, 1), (1000, 40), (50, 49), (50, 50), (5000, 7)] {
            // Few distinct values, so ties abound.
            let logits: Vec<f32> = (0..n).map(|_| (rng.next_u64() % 23) as f32).collect();
            let mut s = Sampler::new(params(|p| p.top_k = k));
            s.sample(&mut logits.clone(), &[]);
            let mut got: Vec<u32> = s.candidates.iter().map(|c| c.id).collect();
            got.sort_unstable();
            let mut order: Vec<u32> = (0..n as u32).collect();
            order.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]).then(a.cmp(&b)));
            let mut want = order[..k].to_vec();
            want.sort_unstable();
            assert_eq!(got, want, "n {n} k {k}");
        }
    }

    #[test]
    fn draws_follow_the_distribution() {
        let counts = draw_counts(params(|_| {}), &[0.0, (3.0f32).ln()], 20000);
        let frac = counts[1] as f64 / 20000.0;
        assert!((frac - 0.75).abs() < 0.02, "{frac}");
    }

    #[test]
    fn penalties_follow_llama_cpp() {
        let mut s = Sampler::new(params(|p| {
            p.repetition_penalty = 2.0;
            p.presence_penalty = 0.5;
            p.frequency_penalty = 0.25;
        }));
        let mut logits = [4.0, -4.0, 4.0];
        s.apply_penalties(&mut logits, &[0, 0, 1]);
        assert_eq!(logits, [4.0 / 2.0 - 0.5 - 0.5, -4.0 * 2.0 - 0.25 - 0.5, 4.0]);
    }

    #[test]
    fn logit_bias_can_force_a_token() {
        let mut s = Sampler::new(params(|p| {
            p.temperature = 0.0;
            p.logit_bias = vec![(2, 100.0), (99, 1.0)];
        }));
        assert_eq!(s.sample(&mut [5.0, 4.0, 0.0], &[]), 2);
    }

    #[test]
    fn validate_names_the_bad_field() {
        assert!(params(|p| p.top_p = 0.0).validate().unwrap_err().contains("top_p"));
        assert!(params(|p| p.temperature = f32::NAN).validate().unwrap_err().contains("temperature"));
        assert!(params(|_| {}).validate().is_ok());
    }
}
