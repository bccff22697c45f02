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

/// [`fan_out`], at most `limit` (at least 1) at a time.
pub async fn fan_out_with<'a, F, Fut, T>(nodes: &'a [Node], limit: usize, f: F) -> Vec<T>
where
    F: Fn(&'a Node) -> Fut,
    Fut: std::future::Future<Output = T> + 'a,
{
    // The futures are made up front (not started): a closure inside the stream would make
    // the caller's future lose `Send` to a higher-ranked lifetime.
    let futs: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let fut = f(n);
            async move { (i, fut.await) }
        })
        .collect();
    let mut v: Vec<(usize, T)> = futures::stream::iter(futs)
        .buffer_unordered(limit.max(1))
        .collect()
        .await;
    v.sort_by_key(|(i, _)| *i);
    v.into_iter().map(|(_, t)| t).collect()
}
