//! Choosing a node's neighbours: the paper's heuristic (Algorithm 4).
//!
//! Walking candidates nearest first, a candidate is kept unless an already
//! kept neighbour is closer to it than the base node is. This spreads the
//! edges over directions instead of spending them all on one tight cluster,
//! which is what keeps the graph navigable. Ties keep the candidate, so
//! clusters of equal points stay connected.
//!
//! Under inner product the list is then filled to its bound with the
//! nearest pruned candidates (the paper's `keepPrunedConnections`):
//! one high-norm neighbour is "closer" to nearly every candidate than the
//! base is, so the heuristic alone kept one or two links per node and
//! most of the graph was unreachable. Other metrics keep the heuristic's
//! sparser lists: filled ones cost them recall in filtered scans (a test
//! filtering on a heap column fell to 0.66) and add distance work to
//! every hop.

use super::{Candidate, GraphStore, Metric, NodeId};

/// Vectors of a few nodes copied side by side, row `i` for `nodes[i]`.
#[derive(Debug, Clone, Default)]
pub struct Gathered {
    pub nodes: Vec<NodeId>,
    pub vecs: Vec<f32>,
    pub aux: Vec<f32>,
}

impl Gathered {
    pub fn of<S: GraphStore + ?Sized>(store: &S, nodes: &[NodeId]) -> Gathered {
        let mut g = Gathered {
            nodes: nodes.to_vec(),
            vecs: Vec::new(),
            aux: Vec::with_capacity(nodes.len()),
        };
        for (i, &n) in nodes.iter().enumerate() {
            let aux = store.copy_vector(n, &mut g.vecs);
            g.aux.push(aux);
            if i == 0 {
                // Room for the rest at once: growing by doubling copied
                // every gathered vector again, a sixth of a build's time.
                g.vecs.reserve(g.vecs.len() * (nodes.len() - 1));
            }
        }
        g
    }

    fn dims(&self) -> usize {
        self.vecs.len() / self.nodes.len().max(1)
    }

    fn row(&self, i: usize) -> &[f32] {
        let d = self.dims();
        &self.vecs[i * d..(i + 1) * d]
    }

    pub fn distance(&self, metric: Metric, i: usize, j: usize) -> f32 {
        metric.distance(self.row(i), self.aux[i], self.row(j), self.aux[j])
    }
}

/// The heuristic over gathered rows: `order` lists (distance from the
/// base, row) nearest first; returns the rows kept, the heuristic's
/// choice first, then (inner product) the nearest pruned ones up to `max`.
pub fn select_rows(
    metric: Metric,
    rows: &Gathered,
    order: &[(f32, usize)],
    max: usize,
) -> Vec<usize> {
    let mut kept: Vec<usize> = Vec::with_capacity(max);
    let mut pruned: Vec<usize> = Vec::new();
    for &(distance, row) in order {
        if kept.len() >= max {
            break;
        }
        let dominated = kept
            .iter()
            .any(|&k| rows.distance(metric, row, k) < distance);
        if dominated {
            pruned.push(row);
        } else {
            kept.push(row);
        }
    }
    if metric.keeps_pruned() {
        let room = max.saturating_sub(kept.len());
        kept.extend(pruned.into_iter().take(room));
    }
    kept
}

/// Which of `order` (one more candidate than a list holds, nearest first)
/// [`select_rows`] leaves out when it keeps pruned candidates: exactly
/// one, the farthest candidate the heuristic prunes, or the farthest of
/// all when it prunes none (the heuristic stops once the list is full).
/// So only that candidate's fate is needed, found from the farthest down:
/// a candidate is pruned if a nearer *kept* one is closer to it than the
/// base is, and the nearer one's fate is found the same way, remembered.
/// A link-back to a full list under inner product (where every list is
/// full) then costs a few distances instead of the heuristic's pairwise
/// pass, which made the build twice as slow as under cosine.
pub fn farthest_pruned(metric: Metric, rows: &Gathered, order: &[(f32, usize)]) -> usize {
    let mut kept: Vec<Option<bool>> = vec![None; order.len()];
    for at in (0..order.len()).rev() {
        if !is_kept(metric, rows, order, at, &mut kept) {
            return at;
        }
    }
    order.len().saturating_sub(1)
}

/// Whether the heuristic keeps `order[at]` (ignoring the list's bound),
/// memoised in `kept`. Iterative: a stack of candidates whose fate waits
/// on a nearer one's.
fn is_kept(
    metric: Metric,
    rows: &Gathered,
    order: &[(f32, usize)],
    at: usize,
    kept: &mut [Option<bool>],
) -> bool {
    // (candidate, next nearer candidate to compare it with)
    let mut stack = vec![(at, 0usize)];
    while let Some(&mut (x, ref mut next)) = stack.last_mut() {
        if kept[x].is_some() {
            stack.pop();
            continue;
        }
        let (distance, row) = order[x];
        let mut waiting = None;
        let mut dominated = false;
        while *next < x {
            let y = *next;
            if rows.distance(metric, row, order[y].1) < distance {
                match kept[y] {
                    Some(true) => {
                        dominated = true;
                        break;
                    }
                    Some(false) => *next += 1,
                    None => {
                        waiting = Some(y);
                        break;
                    }
                }
            } else {
                *next += 1;
            }
        }
        match waiting {
            // Decide y first, then compare x with it again.
            Some(y) => stack.push((y, 0)),
            None => {
                kept[x] = Some(!dominated);
                stack.pop();
            }
        }
    }
    kept[at].unwrap_or(true)
}

