//! RFC 6962 / RFC 9162 Merkle tree hashing over the store's leaves: roots, inclusion proofs and
//! consistency proofs.
//!
//! Hashing is exactly the Certificate Transparency one, so proofs can be checked with any
//! RFC 9162 implementation: a leaf is `SHA-256(0x00 || data)`, an inner node
//! `SHA-256(0x01 || left || right)`, and the root of the empty tree `SHA-256("")`. A tree of `n`
//! leaves splits at the largest power of two below `n`.
//!
//! [`CompactTree`] is the append-only state the writer keeps: the roots of the full subtrees
//! that make up the tree (one per set bit of the size, the "frontier"), so appending costs
//! O(log n) memory and time and the root is available at any size. Proof *generation* needs
//! the leaf hashes: [`MerkleTree`] is built from them (as the store keeps or recomputes them)
//! and keeps every full subtree's hash, so roots and proofs at any earlier size cost
//! O(log² n). Proof *verification* needs only the proof, sizes and roots, and treats all of
//! them as untrusted: any input yields `Ok` or a [`VerifyError`], never a panic.

use sha2::{Digest, Sha256};

/// Length of a hash in bytes.
pub const HASH_LEN: usize = 32;

/// A SHA-256 hash: a leaf hash, an inner node or a root.
pub type Hash = [u8; HASH_LEN];

/// Domain separation (RFC 6962 §2.1): a leaf can never be mistaken for an inner node.
const LEAF_PREFIX: u8 = 0x00;
const NODE_PREFIX: u8 = 0x01;

/// The leaf hash of `data`: `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([LEAF_PREFIX]);
    h.update(data);
    h.finalize().into()
}

/// The hash of an inner node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([NODE_PREFIX]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Why a root or proof cannot be computed from the given leaves (a caller's mistake, not
/// tampering).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    /// A tree size beyond the leaves available.
    #[error("tree size {size} exceeds the {available} leaves available")]
    SizeBeyondLeaves {
        /// The size asked for.
        size: u64,
        /// Leaves given.
        available: u64,
    },
    /// A leaf index outside the tree.
    #[error("leaf index {index} is outside a tree of size {size}")]
    IndexOutOfRange {
        /// The index asked for.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// A consistency proof from a larger tree to a smaller one.
    #[error("old tree size {old} is larger than new tree size {new}")]
    SizeOrder {
        /// The old size.
        old: u64,
        /// The new size.
        new: u64,
    },
    /// A frontier that does not fit the tree size it came with.
    #[error("a tree of size {size} has {expected} frontier hashes, got {got}")]
    BadFrontier {
        /// The tree size.
        size: u64,
        /// Hashes a tree of that size has (its number of set bits).
        expected: u32,
        /// Hashes given.
        got: usize,
    },
    /// 2^64 - 1 leaves: no more fit in a u64 size.
    #[error("the tree is full (2^64 - 1 leaves)")]
    TreeFull,
}

/// Why a proof does not verify. Every variant means "do not trust this claim".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The claimed leaf index is outside the claimed tree.
    #[error("leaf index {index} is outside a tree of size {size}")]
    IndexOutOfRange {
        /// The claimed index.
        index: u64,
        /// The claimed tree size.
        size: u64,
    },
    /// A consistency claim from a larger tree to a smaller one.
    #[error("old tree size {old} is larger than new tree size {new}")]
    SizeOrder {
        /// The claimed old size.
        old: u64,
        /// The claimed new size.
        new: u64,
    },
    /// The proof has the wrong number of hashes for the claimed index and sizes.
    #[error("the proof has {got} hashes; these sizes need {expected}")]
    WrongProofLength {
        /// Hashes the sizes call for.
        expected: usize,
        /// Hashes in the proof.
        got: usize,
    },
    /// The inclusion proof leads to a different root.
    #[error("the proof leads to root {}, not the expected {}", hex::encode(.computed), hex::encode(.expected))]
    RootMismatch {
        /// The root the proof leads to.
        computed: Hash,
        /// The root it should lead to.
        expected: Hash,
    },
    /// The consistency proof does not lead to the old root: the old tree is not a prefix of
    /// the new one, or the proof or old root was altered.
    #[error("the proof leads to old root {}, not the expected {}", hex::encode(.computed), hex::encode(.expected))]
    OldRootMismatch {
        /// The old root the proof leads to.
        computed: Hash,
        /// The old root claimed.
        expected: Hash,
    },
    /// The consistency proof does not lead to the new root.
    #[error("the proof leads to new root {}, not the expected {}", hex::encode(.computed), hex::encode(.expected))]
    NewRootMismatch {
        /// The new root the proof leads to.
        computed: Hash,
        /// The new root claimed.
        expected: Hash,
    },
}

