use super::*;

fn env() -> Env {
    Env {
        home: "/home/ada".into(),
        config_home: "/home/ada/.config".into(),
        uid: 1000,
        path: "/home/ada/.npm/bin:/usr/bin:/opt/50%".into(),
        daemon: "/opt/remote agent/bin/remoteagentd".into(),
        cloud: Some("/opt/remote agent/bin/remoteagent-cloud".into()),
        cloud_config: "/home/ada/.config/remoteagent/cloud \"100%\" $HOME.toml".into(),
    }
}

fn plist_dict(text: &str) -> plist::Dictionary {
    plist::Value::from_reader_xml(text.as_bytes())
        .unwrap()
        .into_dictionary()
        .unwrap()
}

fn strings(value: &plist::Value) -> Vec<&str> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_string().unwrap())
        .collect()
}

#[test]
fn names_and_labels() {
    assert_eq!(Unit::Daemon.name(), "remoteagentd.service");
    assert_eq!(Unit::Cloud.name(), "remoteagent-cloud.service");
    assert_eq!(Unit::Cloud.label(), "dev.remoteagent.cloud");
}

#[test]
fn unit_is_filled_in_and_escaped() {
    let unit = render_unit(Unit::Daemon, &env());
    assert!(
        unit.contains("ExecStart=\"/opt/remote agent/bin/remoteagentd\"\n"),
        "{unit}"
    );
    assert!(
        unit.contains("Environment=\"PATH=/home/ada/.npm/bin:/usr/bin:/opt/50%%\"\n"),
        "{unit}"
    );
    assert!(!unit.contains('@'), "{unit}");
    assert!(unit.contains("Type=notify"));
    // Ordered after the cloud, without pulling it in.
    assert!(unit.contains("\nAfter=network-online.target remoteagent-cloud.service\n"));
    assert!(!unit.contains("Wants=remoteagent-cloud"), "{unit}");
}

#[test]
fn cloud_unit_runs_serve_with_its_config_quoted_and_escaped() {
    let unit = render_unit(Unit::Cloud, &env());
    // `%` is a specifier and `$` a variable in an argument; `"` and `\` are
    // escaped inside the quotes.
    assert!(
        unit.contains(
            "\nExecStart=\"/opt/remote agent/bin/remoteagent-cloud\" --config \
             \"/home/ada/.config/remoteagent/cloud \\\"100%%\\\" $$HOME.toml\" serve\n"
        ),
        "{unit}"
    );
    assert!(!unit.contains('@'), "{unit}");
    for line in [
        "Type=exec",
        "Restart=on-failure",
        "UMask=0077",
        "NoNewPrivileges=yes",
        "WantedBy=default.target",
    ] {
        assert!(unit.lines().any(|l| l == line), "no {line}: {unit}");
    }
    assert!(unit.lines().any(|l| l.starts_with("RestartSec=")));
    // The cloud needs no PATH of the user's (it runs no AI CLIs).
    assert!(!unit.contains("Environment=\"PATH"), "{unit}");
}

#[test]
fn without_a_cloud_binary_the_unit_names_the_one_beside_the_daemon() {
    let mut e = env();
    e.cloud = None;
    let unit = render_unit(Unit::Cloud, &e);
    assert!(
        unit.contains("ExecStart=\"/opt/remote agent/bin/remoteagent-cloud\" --config"),
        "{unit}"
    );
}

#[test]
fn plist_is_filled_in_and_escaped() {
    let mut e = env();
    e.path = "/a&b".into();
    let plist = render_plist(Unit::Daemon, &e);
    assert!(plist.contains("<string>/opt/remote agent/bin/remoteagentd</string>"));
    assert!(plist.contains("<string>/a&amp;b</string>"));
    assert!(plist.contains("/home/ada/Library/Logs/remoteagent/remoteagentd.log"));
    assert!(!plist.contains('@'));
}

#[test]
fn plist_parses_with_the_keys_launchd_needs() {
    let dict = plist_dict(&render_plist(Unit::Daemon, &env()));
    assert_eq!(dict["Label"].as_string(), Some(Unit::Daemon.label()));
    assert_eq!(
        strings(&dict["ProgramArguments"]),
        vec!["/opt/remote agent/bin/remoteagentd"]
    );
    assert_eq!(dict["RunAtLoad"].as_boolean(), Some(true));
    let keep_alive = dict["KeepAlive"].as_dictionary().unwrap();
    assert_eq!(keep_alive["SuccessfulExit"].as_boolean(), Some(false));
    let env = dict["EnvironmentVariables"].as_dictionary().unwrap();
    assert_eq!(
        env["PATH"].as_string(),
        Some("/home/ada/.npm/bin:/usr/bin:/opt/50%")
    );
    assert!(
        dict["StandardErrorPath"]
            .as_string()
            .unwrap()
            .ends_with("remoteagentd.log")
    );
}

