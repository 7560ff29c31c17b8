//! Topologies of the scale workload as plain data: a ring, and a random
//! 3-regular graph (the ring plus a random perfect matching of chords, so
//! it is connected and every node has three neighbours), from a seed so
//! runs compare. Hop distances by breadth-first search, and the links to
//! cut, chosen from the seed too.

use std::collections::{BTreeSet, VecDeque};

/// An undirected graph on nodes `0..n`; each edge `(a, b)` has `a < b`
/// (the lower-numbered node dials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graph {
    /// Number of nodes.
    pub n: usize,
    /// Edges, sorted.
    pub edges: Vec<(usize, usize)>,
}

/// A small deterministic generator (xorshift64*), enough to shuffle.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

fn edge(a: usize, b: usize) -> (usize, usize) {
    (a.min(b), a.max(b))
}

impl Graph {
    /// `0 - 1 - ... - n-1 - 0`.
    pub fn ring(n: usize) -> Graph {
        let edges: BTreeSet<_> = (0..n).map(|i| edge(i, (i + 1) % n)).collect();
        Graph {
            n,
            edges: edges.into_iter().collect(),
        }
    }

    /// The ring plus chords pairing every node with one other that is not
    /// already its neighbour (`n` even, at least 6): 3-regular.
    pub fn random_cubic(n: usize, seed: u64) -> Graph {
        let mut rng = Rng(seed | 1);
        let ring: BTreeSet<_> = Graph::ring(n).edges.into_iter().collect();
        loop {
            let mut order: Vec<usize> = (0..n).collect();
            rng.shuffle(&mut order);
            let chords: BTreeSet<_> = order.chunks(2).map(|p| edge(p[0], p[1])).collect();
            if chords.len() == n / 2 && chords.is_disjoint(&ring) {
                return Graph {
                    n,
                    edges: ring.union(&chords).copied().collect(),
                };
            }
        }
    }

    /// Each node's neighbours.
    pub fn neighbours(&self) -> Vec<Vec<usize>> {
        let mut out = vec![Vec::new(); self.n];
        for &(a, b) in &self.edges {
            out[a].push(b);
            out[b].push(a);
        }
        out
    }

    /// Hops from `from` to every node (`usize::MAX`: unreachable).
    pub fn hops_from(&self, from: usize) -> Vec<usize> {
        let neighbours = self.neighbours();
        let mut hops = vec![usize::MAX; self.n];
        hops[from] = 0;
        let mut queue = VecDeque::from([from]);
        while let Some(v) = queue.pop_front() {
            for &w in &neighbours[v] {
                if hops[w] == usize::MAX {
                    hops[w] = hops[v] + 1;
                    queue.push_back(w);
                }
            }
        }
        hops
    }

    /// The node farthest from `from`, and its distance.
    pub fn farthest_from(&self, from: usize) -> (usize, usize) {
        let hops = self.hops_from(from);
        (0..self.n)
            .filter(|&v| hops[v] != usize::MAX)
            .map(|v| (v, hops[v]))
            .max_by_key(|&(v, h)| (h, std::cmp::Reverse(v)))
            .unwrap_or((from, 0))
    }

    /// The component of each node once the edges in `cut` are gone
    /// (numbered by their lowest node).
    pub fn components_without(&self, cut: &BTreeSet<(usize, usize)>) -> Vec<usize> {
        let kept = Graph {
            n: self.n,
            edges: self
                .edges
                .iter()
                .filter(|e| !cut.contains(e))
                .copied()
                .collect(),
        };
        let mut component = vec![usize::MAX; self.n];
        for v in 0..self.n {
            if component[v] == usize::MAX {
                for (w, hops) in kept.hops_from(v).into_iter().enumerate() {
                    if hops != usize::MAX {
                        component[w] = v;
                    }
                }
            }
        }
        component
    }

    /// `fraction` of the edges (at least one), chosen from `seed`.
    pub fn cut(&self, fraction: f64, seed: u64) -> BTreeSet<(usize, usize)> {
        let mut rng = Rng(seed | 1);
        let mut edges = self.edges.clone();
        rng.shuffle(&mut edges);
        let k = ((self.edges.len() as f64 * fraction).round() as usize).max(1);
        edges.into_iter().take(k).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_of_32_has_its_far_side_16_hops_away() {
        let ring = Graph::ring(32);
        assert_eq!(ring.edges.len(), 32);
        assert_eq!(ring.farthest_from(0), (16, 16));
    }

    #[test]
    fn the_random_graph_is_cubic_connected_and_repeatable() {
        let g = Graph::random_cubic(32, 7);
        assert_eq!(g.edges.len(), 48);
        assert!(g.neighbours().iter().all(|n| n.len() == 3));
        assert!(g.hops_from(0).iter().all(|&h| h != usize::MAX));
        // Chords shorten the ring's 16 hops.
        assert!(g.farthest_from(0).1 < 16);
        assert_eq!(g, Graph::random_cubic(32, 7));
        assert_ne!(g, Graph::random_cubic(32, 8));
    }

    #[test]
    fn cutting_two_ring_links_leaves_two_arcs() {
        let ring = Graph::ring(8);
        let cut = BTreeSet::from([(1, 2), (5, 6)]);
        assert_eq!(ring.components_without(&cut), [0, 0, 2, 2, 2, 2, 0, 0]);
        assert_eq!(ring.components_without(&BTreeSet::new()), [0; 8]);
    }

    #[test]
    fn a_fifth_of_the_links_are_cut() {
        let g = Graph::random_cubic(32, 7);
        let cut = g.cut(0.2, 3);
        assert_eq!(cut.len(), 10);
        assert!(cut.iter().all(|e| g.edges.contains(e)));
    }
}
