//! Redis over TLS, the way README tells a self-hoster to publish it: the
//! cloud and daemons on `rediss://`, trusting the server's private CA
//! through `SSL_CERT_FILE`. The daemon pairs, logs in as its ACL user over TLS
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
    // The cloud over TLS too; daemons get its `rediss://` URL without
    // credentials (`PUBLIC_REDIS_URL`'s default).
    let ca_file = ca.ca().to_str().unwrap().to_string();
    let cloud = Cloud::start_env(
        &redis.tls_url(),
        &tg.api_base(),
        &tg.token(),
        None,
        &[("SSL_CERT_FILE", &ca_file)],
    )
    .await
    .unwrap();
    let mut home = Home::new(&cloud.url).unwrap();
    home.set_env("SSL_CERT_FILE", &ca_file);
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

    // The agent's ACL user and the cloud are connected on the TLS port
    // only; the plain port has this test's admin connection alone.
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
    assert!(
        clients.lines().any(|l| l.contains(" user=ra-agent-")),
        "no agent connected:\n{clients}"
    );
    let plain_addr = format!(" laddr=127.0.0.1:{} ", redis.port());
    let on_plain = clients.lines().filter(|l| l.contains(&plain_addr)).count();
    assert_eq!(on_plain, 1, "connections on the plain port:\n{clients}");
}
