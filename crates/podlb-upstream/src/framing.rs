//! Reads gRPC's length-prefixed message framing (1 flag byte, 4 bytes of
//! big-endian length) as bytes stream by, to enforce an optional message
//! size limit without buffering a message.

/// Tracks message boundaries across DATA frames and rejects a message whose
/// declared length is above the limit.
#[derive(Debug)]
pub struct MessageSizeGuard {
    limit: u64,
    prefix: [u8; 5],
    prefix_len: usize,
    body_left: u64,
}

impl MessageSizeGuard {
    /// A guard that rejects messages above `limit` bytes.
    pub fn new(limit: u64) -> Self {
        MessageSizeGuard {
            limit,
            prefix: [0; 5],
            prefix_len: 0,
            body_left: 0,
        }
    }

    /// Scans `chunk`; `Err(size)` for the first message over the limit.
    pub fn check(&mut self, mut chunk: &[u8]) -> Result<(), u64> {
        while !chunk.is_empty() {
            if self.body_left > 0 {
                let n = self.body_left.min(chunk.len() as u64);
                self.body_left -= n;
                chunk = &chunk[n as usize..];
                continue;
            }
            let take = (5 - self.prefix_len).min(chunk.len());
            self.prefix[self.prefix_len..self.prefix_len + take].copy_from_slice(&chunk[..take]);
            self.prefix_len += take;
            chunk = &chunk[take..];
            if self.prefix_len == 5 {
                self.prefix_len = 0;
                let p = self.prefix;
                let size = u32::from_be_bytes([p[1], p[2], p[3], p[4]]) as u64;
                if size > self.limit {
                    return Err(size);
                }
                self.body_left = size;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(len: usize) -> Vec<u8> {
        let mut m = vec![0];
        m.extend_from_slice(&(len as u32).to_be_bytes());
        m.extend(std::iter::repeat_n(7u8, len));
        m
    }

    #[test]
    fn passes_messages_up_to_the_limit_split_anywhere() {
        let mut bytes = message(10);
        bytes.extend(message(0));
        bytes.extend(message(100));
        for step in [1, 2, 5, 6, 1000] {
            let mut guard = MessageSizeGuard::new(100);
            for chunk in bytes.chunks(step) {
                assert_eq!(guard.check(chunk), Ok(()), "step {step}");
            }
        }
    }

    #[test]
    fn rejects_the_first_message_over_the_limit() {
        let mut bytes = message(10);
        bytes.extend(message(101));
        let mut guard = MessageSizeGuard::new(100);
        assert_eq!(guard.check(&bytes), Err(101));
    }
}
