//! Opening a store as deployed: unknown schemes, refused and silent servers, and TLS.

use retake_store::testing::pg_admin_url;
use retake_store::{connect, url_kind, StoreError, UrlKind};

fn pg_reachable_or_skip() -> bool {
    // The contract suite reports a missing server loudly; here it is enough not to fail.
    std::net::TcpStream::connect("127.0.0.1:5432").is_ok()
        || std::env::var("RETAKE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

#[test]
fn urls_name_their_store_or_are_refused() {
    assert_eq!(url_kind("postgres://u@h/db").unwrap(), UrlKind::Postgres);
    assert_eq!(url_kind("postgresql://h/db").unwrap(), UrlKind::Postgres);
    assert_eq!(url_kind("sqlite:/tmp/x.db").unwrap(), UrlKind::Sqlite);
    assert_eq!(
        url_kind("./retake-data/retake.db").unwrap(),
        UrlKind::Sqlite
    );
    for bad in ["postgress://u@h/db", "mysql://root@h/db", "redis://h"] {
        match url_kind(bad) {
            Err(StoreError::Invalid { field, message }) => {
                assert_eq!(field.as_deref(), Some("database_url"));
                let scheme = bad.split("://").next().unwrap();
                assert!(message.contains(scheme), "{message}");
                assert!(message.contains("postgres://"), "{message}");
            }
            other => panic!("{bad}: expected a refusal, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_unknown_scheme_creates_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("mysql://{}/db", dir.path().display());
    assert!(connect(&url).await.is_err());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn a_refused_server_names_the_cause() {
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let err = match connect("postgres://postgres@127.0.0.1:1/test").await {
        Err(e) => e,
        Ok(_) => panic!("connected to nothing"),
    };
    let text = err.to_string();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert!(text.contains("127.0.0.1:1"), "{text}");
    assert!(
        text.to_lowercase().contains("refused"),
        "the cause is named: {text}"
    );
}

#[tokio::test]
async fn a_silent_server_fails_with_a_clear_message() {
    // Accepts TCP connections and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            open.push(s);
        }
    });
    let err = match connect(&format!("postgres://postgres@127.0.0.1:{port}/test")).await {
        Err(e) => e,
        Ok(_) => panic!("a silent server cannot be connected to"),
    };
    held.abort();
    let text = err.to_string();
    assert!(text.contains("did not answer"), "{text}");
    assert!(text.contains(&port.to_string()), "{text}");
}

#[tokio::test]
async fn tls_is_available_to_postgres() {
    if !pg_reachable_or_skip() {
        eprintln!("*** SKIPPED: TLS test — no PostgreSQL on 127.0.0.1:5432 ***");
        return;
    }
    let admin = pg_admin_url();
    let sep = if admin.contains('?') { '&' } else { '?' };
    let ssl_on = {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&admin).await.unwrap();
        let on: String = sqlx::query_scalar("SHOW ssl")
            .fetch_one(&mut c)
            .await
            .unwrap();
        on == "on"
    };
    if ssl_on {
        // The server offers TLS: `require` encrypts without checking the certificate.
        let store = connect(&format!("{admin}{sep}sslmode=require"))
            .await
            .expect("sslmode=require connects");
        assert_eq!(store.backend_name(), "postgres");
        // `verify-full` against a certificate no trusted authority signed is refused, and says so.
        let err = match connect(&format!("{admin}{sep}sslmode=verify-full")).await {
            Err(e) => e.to_string(),
            Ok(_) => panic!("verify-full accepted an unverifiable certificate"),
        };
        assert!(
            err.to_lowercase().contains("certificate") || err.to_lowercase().contains("tls"),
            "{err}"
        );
    } else {
        // Without TLS on the server, `require` fails with the server's answer, not "built without TLS".
        let err = match connect(&format!("{admin}{sep}sslmode=require")).await {
            Err(e) => e.to_string(),
            Ok(_) => panic!("sslmode=require connected without TLS"),
        };
        assert!(!err.contains("without TLS support"), "{err}");
    }
}
