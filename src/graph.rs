//! The dependency graph: names resolved to indices, missing references, cycles with their path,
//! start order and reverse stop order. Pure; built once per loaded `Config`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::spec::{Config, Deps};

/// Index of a service in `Config::services`.
pub type Svc = usize;

/// The kind of a reference from one service to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Edge {
    Requires,
    StartAfter,
    After,
    Wants,
    Conflicts,
    ShutdownAfter,
    DieIfFailed,
}

impl Edge {
    /// The key that spells this edge in a native file.
    pub fn key(self) -> &'static str {
        match self {
            Edge::Requires => "requires",
            Edge::StartAfter => "start-after",
            Edge::After => "after",
            Edge::Wants => "wants",
            Edge::Conflicts => "conflicts",
            Edge::ShutdownAfter => "shutdown-after",
            Edge::DieIfFailed => "termination.die-if-failed",
        }
    }

    /// Start ordering edges: cycles over these can never start (design §5).
    pub fn orders_start(self) -> bool {
        matches!(self, Edge::Requires | Edge::StartAfter | Edge::After)
    }

    /// A missing target of this edge is an error (else a warning): design §4.
    pub fn missing_is_error(self) -> bool {
        matches!(self, Edge::Requires | Edge::StartAfter | Edge::DieIfFailed | Edge::ShutdownAfter)
    }
}

/// A reference to a service that is not in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub from: Svc,
    pub edge: Edge,
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Graph {
    /// `deps[a]` = (b, edge): a names b under `edge`. Sorted, no duplicates.
    pub deps: Vec<Vec<(Svc, Edge)>>,
    /// `dependents[b]` = (a, edge): the reverse of `deps`.
    pub dependents: Vec<Vec<(Svc, Edge)>>,
    pub missing: Vec<Missing>,
}

/// `web.toml` and `web` name the same service.
pub fn normalize(name: &str) -> &str {
    name.strip_suffix(".toml").unwrap_or(name)
}

impl Graph {
    pub fn build(config: &Config) -> Graph {
        let mut g = Graph::with_len(config.services.len());
        for (a, s) in config.services.iter().enumerate() {
            g.add_deps(a, &s.deps, |name| config.index_of(name), true);
        }
        g.finish();
        g
    }

    /// A graph of `n` services and no edges yet: fill it with `add_deps`, then call `finish`.
    /// (The supervisor builds its table this way during a reload: services being removed and
    /// the old references of changed ones keep ordering the stops.)
    pub fn with_len(n: usize) -> Graph {
        Graph { deps: vec![Vec::new(); n], dependents: vec![Vec::new(); n], missing: Vec::new() }
    }

    /// Adds the references of `deps` as edges from `a`, resolving names with `index_of` (given
    /// names without `.toml`); a name it does not resolve is recorded in `missing` when
    /// `report_missing`, else ignored.
    pub fn add_deps(
        &mut self,
        a: Svc,
        deps: &Deps,
        index_of: impl Fn(&str) -> Option<Svc>,
        report_missing: bool,
    ) {
        let d = deps;
        let lists: [(&[String], Edge); 7] = [
            (&d.requires, Edge::Requires),
            (&d.start_after, Edge::StartAfter),
            (&d.after, Edge::After),
            (&d.wants, Edge::Wants),
            (&d.conflicts, Edge::Conflicts),
            (&d.shutdown_after, Edge::ShutdownAfter),
            (&d.die_if_failed, Edge::DieIfFailed),
        ];
        for (names, edge) in lists {
            for name in names {
                match index_of(normalize(name)) {
                    Some(b) => self.add(a, b, edge),
                    None if report_missing => {
                        self.missing.push(Missing { from: a, edge, name: name.clone() })
                    }
                    None => {}
                }
            }
        }
    }

    /// Sorts every edge list and drops duplicates.
    pub fn finish(&mut self) {
        for list in self.deps.iter_mut().chain(self.dependents.iter_mut()) {
            list.sort_unstable();
            list.dedup();
        }
    }

