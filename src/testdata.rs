//! Generated data for tests and benchmarks: the same bytes for a given seed
//! on every machine.

/// Pseudo-random bytes (xorshift64): incompressible.
pub fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Source-code-like text: zstd at level 3 compresses it about 4:1.
pub fn text(len: usize, seed: u64) -> Vec<u8> {
    let words: Vec<&str> = "static int ferry_chunk ( struct pack * p , size_t len ) { return len ; } /* region */ if else while for\n"
        .split(' ')
        .collect();
    let r = random(len / 3 + 1, seed);
    let mut out = Vec::with_capacity(len + 32);
    let mut i = 0;
    while out.len() < len {
        out.extend_from_slice(words[r[i % r.len()] as usize % words.len()].as_bytes());
        out.push(b' ');
        i += 1;
    }
    out.truncate(len);
    out
}
