//! Stage `graph`: [`Config`] → a petgraph DAG of declarations, with cycle
//! diagnostics naming every edge of each cycle at its source span.
//!
//! Invariants: no IO. Edges point from a dependency to its dependent and carry
//! the span of the reference that created them. The topological order is
//! deterministic (source order breaks ties).

use crate::diagnostic::{Diagnostic, Diags, Span};
use crate::eval::{Config, DeclId};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::collections::BTreeSet;

#[derive(Debug, Clone)]
pub struct Graph {
    pub dag: DiGraph<DeclId, Span>,
    pub index: HashMap<DeclId, NodeIndex>,
    /// Every node, dependencies first.
    pub order: Vec<NodeIndex>,
}

impl Graph {
    pub fn node(&self, id: &DeclId) -> Option<NodeIndex> {
        self.index.get(id).copied()
    }

    /// Direct dependencies of a node.
    pub fn dependencies(&self, n: NodeIndex) -> impl Iterator<Item = NodeIndex> + '_ {
        self.dag.neighbors_directed(n, Direction::Incoming)
    }

    pub fn dependents(&self, n: NodeIndex) -> impl Iterator<Item = NodeIndex> + '_ {
        self.dag.neighbors_directed(n, Direction::Outgoing)
    }

    /// The nodes in `roots` and everything they depend on, transitively.
    pub fn with_dependencies(&self, roots: impl IntoIterator<Item = NodeIndex>) -> HashSet<NodeIndex> {
        let mut seen = HashSet::default();
        let mut stack: Vec<NodeIndex> = roots.into_iter().collect();
        while let Some(n) = stack.pop() {
            if seen.insert(n) {
                stack.extend(self.dependencies(n));
            }
        }
        seen
    }

    /// For every resource: the resources it depends on, directly or through
    /// lets, params, data blocks and provider configurations (recorded in
    /// state so that deletes can run in reverse order without the
    /// configuration). Data blocks have an entry too: a data block is read
    /// during apply when one of these has a planned change.
    pub fn resource_dependencies(&self) -> HashMap<String, BTreeSet<String>> {
        let mut upstream: HashMap<NodeIndex, BTreeSet<String>> = HashMap::default();
        let mut out = HashMap::default();
        for &n in &self.order {
            let mut set = BTreeSet::new();
            for d in self.dependencies(n) {
                match &self.dag[d] {
                    DeclId::Resource(a) => {
                        set.insert(a.clone());
                    }
                    _ => {
                        if let Some(s) = upstream.get(&d) {
                            set.extend(s.iter().cloned());
                        }
                    }
                }
            }
            if let DeclId::Resource(a) | DeclId::Data(a) = &self.dag[n] {
                out.insert(a.clone(), set.clone());
            }
            upstream.insert(n, set);
        }
        out
    }
}

/// Builds the graph; every cycle is a `P3001` diagnostic.
pub fn build(cfg: &Config) -> Result<Graph, Diags> {
    let mut dag: DiGraph<DeclId, Span> = DiGraph::with_capacity(cfg.references.len(), cfg.references.len() * 2);
    let mut index = HashMap::with_capacity_and_hasher(cfg.references.len(), Default::default());
    for id in cfg.references.keys() {
        let n = dag.add_node(id.clone());
        index.insert(id.clone(), n);
    }
    let mut seen_edges: HashSet<(NodeIndex, NodeIndex)> = HashSet::default();
    for (id, refs) in &cfg.references {
        let to = index[id];
        for r in refs {
            if let Some(&from) = index.get(&r.target) {
                if seen_edges.insert((from, to)) {
                    dag.add_edge(from, to, r.span);
                }
            }
        }
    }
    let order = match petgraph::algo::toposort(&dag, None) {
        Ok(_) => stable_order(&dag),
        Err(_) => return Err(cycles(&dag, cfg)),
    };
    Ok(Graph { dag, index, order })
}

/// Kahn's algorithm with the node index (declaration order) breaking ties, so
/// plans list changes in source order.
fn stable_order(dag: &DiGraph<DeclId, Span>) -> Vec<NodeIndex> {
    let mut indegree: Vec<usize> = dag.node_indices().map(|n| dag.neighbors_directed(n, Direction::Incoming).count()).collect();
    let mut ready: std::collections::BinaryHeap<std::cmp::Reverse<usize>> =
        dag.node_indices().filter(|n| indegree[n.index()] == 0).map(|n| std::cmp::Reverse(n.index())).collect();
    let mut order = Vec::with_capacity(dag.node_count());
    while let Some(std::cmp::Reverse(i)) = ready.pop() {
        let n = NodeIndex::new(i);
        order.push(n);
        for m in dag.neighbors_directed(n, Direction::Outgoing) {
            indegree[m.index()] -= 1;
            if indegree[m.index()] == 0 {
                ready.push(std::cmp::Reverse(m.index()));
            }
        }
    }
    order
}

fn cycles(dag: &DiGraph<DeclId, Span>, cfg: &Config) -> Diags {
    let mut diags = Vec::new();
    for scc in petgraph::algo::tarjan_scc(dag) {
        let self_loop = scc.len() == 1 && dag.find_edge(scc[0], scc[0]).is_some();
        if scc.len() < 2 && !self_loop {
            continue;
        }
        let members: HashSet<NodeIndex> = scc.iter().copied().collect();
        // Walk from the first member along edges inside the component until a
        // node repeats: that path is a cycle.
        let Some(&start) = scc.iter().min_by_key(|n| n.index()) else { continue };
        let mut path = vec![start];
        let mut on_path: HashMap<NodeIndex, usize> = [(start, 0usize)].into_iter().collect();
        let mut cur = start;
        let cycle = loop {
            let Some(next) = dag.neighbors_directed(cur, Direction::Outgoing).filter(|m| members.contains(m)).min_by_key(|m| m.index()) else {
                break vec![];
            };
            if let Some(&pos) = on_path.get(&next) {
                let mut c = path[pos..].to_vec();
                c.push(next);
                break c;
            }
            on_path.insert(next, path.len());
            path.push(next);
            cur = next;
        };
        if cycle.len() < 2 {
            continue;
        }
        let names: Vec<String> = cycle.iter().map(|n| format!("`{}`", dag[*n])).collect();
        let mut d = Diagnostic::new("P3001", "dependency cycle").help(format!(
            "These declarations depend on each other in a circle: {}. Break the cycle by removing one of the references or by moving a shared value into a `let` that does not depend on them.",
            names.join(" → ")
        ));
        for pair in cycle.windows(2) {
            let (from, to) = (pair[0], pair[1]);
            // An edge from → to means `to` refers to `from`.
            if let Some(e) = dag.find_edge(from, to) {
                d = d.label(dag[e], format!("`{}` refers to `{}` here", dag[to], dag[from]));
            }
        }
        if d.labels.is_empty() {
            if let Some(span) = cfg.decl_span(&dag[start]) {
                d = d.label(span, "part of a cycle");
            }
        }
        diags.push(d);
    }
    diags
}