/// The append-only tree state: size and frontier (roots of the full subtrees, largest first).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompactTree {
    size: u64,
    /// One hash per set bit of `size`, most significant bit first.
    frontier: Vec<Hash>,
}

impl CompactTree {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// A tree restored from its size and frontier (as returned by [`CompactTree::frontier`]),
    /// e.g. from a persisted state, checked for shape (not for content: that is what the root
    /// and a signed checkpoint are for).
    pub fn from_frontier(size: u64, frontier: Vec<Hash>) -> Result<Self, MerkleError> {
        if frontier.len() != size.count_ones() as usize {
            return Err(MerkleError::BadFrontier {
                size,
                expected: size.count_ones(),
                got: frontier.len(),
            });
        }
        Ok(CompactTree { size, frontier })
    }

    /// Leaves in the tree.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The roots of the full subtrees, largest (leftmost) first.
    pub fn frontier(&self) -> &[Hash] {
        &self.frontier
    }

    /// Appends a leaf with these bytes; returns its leaf hash.
    pub fn append(&mut self, data: &[u8]) -> Result<Hash, MerkleError> {
        let leaf = leaf_hash(data);
        self.append_leaf_hash(leaf)?;
        Ok(leaf)
    }

    /// Appends a leaf by its (already computed) leaf hash.
    pub fn append_leaf_hash(&mut self, leaf: Hash) -> Result<(), MerkleError> {
        let new_size = self.size.checked_add(1).ok_or(MerkleError::TreeFull)?;
        // Each trailing one bit of the old size is a full subtree of the new leaf's size so
        // far: merge with it, like a binary counter's carry.
        let mut node = leaf;
        let mut carry = self.size;
        while carry & 1 == 1 {
            if let Some(left) = self.frontier.pop() {
                node = node_hash(&left, &node);
            }
            carry >>= 1;
        }
        self.frontier.push(node);
        self.size = new_size;
        Ok(())
    }

    /// The root hash at the current size (the empty tree's root when empty).
    pub fn root(&self) -> Hash {
        // The smaller subtrees on the right hang under the larger ones on the left.
        let mut it = self.frontier.iter().rev();
        let Some(last) = it.next() else {
            return empty_root();
        };
        it.fold(*last, |acc, left| node_hash(left, &acc))
    }
}

/// The root of a tree of exactly these leaves.
pub fn root(leaves: &[Hash]) -> Hash {
    let mut t = CompactTree::new();
    for l in leaves {
        // A slice in memory cannot hold 2^64 leaves.
        let _ = t.append_leaf_hash(*l);
    }
    t.root()
}

/// The whole tree: every leaf hash and every full subtree's root, for generating proofs and
/// roots at any earlier size. About 64 bytes per leaf; appending is amortised O(1), a root or
/// proof at any size O(log² n).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MerkleTree {
    /// `levels[l][i]` is the root of the full subtree of leaves `[i·2^l, (i+1)·2^l)`;
    /// `levels[0]` are the leaf hashes.
    levels: Vec<Vec<Hash>>,
}

impl MerkleTree {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// A tree of these leaf hashes (e.g. as stored), in order.
    pub fn from_leaf_hashes(leaves: impl IntoIterator<Item = Hash>) -> Self {
        let mut t = Self::new();
        for l in leaves {
            t.push(l);
        }
        t
    }

