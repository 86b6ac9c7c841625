use std::os::unix::fs::PermissionsExt;

use remoteagent_testkit::RedisServer;

use super::*;

fn attachment(agent: &AgentId, id: &str, name: &str, bytes: &[u8]) -> Attachment {
    Attachment {
        key: names::blob_key(agent, id),
        name: name.into(),
        mime: "image/jpeg".into(),
        size: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(bytes)),
    }
}

async fn redis() -> (RedisServer, redis::aio::MultiplexedConnection) {
    let server = RedisServer::start().unwrap();
    let conn = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection_with_config(&remoteagent_testkit::conn_config())
        .await
        .unwrap();
    (server, conn)
}

async fn put(conn: &mut redis::aio::MultiplexedConnection, key: &str, bytes: &[u8]) {
    redis::cmd("SET")
        .arg(key)
        .arg(bytes)
        .arg("EX")
        .arg(600)
        .query_async::<()>(conn)
        .await
        .unwrap();
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn colliding_names_get_a_number_before_the_extension() {
    let taken = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(unique_name("a.png", &taken(&[])), "a.png");
    assert_eq!(unique_name("a.png", &taken(&["a.png"])), "a-2.png");
    assert_eq!(
        unique_name("a.png", &taken(&["a.png", "a-2.png"])),
        "a-3.png"
    );
    assert_eq!(unique_name("README", &taken(&["README"])), "README-2");
    assert_eq!(unique_name("x.tar.gz", &taken(&["x.tar.gz"])), "x.tar-2.gz");
}

#[test]
fn limits_refuse_too_many_or_too_large() {
    let agent = AgentId::generate();
    let limits = AttachmentLimits {
        max_files: 2,
        max_total_bytes: 10,
    };
    let one = attachment(&agent, "b1", "a.jpg", b"12345");
    assert_eq!(limit_refusal(std::slice::from_ref(&one), &limits), None);
    let three = vec![one.clone(), one.clone(), one.clone()];
    let refusal = limit_refusal(&three, &limits).unwrap();
    assert!(
        refusal.starts_with("3 files came with the prompt; this daemon takes at most 2"),
        "{refusal}"
    );
    let big = attachment(&agent, "b2", "big.bin", b"0123456789x");
    let refusal = limit_refusal(&[big], &limits).unwrap();
    assert!(
        refusal.contains("hold 11 bytes; this daemon takes at most 10 bytes"),
        "{refusal}"
    );
}

#[test]
fn mime_types_are_cleaned_for_the_prompt() {
    assert_eq!(clean_mime("image/jpeg"), "image/jpeg");
    assert_eq!(clean_mime("text/x-c++src"), "text/x-c++src");
    assert_eq!(clean_mime("a\nb)\u{202e}"), "ab");
    assert_eq!(clean_mime(""), "application/octet-stream");
}

#[tokio::test]
async fn files_land_in_a_private_inbox_with_unique_names_and_the_blobs_go() {
    let (_server, mut conn) = redis().await;
    let root = tempfile::tempdir().unwrap();
    let settings = InboxSettings {
        root: root.path().join("inbox"),
        limits: AttachmentLimits::default(),
    };
    let agent = AgentId::generate();
    let session = SessionId::generate();
    let a = attachment(&agent, "b1", "../../etc/photo.jpg", b"first");
    let b = attachment(&agent, "b2", "photo.jpg", b"second");
    put(&mut conn, &a.key, b"first").await;
    put(&mut conn, &b.key, b"second").await;

    let attached = receive(
        &mut conn,
        &settings,
        &agent,
        &session,
        &[a.clone(), b.clone()],
    )
    .await
    .unwrap();

    let dir = session_dir(&settings.root, &agent, &session);
    assert_eq!(attached.dir, dir);
    let paths: Vec<PathBuf> = attached.files.iter().map(|f| f.path.clone()).collect();
    assert_eq!(paths, vec![dir.join("photo.jpg"), dir.join("photo-2.jpg")]);
    assert_eq!(std::fs::read(&paths[0]).unwrap(), b"first");
    assert_eq!(std::fs::read(&paths[1]).unwrap(), b"second");
    assert_eq!(attached.files[1].size, 6);
    assert_eq!(attached.files[1].mime, "image/jpeg");
    for d in [&settings.root, &settings.root.join(agent.as_str()), &dir] {
        assert_eq!(mode(d), 0o700, "{}", d.display());
    }
    for p in &paths {
        assert_eq!(mode(p), 0o600, "{}", p.display());
    }
    let left: i64 = redis::cmd("EXISTS")
        .arg(&a.key)
        .arg(&b.key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 0, "fetched blobs are deleted");
}

#[tokio::test]
async fn one_bad_file_refuses_the_whole_command_and_leaves_nothing() {
    let (_server, mut conn) = redis().await;
    let root = tempfile::tempdir().unwrap();
    let settings = InboxSettings {
        root: root.path().join("inbox"),
        limits: AttachmentLimits::default(),
    };
    let agent = AgentId::generate();
    let good = attachment(&agent, "good", "ok.txt", b"fine");
    put(&mut conn, &good.key, b"fine").await;

    // Changed after it was sent (same length).
    let tampered = attachment(&agent, "t1", "report.pdf", b"original");
    put(&mut conn, &tampered.key, b"Original").await;
    let session = SessionId::generate();
    let refusal = receive(
        &mut conn,
        &settings,
        &agent,
        &session,
        &[good.clone(), tampered],
    )
    .await
    .unwrap_err();
    assert_eq!(
        refusal,
        "the attached file report.pdf does not match its SHA-256: it was changed after it was sent; nothing ran"
    );
    assert!(!session_dir(&settings.root, &agent, &session).exists());
    let kept: i64 = redis::cmd("EXISTS")
        .arg(&good.key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(kept, 1, "a refused command deletes no blob");

    // Another length than announced.
    let longer = attachment(&agent, "t2", "a.bin", b"abc");
    put(&mut conn, &longer.key, b"abcd").await;
    let refusal = receive(
        &mut conn,
        &settings,
        &agent,
        &SessionId::generate(),
        &[longer],
    )
    .await
    .unwrap_err();
    assert!(
        refusal.contains("a.bin has 4 bytes, not the 3"),
        "{refusal}"
    );

    // Gone (expired).
    let gone = attachment(&agent, "gone", "old.png", b"x");
    let refusal = receive(
        &mut conn,
        &settings,
        &agent,
        &SessionId::generate(),
        &[gone],
    )
    .await
    .unwrap_err();
    assert!(
        refusal.starts_with("the attached file old.png is no longer stored"),
        "{refusal}"
    );

    // Another agent's blob, or a pattern: refused before any GET.
    let other = AgentId::generate();
    let foreign = attachment(&other, "b1", "theirs.txt", b"fine");
    put(&mut conn, &foreign.key, b"fine").await;
    let mut pattern = attachment(&agent, "x", "p.txt", b"fine");
    pattern.key = format!("blob:{agent}:*");
    for bad in [foreign, pattern] {
        let refusal = receive(
            &mut conn,
            &settings,
            &agent,
            &SessionId::generate(),
            &[good.clone(), bad],
        )
        .await
        .unwrap_err();
        assert!(
            refusal.contains("is not stored for this agent"),
            "{refusal}"
        );
    }
    // A malformed hash.
    let mut no_hash = good.clone();
    no_hash.sha256 = "ABC".into();
    let refusal = receive(
        &mut conn,
        &settings,
        &agent,
        &SessionId::generate(),
        &[no_hash],
    )
    .await
    .unwrap_err();
    assert!(refusal.contains("no valid SHA-256"), "{refusal}");
    // None of these left an inbox behind.
    let agent_dir = settings.root.join(agent.as_str());
    let left = std::fs::read_dir(&agent_dir).map_or(0, |d| d.count());
    assert_eq!(left, 0);
}

#[test]
fn an_inbox_goes_with_its_session_log() {
    let root = tempfile::tempdir().unwrap();
    let inbox = root.path().join("inbox");
    let logs = root.path().join("logs");
    let agent = AgentId::generate();
    let (kept, pruned, current) = (
        SessionId::generate(),
        SessionId::generate(),
        SessionId::generate(),
    );
    for s in [&kept, &pruned, &current] {
        let dir = session_dir(&inbox, &agent, s);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.txt"), b"x").unwrap();
    }
    let log = crate::session_log::session_log_path(&logs, &agent, &kept);
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    std::fs::write(&log, b"log").unwrap();
    // `current` has no log yet: it is being received right now.
    prune(&inbox, &logs, &agent, &current);
    assert!(session_dir(&inbox, &agent, &kept).exists());
    assert!(!session_dir(&inbox, &agent, &pruned).exists());
    assert!(session_dir(&inbox, &agent, &current).exists());
}

#[test]
fn a_refusal_of_a_command_with_files_says_they_were_not_kept() {
    let agent = AgentId::generate();
    let one = attachment(&agent, "b1", "a.jpg", b"1");
    assert_eq!(not_kept_note(&[]), "");
    assert_eq!(
        not_kept_note(std::slice::from_ref(&one)),
        " (a.jpg was not kept: send it again with your prompt)"
    );
    assert!(not_kept_note(&[one.clone(), one]).contains("the 2 files"));
}
