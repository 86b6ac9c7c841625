//! Redis over TLS for tests: a throwaway certificate authority and a
//! server certificate for 127.0.0.1 made with `openssl`, and a
//! `redis-server` (Debian's is built with TLS) listening on a plain port
//! and a TLS port at once, so a test can set up ACL users over the plain
//! one and point daemons at `rediss://`.
//!
//! Clients trust the CA through `SSL_CERT_FILE` (rustls-native-certs reads
//! it instead of the system's roots); set it on the child process that
//! connects, never in a test binary whose tests run in parallel threads.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A CA (`ca.pem`) and a server certificate and key signed by it, valid
/// for `127.0.0.1` and `localhost`, in a temporary directory.
pub struct TestCa {
    dir: tempfile::TempDir,
}

impl TestCa {
    /// Makes a new CA and server certificate (each call a different CA).
    pub fn generate() -> anyhow::Result<TestCa> {
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        // clientAuth too: a cluster's nodes present it to each other, and
        // the cluster bus always checks the peer's certificate.
        std::fs::write(
            d.join("server.ext"),
            "basicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth,clientAuth\n\
             subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )?;
        // A name of its own: a client that trusts another test CA must not
        // even find this one's issuer.
        let subject = format!(
            "/CN=RemoteAgent test CA {}",
            d.file_name().and_then(|n| n.to_str()).unwrap_or("x")
        );
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        openssl(
            d,
            &[
                &["req", "-x509", "-nodes"],
                &ec[..],
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                    "-days",
                    "2",
                    "-subj",
                    &subject,
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ],
            ]
            .concat(),
        )?;
        openssl(
            d,
            &[
                &["req", "-nodes"],
                &ec[..],
                &[
                    "-keyout",
                    "server.key",
                    "-out",
                    "server.csr",
                    "-subj",
                    "/CN=127.0.0.1",
                ],
            ]
            .concat(),
        )?;
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        )?;
        Ok(TestCa { dir })
    }

    /// The CA certificate (PEM): what `SSL_CERT_FILE` points at.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn server_cert(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    pub fn server_key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }
}

fn openssl(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .context("running openssl (is it installed?)")?;
    if !out.status.success() {
        bail!(
            "openssl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// A private `redis-server` with a plain port and a TLS port (no
/// persistence, clients need no certificate of their own).
pub struct TlsRedisServer {
    port: u16,
    tls_port: u16,
    _dir: tempfile::TempDir,
    child: Child,
}

impl TlsRedisServer {
    /// Starts it with `ca`'s server certificate and waits until both ports
    /// accept connections.
    pub fn start(ca: &TestCa) -> anyhow::Result<TlsRedisServer> {
        let dir = tempfile::tempdir()?;
        let port = crate::free_port();
        let mut tls_port = crate::free_port();
        while tls_port == port {
            tls_port = crate::free_port();
        }
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string()])
            .args(["--tls-port", &tls_port.to_string()])
            .arg("--tls-cert-file")
            .arg(ca.server_cert())
            .arg("--tls-key-file")
            .arg(ca.server_key())
            .arg("--tls-ca-cert-file")
            .arg(ca.ca())
            .args(["--tls-auth-clients", "no"])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server (is it installed?)")?;
        let mut server = TlsRedisServer {
            port,
            tls_port,
            _dir: dir,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let up = |p: u16| std::net::TcpStream::connect(("127.0.0.1", p)).is_ok();
            if up(port) && up(tls_port) {
                return Ok(server);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                bail!("redis-server with TLS exited at start ({status}): is it built with TLS?");
            }
            if Instant::now() > deadline {
                bail!("redis-server on ports {port} and {tls_port} (TLS) did not start");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://127.0.0.1:{port}`, the plain port.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `rediss://127.0.0.1:{tls_port}`, the TLS port.
    pub fn tls_url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.tls_port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn tls_port(&self) -> u16 {
        self.tls_port
    }
}

impl Drop for TlsRedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Redis Cluster of three primaries speaking only TLS, between
/// themselves too (`tls-cluster`), with `ca`'s server certificate.
pub struct TlsRedisCluster {
    ports: Vec<u16>,
    _dir: tempfile::TempDir,
    children: Vec<Child>,
}

impl TlsRedisCluster {
    /// Starts the nodes, joins them with `redis-cli --cluster create` and
    /// waits until every node reports `cluster_state:ok`.
    pub fn start(ca: &TestCa) -> anyhow::Result<TlsRedisCluster> {
        let dir = tempfile::tempdir()?;
        let mut cluster = TlsRedisCluster {
            ports: Vec::new(),
            _dir: dir,
            children: Vec::new(),
        };
        for _ in 0..3 {
            let mut port = crate::free_port();
            while cluster.ports.contains(&port) {
                port = crate::free_port();
            }
            let child = Command::new("redis-server")
                .args(["--port", "0", "--tls-port", &port.to_string()])
                .arg("--tls-cert-file")
                .arg(ca.server_cert())
                .arg("--tls-key-file")
                .arg(ca.server_key())
                .arg("--tls-ca-cert-file")
                .arg(ca.ca())
                .args(["--tls-auth-clients", "no", "--tls-cluster", "yes"])
                .args(["--tls-replication", "yes", "--cluster-enabled", "yes"])
                .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(cluster._dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting redis-server (is it installed?)")?;
            cluster.ports.push(port);
            cluster.children.push(child);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cluster
            .ports
            .iter()
            .all(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok())
        {
            if Instant::now() > deadline {
                bail!("the TLS cluster's nodes did not start");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut create = vec!["--cluster".to_string(), "create".to_string()];
        create.extend(cluster.ports.iter().map(|p| format!("127.0.0.1:{p}")));
        create.push("--cluster-yes".into());
        cluster.cli(ca, &create)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = cluster.ports.clone().into_iter().all(|p| {
                cluster
                    .cli_output(
                        ca,
                        &["-p".into(), p.to_string(), "CLUSTER".into(), "INFO".into()],
                    )
                    .is_ok_and(|out| out.contains("cluster_state:ok"))
            });
            if ok {
                return Ok(cluster);
            }
            if Instant::now() > deadline {
                bail!("the TLS cluster did not reach cluster_state:ok");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The seed nodes, comma-separated `rediss://` URLs.
    pub fn tls_urls(&self) -> String {
        self.ports
            .iter()
            .map(|p| format!("rediss://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn cli(&self, ca: &TestCa, args: &[String]) -> anyhow::Result<()> {
        self.cli_output(ca, args).map(drop)
    }

    fn cli_output(&self, ca: &TestCa, args: &[String]) -> anyhow::Result<String> {
        let out = Command::new("timeout")
            .arg("60")
            .arg("redis-cli")
            .args(["--tls", "-h", "127.0.0.1", "-p", &self.ports[0].to_string()])
            .arg("--cacert")
            .arg(ca.ca())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("running redis-cli")?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "redis-cli {} failed: {text}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(text)
    }
}

impl Drop for TlsRedisCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