    /// Appends a leaf by its leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut node = leaf;
        let mut level = 0;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            let Some(row) = self.levels.get_mut(level) else {
                return;
            };
            row.push(node);
            // An even count means the new node completed a pair: its parent is now full too.
            match row.len() {
                n if n % 2 == 0 => {
                    node = node_hash(&row[n - 2], &row[n - 1]);
                    level += 1;
                }
                _ => return,
            }
        }
    }

    /// Leaves in the tree.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// The leaf hash at `index`.
    pub fn leaf(&self, index: u64) -> Option<&Hash> {
        self.levels.first()?.get(usize::try_from(index).ok()?)
    }

    /// The root at the current size.
    pub fn root(&self) -> Hash {
        self.range_root(0, self.size())
    }

    /// The root of the tree of the first `size` leaves.
    pub fn root_at(&self, size: u64) -> Result<Hash, MerkleError> {
        self.check_size(size)?;
        Ok(self.range_root(0, size))
    }

    /// The audit path (RFC 9162 §2.1.3.1) of leaf `index` in the tree of the first `size`
    /// leaves, the leaf's sibling first.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, MerkleError> {
        self.check_size(size)?;
        if index >= size {
            return Err(MerkleError::IndexOutOfRange { index, size });
        }
        let mut proof = Vec::new();
        self.path_from(0, index, size, &mut proof);
        Ok(proof)
    }

    /// The consistency proof (RFC 9162 §2.1.4.1) between the trees of the first `old_size`
    /// and the first `new_size` leaves. Empty when `old_size` is 0 or equals `new_size`.
    pub fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<Vec<Hash>, MerkleError> {
        if old_size > new_size {
            return Err(MerkleError::SizeOrder {
                old: old_size,
                new: new_size,
            });
        }
        self.check_size(new_size)?;
        if old_size == 0 || old_size == new_size {
            return Ok(Vec::new());
        }
        // The largest full subtree ending at old_size: the proof is its hash (unless it is
        // the whole old tree, whose root the verifier has), then its audit path in the new
        // tree.
        let level = old_size.trailing_zeros();
        let index = (old_size - 1) >> level;
        let mut proof = Vec::new();
        if index != 0 {
            proof.push(self.node(level, index));
        }
        self.path_from(level, index, new_size, &mut proof);
        Ok(proof)
    }

    fn check_size(&self, size: u64) -> Result<(), MerkleError> {
        if size > self.size() {
            return Err(MerkleError::SizeBeyondLeaves {
                size,
                available: self.size(),
            });
        }
        Ok(())
    }

    /// The full subtree (`level`, `index`). Callers only ask for subtrees inside the leaves.
    fn node(&self, level: u32, index: u64) -> Hash {
        self.levels[level as usize][index as usize]
    }

    /// The root of leaves `[start, end)`, where `start` is a multiple of a power of two at
    /// least `end - start` (a node of the tree, possibly cut short at its right edge): the
    /// full subtrees it splits into, folded from the right like [`CompactTree::root`].
    fn range_root(&self, start: u64, end: u64) -> Hash {
        let len = end - start;
        let mut pos = start;
        let mut parts = Vec::with_capacity(len.count_ones() as usize);
        for level in (0..64).rev() {
            if len & (1u64 << level) != 0 {
                parts.push(self.node(level, pos >> level));
                pos += 1u64 << level;
            }
        }
        let mut it = parts.iter().rev();
        let Some(last) = it.next() else {
            return empty_root();
        };
        it.fold(*last, |acc, left| node_hash(left, &acc))
    }

    /// Appends the audit path of node (`level`, `index`) up to the root of the tree of the
    /// first `size` leaves. Node (l, i) covers leaves `[i·2^l, (i+1)·2^l)` cut at `size`; a
    /// node whose sibling range is empty has no sibling (RFC 9162 promotes it unchanged).
    fn path_from(&self, mut level: u32, mut index: u64, size: u64, out: &mut Vec<Hash>) {
        // Stop when the node at this level is the root: it covers every leaf.
        while level < 64 && size.saturating_sub(1) >> level > 0 {
            let start = (index ^ 1) << level;
            if start < size {
                let end = start.saturating_add(1u64 << level).min(size);
                out.push(self.range_root(start, end));
            }
            index >>= 1;
            level += 1;
        }
    }
}

/// Hashes an inclusion proof of leaf `index` in a tree of `size` must have: `inner` below the
/// point where the leaf's path leaves the right border of the tree, `border` above it.
fn inclusion_len(index: u64, size: u64) -> (u32, u32) {
    let inner = 64 - (index ^ (size - 1)).leading_zeros();
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner, border)
}

/// Checks that `leaf` is leaf `index` of the tree of `size` with root `root` (RFC 9162
/// §2.1.3.2).
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), VerifyError> {
    let computed = root_from_inclusion_proof(leaf, index, size, proof)?;
    if computed != *root {
        return Err(VerifyError::RootMismatch {
            computed,
            expected: *root,
        });
    }
    Ok(())
}

