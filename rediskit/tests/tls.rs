//! `rediskit` over TLS (`rediss://`): the server's certificate is checked
//! against the roots rustls-native-certs loads, which `SSL_CERT_FILE`
//! replaces; a certificate from any other CA is refused.
//!
//! One test in a binary of its own: it sets `SSL_CERT_FILE` for the whole
//! process before any other thread exists.

use std::time::Duration;

use remoteagent_rediskit::{Options, Target, conn, nodes};
use remoteagent_testkit::{TestCa, TlsRedisCluster, TlsRedisServer};

#[test]
fn rediss_checks_the_server_certificate_against_ssl_cert_file() {
    let ca = TestCa::generate().unwrap();
    let server = TlsRedisServer::start(&ca).unwrap();
    // A server whose certificate comes from a CA nobody trusts.
    let stranger_ca = TestCa::generate().unwrap();
    let stranger = TlsRedisServer::start(&stranger_ca).unwrap();
    let cluster = TlsRedisCluster::start(&ca).unwrap();

    // SAFETY: this binary's only test, and no other thread has started yet
    // (the runtime is built below); nothing reads the environment meanwhile.
    unsafe { std::env::set_var("SSL_CERT_FILE", ca.ca()) };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let options = Options {
                connection_timeout: Some(Duration::from_secs(10)),
                response_timeout: Some(Duration::from_secs(10)),
                retries: Some(1),
                ..Options::default()
            };
            let target = Target::parse(&server.tls_url(), false).unwrap();
            assert!(!target.is_cluster());
            for mut c in [
                conn::managed(&target, &options).await.unwrap(),
                conn::dedicated(&target, &options).await.unwrap(),
            ] {
                let pong: String = redis::cmd("PING").query_async(&mut c).await.unwrap();
                assert_eq!(pong, "PONG");
            }

            // The unknown CA's certificate is refused, saying why.
            let target = Target::parse(&stranger.tls_url(), false).unwrap();
            let err = match conn::dedicated(&target, &options).await {
                Ok(_) => panic!("connected to a server with a certificate from an unknown CA"),
                Err(e) => e.to_string(),
            };
            assert!(
                err.contains("invalid peer certificate: UnknownIssuer"),
                "{err}"
            );
            let err = match conn::managed(&target, &options).await {
                Ok(_) => panic!("connected to a server with a certificate from an unknown CA"),
                Err(e) => e.to_string(),
            };
            assert!(err.contains("UnknownIssuer"), "{err}");
            let Err(e) = conn::dedicated(&target, &options).await else {
                panic!("connected to a server with a certificate from an unknown CA");
            };
            assert!(conn::explain(&e).contains("SSL_CERT_FILE"), "{e}");

            // Cluster seeds over TLS: redis-rs's cluster connection and
            // rediskit's direct per-node connections (`nodes`) alike.
            let target = Target::parse(&cluster.tls_urls(), false).unwrap();
            assert!(target.is_cluster());
            for mut c in [
                conn::managed(&target, &options).await.unwrap(),
                conn::dedicated(&target, &options).await.unwrap(),
            ] {
                let _: () = redis::cmd("SET")
                    .arg("tls:{a}")
                    .arg("v")
                    .query_async(&mut c)
                    .await
                    .unwrap();
                let v: String = redis::cmd("GET")
                    .arg("tls:{a}")
                    .query_async(&mut c)
                    .await
                    .unwrap();
                assert_eq!(v, "v");
                let answers = nodes::each_node(&mut c, &redis::cmd("PING")).await.unwrap();
                assert_eq!(answers.len(), 3, "{answers:?}");
                assert!(answers.iter().all(|(_, a)| a.is_ok()), "{answers:?}");
            }
        });
}
