//! KV memory: a pool of fixed-size pages (`--page-size` tokens each, `--max-total-tokens` in
//! all) and SGLang's radix prefix cache over it. A token's KV lives in one *slot*
//! (`page * page_size + offset`); a request holds the slots of its positions, the first ones
//! possibly shared with the cache. Cached nodes nobody uses are evicted least recently used.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// The page allocator.
#[derive(Debug)]
pub struct KvPool {
    page_size: usize,
    num_pages: usize,
    free: Vec<u32>,
}

impl KvPool {
    pub fn new(total_tokens: usize, page_size: usize) -> Self {
        let num_pages = total_tokens / page_size;
        KvPool {
            page_size,
            num_pages,
            // Pop from the end: hand out low pages first.
            free: (0..num_pages as u32).rev().collect(),
        }
    }

    pub fn page_size(&self) -> usize {
        self.page_size
    }

    pub fn total_tokens(&self) -> usize {
        self.num_pages * self.page_size
    }

    pub fn free_tokens(&self) -> usize {
        self.free.len() * self.page_size
    }

    fn alloc_page(&mut self) -> Option<u32> {
        self.free.pop()
    }

    fn free_page(&mut self, page: u32) {
        debug_assert!(!self.free.contains(&page), "double free of KV page {page}");
        self.free.push(page);
    }

    /// Pages needed to grow a sequence of `from` positions to `to` positions.
    pub fn pages_needed(&self, from: usize, to: usize) -> usize {
        to.div_ceil(self.page_size)
            .saturating_sub(from.div_ceil(self.page_size))
    }

    /// Give `slots` the slots of positions `slots.len()..new_len`. The caller has checked
    /// (and evicted for) the room; returns false and changes nothing if there is none.
    pub fn extend(&mut self, slots: &mut Vec<u32>, new_len: usize) -> bool {
        if self.pages_needed(slots.len(), new_len) > self.free.len() {
            return false;
        }
        let p = self.page_size;
        for pos in slots.len()..new_len {
            let slot = if pos % p == 0 {
                self.alloc_page().expect("room checked") * p as u32
            } else {
                slots[pos - 1] + 1
            };
            slots.push(slot);
        }
        true
    }

    /// Free the pages holding positions `from..slots.len()`; `from` is page-aligned or the
    /// page it falls in is owned from its start by the same holder.
    pub fn release(&mut self, slots: &[u32], from: usize) {
        let p = self.page_size;
        let mut pos = from;
        while pos < slots.len() {
            self.free_page(slots[pos] / p as u32);
            pos = (pos / p + 1) * p;
        }
    }
}

type NodeId = usize;
const ROOT: NodeId = 0;

#[derive(Debug, Default)]
struct Node {
    key: Vec<u32>,
    value: Vec<u32>,
    children: HashMap<Box<[u32]>, NodeId>,
    parent: NodeId,
    lock_ref: u32,
    last_access: u64,
}

/// A handle on a matched prefix: keep it locked while a request uses those slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixHandle(NodeId);

impl PrefixHandle {
    pub const ROOT: PrefixHandle = PrefixHandle(ROOT);
}

/// SGLang's `RadixCache`: token sequences to KV slots, shared by prefix.
#[derive(Debug)]
pub struct RadixCache {
    nodes: Vec<Node>,
    free_ids: Vec<NodeId>,
    page_size: usize,
    evictable: usize,
    protected: usize,
    clock: u64,
    disabled: bool,
}

impl RadixCache {
    pub fn new(page_size: usize, disabled: bool) -> Self {
        RadixCache {
            nodes: vec![Node::default()],
            free_ids: Vec::new(),
            page_size,
            evictable: 0,
            protected: 0,
            clock: 0,
            disabled,
        }
    }

    pub fn disabled(&self) -> bool {
        self.disabled
    }

    /// Tokens cached and not in use by any request (reclaimable).
    pub fn evictable_tokens(&self) -> usize {
        self.evictable
    }

    /// Tokens cached and locked by running requests.
    pub fn protected_tokens(&self) -> usize {
        self.protected
    }

