//! The shapes of cluster the model runs: the full mesh it always ran, and
//! the sparse graphs users deploy, where changes and reachability travel
//! over several hops and one node can be the only way between two others:
//! chains, rings, stars, random trees and random sparse graphs (a tree
//! plus a few extra edges). A shape gives the links a run may bring up;
//! links of a mesh join any two nodes.

use super::{rng::Rng, world::Pair, world::pair};

/// A family of topologies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// Any two nodes may link (links come up at random).
    Mesh,
    /// n0 - n1 - ... - n(k-1).
    Chain,
    /// A chain closed into a circle.
    Ring,
    /// n0 in the middle.
    Star,
    /// Each node links to a random earlier one.
    Tree,
    /// A random tree plus about a third as many random extra edges.
    Sparse,
}

impl Shape {
    /// Every family.
    pub(super) const ALL: &'static [Shape] = &[
        Shape::Mesh,
        Shape::Chain,
        Shape::Ring,
        Shape::Star,
        Shape::Tree,
        Shape::Sparse,
    ];

    /// The edges of a graph of this shape on `nodes` nodes (`None` for a
    /// mesh: any pair).
    pub(super) fn edges(self, nodes: usize, rng: &mut Rng) -> Option<Vec<Pair>> {
        let chain = || (1..nodes).map(|i| pair(i - 1, i));
        let tree = |rng: &mut Rng| -> Vec<Pair> {
            (1..nodes)
                .map(|i| pair(rng.below(i), i))
                .collect::<Vec<_>>()
        };
        let mut edges: Vec<Pair> = match self {
            Shape::Mesh => return None,
            Shape::Chain => chain().collect(),
            Shape::Ring => chain()
                .chain((nodes > 2).then(|| pair(0, nodes - 1)))
                .collect(),
            Shape::Star => (1..nodes).map(|i| pair(0, i)).collect(),
            Shape::Tree => tree(rng),
            Shape::Sparse => {
                let mut edges = tree(rng);
                for _ in 0..nodes.div_ceil(3) {
                    let (a, b) = (rng.below(nodes), rng.below(nodes));
                    if a != b {
                        edges.push(pair(a, b));
                    }
                }
                edges
            }
        };
        edges.sort_unstable();
        edges.dedup();
        Some(edges)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_have_the_edges_they_say() {
        let mut rng = Rng::new(7);
        assert_eq!(
            Shape::Chain.edges(4, &mut rng),
            Some(vec![(0, 1), (1, 2), (2, 3)])
        );
        assert_eq!(
            Shape::Ring.edges(4, &mut rng),
            Some(vec![(0, 1), (0, 3), (1, 2), (2, 3)])
        );
        assert_eq!(
            Shape::Star.edges(4, &mut rng),
            Some(vec![(0, 1), (0, 2), (0, 3)])
        );
        for shape in [Shape::Tree, Shape::Sparse] {
            let edges = shape.edges(8, &mut rng).unwrap_or_default();
            // Connected: every node but n0 has an edge to an earlier one.
            for n in 1..8 {
                assert!(
                    edges.iter().any(|&(a, b)| b == n && a < n),
                    "{shape:?} {edges:?}"
                );
            }
        }
        assert_eq!(Shape::Mesh.edges(4, &mut rng), None);
    }
}
