//! Unpacking the packed 6-bit group scales of the K-quants four at a time in 32-bit words,
//! shared by the SIMD levels (the scalar reference unpacks them one by one in `quant`).

fn words(scales: &[u8; 12]) -> (u32, u32, u32) {
    let word = |i: usize| u32::from_le_bytes([scales[4 * i], scales[4 * i + 1], scales[4 * i + 2], scales[4 * i + 3]]);
    (word(0), word(1), word(2))
}

/// Q4_K and Q5_K: the eight 6-bit scales and the eight 6-bit mins (see `q4_k::unpack_scale_min`),
/// one byte each, little-endian in a u64.
pub(crate) fn scale_min_k4(scales: &[u8; 12]) -> (u64, u64) {
    let (a, b, c) = words(scales);
    let sc_lo = a & 0x3f3f_3f3f;
    let m_lo = b & 0x3f3f_3f3f;
    // Groups 4..8 keep their low four bits in bytes 8..12 and their top two in bits 6-7 of
    // bytes 0..4 (scales) and 4..8 (mins).
    let sc_hi = (c & 0x0f0f_0f0f) | ((a >> 2) & 0x3030_3030);
    let m_hi = ((c >> 4) & 0x0f0f_0f0f) | ((b >> 2) & 0x3030_3030);
    (u64::from(sc_lo) | u64::from(sc_hi) << 32, u64::from(m_lo) | u64::from(m_hi) << 32)
}

/// Q3_K: the sixteen scales as stored (`sc + 32`, 0..=63; see `q3_k::unpack_scales`), one byte
/// each, groups 4i..4i+4 in word i.
pub(crate) fn q3_k_stored(scales: &[u8; 12]) -> [u32; 4] {
    let (a, b, c) = words(scales);
    // Group g's low four bits: byte g (g < 8) low nibble, byte g - 8 high nibble; its top two
    // bits: byte 8 + g % 4, at bit 2 * (g / 4).
    [
        (a & 0x0f0f_0f0f) | ((c << 4) & 0x3030_3030),
        (b & 0x0f0f_0f0f) | ((c << 2) & 0x3030_3030),
        ((a >> 4) & 0x0f0f_0f0f) | (c & 0x3030_3030),
        ((b >> 4) & 0x0f0f_0f0f) | ((c >> 2) & 0x3030_3030),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both match the scalar unpacking on every byte pattern of a random sweep.
    #[test]
    fn word_unpacking_matches_the_reference() {
        let mut seed = 3u64;
        for _ in 0..2000 {
            let mut s = [0u8; 12];
            for b in &mut s {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                *b = (seed >> 56) as u8;
            }
            let (sc, m) = scale_min_k4(&s);
            let (want_sc, want_m) = crate::quant::q4_k::unpack_scale_min(&s);
            assert_eq!((sc.to_le_bytes(), m.to_le_bytes()), (want_sc, want_m));
            let stored: Vec<i8> = q3_k_stored(&s).iter().flat_map(|w| w.to_le_bytes()).map(|b| b as i8 - 32).collect();
            assert_eq!(stored, crate::quant::q3_k::unpack_scales(&s).to_vec());
        }
    }
}
