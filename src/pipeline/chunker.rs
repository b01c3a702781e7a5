//! Content-defined chunking with FastCDC (2020) over any reader, through a
//! window buffer that is reused from file to file (no per-file allocation
//! or zeroing of a maximum-chunk-sized buffer).
//!
//! The cut points are exactly those of the `fastcdc` crate's v2020 chunker
//! (its gear table and masks, normalization level 1), found faster: the
//! gear hash at a byte depends only on the 64 bytes up to it, so a stretch
//! is searched as several lanes hashed side by side, each started 63 bytes
//! early, instead of one long chain of dependent steps.

use std::io::{self, Read};

use crate::format::config::ChunkerParams;

/// The cut-point search of one set of chunker parameters.
#[derive(Clone)]
struct Cutter {
    min: usize,
    avg: usize,
    max: usize,
    mask_s: u64,
    mask_l: u64,
    gear: Box<[u64; 256]>,
}

/// Lanes hashed side by side, and the bytes each covers per round.
const LANES: usize = 4;
const LANE: usize = 4096;
/// Bytes before a position that its gear hash depends on.
const WARM: usize = 63;

impl Cutter {
    fn new(p: &ChunkerParams) -> Self {
        use fastcdc::v2020::{get_gear_with_seed, logarithm2, Normalization, MASKS};
        let bits = logarithm2(p.avg_size);
        let nc = Normalization::Level1.bits();
        Cutter {
            min: p.min_size as usize,
            avg: p.avg_size as usize,
            max: p.max_size as usize,
            mask_s: MASKS[(bits + nc) as usize],
            mask_l: MASKS[(bits - nc) as usize],
            gear: get_gear_with_seed(0).0,
        }
    }

    /// The length of the chunk that starts `source`.
    fn cut(&self, source: &[u8]) -> usize {
        let mut remaining = source.len();
        if remaining <= self.min {
            return remaining;
        }
        let mut center = self.avg;
        if remaining > self.max {
            remaining = self.max;
        } else if remaining < center {
            center = remaining;
        }
        // As fastcdc's loops, which step two bytes at a time: positions
        // from the even one at or below `min` are tested, against the small
        // mask below the even one at or below `center` and against the
        // large mask from there up to the even one at or below `remaining`.
        let (start, mid, end) = (self.min & !1, center & !1, remaining & !1);
        let src = &source[..end];
        self.find(src, start, start, mid, self.mask_s)
            .or_else(|| self.find(src, start, mid.max(start), end, self.mask_l))
            .unwrap_or(remaining)
    }

    /// The first position in `from..to` whose gear hash, over the bytes
    /// from `start`, has no bit of `mask` set.
    fn find(&self, src: &[u8], start: usize, from: usize, to: usize, mask: u64) -> Option<usize> {
        let mut pos = from;
        while pos < to {
            let n = (to - pos) / LANES;
            if n < 2 * WARM {
                return self.scan(src, start, pos, to, mask);
            }
            let n = n.min(LANE);
            if let Some(i) = self.lanes(src, start, pos, n, mask) {
                return Some(i);
            }
            pos += LANES * n;
        }
        None
    }

    /// The gear hash of `src[from..to]`.
    fn warm(&self, src: &[u8], from: usize, to: usize) -> u64 {
        src[from..to]
            .iter()
            .fold(0u64, |h, &b| (h << 1).wrapping_add(self.gear[b as usize]))
    }

    /// [`Cutter::find`] one byte at a time.
    fn scan(&self, src: &[u8], start: usize, from: usize, to: usize, mask: u64) -> Option<usize> {
        let mut h = self.warm(src, start.max(from.saturating_sub(WARM)), from);
        for (i, &b) in src[from..to].iter().enumerate() {
            h = (h << 1).wrapping_add(self.gear[b as usize]);
            if h & mask == 0 {
                return Some(from + i);
            }
        }
        None
    }

