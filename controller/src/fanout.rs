//! Doing the same thing on many nodes at once, with bounded concurrency.

use futures::StreamExt;

use crate::inventory::Node;

/// How many agents are spoken to at the same time by default (`--concurrency`).
pub const FANOUT: usize = 64;

/// Calls `f` on every node, at most [`FANOUT`] at a time; results in node order.
pub async fn fan_out<'a, F, Fut, T>(nodes: &'a [Node], f: F) -> Vec<T>
where
    F: Fn(&'a Node) -> Fut,
    Fut: std::future::Future<Output = T> + 'a,
{
    fan_out_with(nodes, FANOUT, f).await
}

/// [`fan_out`] over any items (nodes, held leases), at most `limit` (at least 1) at a
/// time.
pub async fn fan_out_with<'a, I, F, Fut, T>(nodes: &'a [I], limit: usize, f: F) -> Vec<T>
where
    F: Fn(&'a I) -> Fut,
    Fut: std::future::Future<Output = T> + 'a,
{
    // Each node's future is made only when its turn comes: made up front, 10,000 of them
    // (each as large as its deepest await) held about 20 KiB apiece. The stream maps
    // indices, not `&Node`s, so the caller's future stays `Send` (a closure over
    // `&'a Node` items would tie it to a higher-ranked lifetime).
    let f = &f;
    let mut v: Vec<(usize, T)> = futures::stream::iter(0..nodes.len())
        .map(move |i| {
            let fut = f(&nodes[i]);
            async move { (i, fut.await) }
        })
        .buffer_unordered(limit.max(1))
        .collect()
        .await;
    v.sort_by_key(|(i, _)| *i);
    v.into_iter().map(|(_, t)| t).collect()
}

/// A fleet command may keep many connections open at once (a scenario's leases over TLS
/// on 10,000 nodes; an agent simulator serving thousands of sockets in a test): the soft
/// limit on open files is raised to the hard one.
pub fn raise_open_files() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}