/// The root an inclusion proof leads to, for comparing with a checkpoint's root.
pub fn root_from_inclusion_proof(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
) -> Result<Hash, VerifyError> {
    if index >= size {
        return Err(VerifyError::IndexOutOfRange { index, size });
    }
    let (inner, border) = inclusion_len(index, size);
    let expected = (inner + border) as usize;
    if proof.len() != expected {
        return Err(VerifyError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            // Levels where the path runs up the right border have no sibling to the right.
            while fnode != 0 && fnode & 1 == 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    // Guaranteed by the length check; kept so a mistake there cannot turn into acceptance.
    if snode != 0 {
        return Err(VerifyError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    Ok(r)
}

/// Checks that the tree of `old_size` with `old_root` is a prefix of the tree of `new_size`
/// with `new_root` (RFC 9162 §2.1.4.2). Size 0 is consistent with everything but only with
/// the empty tree's root; equal sizes need equal roots and an empty proof.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), VerifyError> {
    if old_size > new_size {
        return Err(VerifyError::SizeOrder {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == 0 || old_size == new_size {
        if !proof.is_empty() {
            return Err(VerifyError::WrongProofLength {
                expected: 0,
                got: proof.len(),
            });
        }
        let expected_old = if old_size == 0 {
            empty_root()
        } else {
            *new_root
        };
        if *old_root != expected_old {
            return Err(VerifyError::OldRootMismatch {
                computed: expected_old,
                expected: *old_root,
            });
        }
        return Ok(());
    }
    // The proof is the audit path of the largest full subtree ending at old_size, preceded by
    // that subtree's hash unless it is the whole old tree.
    let (inner, border) = inclusion_len(old_size - 1, new_size);
    let shift = old_size.trailing_zeros();
    let whole = old_size.is_power_of_two();
    let expected = usize::from(!whole) + (inner.saturating_sub(shift) + border) as usize;
    if proof.len() != expected {
        return Err(VerifyError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    let (seed, rest) = if whole {
        (*old_root, proof)
    } else {
        match proof.split_first() {
            Some((first, rest)) => (*first, rest),
            None => {
                return Err(VerifyError::WrongProofLength { expected, got: 0 });
            }
        }
    };
    let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (seed, seed);
    for c in rest {
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode != 0 && fnode & 1 == 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(VerifyError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    if fr != *old_root {
        return Err(VerifyError::OldRootMismatch {
            computed: fr,
            expected: *old_root,
        });
    }
    if sr != *new_root {
        return Err(VerifyError::NewRootMismatch {
            computed: sr,
            expected: *new_root,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // -----------------------------------------------------------------------------------------
    // A naive reference: RFC 9162 §2.1 transcribed literally, recursing over leaf data.

    fn k_split(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    /// MTH(D[n]) per RFC 9162 §2.1.1, memoised by range: a leaf range's hash never changes,
    /// and the memo keeps the exhaustive tests fast in a debug build.
    struct Reference {
        d: Vec<Vec<u8>>,
        memo: std::collections::HashMap<(usize, usize), Hash>,
    }

    impl Reference {
        fn new(d: &[Vec<u8>]) -> Self {
            Reference {
                d: d.to_vec(),
                memo: Default::default(),
            }
        }

        fn mth(&mut self, lo: usize, hi: usize) -> Hash {
            if let Some(h) = self.memo.get(&(lo, hi)) {
                return *h;
            }
            let h = match hi - lo {
                0 => Sha256::digest([]).into(),
                1 => {
                    let mut v = vec![0u8];
                    v.extend_from_slice(&self.d[lo]);
                    Sha256::digest(&v).into()
                }
                n => {
                    let k = k_split(n);
                    let mut v = vec![1u8];
                    v.extend_from_slice(&self.mth(lo, lo + k));
                    v.extend_from_slice(&self.mth(lo + k, hi));
                    Sha256::digest(&v).into()
                }
            };
            self.memo.insert((lo, hi), h);
            h
        }

        /// PATH(m, D[lo:hi]), RFC 9162 §2.1.3.1.
        fn path(&mut self, m: usize, lo: usize, hi: usize) -> Vec<Hash> {
            let n = hi - lo;
            if n <= 1 {
                return vec![];
            }
            let k = k_split(n);
            if m < k {
                let mut p = self.path(m, lo, lo + k);
                p.push(self.mth(lo + k, hi));
                p
            } else {
                let mut p = self.path(m - k, lo + k, hi);
                p.push(self.mth(lo, lo + k));
                p
            }
        }

        /// SUBPROOF(m, D[lo:hi], b), RFC 9162 §2.1.4.1.
        fn subproof(&mut self, m: usize, lo: usize, hi: usize, b: bool) -> Vec<Hash> {
            let n = hi - lo;
            if m == n {
                return if b { vec![] } else { vec![self.mth(lo, hi)] };
            }
            let k = k_split(n);
            if m <= k {
                let mut p = self.subproof(m, lo, lo + k, b);
                p.push(self.mth(lo + k, hi));
                p
            } else {
                let mut p = self.subproof(m - k, lo + k, hi, false);
                p.push(self.mth(lo, lo + k));
                p
            }
        }

        /// PROOF(m, D[0:n]); empty for the trivial cases m = 0 and m = n.
        fn consistency(&mut self, m: usize, n: usize) -> Vec<Hash> {
            if m == 0 || m == n {
                return vec![];
            }
            self.subproof(m, 0, n, true)
        }
    }

    fn data(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("frame {i}").into_bytes()).collect()
    }

    fn hashes(d: &[Vec<u8>]) -> Vec<Hash> {
        d.iter().map(|x| leaf_hash(x)).collect()
    }

    fn h(s: &str) -> Hash {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    // -----------------------------------------------------------------------------------------
    // Known answers from transparency-dev/merkle (testonly/constants.go, proof/verify_test.go).

    fn kat_leaves() -> Vec<Vec<u8>> {
        [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ]
        .iter()
        .map(|s| hex::decode(s).unwrap())
        .collect()
    }

    const KAT_ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    #[test]
    fn known_roots_at_every_size_incrementally_and_from_stored_leaves() {
        assert_eq!(empty_root(), h(KAT_ROOTS[0]));
        assert_eq!(root(&[]), h(KAT_ROOTS[0]));
        let leaves = hashes(&kat_leaves());
        let mut t = CompactTree::new();
        assert_eq!(t.root(), h(KAT_ROOTS[0]));
        for (i, d) in kat_leaves().iter().enumerate() {
            assert_eq!(t.append(d).unwrap(), leaves[i]);
            assert_eq!(t.size(), i as u64 + 1);
            assert_eq!(t.root(), h(KAT_ROOTS[i + 1]), "size {}", i + 1);
            assert_eq!(t.frontier().len(), (i + 1).count_ones() as usize);
        }
        let tree = MerkleTree::from_leaf_hashes(leaves.iter().copied());
        assert_eq!(tree.root(), h(KAT_ROOTS[8]));
        assert_eq!(root(&leaves), h(KAT_ROOTS[8]));
        for (n, want) in KAT_ROOTS.iter().enumerate() {
            assert_eq!(tree.root_at(n as u64).unwrap(), h(want), "size {n}");
        }
        // A known leaf hash (of "") and a known level-1 node.
        assert_eq!(
            leaves[0],
            h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
        );
        assert_eq!(
            node_hash(&leaves[2], &leaves[3]),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e")
        );
    }

    #[test]
    fn known_inclusion_proofs() {
        let leaves = hashes(&kat_leaves());
        let tree = MerkleTree::from_leaf_hashes(leaves.iter().copied());
        // (1-based leaf number as in the Go vectors, size, proof)
        let cases: [(u64, u64, &[&str]); 5] = [
            (1, 1, &[]),
            (
                1,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                6,
                8,
                &[
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                3,
                3,
                &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
            ),
            (
                2,
                5,
                &[
                    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
        ];
        for (leaf, size, want) in cases {
            let want: Vec<Hash> = want.iter().map(|s| h(s)).collect();
            let index = leaf - 1;
            let proof = tree.inclusion_proof(index, size).unwrap();
            assert_eq!(proof, want, "leaf {leaf} size {size}");
            let root = h(KAT_ROOTS[size as usize]);
            verify_inclusion(&leaves[index as usize], index, size, &proof, &root).unwrap();
        }
    }

    #[test]
    fn known_consistency_proofs() {
        let leaves = hashes(&kat_leaves());
        let tree = MerkleTree::from_leaf_hashes(leaves.iter().copied());
        let cases: [(u64, u64, &[&str]); 5] = [
            (1, 1, &[]),
            (
                1,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                6,
                8,
                &[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                5,
                &[
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
            (
                6,
                7,
                &[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
        ];
        for (old, new, want) in cases {
            let want: Vec<Hash> = want.iter().map(|s| h(s)).collect();
            let proof = tree.consistency_proof(old, new).unwrap();
            assert_eq!(proof, want, "{old} -> {new}");
            let (r1, r2) = (h(KAT_ROOTS[old as usize]), h(KAT_ROOTS[new as usize]));
            verify_consistency(old, new, &r1, &r2, &proof).unwrap();
        }
    }

    // -----------------------------------------------------------------------------------------
    // Every size up to 300 against the reference, every index and every old size.

    #[test]
    fn all_sizes_up_to_300_match_the_reference_and_verify() {
        let d = data(300);
        let mut reference = Reference::new(&d);
        let leaves = hashes(&d);
        let tree = MerkleTree::from_leaf_hashes(leaves.iter().copied());
        let mut grown = MerkleTree::new();
        let mut t = CompactTree::new();
        let mut roots = vec![empty_root()];
        for n in 1..=300usize {
            t.append(&d[n - 1]).unwrap();
            grown.push(leaves[n - 1]);
            let r = reference.mth(0, n);
            assert_eq!(t.root(), r, "size {n}");
            assert_eq!(grown.root(), r, "size {n}");
            assert_eq!(tree.root_at(n as u64).unwrap(), r, "size {n}");
            assert_eq!(root(&leaves[..n]), r, "size {n}");
            roots.push(r);
        }
        assert_eq!(grown, tree);
        for n in 1..=300usize {
            for (m, leaf) in leaves[..n].iter().enumerate() {
                let proof = tree.inclusion_proof(m as u64, n as u64).unwrap();
                assert_eq!(proof, reference.path(m, 0, n), "path {m} in {n}");
                verify_inclusion(leaf, m as u64, n as u64, &proof, &roots[n]).unwrap();
            }
            for m in 0..=n {
                let proof = tree.consistency_proof(m as u64, n as u64).unwrap();
                assert_eq!(proof, reference.consistency(m, n), "consistency {m} -> {n}");
                verify_consistency(m as u64, n as u64, &roots[m], &roots[n], &proof).unwrap();
            }
        }
    }

    #[test]
    fn tampered_inclusion_claims_fail_without_panicking() {
        let leaves = hashes(&data(64));
        let tree = MerkleTree::from_leaf_hashes(leaves.iter().copied());
        let other = leaf_hash(b"other");
        let bad = |i: u64, s: u64, l: &Hash, p: &[Hash], r: &Hash| {
            verify_inclusion(l, i, s, p, r).is_err()
        };
        for n in 1..=64u64 {
            let root = tree.root_at(n).unwrap();
            for m in 0..n {
                let leaf = leaves[m as usize];
                let proof = tree.inclusion_proof(m, n).unwrap();
                assert!(!bad(m, n, &leaf, &proof, &root));
                assert!(bad(m, n, &other, &proof, &root), "wrong leaf");
                assert!(bad(m, n, &leaf, &proof, &other), "wrong root");
                assert!(bad(m, n, &leaf, &proof, &empty_root()), "empty root");
                for i in [m.wrapping_sub(1), m + 1, m ^ 1, m ^ 2, u64::MAX] {
                    if i != m {
                        assert!(bad(i, n, &leaf, &proof, &root), "index {i} for {m} in {n}");
                    }
                }
                // The root commits to the leaves, not to the size: a proof may also fit a
                // slightly larger claimed size (a checkpoint signs size and root together).
                // Halving or doubling the size changes the path's shape.
                for s in [n * 2, n / 2, 0, u64::MAX] {
                    assert!(bad(m, s, &leaf, &proof, &root), "size {s} for {m} in {n}");
                }
                for i in 0..proof.len() {
                    for bit in [0, 3, 255] {
                        let mut p = proof.clone();
                        p[i][bit / 8] ^= 1 << (bit % 8);
                        assert!(bad(m, n, &leaf, &p, &root), "flipped bit {bit} of {i}");
                    }
                    let mut p = proof.clone();
                    p.remove(i);
                    assert!(bad(m, n, &leaf, &p, &root), "removed {i}");
                    let mut p = proof.clone();
                    p.insert(i, other);
                    assert!(bad(m, n, &leaf, &p, &root), "inserted at {i}");
                }
                let mut longer = proof.clone();
                longer.push(root);
                assert!(bad(m, n, &leaf, &longer, &root), "trailing root");
            }
        }
    }

    #[test]
    fn tampered_consistency_claims_fail_without_panicking() {
        let leaves = hashes(&data(64));
        let tree = MerkleTree::from_leaf_hashes(leaves.iter().copied());
        let other = leaf_hash(b"other");
        let roots: Vec<Hash> = (0..=64).map(|n| tree.root_at(n).unwrap()).collect();
        let bad = |a: u64, b: u64, x: &Hash, y: &Hash, p: &[Hash]| {
            verify_consistency(a, b, x, y, p).is_err()
        };
        for n in 2..=64u64 {
            for m in 1..n {
                let (r1, r2) = (roots[m as usize], roots[n as usize]);
                let proof = tree.consistency_proof(m, n).unwrap();
                assert!(!bad(m, n, &r1, &r2, &proof));
                assert!(bad(m, n, &other, &r2, &proof), "wrong old root");
                assert!(bad(m, n, &r1, &other, &proof), "wrong new root");
                assert!(bad(m, n, &r2, &r1, &proof), "swapped roots");
                assert!(bad(m, n, &r1, &r2, &[]), "empty proof");
                assert!(bad(n, m, &r1, &r2, &proof), "sizes swapped");
                // The old root is the root at size m only: claiming it for another old size
                // fails, whatever the proof's shape.
                for a in [m - 1, m + 1, m ^ 2, u64::MAX] {
                    if a != m {
                        assert!(bad(a, n, &r1, &r2, &proof), "old size {a} for {m}->{n}");
                    }
                }
                for b in [n * 2, n / 2, u64::MAX] {
                    if b != n {
                        assert!(bad(m, b, &r1, &r2, &proof), "new size {b} for {m}->{n}");
                    }
                }
                for i in 0..proof.len() {
                    let mut p = proof.clone();
                    p[i][0] ^= 16;
                    assert!(bad(m, n, &r1, &r2, &p), "flipped {i} in {m}->{n}");
                    let mut p = proof.clone();
                    p.remove(i);
                    assert!(bad(m, n, &r1, &r2, &p), "removed {i}");
                }
                let mut p = proof.clone();
                p.push(r2);
                assert!(bad(m, n, &r1, &r2, &p), "trailing root");
                let mut p = vec![proof[0]];
                p.extend_from_slice(&proof);
                assert!(bad(m, n, &r1, &r2, &p), "preceding proof[0]");
            }
        }
    }

    #[test]
    fn trivial_and_out_of_range_cases_have_precise_errors() {
        let leaves = hashes(&data(5));
        let tree = MerkleTree::from_leaf_hashes(leaves.iter().copied());
        let r5 = root(&leaves);
        let e = empty_root();
        // Generation: caller mistakes.
        assert_eq!(
            tree.inclusion_proof(5, 5),
            Err(MerkleError::IndexOutOfRange { index: 5, size: 5 })
        );
        assert_eq!(
            tree.inclusion_proof(0, 6),
            Err(MerkleError::SizeBeyondLeaves {
                size: 6,
                available: 5
            })
        );
        assert_eq!(
            tree.consistency_proof(4, 3),
            Err(MerkleError::SizeOrder { old: 4, new: 3 })
        );
        assert!(tree.root_at(u64::MAX).is_err());
        assert_eq!(tree.leaf(4), Some(&leaves[4]));
        assert_eq!(tree.leaf(5), None);
        // Verification.
        assert_eq!(
            verify_inclusion(&leaves[0], 0, 0, &[], &e),
            Err(VerifyError::IndexOutOfRange { index: 0, size: 0 })
        );
        assert_eq!(
            verify_inclusion(&leaves[0], 0, 5, &[], &r5),
            Err(VerifyError::WrongProofLength {
                expected: 3,
                got: 0
            })
        );
        assert_eq!(
            verify_consistency(2, 1, &r5, &r5, &[]),
            Err(VerifyError::SizeOrder { old: 2, new: 1 })
        );
        let proof = tree.consistency_proof(3, 5).unwrap();
        let r3 = tree.root_at(3).unwrap();
        assert_eq!(
            verify_consistency(3, 5, &r3, &e, &proof),
            Err(VerifyError::NewRootMismatch {
                computed: r5,
                expected: e
            })
        );
        assert!(matches!(
            verify_consistency(3, 5, &e, &r5, &proof),
            Err(VerifyError::OldRootMismatch { computed, .. }) if computed == r3
        ));
        // Size 0 is consistent with any tree, but its root must be the empty root.
        verify_consistency(0, 5, &e, &r5, &[]).unwrap();
        verify_consistency(0, 0, &e, &e, &[]).unwrap();
        assert!(matches!(
            verify_consistency(0, 5, &r5, &r5, &[]),
            Err(VerifyError::OldRootMismatch { .. })
        ));
        assert_eq!(
            verify_consistency(0, 5, &e, &r5, &[e]),
            Err(VerifyError::WrongProofLength {
                expected: 0,
                got: 1
            })
        );
        // Equal sizes: equal roots, empty proof.
        verify_consistency(5, 5, &r5, &r5, &[]).unwrap();
        assert!(verify_consistency(5, 5, &r5, &e, &[]).is_err());
        assert!(verify_consistency(5, 5, &r5, &r5, &[r5]).is_err());
        // Huge claimed sizes neither overflow nor panic.
        let leaf = leaves[0];
        for len in [0, 1, 63, 64, 65, 128] {
            let p = vec![leaf; len];
            assert!(verify_inclusion(&leaf, u64::MAX - 1, u64::MAX, &p, &r5).is_err());
            assert!(verify_inclusion(&leaf, 0, u64::MAX, &p, &r5).is_err());
            assert!(verify_consistency(u64::MAX - 1, u64::MAX, &r5, &r5, &p).is_err());
            assert!(verify_consistency(1, u64::MAX, &r5, &r5, &p).is_err());
            assert!(verify_consistency(1 << 63, u64::MAX, &r5, &r5, &p).is_err());
        }
    }

    #[test]
    fn frontier_restores_the_tree_and_rejects_the_wrong_shape() {
        let d = data(11);
        let mut t = CompactTree::new();
        for x in &d[..6] {
            t.append(x).unwrap();
        }
        let mut restored = CompactTree::from_frontier(t.size(), t.frontier().to_vec()).unwrap();
        for x in &d[6..] {
            t.append(x).unwrap();
            restored.append(x).unwrap();
        }
        assert_eq!(restored, t);
        assert_eq!(restored.root(), Reference::new(&d).mth(0, d.len()));
        assert_eq!(
            CompactTree::from_frontier(6, vec![empty_root()]),
            Err(MerkleError::BadFrontier {
                size: 6,
                expected: 2,
                got: 1
            })
        );
        let mut full = CompactTree::from_frontier(u64::MAX, vec![empty_root(); 64]).unwrap();
        assert_eq!(full.append(b"x"), Err(MerkleError::TreeFull));
        assert_eq!(full.size(), u64::MAX);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Arbitrary proofs for arbitrary claims never panic and almost never verify.
        #[test]
        fn arbitrary_claims_never_panic(
            index in any::<u64>(),
            size in any::<u64>(),
            old in any::<u64>(),
            proof in proptest::collection::vec(any::<[u8; 32]>(), 0..80),
            leaf in any::<[u8; 32]>(),
            root in any::<[u8; 32]>(),
        ) {
            prop_assert!(verify_inclusion(&leaf, index, size, &proof, &root).is_err());
            let (a, b) = (old.min(size), old.max(size));
            if a != b {
                prop_assert!(verify_consistency(a, b, &leaf, &root, &proof).is_err());
            }
            let _ = verify_consistency(old, size, &leaf, &root, &proof);
        }

        /// Random leaf contents and sizes: proofs match the reference and verify, and a
        /// different leaf at the claimed index does not.
        #[test]
        fn random_trees_match_the_reference(
            d in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..16), 1..200),
            pick in any::<prop::sample::Index>(),
            pick_old in any::<prop::sample::Index>(),
        ) {
            let mut reference = Reference::new(&d);
            let leaves = hashes(&d);
            let tree = MerkleTree::from_leaf_hashes(leaves.iter().copied());
            let n = d.len();
            let m = pick.index(n);
            let old = pick_old.index(n + 1);
            let root = reference.mth(0, n);
            prop_assert_eq!(tree.root(), root);
            let proof = tree.inclusion_proof(m as u64, n as u64).unwrap();
            prop_assert_eq!(&proof, &reference.path(m, 0, n));
            prop_assert!(verify_inclusion(&leaves[m], m as u64, n as u64, &proof, &root).is_ok());
            let mut changed = d[m].clone();
            changed.push(0);
            let changed = leaf_hash(&changed);
            prop_assert!(verify_inclusion(&changed, m as u64, n as u64, &proof, &root).is_err());
            let cproof = tree.consistency_proof(old as u64, n as u64).unwrap();
            prop_assert_eq!(&cproof, &reference.consistency(old, n));
            let old_root = reference.mth(0, old);
            prop_assert!(verify_consistency(old as u64, n as u64, &old_root, &root, &cproof).is_ok());
        }
    }
}
