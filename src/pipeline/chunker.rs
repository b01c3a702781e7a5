//! Content-defined chunking with FastCDC (2020) over any reader, through a
//! window buffer that is reused from file to file (no per-file allocation
//! or zeroing of a maximum-chunk-sized buffer).

use std::io::{self, Read};

use fastcdc::v2020::FastCDC;

use crate::repo::config::ChunkerParams;

pub struct Chunker {
    params: ChunkerParams,
    buf: Vec<u8>,
}

impl Chunker {
    pub fn new(params: &ChunkerParams) -> Self {
        Chunker {
            params: params.clone(),
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
        let p = &self.params;
        let window = 2 * p.max_size as usize;
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
            for c in FastCDC::new(data, p.min_size, p.avg_size, p.max_size) {
                let end = c.offset + c.length;
                if end == data.len() && !eof {
                    break;
                }
                f(&data[c.offset..end])?;
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

    #[test]
    fn windowed_chunks_equal_whole_input_chunks() {
        let p = ChunkerParams {
            min_size: 4096,
            avg_size: 16384,
            max_size: 65536,
        };
        let input = data(1_000_000);
        let whole: Vec<Vec<u8>> = FastCDC::new(&input, 4096, 16384, 65536)
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
