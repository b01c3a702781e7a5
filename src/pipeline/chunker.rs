//! Content-defined chunking with FastCDC (2020), over any reader.

use std::io::{self, Read};

use fastcdc::v2020::{Error as CdcError, StreamCDC};

use crate::repo::config::ChunkerParams;

/// Calls `f` with each chunk of `reader`'s content, in order. Input shorter
/// than the minimum chunk size is one chunk.
pub fn for_each_chunk<R: Read>(
    reader: R,
    params: &ChunkerParams,
    mut f: impl FnMut(Vec<u8>) -> io::Result<()>,
) -> io::Result<u64> {
    let mut total = 0u64;
    let cdc = StreamCDC::new(reader, params.min_size, params.avg_size, params.max_size);
    for chunk in cdc {
        let chunk = chunk.map_err(|e| match e {
            CdcError::IoError(e) => e,
            other => io::Error::other(other.to_string()),
        })?;
        total += chunk.data.len() as u64;
        f(chunk.data)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_input_and_respect_bounds() {
        let p = ChunkerParams {
            min_size: 4096,
            avg_size: 16384,
            max_size: 65536,
        };
        let data: Vec<u8> = (0..1_000_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let mut out = Vec::new();
        let n = for_each_chunk(&data[..], &p, |c| {
            out.push(c);
            Ok(())
        })
        .unwrap();
        assert_eq!(n, data.len() as u64);
        assert_eq!(out.concat(), data);
        assert!(out[..out.len() - 1]
            .iter()
            .all(|c| c.len() >= 4096 && c.len() <= 65536));
        let mut small = Vec::new();
        for_each_chunk(&data[..100], &p, |c| {
            small.push(c);
            Ok(())
        })
        .unwrap();
        assert_eq!(small, vec![data[..100].to_vec()]);
    }
}
