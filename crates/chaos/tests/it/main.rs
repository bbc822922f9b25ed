//! The short form of the chaos suite, run by the test command: worker processes, an admin,
//! a SIGKILL, a frozen and a stopped MongoDB, and then not one job lost, failed because of it, or
//! shown wrongly in JobStatus.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_short_chaos_run_loses_nothing_and_job_status_tells_the_truth() {
    let report = sellersync_chaos::run(&sellersync_chaos::Scenario::short())
        .await
        .expect("the harness runs");
    let json = serde_json::to_string_pretty(&report).unwrap();
    assert!(report.passed(), "{json}");
    assert_eq!(
        report.removed_by_admin + report.completed as usize + report.failed as usize,
        report.enqueued,
        "{json}"
    );
    assert_eq!(report.failed, 2, "only the revoked users' jobs fail: {json}");
    assert_eq!(report.retried_by_admin, 2, "{json}");
}
