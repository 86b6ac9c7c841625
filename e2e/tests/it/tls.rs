//! Redis over TLS, the way README tells a self-hoster to publish it: the
//! cloud on the server's plain port (a private network), daemons told
//! `PUBLIC_REDIS_URL=rediss://…`, trusting the server's private CA through
//! `SSL_CERT_FILE`. The daemon pairs, logs in as its ACL user over TLS
//! (its JWT never in clear) and runs a prompt.

use std::time::Duration;

use remoteagent_e2e::{Cloud, Daemon, Home, fixture};
use remoteagent_testkit::telegram::FakeTelegram;
use remoteagent_testkit::{TestCa, TlsRedisServer, wait_for};

const OWNER: i64 = 1001;
const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_daemon_pairs_and_runs_a_prompt_over_rediss() {
    let ca = TestCa::generate().unwrap();
    let redis = TlsRedisServer::start(&ca).unwrap();
    let tg = FakeTelegram::start().await;
    let cloud = Cloud::start_env(
        &redis.url(),
        &tg.api_base(),
        &tg.token(),
        None,
        &[("PUBLIC_REDIS_URL", &redis.tls_url())],
    )
    .await
    .unwrap();
    let mut home = Home::new(&cloud.url).unwrap();
    home.set_env("SSL_CERT_FILE", ca.ca().to_str().unwrap());
    let daemon = Daemon::start(&home).await.unwrap();
    let logs = || {
        format!(
            "cloud:\n{}\ndaemon:\n{}",
            cloud.proc.tail(40),
            daemon.proc.tail(40)
        )
    };

    let project = home.project("webapp").unwrap();
    let runner = fixture("answer.sh");
    let (mut ctl, code) = home
        .start_pairing(
            "pair-webapp",
            &project,
            &["--command", runner.to_str().unwrap()],
        )
        .await;
    cloud.say(OWNER, &format!("/pair {code}")).await;
    let exit = ctl.wait(WAIT).await.unwrap();
    assert_eq!(exit, Some(0), "pair failed:\n{}\n{}", ctl.output(), logs());

    cloud.say(OWNER, "hello over tls").await;
    let answered = wait_for(WAIT, || {
        let done = tg
            .messages(OWNER)
            .into_iter()
            .any(|m| m.text.contains("Finished.") && m.text.contains("hello over tls"));
        async move { done.then_some(()) }
    })
    .await;
    assert!(
        answered.is_some(),
        "no answer; messages: {:#?}\n{}",
        tg.messages(OWNER)
            .into_iter()
            .map(|m| m.text)
            .collect::<Vec<_>>(),
        logs()
    );

    // The agent's ACL user is connected on the TLS port, and only there.
    let mut admin = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection_with_config(&remoteagent_testkit::conn_config())
        .await
        .unwrap();
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut admin)
        .await
        .unwrap();
    let agents: Vec<&str> = clients
        .lines()
        .filter(|l| l.contains(" user=ra-agent-"))
        .collect();
    assert!(!agents.is_empty(), "no agent connected:\n{clients}");
    let tls_addr = format!(" laddr=127.0.0.1:{} ", redis.tls_port());
    assert!(
        agents.iter().all(|l| l.contains(&tls_addr)),
        "an agent connection not on the TLS port {}:\n{clients}",
        redis.tls_port()
    );
}
