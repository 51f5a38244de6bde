//! GGUF tensor names, as llama.cpp's converter writes them (gguf-py's `constants.py`): one
//! table for every family, which differ in the tensors they have, not in what they call them.

/// A tensor of the model (`Model*`) or of every layer (the rest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tensor {
    TokenEmbd,
    Output,
    OutputNorm,
    RopeFactorsShort,
    RopeFactorsLong,
    AttnNorm,
    AttnQ,
    AttnK,
    AttnV,
    AttnQkv,
    AttnOutput,
    AttnQNorm,
    AttnKNorm,
    AttnPostNorm,
    FfnNorm,
    FfnGate,
    FfnUp,
    FfnDown,
    FfnPostNorm,
    FfnRouter,
    FfnGateExps,
    FfnUpExps,
    FfnDownExps,
    FfnGateShexp,
    FfnUpShexp,
    FfnDownShexp,
    FfnRouterShexp,
}

const NAMES: &[(Tensor, &str)] = &[
    (Tensor::TokenEmbd, "token_embd"),
    (Tensor::Output, "output"),
    (Tensor::OutputNorm, "output_norm"),
    (Tensor::RopeFactorsShort, "rope_factors_short"),
    (Tensor::RopeFactorsLong, "rope_factors_long"),
    (Tensor::AttnNorm, "attn_norm"),
    (Tensor::AttnQ, "attn_q"),
    (Tensor::AttnK, "attn_k"),
    (Tensor::AttnV, "attn_v"),
    (Tensor::AttnQkv, "attn_qkv"),
    (Tensor::AttnOutput, "attn_output"),
    (Tensor::AttnQNorm, "attn_q_norm"),
    (Tensor::AttnKNorm, "attn_k_norm"),
    (Tensor::AttnPostNorm, "post_attention_norm"),
    (Tensor::FfnNorm, "ffn_norm"),
    (Tensor::FfnGate, "ffn_gate"),
    (Tensor::FfnUp, "ffn_up"),
    (Tensor::FfnDown, "ffn_down"),
    (Tensor::FfnPostNorm, "post_ffw_norm"),
    (Tensor::FfnRouter, "ffn_gate_inp"),
    (Tensor::FfnGateExps, "ffn_gate_exps"),
    (Tensor::FfnUpExps, "ffn_up_exps"),
    (Tensor::FfnDownExps, "ffn_down_exps"),
    (Tensor::FfnGateShexp, "ffn_gate_shexp"),
    (Tensor::FfnUpShexp, "ffn_up_shexp"),
    (Tensor::FfnDownShexp, "ffn_down_shexp"),
    (Tensor::FfnRouterShexp, "ffn_gate_inp_shexp"),
];

impl Tensor {
    fn stem(self) -> &'static str {
        NAMES.iter().find(|(t, _)| *t == self).map(|(_, n)| *n).expect("every tensor is in the table")
    }

    /// The model-level tensor's weight: `output_norm.weight`.
    pub fn weight(self) -> String {
        format!("{}.weight", self.stem())
    }

    /// Layer `l`'s weight: `blk.3.attn_q.weight`.
    pub fn at(self, l: usize) -> String {
        format!("blk.{l}.{}.weight", self.stem())
    }

    /// Layer `l`'s bias: `blk.3.attn_q.bias`.
    pub fn bias_at(self, l: usize) -> String {
        format!("blk.{l}.{}.bias", self.stem())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_converter() {
        assert_eq!(Tensor::AttnQ.at(3), "blk.3.attn_q.weight");
        assert_eq!(Tensor::AttnQ.bias_at(0), "blk.0.attn_q.bias");
        assert_eq!(Tensor::FfnPostNorm.at(1), "blk.1.post_ffw_norm.weight");
        assert_eq!(Tensor::OutputNorm.weight(), "output_norm.weight");
    }
}