/// Picks at most `max` neighbours from `candidates` (sorted nearest first,
/// distances measured from the base node).
pub fn select_neighbors<S: GraphStore + ?Sized>(
    store: &S,
    candidates: &[Candidate],
    max: usize,
) -> Vec<Candidate> {
    if candidates.len() <= max {
        return candidates.to_vec();
    }
    let nodes: Vec<NodeId> = candidates.iter().map(|c| c.node).collect();
    let rows = Gathered::of(store, &nodes);
    let order: Vec<(f32, usize)> = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| (c.distance, i))
        .collect();
    select_rows(store.params().metric, &rows, &order, max)
        .into_iter()
        .map(|i| candidates[i])
        .collect()
}

/// A list that lost members (their nodes were deleted) refilled to
/// `len`: the members it kept stay, candidates (sorted nearest first)
/// join as the heuristic allows, then the nearest others until the list
/// is as long as before. Lists re-selected by the heuristic alone come
/// out about half as long as lists that grew by inserts, and recall drops
/// with the degree.
pub fn refill<S: GraphStore + ?Sized>(
    store: &S,
    kept: &[NodeId],
    candidates: &[Candidate],
    len: usize,
) -> Vec<NodeId> {
    let mut rows: Vec<NodeId> = kept.to_vec();
    rows.extend(
        candidates
            .iter()
            .map(|c| c.node)
            .filter(|n| !kept.contains(n)),
    );
    let rows = Gathered::of(store, &rows);
    let metric = store.params().metric;
    let mut list: Vec<usize> = (0..kept.len()).collect();
    let mut skipped = Vec::new();
    let fresh = candidates.iter().filter(|c| !kept.contains(&c.node));
    for (row, c) in (kept.len()..).zip(fresh) {
        if list.len() >= len {
            break;
        }
        if list
            .iter()
            .any(|&k| rows.distance(metric, row, k) < c.distance)
        {
            skipped.push(row);
        } else {
            list.push(row);
        }
    }
    let room = len.saturating_sub(list.len());
    list.extend(skipped.into_iter().take(room));
    list.into_iter().map(|i| rows.nodes[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    /// A base (row 0) and `n` candidates; some repeat an earlier row, so
    /// that ties are tried too.
    fn rows(rng: &mut SmallRng, n: usize, dims: usize) -> Gathered {
        let mut g = Gathered::default();
        for i in 0..=n {
            g.nodes.push(i as NodeId);
            if i > 1 && rng.gen_bool(0.1) {
                let from = rng.gen_range(1..i) * dims;
                let copy = g.vecs[from..from + dims].to_vec();
                g.vecs.extend(copy);
            } else {
                let norm = rng.gen_range(0.2f32..4.0);
                g.vecs
                    .extend((0..dims).map(|_| rng.gen_range(-1.0f32..1.0) * norm));
            }
            g.aux.push(0.0);
        }
        g
    }

    /// The one candidate `farthest_pruned` names is the one the full
    /// heuristic with the pruned fill leaves out, for every metric that
    /// keeps pruned candidates, on lists of each size and on ties.
    #[test]
    fn the_farthest_pruned_is_what_the_heuristic_leaves_out() {
        let mut rng = SmallRng::seed_from_u64(7);
        let metrics = [Metric::InnerProduct, Metric::L2, Metric::Cosine, Metric::L1];
        let mut shortcuts = 0;
        for trial in 0..4000 {
            let metric = metrics[trial % metrics.len()];
            let max = [2, 4, 8, 16, 32][trial % 5];
            let dims = [3, 8, 24][trial % 3];
            let g = rows(&mut rng, max + 1, dims);
            let mut order: Vec<(f32, usize)> = (1..g.nodes.len())
                .map(|i| (g.distance(metric, 0, i), i))
                .collect();
            order.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            // The full heuristic, with the pruned fill (as under inner product).
            let mut kept: Vec<usize> = Vec::new();
            let mut pruned: Vec<usize> = Vec::new();
            for &(distance, row) in &order {
                if kept.len() >= max {
                    break;
                }
                if kept.iter().any(|&k| g.distance(metric, row, k) < distance) {
                    pruned.push(row);
                } else {
                    kept.push(row);
                }
            }
            let room = max - kept.len();
            kept.extend(pruned.into_iter().take(room));
            kept.sort_unstable();
            let dropped = farthest_pruned(metric, &g, &order);
            if dropped + 1 < order.len() {
                shortcuts += 1;
            }
            let mut rest: Vec<usize> = order
                .iter()
                .enumerate()
                .filter(|&(at, _)| at != dropped)
                .map(|(_, &(_, row))| row)
                .collect();
            rest.sort_unstable();
            assert_eq!(
                rest, kept,
                "trial {trial}: {metric:?}, max {max}, dims {dims}"
            );
        }
        // Not always the farthest candidate: the search back does work.
        assert!(shortcuts > 100, "{shortcuts}");
    }
}