    fn aligned(&self, n: usize) -> usize {
        n / self.page_size * self.page_size
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn common_len(&self, a: &[u32], b: &[u32]) -> usize {
        let n = a.iter().zip(b).take_while(|(x, y)| x == y).count();
        self.aligned(n)
    }

    fn new_node(&mut self, node: Node) -> NodeId {
        match self.free_ids.pop() {
            Some(id) => {
                self.nodes[id] = node;
                id
            }
            None => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        }
    }

    /// Split `child` so that its first `at` tokens become a new parent node; returns it.
    fn split(&mut self, child: NodeId, at: usize) -> NodeId {
        let p = self.page_size;
        let parent = self.nodes[child].parent;
        let key_head = self.nodes[child].key[..at].to_vec();
        let value_head = self.nodes[child].value[..at].to_vec();
        let tail_first: Box<[u32]> = self.nodes[child].key[at..at + p].into();
        let head_first: Box<[u32]> = key_head[..p].into();
        let lock_ref = self.nodes[child].lock_ref;
        let last_access = self.nodes[child].last_access;
        let mid = self.new_node(Node {
            key: key_head,
            value: value_head,
            children: HashMap::from([(tail_first, child)]),
            parent,
            lock_ref,
            last_access,
        });
        let c = &mut self.nodes[child];
        c.key.drain(..at);
        c.value.drain(..at);
        c.parent = mid;
        self.nodes[parent].children.insert(head_first, mid);
        mid
    }

    /// The longest cached prefix of `key` (page-aligned): its slots and a handle to lock.
    pub fn match_prefix(&mut self, key: &[u32]) -> (Vec<u32>, PrefixHandle) {
        let mut slots = Vec::new();
        if self.disabled {
            return (slots, PrefixHandle::ROOT);
        }
        let p = self.page_size;
        let now = self.tick();
        let mut key = &key[..self.aligned(key.len())];
        let mut node = ROOT;
        self.nodes[ROOT].last_access = now;
        while !key.is_empty() {
            let Some(&child) = self.nodes[node].children.get(&key[..p]) else {
                break;
            };
            self.nodes[child].last_access = now;
            let n = self.common_len(&self.nodes[child].key, key);
            if n < self.nodes[child].key.len() {
                let mid = self.split(child, n);
                slots.extend_from_slice(&self.nodes[mid].value);
                node = mid;
                break;
            }
            slots.extend_from_slice(&self.nodes[child].value);
            node = child;
            key = &key[n..];
        }
        (slots, PrefixHandle(node))
    }

    /// Cache `key` -> `value` (page-aligned part). Returns how many leading tokens were
    /// already cached: the caller's own slots for those positions are duplicates to free.
    pub fn insert(&mut self, key: &[u32], value: &[u32]) -> usize {
        if self.disabled {
            return 0;
        }
        let p = self.page_size;
        let len = self.aligned(key.len().min(value.len()));
        let (mut key, mut value) = (&key[..len], &value[..len]);
        let now = self.tick();
        let mut node = ROOT;
        let mut matched = 0;
        while !key.is_empty() {
            match self.nodes[node].children.get(&key[..p]).copied() {
                None => {
                    let id = self.new_node(Node {
                        key: key.to_vec(),
                        value: value.to_vec(),
                        children: HashMap::new(),
                        parent: node,
                        lock_ref: 0,
                        last_access: now,
                    });
                    self.nodes[node].children.insert(key[..p].into(), id);
                    self.evictable += key.len();
                    break;
                }
                Some(child) => {
                    self.nodes[child].last_access = now;
                    let n = self.common_len(&self.nodes[child].key, key);
                    let next = if n < self.nodes[child].key.len() {
                        self.split(child, n)
                    } else {
                        child
                    };
                    matched += n;
                    key = &key[n..];
                    value = &value[n..];
                    node = next;
                }
            }
        }
        matched
    }

    /// Protect the path from `h` to the root from eviction.
    pub fn lock(&mut self, h: PrefixHandle) {
        let mut node = h.0;
        while node != ROOT {
            let n = &mut self.nodes[node];
            if n.lock_ref == 0 {
                self.evictable -= n.key.len();
                self.protected += n.key.len();
            }
            n.lock_ref += 1;
            node = n.parent;
        }
    }

    pub fn unlock(&mut self, h: PrefixHandle) {
        let mut node = h.0;
        while node != ROOT {
            let n = &mut self.nodes[node];
            debug_assert!(n.lock_ref > 0, "unlock of an unlocked radix node");
            n.lock_ref -= 1;
            if n.lock_ref == 0 {
                self.evictable += n.key.len();
                self.protected -= n.key.len();
            }
            node = n.parent;
        }
    }

    /// Evict least recently used unlocked leaves until `tokens` are freed (or nothing is left).
    pub fn evict(&mut self, tokens: usize, pool: &mut KvPool) -> usize {
        let mut heap: BinaryHeap<Reverse<(u64, NodeId)>> = BinaryHeap::new();
        for (id, n) in self.nodes.iter().enumerate() {
            if id != ROOT && n.children.is_empty() && n.lock_ref == 0 && !n.key.is_empty() {
                heap.push(Reverse((n.last_access, id)));
            }
        }
        let mut freed = 0;
        while freed < tokens {
            let Some(Reverse((_, id))) = heap.pop() else {
                break;
            };
            let node = std::mem::take(&mut self.nodes[id]);
            pool.release(&node.value, 0);
            freed += node.key.len();
            self.evictable -= node.key.len();
            let parent = node.parent;
            self.nodes[parent]
                .children
                .remove(&node.key[..self.page_size]);
            self.free_ids.push(id);
            let pn = &self.nodes[parent];
            if parent != ROOT && pn.children.is_empty() && pn.lock_ref == 0 {
                heap.push(Reverse((pn.last_access, parent)));
            }
        }
        freed
    }

    /// Drop everything unlocked (`/flush_cache`).
    pub fn flush(&mut self, pool: &mut KvPool) {
        self.evict(usize::MAX, pool);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc(pool: &mut KvPool, n: usize) -> Vec<u32> {
        let mut s = Vec::new();
        assert!(pool.extend(&mut s, n));
        s
    }

    #[test]
    fn pool_allocates_pages_and_contiguous_slots() {
        let mut pool = KvPool::new(16, 4);
        let s = alloc(&mut pool, 6);
        assert_eq!(s, [0, 1, 2, 3, 4, 5]);
        assert_eq!(pool.free_tokens(), 8);
        let mut t = Vec::new();
        assert!(!pool.extend(&mut t, 9));
        assert!(t.is_empty());
        pool.release(&s, 0);
        assert_eq!(pool.free_tokens(), 16);
    }

    #[test]
    fn shared_prefixes_are_matched_and_split() {
        let mut pool = KvPool::new(64, 1);
        let mut rc = RadixCache::new(1, false);
        let a = [1, 2, 3, 4, 5];
        let sa = alloc(&mut pool, 5);
        assert_eq!(rc.insert(&a, &sa), 0);
        assert_eq!(rc.evictable_tokens(), 5);
        let (m, h) = rc.match_prefix(&[1, 2, 3, 9, 9]);
        assert_eq!(m, sa[..3]);
        rc.lock(h);
        assert_eq!((rc.evictable_tokens(), rc.protected_tokens()), (2, 3));
        let b = [1, 2, 3, 7];
        let mut sb = m.clone();
        assert!(pool.extend(&mut sb, 4));
        assert_eq!(rc.insert(&b, &sb), 3);
        rc.unlock(h);
        assert_eq!((rc.evictable_tokens(), rc.protected_tokens()), (6, 0));
        let (m2, _) = rc.match_prefix(&[1, 2, 3, 7, 8]);
        assert_eq!(m2, sb);
    }

    #[test]
    fn eviction_is_lru_and_skips_locked_paths() {
        let mut pool = KvPool::new(8, 1);
        let mut rc = RadixCache::new(1, false);
        let s1 = alloc(&mut pool, 3);
        rc.insert(&[1, 1, 1], &s1);
        let s2 = alloc(&mut pool, 3);
        rc.insert(&[2, 2, 2], &s2);
        let (_, h2) = rc.match_prefix(&[2, 2, 2]);
        rc.lock(h2);
        let _ = rc.match_prefix(&[1, 1, 1]);
        assert_eq!(pool.free_tokens(), 2);
        assert_eq!(rc.evict(100, &mut pool), 3);
        assert_eq!(pool.free_tokens(), 5);
        assert_eq!(rc.match_prefix(&[1, 1, 1]).0.len(), 0);
        assert_eq!(rc.match_prefix(&[2, 2, 2]).0, s2);
        rc.unlock(h2);
        rc.flush(&mut pool);
        assert_eq!(pool.free_tokens(), 8);
    }

    #[test]
    fn paged_cache_matches_whole_pages_only() {
        let mut pool = KvPool::new(32, 4);
        let mut rc = RadixCache::new(4, false);
        let key: Vec<u32> = (0..10).collect();
        let s = alloc(&mut pool, 10);
        assert_eq!(rc.insert(&key, &s), 0);
        assert_eq!(rc.evictable_tokens(), 8);
        // The partial third page stays with its owner.
        pool.release(&s, 8);
        let (m, _) = rc.match_prefix(&[0, 1, 2, 3, 4, 5, 6, 99, 8, 9]);
        assert_eq!(m, s[..4]);
        rc.flush(&mut pool);
        assert_eq!(pool.free_tokens(), 32);
    }

    #[test]
    fn disabled_cache_never_matches() {
        let mut rc = RadixCache::new(1, true);
        assert_eq!(rc.insert(&[1, 2], &[0, 1]), 0);
        assert!(rc.match_prefix(&[1, 2]).0.is_empty());
    }
}
