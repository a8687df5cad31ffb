//! The transfer check of the GPU movers: a position-weighted sum of a span's 64-bit words.
//!
//! `fold64(b) = sum over i of w_i * (2i + 1) mod 2^64`, `w_i` the i-th little-endian 64-bit word
//! (a short tail is zero-padded). The gather kernel computes it over the bytes it reads and over
//! the bytes it wrote (re-read by other threads after a barrier); a mismatch fails the move. A
//! sum is order-free, so thousands of GPU threads can compute it in any order; the odd weights
//! make every single-bit change and every shift of a word to another position visible. It
//! checks the copy, not the block: the block's own xxh3 checksums (see [`crate::header`]) are
//! verified wherever the CPU can read the bytes.

/// The fold of `bytes` (see the module docs). The CUDA kernel computes the same value.
pub fn fold64(bytes: &[u8]) -> u64 {
    let mut acc = 0u64;
    for (i, chunk) in bytes.chunks(8).enumerate() {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        let weight = (i as u64).wrapping_mul(2).wrapping_add(1);
        acc = acc.wrapping_add(u64::from_le_bytes(w).wrapping_mul(weight));
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_definition() {
        assert_eq!(fold64(&[]), 0);
        let mut b = [0u8; 24];
        b[0] = 1; // w0 = 1, weight 1
        b[8] = 2; // w1 = 2, weight 3
        b[16] = 3; // w2 = 3, weight 5
        assert_eq!(fold64(&b), 1 + 6 + 15);
        // A short tail is zero-padded.
        assert_eq!(fold64(&b[..17]), 1 + 6 + 15);
    }

    #[test]
    fn every_bit_flip_and_word_swap_changes_it() {
        let b: Vec<u8> = (0..256u32).map(|i| (i * 7 + 3) as u8).collect();
        let f = fold64(&b);
        for byte in 0..b.len() {
            for bit in 0..8 {
                let mut c = b.clone();
                c[byte] ^= 1 << bit;
                assert_ne!(fold64(&c), f, "flip of byte {byte} bit {bit}");
            }
        }
        let mut swapped = b.clone();
        swapped[0..8].copy_from_slice(&b[8..16]);
        swapped[8..16].copy_from_slice(&b[0..8]);
        assert_ne!(fold64(&swapped), f);
    }

    #[test]
    fn chunked_sums_add_up_like_the_kernel() {
        // The kernel sums per 16-byte chunk in any order: chunk c contributes
        // w(2c) * (4c + 1) + w(2c + 1) * (4c + 3).
        let b: Vec<u8> = (0..4096u32).map(|i| (i ^ (i >> 3)) as u8).collect();
        let mut acc = 0u64;
        for c in (0..b.len() / 16).rev() {
            let w0 = u64::from_le_bytes(b[16 * c..16 * c + 8].try_into().unwrap());
            let w1 = u64::from_le_bytes(b[16 * c + 8..16 * c + 16].try_into().unwrap());
            let c = c as u64;
            acc = acc
                .wrapping_add(w0.wrapping_mul(4 * c + 1))
                .wrapping_add(w1.wrapping_mul(4 * c + 3));
        }
        assert_eq!(acc, fold64(&b));
    }
}