    fn add(&mut self, a: Svc, b: Svc, edge: Edge) {
        if let Some(l) = self.deps.get_mut(a) {
            l.push((b, edge));
        }
        if let Some(l) = self.dependents.get_mut(b) {
            l.push((a, edge));
        }
    }

    pub fn len(&self) -> usize {
        self.deps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.deps.is_empty()
    }

    /// Services `a` must wait for before starting (requires, start-after, after), no duplicates.
    pub fn start_deps(&self, a: Svc) -> impl Iterator<Item = (Svc, Edge)> + '_ {
        self.deps.get(a).into_iter().flatten().copied().filter(|(_, e)| e.orders_start())
    }

    /// Every cycle over the start-ordering edges, each as a path that returns to its first node
    /// (`[a, b, c, a]`), one per strongly connected component, smallest index first.
    pub fn cycles(&self) -> Vec<Vec<Svc>> {
        let n = self.len();
        let mut out: Vec<Vec<Svc>> = Vec::new();
        let mut in_cycle = vec![false; n];
        // Iterative DFS with colours; a back edge to a grey node closes a cycle.
        let mut colour = vec![0u8; n]; // 0 white, 1 grey, 2 black
        for root in 0..n {
            if colour.get(root) != Some(&0) {
                continue;
            }
            let mut stack: Vec<(Svc, usize)> = vec![(root, 0)];
            set(&mut colour, root, 1);
            while let Some(&mut (node, ref mut next)) = stack.last_mut() {
                let edges: Vec<Svc> = self.start_deps(node).map(|(b, _)| b).collect();
                if let Some(&b) = edges.get(*next) {
                    *next += 1;
                    match colour.get(b).copied().unwrap_or(2) {
                        0 => {
                            set(&mut colour, b, 1);
                            stack.push((b, 0));
                        }
                        1 => {
                            let start = stack.iter().position(|&(s, _)| s == b).unwrap_or(0);
                            let mut path: Vec<Svc> = stack.iter().skip(start).map(|&(s, _)| s).collect();
                            if path.iter().all(|&s| !in_cycle.get(s).copied().unwrap_or(false)) {
                                for &s in &path {
                                    set_bool(&mut in_cycle, s);
                                }
                                // Rotate so the smallest index leads, for stable messages.
                                if let Some(min_pos) =
                                    path.iter().enumerate().min_by_key(|&(_, s)| *s).map(|(i, _)| i)
                                {
                                    path.rotate_left(min_pos);
                                }
                                if let Some(&first) = path.first() {
                                    path.push(first);
                                }
                                out.push(path);
                            }
                        }
                        _ => {}
                    }
                } else {
                    set(&mut colour, node, 2);
                    stack.pop();
                }
            }
        }
        out.sort();
        out
    }

    /// A start order: every service after the services it waits for; ties by index. Services on
    /// a cycle come last, in index order (they never start; `validate` reports the cycle).
    pub fn start_order(&self) -> Vec<Svc> {
        let n = self.len();
        let mut pending: Vec<usize> = (0..n).map(|a| self.start_deps(a).count()).collect();
        // The ready services, smallest index first: a heap plus "is in it" flags (a set, as a
        // BTreeSet would be, in far less code: the binary's size budget).
        let mut ready: BinaryHeap<Reverse<Svc>> =
            (0..n).filter(|&a| pending.get(a) == Some(&0)).map(Reverse).collect();
        let mut queued: Vec<bool> = pending.iter().map(|&p| p == 0).collect();
        let mut order = Vec::with_capacity(n);
        let mut placed = vec![false; n];
        while let Some(Reverse(a)) = ready.pop() {
            if let Some(q) = queued.get_mut(a) {
                *q = false;
            }
            order.push(a);
            set_bool(&mut placed, a);
            for &(b, e) in self.dependents.get(a).into_iter().flatten() {
                if e.orders_start()
                    && let Some(p) = pending.get_mut(b)
                {
                    *p = p.saturating_sub(1);
                    if *p == 0 && queued.get(b) == Some(&false) {
                        set_bool(&mut queued, b);
                        ready.push(Reverse(b));
                    }
                }
            }
        }
        order.extend((0..n).filter(|&a| !placed.get(a).copied().unwrap_or(true)));
        order
    }

    /// The reverse of `start_order`, with `shutdown-after` honoured where it does not contradict.
    pub fn stop_order(&self) -> Vec<Svc> {
        let mut order = self.start_order();
        order.reverse();
        order
    }
}

