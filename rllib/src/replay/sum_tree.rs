//! The sum tree and min tree of prioritized replay: per-leaf priorities with O(log n) updates,
//! totals, minimums and prefix-sum search.

/// A sum tree and a min tree over `capacity` leaves, stored as two implicit binary trees.
///
/// Leaves are padded to a power of two; node `k` has children `2k` and `2k + 1`, the root is node 1
/// and leaf `i` is node `size + i`. Every internal node holds its children's sum (and minimum),
/// recomputed from the children on each [`SumTree::set`] rather than adjusted by a difference, so
/// the sums never drift and a tree rebuilt from the same leaves is identical bit for bit.
///
/// A leaf that was never set has priority 0 and takes no part in [`SumTree::min`]: the buffer fills
/// its slots in order, and the empty ones must not make the minimum 0.
///
/// ```
/// use rllib::replay::SumTree;
///
/// let mut tree = SumTree::new(3);
/// tree.set(0, 1.0);
/// tree.set(2, 3.0);
/// assert_eq!((tree.total(), tree.min()), (4.0, 1.0));
/// assert_eq!(tree.find_prefix_sum(0.5), 0);
/// assert_eq!(tree.find_prefix_sum(1.0), 2); // the prefix sum through leaf 0 is 1.0, not above it
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SumTree {
    capacity: usize,
    /// Leaves padded to a power of two.
    size: usize,
    /// `[2 * size]`: node sums; index 0 is unused.
    sums: Vec<f64>,
    /// `[2 * size]`: node minimums over the leaves that were set (+inf where none was).
    mins: Vec<f64>,
}

impl SumTree {
    /// A tree of `capacity` (at least 1) leaves, all 0 and unset.
    pub fn new(capacity: usize) -> Self {
        assert!(capacity >= 1, "a sum tree needs at least one leaf");
        let size = capacity.next_power_of_two();
        Self { capacity, size, sums: vec![0.0; 2 * size], mins: vec![f64::INFINITY; 2 * size] }
    }

    /// The number of leaves.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Sets leaf `i` to priority `p` (finite, not negative), updating its ancestors: O(log n).
    ///
    /// # Panics
    ///
    /// If `i >= capacity` or `p` is negative or not finite (a caller bug: priorities are computed,
    /// never read from input unchecked).
    pub fn set(&mut self, i: usize, p: f64) {
        assert!(i < self.capacity, "sum tree leaf {i} out of range (capacity {})", self.capacity);
        assert!(p.is_finite() && p >= 0.0, "sum tree priority must be finite and not negative, got {p}");
        let mut node = self.size + i;
        self.sums[node] = p;
        self.mins[node] = p;
        while node > 1 {
            node /= 2;
            self.sums[node] = self.sums[2 * node] + self.sums[2 * node + 1];
            self.mins[node] = self.mins[2 * node].min(self.mins[2 * node + 1]);
        }
    }

    /// The priority of leaf `i` (0 if never set).
    pub fn get(&self, i: usize) -> f64 {
        assert!(i < self.capacity, "sum tree leaf {i} out of range (capacity {})", self.capacity);
        self.sums[self.size + i]
    }

    /// The sum of all leaves.
    pub fn total(&self) -> f64 {
        self.sums[1]
    }

    /// The smallest priority among the leaves that were set; +inf if none was.
    pub fn min(&self) -> f64 {
        self.mins[1]
    }

    /// The first leaf whose cumulative sum (leaves `0..=i`) exceeds `mass`: O(log n).
    ///
    /// Leaves of priority 0 are never returned. A `mass` at or above [`SumTree::total`] (which
    /// rounding in a caller's `u * total` can produce) gives the last leaf with a priority above
    /// 0, and a negative one the first.
    ///
    /// # Panics
    ///
    /// If every leaf is 0 (there is nothing to find) or `mass` is NaN.
    pub fn find_prefix_sum(&self, mass: f64) -> usize {
        assert!(self.total() > 0.0, "prefix-sum search in a sum tree whose leaves are all 0");
        assert!(!mass.is_nan(), "prefix-sum search for a NaN mass");
        let mut mass = mass;
        let mut node = 1;
        // Invariant: `node` has a positive sum, so at least one child does too.
        while node < self.size {
            let (left, right) = (2 * node, 2 * node + 1);
            let go_left = self.sums[left] > 0.0 && (mass < self.sums[left] || self.sums[right] <= 0.0);
            if go_left {
                node = left;
            } else {
                mass -= self.sums[left];
                node = right;
            }
        }
        node - self.size
    }
}