    /// [`Cutter::find`] over `LANES` consecutive runs of `n` bytes from
    /// `pos`, hashed side by side.
    fn lanes(&self, src: &[u8], start: usize, pos: usize, n: usize, mask: u64) -> Option<usize> {
        let at = |j: usize| pos + j * n;
        let mut h = [0u64; LANES];
        for (j, h) in h.iter_mut().enumerate() {
            *h = self.warm(src, start.max(at(j).saturating_sub(WARM)), at(j));
        }
        let (l0, l1, l2, l3) = (
            &src[at(0)..at(0) + n],
            &src[at(1)..at(1) + n],
            &src[at(2)..at(2) + n],
            &src[at(3)..at(3) + n],
        );
        let g = &*self.gear;
        let mut first = [usize::MAX; LANES];
        let hit = |x: u64| x & mask == 0;
        for k in 0..n {
            h[0] = (h[0] << 1).wrapping_add(g[l0[k] as usize]);
            h[1] = (h[1] << 1).wrapping_add(g[l1[k] as usize]);
            h[2] = (h[2] << 1).wrapping_add(g[l2[k] as usize]);
            h[3] = (h[3] << 1).wrapping_add(g[l3[k] as usize]);
            if hit(h[0]) | hit(h[1]) | hit(h[2]) | hit(h[3]) {
                if hit(h[0]) {
                    // The earliest lane: nothing before it can match.
                    return Some(at(0) + k);
                }
                for j in 1..LANES {
                    if hit(h[j]) && first[j] == usize::MAX {
                        first[j] = at(j) + k;
                    }
                }
            }
        }
        first.into_iter().find(|&i| i != usize::MAX)
    }
}

pub struct Chunker {
    cutter: Cutter,
    max_size: usize,
    buf: Vec<u8>,
}

impl Chunker {
    pub fn new(params: &ChunkerParams) -> Self {
        Chunker {
            cutter: Cutter::new(params),
            max_size: params.max_size as usize,
            buf: Vec::new(),
        }
    }