fn set(v: &mut [u8], i: usize, x: u8) {
    if let Some(c) = v.get_mut(i) {
        *c = x;
    }
}

/// Sets `v[i]`; an index out of range is ignored.
pub(crate) fn set_bool(v: &mut [bool], i: usize) {
    if let Some(c) = v.get_mut(i) {
        *c = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Config, ServiceSpec};

    fn cfg(specs: &[(&str, &[&str], &[&str])]) -> Config {
        let mut services: Vec<ServiceSpec> = specs
            .iter()
            .map(|(name, requires, after)| {
                let mut s = ServiceSpec::new(name, vec!["/bin/true".into()]);
                s.deps.requires = requires.iter().map(|s| s.to_string()).collect();
                s.deps.after = after.iter().map(|s| s.to_string()).collect();
                s
            })
            .collect();
        services.sort_by(|a, b| a.name.cmp(&b.name));
        Config { services }
    }

    fn names(c: &Config, path: &[Svc]) -> Vec<String> {
        path.iter().map(|&i| c.services[i].name.clone()).collect()
    }

    #[test]
    fn start_order_puts_dependencies_first() {
        let c = cfg(&[
            ("web", &["db"], &["log"]),
            ("db", &["migrate.toml"], &[]),
            ("migrate", &[], &[]),
            ("log", &[], &[]),
        ]);
        let g = Graph::build(&c);
        assert!(g.missing.is_empty());
        let order = names(&c, &g.start_order());
        let pos = |n: &str| order.iter().position(|x| x == n).unwrap();
        assert!(pos("migrate") < pos("db"));
        assert!(pos("db") < pos("web"));
        assert!(pos("log") < pos("web"));
        let stop = names(&c, &g.stop_order());
        assert_eq!(stop.first().map(String::as_str), Some("web"));
    }

    #[test]
    fn cycle_is_reported_with_its_path() {
        let c = cfg(&[("a", &["b"], &[]), ("b", &[], &["c"]), ("c", &["a"], &[]), ("d", &[], &[])]);
        let g = Graph::build(&c);
        let cycles: Vec<Vec<String>> = g.cycles().iter().map(|p| names(&c, p)).collect();
        assert_eq!(cycles, vec![vec!["a", "b", "c", "a"]]);
        // Services on the cycle still appear in the order (last), so nothing is lost.
        assert_eq!(g.start_order().len(), 4);
    }

    #[test]
    fn self_loop_is_a_cycle() {
        let c = cfg(&[("a", &["a"], &[])]);
        let g = Graph::build(&c);
        assert_eq!(g.cycles(), vec![vec![0, 0]]);
    }

    #[test]
    fn two_disjoint_cycles_are_both_reported() {
        let c = cfg(&[("a", &["b"], &[]), ("b", &["a"], &[]), ("c", &["d"], &[]), ("d", &["c"], &[])]);
        let g = Graph::build(&c);
        assert_eq!(g.cycles().len(), 2);
    }

    #[test]
    fn missing_references_are_collected() {
        let c = cfg(&[("a", &["nope"], &["gone.toml"])]);
        let g = Graph::build(&c);
        assert_eq!(g.missing.len(), 2);
        assert_eq!(g.missing[0], Missing { from: 0, edge: Edge::Requires, name: "nope".into() });
        assert!(!g.missing[1].edge.missing_is_error());
    }
}
