//! TLS to PostgreSQL (`sslmode`, `sslrootcert`) against the test server, which must offer TLS
//! with a certificate for `localhost` (Debian's PostgreSQL does, with its "snakeoil"
//! certificate; where the server offers no TLS, `.ci/run` gives it such a certificate).

use crate::support::PgSchema;
use warroom::store::postgres::PostgresStore;

/// The test server: its schema for these tests, the host of the test URL and the server's
/// certificate file.
struct Server {
    schema: PgSchema,
    host: String,
    cert_file: String,
}

impl Server {
    async fn get() -> Option<Server> {
        let schema = PgSchema::create().await?;
        let (client, connection) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls)
            .await
            .expect("connect to the test server");
        let task = tokio::spawn(connection);
        let ssl: String = client.query_one("SHOW ssl", &[]).await.unwrap().get(0);
        assert_eq!(
            ssl, "on",
            "the test PostgreSQL server does not offer TLS (ssl = off); .ci/run turns it on"
        );
        let cert_file: String = client
            .query_one("SHOW ssl_cert_file", &[])
            .await
            .unwrap()
            .get(0);
        drop(client);
        task.await.unwrap().unwrap();
        let config: tokio_postgres::Config = schema.url.parse().unwrap();
        let host = match &config.get_hosts()[0] {
            tokio_postgres::config::Host::Tcp(host) => host.clone(),
            other => panic!("the TLS tests need a TCP host in the test URL, not {other:?}"),
        };
        Some(Server {
            schema,
            host,
            cert_file,
        })
    }

    /// The test URL with `host` for its host and `params` added to its query.
    fn url(&self, host: &str, params: &str) -> String {
        let from = format!("@{}", self.host);
        assert!(
            self.schema.url.contains(&from),
            "the TLS tests need a test URL of the form postgres://USER@HOST..."
        );
        let url = self.schema.url.replacen(&from, &format!("@{host}"), 1);
        let joiner = if url.contains('?') { '&' } else { '?' };
        format!("{url}{joiner}{params}")
    }

    async fn connect(&self, host: &str, params: &str) -> Result<PostgresStore, String> {
        PostgresStore::connect(&self.url(host, params), Some(&self.schema.schema), 2)
            .await
            .map_err(|e| e.to_string())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_is_encrypted_unless_told_not_to_be() {
    let Some(server) = Server::get().await else {
        return;
    };
    let host = server.host.clone();
    // No sslmode: prefer, as libpq; the server offers TLS, so it is used.
    let store = PostgresStore::connect(&server.schema.url, Some(&server.schema.schema), 2)
        .await
        .unwrap();
    let version = store.tls_version().await.unwrap();
    assert!(
        version.as_deref().is_some_and(|v| v.starts_with("TLSv1.")),
        "{version:?}"
    );
    for params in ["sslmode=require", "sslmode=prefer"] {
        let store = server.connect(&host, params).await.unwrap();
        assert!(store.tls_version().await.unwrap().is_some(), "{params}");
    }
    let plain = server.connect(&host, "sslmode=disable").await.unwrap();
    assert_eq!(plain.tls_version().await.unwrap(), None);
    // The store works over TLS, not only connects.
    warroom::store::Store::allocate_incident_key(&store)
        .await
        .unwrap();
    server.schema.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_certificate_is_checked_when_asked() {
    let Some(server) = Server::get().await else {
        return;
    };
    let root = format!("sslrootcert={}", server.cert_file);
    // The certificate is its own root and names localhost.
    let store = server
        .connect("localhost", &format!("sslmode=verify-full&{root}"))
        .await
        .unwrap();
    assert!(store.tls_version().await.unwrap().is_some());
    // By address, the name does not match: verify-full refuses, verify-ca does not check it.
    let refused = server
        .connect("127.0.0.1", &format!("sslmode=verify-full&{root}"))
        .await
        .err()
        .expect("a certificate for another name is refused");
    assert!(refused.contains("certificate"), "{refused}");
    for mode in ["verify-ca", "require"] {
        let store = server
            .connect("127.0.0.1", &format!("sslmode={mode}&{root}"))
            .await
            .unwrap();
        assert!(store.tls_version().await.unwrap().is_some(), "{mode}");
    }
    // Roots that did not sign it (the public CAs of ca-certificates' bundle): refused in
    // every mode that checks, by name or not. (`sslrootcert=system` is not tried: where
    // SSL_CERT_DIR is /etc/ssl/certs, as on the development machine, the system's roots
    // include the snakeoil certificate itself.)
    let others = "/etc/ssl/certs/ca-certificates.crt";
    for mode in ["verify-full", "verify-ca", "require"] {
        let params = format!("sslmode={mode}&sslrootcert={others}");
        let refused = server
            .connect("localhost", &params)
            .await
            .err()
            .unwrap_or_else(|| panic!("{params}: a certificate no root signed is refused"));
        assert!(refused.contains("certificate"), "{params}: {refused}");
    }
    // A root file that is not there is named.
    let missing = server
        .connect(
            "localhost",
            "sslmode=verify-full&sslrootcert=/nonexistent/root.pem",
        )
        .await
        .err()
        .unwrap();
    assert!(missing.contains("/nonexistent/root.pem"), "{missing}");
    server.schema.cleanup().await;
}

/// `prefer` (the default) goes on without TLS where TLS fails, as libpq does: here a URL with
/// only `hostaddr`, which leaves no host name for TLS. `require` does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefer_goes_on_without_tls_where_tls_fails() {
    let Some(server) = Server::get().await else {
        return;
    };
    let config: tokio_postgres::Config = server.schema.url.parse().unwrap();
    let credentials = match config.get_password() {
        Some(password) => format!(
            "{}:{}",
            config.get_user().unwrap(),
            percent_encoding::percent_encode(password, percent_encoding::NON_ALPHANUMERIC)
        ),
        None => config.get_user().unwrap().to_string(),
    };
    let url = format!(
        "postgres://{credentials}@/{}?hostaddr=127.0.0.1&port={}",
        config.get_dbname().unwrap(),
        config.get_ports()[0]
    );
    let store = PostgresStore::connect(&url, Some(&server.schema.schema), 2)
        .await
        .unwrap();
    assert_eq!(store.tls_version().await.unwrap(), None);
    warroom::store::Store::allocate_incident_key(&store)
        .await
        .unwrap();
    let refused = PostgresStore::connect(&format!("{url}&sslmode=require"), None, 2)
        .await
        .err()
        .expect("require refuses to go on without TLS");
    assert!(refused.to_string().contains("TLS"), "{refused}");
    server.schema.cleanup().await;
}
