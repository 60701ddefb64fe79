//! The retry budget caps retries through the proxy under a full outage:
//! every backend answers UNAVAILABLE, the policy would retry each call 4
//! times, and the attempts the backends saw stay within the calls plus 20%
//! of them plus the budget's floor of 10 per second (the defaults).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod retry_support;
mod support;

use podlb_proxy::retry::BudgetConfig;
use podlb_testkit::TestBackend;
use podlb_testkit::retry_scenarios::budget_caps_retries;
use retry_support::{proxy_with, retry_unavailable};

#[tokio::test]
async fn the_default_budget_caps_retries_under_a_full_outage() {
    let backends = [
        TestBackend::start("b1").await,
        TestBackend::start("b2").await,
        TestBackend::start("b3").await,
    ];
    let addrs: Vec<_> = backends.iter().map(TestBackend::addr).collect();
    let budget = BudgetConfig::default();
    let proxy = proxy_with(&addrs, retry_unavailable(5), Some(budget)).await;
    let refs: Vec<&TestBackend> = backends.iter().collect();
    budget_caps_retries(
        proxy.client().await,
        &refs,
        200,
        budget.ratio,
        f64::from(budget.min_per_second),
    )
    .await;
    proxy.stop().await;
}
