//! The retry budget caps the client library's retries under a full outage:
//! every server answers UNAVAILABLE, the policy would retry each call 4
//! times, and the attempts the servers saw stay within the calls plus 20%
//! of them plus the budget's floor of 10 per second (the defaults, which
//! the builder starts with).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fault_support;
mod retry_support;

use podlb_client::BudgetConfig;
use podlb_testkit::retry_scenarios::budget_caps_retries;
use podlb_testkit::{TestBackend, TestServiceClient};
use retry_support::{builder, connected, retry_unavailable};

#[tokio::test]
async fn the_default_budget_caps_retries_under_a_full_outage() {
    let backends = [
        TestBackend::start("b1").await,
        TestBackend::start("b2").await,
        TestBackend::start("b3").await,
    ];
    let addrs: Vec<_> = backends.iter().map(TestBackend::addr).collect();
    let channel = connected(builder(&addrs).retry(retry_unavailable(5)), &addrs).await;
    let budget = BudgetConfig::default();
    let refs: Vec<&TestBackend> = backends.iter().collect();
    budget_caps_retries(
        TestServiceClient::new(channel),
        &refs,
        200,
        budget.ratio,
        f64::from(budget.min_per_second),
    )
    .await;
}
