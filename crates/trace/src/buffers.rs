//! Byte buffers that travel between threads (decompressed blocks to the parsers, serialised
//! events to the writer) and come back when used, so a multi-GB stream reuses a handful of
//! allocations instead of faulting in fresh pages for every block.

use std::sync::{Arc, Mutex};

#[derive(Clone)]
pub struct BufferPool {
    spare: Arc<Mutex<Vec<Vec<u8>>>>,
    capacity: usize,
}

impl BufferPool {
    /// At most this many idle buffers are kept; more are freed.
    const KEEP: usize = 8;

    /// A pool whose new buffers reserve `capacity` bytes.
    pub fn new(capacity: usize) -> BufferPool {
        BufferPool {
            spare: Arc::default(),
            capacity,
        }
    }

    /// An empty buffer, reused when one is idle.
    pub fn take(&self) -> Vec<u8> {
        self.spare
            .lock()
            .ok()
            .and_then(|mut s| s.pop())
            .unwrap_or_else(|| Vec::with_capacity(self.capacity))
    }

    /// Hands a used buffer back.
    pub fn give(&self, mut bytes: Vec<u8>) {
        bytes.clear();
        if let Ok(mut s) = self.spare.lock()
            && s.len() < Self::KEEP
        {
            s.push(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_empty_with_their_allocation() {
        let pool = BufferPool::new(16);
        let mut b = pool.take();
        b.extend_from_slice(&[1; 1000]);
        let ptr = b.as_ptr();
        pool.give(b);
        let again = pool.take();
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), ptr);
        assert!(again.capacity() >= 1000);
    }
}
