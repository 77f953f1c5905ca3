//! A cycle of `INFINITY` colocations made whole once all its members are placed.

use std::collections::BTreeSet;

use super::capacity::Capacity;
use super::{Nodes, Placed, PlacedOn, part, select};
use crate::plan::model::Stage;
use crate::spec::Score;
use crate::spec::bundle::instance_name;

/// The placements made so far, for the corrections made after a cycle is placed.
pub(super) struct Tally<'t, 'a> {
    pub(super) nodes: &'t Nodes<'a>,
    pub(super) capacity: &'t mut Capacity<'a>,
    pub(super) placed_on: &'t mut PlacedOn<'a>,
    pub(super) load: &'t mut select::Load,
    pub(super) out: &'t mut Placed<'a>,
    /// Instances `onFail: block` keeps where they are.
    pub(super) held: &'t BTreeSet<(&'a str, u32)>,
}

impl<'a> Tally<'_, 'a> {
    /// The members of a mandatory cycle share their nodes: an instance placed on a node
    /// without a member it is colocated with by `INFINITY` (`edges`) is placed nowhere
    /// after all, which may leave another member alone in turn, until none is. Instances
    /// `onFail: block` keeps (`held`) stay. Each round unplaces at least one instance or
    /// ends. Returns the instances placed nowhere after all.
    pub(super) fn keep_group_together(
        &mut self,
        edges: &[(&'a str, &'a str)],
    ) -> Vec<(&'a str, u32)> {
        let mut left = Vec::new();
        loop {
            let mut changed = false;
            for &(bundle, with) in edges {
                let alone: Vec<(u32, usize)> = self
                    .out
                    .node
                    .of(bundle)
                    .filter(|(i, _)| !self.held.contains(&(bundle, *i)))
                    .filter_map(|(i, n)| Some((i, self.nodes.of(n?.as_str())?)))
                    .filter(|(_, at)| self.placed_on.get(with).is_none_or(|w| w.on(*at) == 0))
                    .collect();
                for (index, at) in alone {
                    self.unplace(bundle, index, at, with);
                    left.push((bundle, index));
                    changed = true;
                }
            }
            if !changed {
                return left;
            }
        }
    }

    fn unplace(&mut self, bundle: &'a str, index: u32, at: usize, with: &str) {
        self.out.node.remove(bundle, index);
        self.capacity.release(bundle, index);
        if let Some(counts) = self.placed_on.get_mut(bundle) {
            counts.remove_one(at);
        }
        self.load.remove(at);
        let name = instance_name(bundle, index);
        if let Some(p) = self.out.explain.iter_mut().find(|p| p.instance == name) {
            p.chosen = None;
            for c in p
                .candidates
                .iter_mut()
                .filter(|c| c.node == *self.nodes.name(at))
            {
                let source = format!("colocation cycle: no {with} here");
                c.parts
                    .push(part(Stage::Cycle, source, Score::NEG_INFINITY));
                c.score = Score::NEG_INFINITY;
            }
            select::sort_candidates(&mut p.candidates);
        }
    }
}
