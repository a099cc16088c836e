//! [`TestApp`]: what every function's integration tests start from. A database of its own,
//! the function's router driven in-process, fakes for the providers (Meta's Graph API and
//! OpenAI, wiremock servers that record every request) with our real clients pointed at
//! them, and the in-process reply queue, checked empty when the test ends.

use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use shared::{
    api::ApiState,
    jobs::{LocalQueue, ReplyJob, ReplyQueue},
    meta::graph::{Graph, GraphConfig},
    openai::{OpenAi, OpenAiConfig},
};
use wiremock::{MockServer, Request};

use crate::{TestClient, TestDb, TestResponse, TestTenant};

/// One test's application. Build it with [`TestApp::new`], give it the function's router
/// with [`TestApp::serve`] (a consumer without routes skips that).
///
/// **Queue check:** a test that ends with jobs left in [`TestApp::queue`] fails, as crates.io's
/// harness fails a test that leaves background jobs: a job nobody looked at is either a bug
/// (published twice, published for a refused event) or an assertion missing. Take the jobs
/// with [`TestApp::take_jobs`] (and assert on them), or call [`TestApp::leave_jobs`] in a
/// test that means to leave them.
#[derive(Debug)]
pub struct TestApp {
    /// The test's database (dropped with the app).
    pub db: TestDb,
    /// The function's router, driven in-process.
    pub api: TestClient,
    /// Meta's Graph API (wiremock; the suite mounts its answers).
    pub meta: MockServer,
    /// OpenAI (wiremock; the suite mounts its answers).
    pub openai: MockServer,
    /// The in-process reply queue the state publishes to.
    pub queue: LocalQueue<ReplyJob>,
    jobs_may_remain: AtomicBool,
}

impl TestApp {
    /// A fresh database, provider fakes with no routes yet, an empty queue and no router.
    pub async fn new() -> Self {
        let (db, meta, openai) =
            tokio::join!(TestDb::new(), MockServer::start(), MockServer::start());
        Self {
            db,
            api: TestClient::new(Router::new()),
            meta,
            openai,
            queue: LocalQueue::new(),
            jobs_may_remain: AtomicBool::new(false),
        }
    }

    /// Serves `router` (built from [`TestApp::api_state`], [`TestApp::graph`], …).
    pub fn serve(mut self, router: Router) -> Self {
        self.api = TestClient::new(router);
        self
    }

    /// The HTTP functions' common state on this database, built like production's
    /// ([`ApiState::with_pool`]), verifying [`TestTenant`] tokens.
    pub fn api_state(&self) -> ApiState {
        crate::api_state(&self.db)
    }

    /// Our real Graph client, pointed at [`TestApp::meta`].
    pub fn graph(&self) -> Graph {
        Graph::new(
            reqwest::Client::new(),
            GraphConfig::for_base_url(&self.meta.uri()),
        )
    }

    /// Our real OpenAI client, pointed at [`TestApp::openai`] (5 s timeout).
    pub fn openai_client(&self) -> OpenAi {
        OpenAi::new(
            reqwest::Client::new(),
            OpenAiConfig {
                base_url: self.openai.uri(),
                api_key: "sk-test".to_owned().into(),
                timeout: std::time::Duration::from_secs(5),
            },
        )
    }

    /// The reply queue for a state: publishes into [`TestApp::queue`].
    pub fn reply_queue(&self) -> ReplyQueue {
        ReplyQueue::Local(self.queue.clone())
    }

    /// A tenant with an account, provisioned by a first authenticated call as in
    /// production (the router must answer `GET path` for a tenant).
    pub async fn tenant_via(&self, label: &str, path: &str) -> TestTenant {
        let tenant = TestTenant::new(label);
        self.get_as(&tenant, path).await.expect(200);
        tenant
    }

    /// `GET` as the tenant.
    pub async fn get_as(&self, tenant: &TestTenant, path: &str) -> TestResponse {
        self.api.get(path, &tenant.token()).await
    }

    /// `POST` JSON as the tenant.
    pub async fn post_as(
        &self,
        tenant: &TestTenant,
        path: &str,
        body: &serde_json::Value,
    ) -> TestResponse {
        self.api.post(path, &tenant.token(), body).await
    }

    /// `PATCH` JSON as the tenant.
    pub async fn patch_as(
        &self,
        tenant: &TestTenant,
        path: &str,
        body: &serde_json::Value,
    ) -> TestResponse {
        self.api.patch(path, &tenant.token(), body).await
    }

    /// `DELETE` as the tenant.
    pub async fn delete_as(&self, tenant: &TestTenant, path: &str) -> TestResponse {
        self.api.delete(path, &tenant.token()).await
    }

    /// How many rows a counting query counts.
    pub async fn count(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> i64 {
        self.db.count(sql, params).await
    }

    /// The requests a fake received whose path ends with `suffix`, in order.
    pub async fn requests_to(server: &MockServer, suffix: &str) -> Vec<Request> {
        server
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.url.path().ends_with(suffix))
            .collect()
    }

    /// The JSON bodies of the requests a fake received whose path ends with `suffix`, in
    /// order (`null` for a body that is not JSON).
    pub async fn json_bodies_to(server: &MockServer, suffix: &str) -> Vec<serde_json::Value> {
        Self::requests_to(server, suffix)
            .await
            .iter()
            .map(|r| serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null))
            .collect()
    }

    /// Takes every job waiting in the queue, oldest first (the test asserts on them).
    pub fn take_jobs(&self) -> Vec<ReplyJob> {
        self.queue.drain()
    }

    /// This test means to leave jobs in the queue: the check at the end is skipped.
    pub fn leave_jobs(&self) {
        self.jobs_may_remain.store(true, Ordering::SeqCst);
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if std::thread::panicking() || self.jobs_may_remain.load(Ordering::SeqCst) {
            return;
        }
        let left = self.queue.waiting_count();
        assert!(
            left == 0,
            "{left} job(s) left in the queue at the end of the test: take them with \
             `app.take_jobs()` and assert on them, or call `app.leave_jobs()` if the test \
             means to leave them"
        );
    }
}