#[test]
fn cloud_plist_parses_and_runs_serve_with_its_config() {
    let mut e = env();
    e.cloud_config = "/Users/ada/Library/Application Support/remoteagent/<a&b>.toml".into();
    let text = render_plist(Unit::Cloud, &e);
    assert!(!text.contains('@'), "{text}");
    let dict = plist_dict(&text);
    assert_eq!(dict["Label"].as_string(), Some("dev.remoteagent.cloud"));
    assert_eq!(
        strings(&dict["ProgramArguments"]),
        vec![
            "/opt/remote agent/bin/remoteagent-cloud",
            "--config",
            "/Users/ada/Library/Application Support/remoteagent/<a&b>.toml",
            "serve"
        ]
    );
    assert_eq!(dict["RunAtLoad"].as_boolean(), Some(true));
    let keep_alive = dict["KeepAlive"].as_dictionary().unwrap();
    assert_eq!(keep_alive["SuccessfulExit"].as_boolean(), Some(false));
    // 0o077: the database and the signing key are the user's alone.
    assert_eq!(dict["Umask"].as_signed_integer(), Some(0o077));
    assert_eq!(
        dict["StandardErrorPath"].as_string(),
        Some("/home/ada/Library/Logs/remoteagent/remoteagent-cloud.log")
    );
}

#[test]
fn systemd_plans_for_both_units() {
    let e = env();
    for unit in [Unit::Daemon, Unit::Cloud] {
        let name = unit.name();
        let p = plan(Platform::Systemd, Action::Install, unit, &e);
        assert_eq!(
            p.write[0].0,
            PathBuf::from(format!("/home/ada/.config/systemd/user/{name}"))
        );
        assert_eq!(p.write[0].1, render_unit(unit, &e));
        assert_eq!(
            p.run,
            vec![
                args(&["systemctl", "--user", "daemon-reload"]),
                args(&["systemctl", "--user", "enable", "--now", name]),
            ]
        );
        let p = plan(Platform::Systemd, Action::Uninstall, unit, &e);
        assert_eq!(
            p.remove,
            vec![PathBuf::from(format!(
                "/home/ada/.config/systemd/user/{name}"
            ))]
        );
        assert_eq!(
            p.run[0],
            args(&["systemctl", "--user", "disable", "--now", name])
        );
        for (action, verb) in [
            (Action::Start, "start"),
            (Action::Stop, "stop"),
            (Action::Restart, "restart"),
        ] {
            let p = plan(Platform::Systemd, action, unit, &e);
            assert_eq!(p.run, vec![args(&["systemctl", "--user", verb, name])]);
            assert!(p.write.is_empty() && p.remove.is_empty());
        }
        let p = plan(Platform::Systemd, Action::Status, unit, &e);
        assert_eq!(p.run[0].last().map(String::as_str), Some(name));
    }
    let described = plan(Platform::Systemd, Action::Uninstall, Unit::Daemon, &e).describe();
    assert_eq!(
        described,
        "# would run: systemctl --user disable --now remoteagentd.service\n\
         # would run: systemctl --user daemon-reload\n\
         # would remove /home/ada/.config/systemd/user/remoteagentd.service\n"
    );
}

#[test]
fn launchd_plans_for_both_units() {
    let e = env();
    for unit in [Unit::Daemon, Unit::Cloud] {
        let label = unit.label();
        let plist = format!("/home/ada/Library/LaunchAgents/{label}.plist");
        let target = format!("gui/1000/{label}");
        let p = plan(Platform::Launchd, Action::Install, unit, &e);
        assert_eq!(p.write[0].0, PathBuf::from(&plist));
        assert_eq!(p.write[0].1, render_plist(unit, &e));
        assert_eq!(
            p.mkdir,
            vec![PathBuf::from("/home/ada/Library/Logs/remoteagent")]
        );
        assert_eq!(
            p.run,
            vec![args(&["launchctl", "bootstrap", "gui/1000", &plist])]
        );
        let p = plan(Platform::Launchd, Action::Uninstall, unit, &e);
        assert_eq!(p.run, vec![args(&["launchctl", "bootout", &target])]);
        assert_eq!(p.remove, vec![PathBuf::from(&plist)]);
        let p = plan(Platform::Launchd, Action::Start, unit, &e);
        assert_eq!(p.run, vec![args(&["launchctl", "kickstart", &target])]);
        let p = plan(Platform::Launchd, Action::Restart, unit, &e);
        assert_eq!(
            p.run,
            vec![args(&["launchctl", "kickstart", "-k", &target])]
        );
        let p = plan(Platform::Launchd, Action::Stop, unit, &e);
        assert_eq!(
            p.run,
            vec![args(&["launchctl", "kill", "SIGTERM", &target])]
        );
        let p = plan(Platform::Launchd, Action::Status, unit, &e);
        assert_eq!(p.run, vec![args(&["launchctl", "print", &target])]);
    }
}

#[test]
fn execute_writes_runs_and_removes_in_order() {
    // A plan of real files and a real command (`true` stands in for the
    // service manager's tool, which `execute` only requires to exist).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a/b/unit.service");
    let mut p = Plan::new(Unit::Daemon);
    p.write.push((file.clone(), "[Unit]\n".into()));
    if which("systemctl").is_none() {
        // `execute` refuses without the tool, with words that say so.
        let err = execute(&p, Platform::Systemd, Action::Install).unwrap_err();
        assert!(
            format!("{err:#}").contains("systemctl was not found"),
            "{err:#}"
        );
        return;
    }
    p.run.push(args(&["true"]));
    execute(&p, Platform::Systemd, Action::Install).unwrap();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "[Unit]\n");

    let mut p = Plan::new(Unit::Daemon);
    p.run.push(args(&["false"]));
    p.run.push(args(&["true"]));
    p.remove.push(file.clone());
    // Uninstall removes the file even though disabling failed.
    let err = execute(&p, Platform::Systemd, Action::Uninstall).unwrap_err();
    assert!(format!("{err:#}").contains("`false` failed"), "{err:#}");
    assert!(!file.exists());
}