    /// Calls `f` with each chunk of `reader`'s content, in order, and
    /// returns the number of bytes read. The chunks are exactly those FastCDC
    /// finds in the whole content at once: a window of two maximum chunks
    /// always holds the next complete chunk, and a chunk cut by the end of
    /// the window is found again from its start after the window moves on.
    pub fn for_each<R: Read>(
        &mut self,
        mut reader: R,
        mut f: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<u64> {
        let window = 2 * self.max_size;
        if self.buf.len() < window {
            self.buf.resize(window, 0);
        }
        let (mut filled, mut total, mut eof) = (0usize, 0u64, false);
        loop {
            while filled < window && !eof {
                match reader.read(&mut self.buf[filled..window]) {
                    Ok(0) => eof = true,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if filled == 0 {
                return Ok(total);
            }
            let data = &self.buf[..filled];
            let mut consumed = 0;
            while consumed < data.len() {
                let end = consumed + self.cutter.cut(&data[consumed..]);
                if end == data.len() && !eof {
                    break;
                }
                f(&data[consumed..end])?;
                consumed = end;
            }
            total += consumed as u64;
            self.buf.copy_within(consumed..filled, 0);
            filled -= consumed;
            if eof && filled == 0 {
                return Ok(total);
            }
        }
    }
}

/// Chunks a reader with a fresh buffer: for one-off uses.
pub fn for_each_chunk<R: Read>(
    reader: R,
    params: &ChunkerParams,
    mut f: impl FnMut(Vec<u8>) -> io::Result<()>,
) -> io::Result<u64> {
    Chunker::new(params).for_each(reader, |c| f(c.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> Vec<u8> {
        (0..n as u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect()
    }

    /// Cut points of the `fastcdc` crate over the whole input.
    fn reference(input: &[u8], p: &ChunkerParams) -> Vec<usize> {
        fastcdc::v2020::FastCDC::new(input, p.min_size, p.avg_size, p.max_size)
            .map(|c| c.offset + c.length)
            .collect()
    }

    fn ours(input: &[u8], p: &ChunkerParams) -> Vec<usize> {
        let cutter = Cutter::new(p);
        let (mut at, mut out) = (0, Vec::new());
        while at < input.len() {
            at += cutter.cut(&input[at..]);
            out.push(at);
        }
        out
    }

    #[test]
    fn cut_points_equal_the_fastcdc_crate() {
        let params = [
            (64, 256, 1024),
            (4096, 16384, 65536),
            (1000, 3000, 9000),
            (8191, 8192, 8193),
            (512 << 10, 1 << 20, 8 << 20),
        ];
        let mut seed = 0;
        let mut random = |n: usize| {
            seed += 1;
            crate::testdata::random(n, seed)
        };
        let mut inputs = vec![
            random(20 << 20),
            vec![0u8; 3 << 20],
            b"abc".repeat(1 << 20),
            random(100_001),
            random(63),
            Vec::new(),
        ];
        // Low-entropy stretches between random ones, and a run of few byte
        // values, where cut points are rare or crowded.
        let mut mixed = random(1 << 20);
        mixed.extend(vec![7u8; 2 << 20]);
        mixed.extend(random(1 << 20).iter().map(|b| b & 3));
        mixed.extend(random(3 << 20));
        inputs.push(mixed);
        for (min, avg, max) in params {
            let p = ChunkerParams {
                min_size: min,
                avg_size: avg,
                max_size: max,
            };
            for input in &inputs {
                for skip in [0, 1, 4097] {
                    let input = &input[skip.min(input.len())..];
                    assert_eq!(
                        ours(input, &p),
                        reference(input, &p),
                        "params {min}/{avg}/{max}, {} bytes",
                        input.len()
                    );
                }
            }
        }
        // The gear table's shifted twin, which fastcdc tests even bytes
        // with, is the table shifted by one, and no mask reaches bit 63:
        // testing one byte at a time against the plain mask is the same.
        let (gear, gear_ls) = fastcdc::v2020::get_gear_with_seed(0);
        assert!(gear.iter().zip(gear_ls.iter()).all(|(g, l)| g << 1 == *l));
        assert!(fastcdc::v2020::MASKS.iter().all(|m| m >> 63 == 0));
    }

    #[test]
    fn windowed_chunks_equal_whole_input_chunks() {
        let p = ChunkerParams {
            min_size: 4096,
            avg_size: 16384,
            max_size: 65536,
        };
        let input = data(1_000_000);
        let whole: Vec<Vec<u8>> = fastcdc::v2020::FastCDC::new(&input, 4096, 16384, 65536)
            .map(|c| input[c.offset..c.offset + c.length].to_vec())
            .collect();
        // A reader that returns odd-sized pieces, to move window edges around.
        struct Trickle<'a>(&'a [u8], usize);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(buf.len()).min(self.1);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                self.1 = self.1 % 7919 + 1013;
                Ok(n)
            }
        }
        let mut chunker = Chunker::new(&p);
        for _ in 0..2 {
            let mut got = Vec::new();
            let n = chunker.for_each(Trickle(&input, 1), |c| {
                got.push(c.to_vec());
                Ok(())
            });
            assert_eq!(n.unwrap(), input.len() as u64);
            assert_eq!(
                got, whole,
                "same cut points as FastCDC over the whole input"
            );
        }
        let mut small = Vec::new();
        chunker
            .for_each(&input[..100], |c| {
                small.push(c.to_vec());
                Ok(())
            })
            .unwrap();
        assert_eq!(small, vec![input[..100].to_vec()]);
        assert_eq!(
            chunker
                .for_each(&b""[..], |_| panic!("no chunk for empty input"))
                .unwrap(),
            0
        );
    }
}
