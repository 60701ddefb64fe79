//! `static:///a,b,c`: the endpoint set is the list, once and for all.

use futures_util::{StreamExt, stream};
use podlb_core::{Endpoint, EndpointAddr, Update};

use crate::UpdateStream;

/// One `Reset` with every listed address, then a stream that never ends (a
/// static upstream never loses its endpoints).
pub(crate) fn discover(addrs: &[EndpointAddr]) -> UpdateStream {
    let set = addrs.iter().copied().map(Endpoint::new).collect();
    stream::once(async move { Ok(Update::Reset(set)) })
        .chain(stream::pending())
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    #[tokio::test]
    async fn yields_one_reset_then_stays_open() {
        let addrs: Vec<EndpointAddr> = vec!["127.0.0.1:1".parse().unwrap()];
        let mut updates = discover(&addrs);
        let first = updates.next().await.unwrap();
        assert_eq!(first, Ok(Update::Reset(vec![Endpoint::new(addrs[0])])));
        assert!(updates.next().now_or_never().is_none());
    }
}
