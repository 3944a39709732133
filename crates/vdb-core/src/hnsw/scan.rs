//! A search that yields nodes one at a time in non-decreasing distance and
//! keeps going as long as its caller asks: what an index scan needs for
//! `ORDER BY ... LIMIT k` when a `WHERE` clause throws rows away.
//!
//! The first round is the ordinary level-0 search with `ef = ef_search`,
//! and all of its results are handed out, nearest first, as a plain HNSW
//! search would: `LIMIT` up to `ef_search` costs one round. When that
//! runs out, the same search continues with twice the `ef` (the frontier
//! and visited set are kept, so no work is repeated) and hands out the next
//! ring, only up to half its depth: nodes near a round's horizon are the
//! ones a wider search may still find closer neighbours of.
//! A node found in a later round that is nearer than one already handed
//! out cannot be returned without breaking the order; it is skipped and
//! counted in [`OrderedScan::dropped`] (pgvector's "strict order" does the
//! same). The scan ends when the graph is exhausted or `max_evaluated`
//! distances have been computed; then whatever was found is handed out.

use super::search::{descend, LayerSearch};
use super::visited::Visited;
use super::{Candidate, GraphStore, Point};

#[derive(Debug)]
pub struct OrderedScan {
    search: LayerSearch,
    ef: usize,
    started: bool,
    exhausted: bool,
    /// Whether it ended at `max_evaluated`, not at the graph's end.
    cut_short: bool,
    /// Results of the current round, farthest first (so `pop` is nearest).
    handout: Handout,
    rounds: usize,
}

/// A round after the first hands out its results up to the distance of
/// its `ef / 2`-th nearest. Handing out all `ef` in every round lost the
/// neighbours a wider search found nearer than the tail of a round
/// (GloVe-50, `ef_search` 40, a filter keeping 1 row in 10: recall of the
/// filtered top 10 0.67 at full depth, 0.81 at half depth, for 1.65x the
/// distance computations). The first round goes to full depth so that a
/// low `ef_search` costs what it says.
pub(crate) const HANDOUT_DIVISOR: usize = 2;

impl OrderedScan {
    pub fn new(ef_search: usize) -> Self {
        OrderedScan {
            search: LayerSearch::resumable(),
            ef: ef_search.max(1),
            started: false,
            exhausted: false,
            cut_short: false,
            handout: Handout::default(),
            rounds: 0,
        }
    }

    /// The next node in distance order, or `None` when the scan is over.
    pub fn next<S: GraphStore + ?Sized>(
        &mut self,
        store: &S,
        query: &Point,
        max_evaluated: usize,
    ) -> Option<Candidate> {
        if !self.started {
            self.started = true;
            let Some(entry) = store.entry() else {
                self.exhausted = true;
                return None;
            };
            let mut scratch = Vec::new();
            let start = descend(store, query, entry, 0, &mut scratch);
            self.search.seed(start);
            self.round(store, query, max_evaluated, self.ef);
        }
        loop {
            if let Some(c) = self.handout.next() {
                return Some(c);
            }
            if self.exhausted {
                return None;
            }
            self.ef = self.ef.saturating_mul(2);
            self.round(store, query, max_evaluated, self.ef);
        }
    }

    /// Runs the search for `ef` and moves the newly settled results, those
    /// within the distance of the `ef/2`-th nearest, into `ready`.
    fn round<S: GraphStore + ?Sized>(
        &mut self,
        store: &S,
        query: &Point,
        max_evaluated: usize,
        ef: usize,
    ) {
        let more = self.search.run(store, query, 0, ef, max_evaluated);
        if !more || self.search.evaluated() >= max_evaluated {
            self.exhausted = true;
            self.cut_short = more;
        }
        // The first round hands out all it found, as a plain search would
        // (so `LIMIT` up to `ef_search` costs one round: a low `ef_search`
        // stays cheap); later rounds go to half their depth.
        let depth = if self.rounds == 0 {
            ef
        } else {
            ef.div_ceil(HANDOUT_DIVISOR)
        };
        self.rounds += 1;
        let horizon = if self.exhausted {
            f32::INFINITY
        } else {
            self.search.kth_distance(depth)
        };
        self.handout.settle(self.search.found(), horizon);
    }

    /// Nodes skipped because a later round found them after farther ones
    /// had been returned.
    pub fn dropped(&self) -> usize {
        self.handout.dropped
    }

    /// Whether the scan stopped at its limit of evaluated nodes, with
    /// nodes it never reached.
    pub fn cut_short(&self) -> bool {
        self.cut_short
    }

    /// Distances computed so far.
    pub fn evaluated(&self) -> usize {
        self.search.evaluated()
    }
}

/// What an ordered scan has settled and hands out, nearest first, never
/// going back below what it already returned.
#[derive(Debug)]
pub(crate) struct Handout {
    /// Settled and not yet returned, farthest first (so `pop` is nearest).
    ready: Vec<Candidate>,
    handed_out: Visited,
    last: f32,
    /// Nodes settled after farther ones had been returned: skipped.
    pub(crate) dropped: usize,
}

impl Default for Handout {
    fn default() -> Self {
        Handout {
            ready: Vec::new(),
            handed_out: Visited::new(),
            last: f32::NEG_INFINITY,
            dropped: 0,
        }
    }
}

impl Handout {
    /// Settles the nodes of `found` within `horizon` not settled before.
    pub(crate) fn settle(&mut self, found: &[Candidate], horizon: f32) {
        for &c in found {
            if c.distance <= horizon && !self.handed_out.contains(c.node) {
                self.handed_out.insert(c.node);
                self.ready.push(c);
            }
        }
        self.ready.sort_unstable_by(|a, b| b.cmp(a));
    }

    /// The nearest settled node not below the last one returned.
    pub(crate) fn next(&mut self) -> Option<Candidate> {
        while let Some(c) = self.ready.pop() {
            if c.distance < self.last {
                self.dropped += 1;
                continue;
            }
            self.last = c.distance;
            return Some(c);
        }
        None
    }
}
