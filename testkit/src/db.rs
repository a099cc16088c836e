use std::{
    hash::{DefaultHasher, Hash, Hasher},
    path::Path,
    time::Duration,
};

use shared::{config::DatabaseConfig, db::Pool};
use tokio_postgres::NoTls;

/// A database of its own for one test, cloned from a template that was migrated once per
/// schema version. Dropped (with `FORCE`) when the value is dropped, also when the test
/// panics.
#[derive(Debug)]
pub struct TestDb {
    /// A pool on this test's database.
    pub pool: Pool,
    /// The database's name.
    pub name: String,
    /// The URL of this test's database.
    pub url: String,
    admin_url: String,
}

/// Serialises template creation across test processes.
const TEMPLATE_LOCK_KEY: i64 = 0x5A1E_5A6E_7E57;

impl TestDb {
    /// Connections of a test's pool (shared by the app under test and the assertions).
    pub const POOL_SIZE: usize = 8;

    /// Creates the database. Panics (failing the test) with a clear message when PostgreSQL
    /// is not reachable.
    pub async fn new() -> Self {
        let admin_url = std::env::var("DATABASE_URL").unwrap_or_else(|_| {
            panic!(
                "DATABASE_URL is not set: run the tests through scripts/test.sh, which starts a \
                 throwaway PostgreSQL, or point DATABASE_URL at a server where you may create databases"
            )
        });
        let template = ensure_template(&admin_url).await;
        let name = format!("test_{}", ulid::Ulid::new().to_string().to_lowercase());
        let admin = connect(&admin_url).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .await
            .unwrap_or_else(|e| panic!("creating test database {name}: {e:?}"));
        let url = url_with_database(&admin_url, &name);
        let pool = shared::db::connect(&DatabaseConfig::for_url(&url, Self::POOL_SIZE))
            .unwrap_or_else(|e| panic!("test pool: {e}"));
        Self {
            pool,
            name,
            url,
            admin_url,
        }
    }

    /// The single number a counting query returns (`SELECT count(*) ...`), for assertions.
    pub async fn count(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> i64 {
        self.client()
            .await
            .query_one(sql, params)
            .await
            .and_then(|row| row.try_get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// A fresh connection outside the pool, for assertions on rows.
    pub async fn client(&self) -> shared::db::PooledClient {
        self.pool
            .get()
            .await
            .unwrap_or_else(|e| panic!("test database connection: {e}"))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        self.pool.close();
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which cannot be blocked on; a thread with its
        // own small runtime does the async work.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let (client, connection) = tokio_postgres::connect(&admin_url, NoTls).await.ok()?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("warning: test database {} was not dropped", self.name);
        }
    }
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to DATABASE_URL: {e}"));
    tokio::spawn(connection);
    client
}

/// Returns the name of a template database holding the current migrations, creating it if
/// needed. Its name carries a hash of the migration files, so a changed migration makes a
/// new template instead of reusing a stale one.
async fn ensure_template(admin_url: &str) -> String {
    let template = format!("tmpl_{:016x}", migrations_hash());
    let admin = connect(admin_url).await;
    admin
        .execute("SELECT pg_advisory_lock($1)", &[&TEMPLATE_LOCK_KEY])
        .await
        .unwrap_or_else(|e| panic!("template lock: {e}"));
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&template])
        .await
        .unwrap_or_else(|e| panic!("template lookup: {e}"))
        .is_some();
    if !exists {
        build_template(&admin, admin_url, &template).await;
    }
    admin
        .execute("SELECT pg_advisory_unlock($1)", &[&TEMPLATE_LOCK_KEY])
        .await
        .unwrap_or_else(|e| panic!("template unlock: {e}"));
    template
}

/// Migrates under a temporary name and renames at the end, so a template that failed
/// half-way is never used.
async fn build_template(admin: &tokio_postgres::Client, admin_url: &str, template: &str) {
    let building = format!("{template}_building");
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
        .await
        .unwrap_or_else(|e| panic!("dropping a half-built template: {e:?}"));
    admin
        .batch_execute(&format!("CREATE DATABASE {building}"))
        .await
        .unwrap_or_else(|e| panic!("creating the template database: {e:?}"));
    let pool = shared::db::connect(&DatabaseConfig::for_url(
        url_with_database(admin_url, &building),
        1,
    ))
    .unwrap_or_else(|e| panic!("template pool: {e}"));
    shared::db::migrate::run(&pool)
        .await
        .unwrap_or_else(|e| panic!("migrating the template: {e:?}"));
    pool.close();
    // CREATE DATABASE ... TEMPLATE and RENAME need the template to have no sessions.
    for _ in 0..100 {
        let sessions: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
                &[&building],
            )
            .await
            .and_then(|row| row.try_get(0))
            .unwrap_or(0);
        if sessions == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    admin
        .batch_execute(&format!("ALTER DATABASE {building} RENAME TO {template}"))
        .await
        .unwrap_or_else(|e| panic!("publishing the template: {e:?}"));
}

fn migrations_hash() -> u64 {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .collect();
    entries.sort();
    let mut hasher = DefaultHasher::new();
    for path in entries {
        path.file_name().hash(&mut hasher);
        std::fs::read(&path).unwrap_or_default().hash(&mut hasher);
    }
    hasher.finish()
}

/// Replaces the database name of a `postgres://` URL.
pub(crate) fn url_with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut result = format!("{}/{database}", &base[..authority_end]);
    if let Some(query) = query {
        result.push('?');
        result.push_str(query);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::url_with_database;

    #[test]
    fn replaces_or_adds_the_database_name() {
        assert_eq!(
            url_with_database("postgres://u:p@h:5432/postgres?sslmode=disable", "t1"),
            "postgres://u:p@h:5432/t1?sslmode=disable"
        );
        assert_eq!(
            url_with_database("postgres://u@h:1", "t2"),
            "postgres://u@h:1/t2"
        );
    }
}
