//! Running one health check once: a TCP connect, an HTTP/1.1 GET over
//! plain TCP or over TLS (`https://`, the server's certificate checked
//! against the system's CA store and the URL's host name) expecting a 2xx
//! status line, or a program that must exit 0. Each run is bounded by the
//! check's timeout; the answer is pass or fail with a reason for the log.

use std::{pin::Pin, process::Stdio, time::Duration};

use openssl::ssl::{SslConnector, SslMethod};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};

use crate::settings::CheckKind;

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The run took longer than the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Connecting, writing or reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The HTTP answer was not 2xx (or not HTTP).
    #[error("HTTP status line {0:?}")]
    Status(String),
    /// The program exited unsuccessfully.
    #[error("exited with {0}")]
    Exit(std::process::ExitStatus),
    /// The URL could not be used (validation should have refused it).
    #[error("bad URL {0:?}")]
    Url(String),
    /// The TLS handshake of an `https://` check failed (an untrusted or
    /// mismatched certificate, or no TLS at all).
    #[error("TLS: {0}")]
    Tls(String),
}

/// Runs `kind` once within `timeout`.
pub async fn run(kind: &CheckKind, timeout: Duration) -> Result<(), ProbeError> {
    match tokio::time::timeout(timeout, run_unbounded(kind)).await {
        Ok(result) => result,
        Err(_) => Err(ProbeError::Timeout(timeout)),
    }
}

async fn run_unbounded(kind: &CheckKind) -> Result<(), ProbeError> {
    match kind {
        CheckKind::Tcp(addr) => {
            TcpStream::connect(addr.as_str()).await?;
            Ok(())
        }
        CheckKind::Http(url) => http_get(url).await,
        CheckKind::Exec(argv) => {
            let Some((program, args)) = argv.split_first() else {
                return Err(ProbeError::Url(String::new()));
            };
            // kill_on_drop: a run that times out does not leave its process.
            let status = tokio::process::Command::new(program)
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .status()
                .await?;
            if status.success() {
                Ok(())
            } else {
                Err(ProbeError::Exit(status))
            }
        }
    }
}

/// Where a GET goes.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    /// `host:port` to connect to (port 80 or 443 unless given).
    connect: String,
    /// The `Host` header: the URL's authority.
    host: String,
    /// The host name the certificate must name (`https://` only).
    tls_name: Option<String>,
    /// Path and query.
    path: String,
}

/// `http[s]://authority/path` → where to connect and what to ask.
fn split_url(url: &str) -> Option<Target> {
    let (rest, tls, default_port) = match url.strip_prefix("https://") {
        Some(rest) => (rest, true, 443),
        None => (url.strip_prefix("http://")?, false, 80),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return None;
    }
    let has_port = authority.contains(':') && !authority.ends_with(']');
    let connect = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:{default_port}")
    };
    let name = if has_port {
        &authority[..authority.rfind(':')?]
    } else {
        authority
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    Some(Target {
        connect,
        host: authority.to_string(),
        tls_name: tls.then(|| name.to_string()),
        path: path.to_string(),
    })
}

async fn http_get(url: &str) -> Result<(), ProbeError> {
    let Some(target) = split_url(url) else {
        return Err(ProbeError::Url(url.to_string()));
    };
    let tcp = TcpStream::connect(target.connect.as_str()).await?;
    let Some(name) = &target.tls_name else {
        return get_status(tcp, &target).await;
    };
    let tls = |e: &dyn std::fmt::Display| ProbeError::Tls(e.to_string());
    // The connector's defaults: the system's CA store, peer verification,
    // and (with configure) SNI and the host name check.
    let ssl = SslConnector::builder(SslMethod::tls_client())
        .map_err(|e| tls(&e))?
        .build()
        .configure()
        .map_err(|e| tls(&e))?
        .into_ssl(name)
        .map_err(|e| tls(&e))?;
    let mut stream = tokio_openssl::SslStream::new(ssl, tcp).map_err(|e| tls(&e))?;
    Pin::new(&mut stream).connect().await.map_err(|e| tls(&e))?;
    get_status(stream, &target).await
}

/// Sends the GET on `stream` and reads the status line: 2xx passes.
async fn get_status(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    target: &Target,
) -> Result<(), ProbeError> {
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: catalogue-check\r\nConnection: close\r\n\r\n",
        target.path, target.host
    );
    stream.write_all(request.as_bytes()).await?;
    // The status line is all we need: read until its end (bounded).
    let mut head = Vec::with_capacity(128);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 1024 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or_default().to_string();
    let code = line.split_whitespace().nth(1).unwrap_or_default();
    if line.starts_with("HTTP/") && code.len() == 3 && code.starts_with('2') {
        Ok(())
    } else {
        Err(ProbeError::Status(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(connect: &str, host: &str, tls_name: Option<&str>, path: &str) -> Target {
        Target {
            connect: connect.into(),
            host: host.into(),
            tls_name: tls_name.map(Into::into),
            path: path.into(),
        }
    }

    #[test]
    fn urls_are_split_with_a_default_port() {
        assert_eq!(
            split_url("http://h/health?x=1"),
            Some(target("h:80", "h", None, "/health?x=1"))
        );
        assert_eq!(
            split_url("http://127.0.0.1:8080"),
            Some(target("127.0.0.1:8080", "127.0.0.1:8080", None, "/"))
        );
        assert_eq!(
            split_url("https://db.example/ready"),
            Some(target(
                "db.example:443",
                "db.example",
                Some("db.example"),
                "/ready"
            ))
        );
        assert_eq!(
            split_url("https://[::1]:8443/"),
            Some(target("[::1]:8443", "[::1]:8443", Some("::1"), "/"))
        );
        assert_eq!(split_url("http:///x"), None);
        assert_eq!(split_url("ftp://h/"), None);
    }

    /// A one-shot HTTP server answering `status_line` to one request.
    fn answer_once(status_line: &'static str) -> std::io::Result<String> {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?.to_string();
        std::thread::spawn(move || {
            if let Ok((mut stream, _)) = listener.accept() {
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf);
                let _ = write!(stream, "{status_line}\r\nContent-Length: 0\r\n\r\n");
            }
        });
        Ok(addr)
    }

    #[tokio::test]
    async fn http_passes_on_2xx_only() -> std::io::Result<()> {
        let timeout = Duration::from_secs(5);
        let ok = answer_once("HTTP/1.1 204 No Content")?;
        assert!(
            run(&CheckKind::Http(format!("http://{ok}/health")), timeout)
                .await
                .is_ok()
        );
        let down = answer_once("HTTP/1.1 503 Service Unavailable")?;
        let err = run(&CheckKind::Http(format!("http://{down}/")), timeout).await;
        assert!(
            matches!(err, Err(ProbeError::Status(ref l)) if l.contains("503")),
            "{err:?}"
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_silent_server_times_out_and_a_closed_port_fails() -> std::io::Result<()> {
        // Accepted by the kernel, never answered.
        let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = silent.local_addr()?.to_string();
        let err = run(
            &CheckKind::Http(format!("http://{addr}/")),
            Duration::from_millis(100),
        )
        .await;
        assert!(matches!(err, Err(ProbeError::Timeout(_))), "{err:?}");
        assert!(
            run(&CheckKind::Tcp(addr.clone()), Duration::from_secs(5))
                .await
                .is_ok()
        );
        drop(silent);
        let err = run(&CheckKind::Tcp(addr), Duration::from_secs(5)).await;
        assert!(matches!(err, Err(ProbeError::Io(_))), "{err:?}");
        Ok(())
    }

    #[tokio::test]
    async fn exec_passes_on_exit_zero() {
        let timeout = Duration::from_secs(5);
        let ok = run(&CheckKind::Exec(vec!["true".into()]), timeout).await;
        assert!(ok.is_ok(), "{ok:?}");
        let err = run(&CheckKind::Exec(vec!["false".into()]), timeout).await;
        assert!(matches!(err, Err(ProbeError::Exit(_))), "{err:?}");
        let err = run(
            &CheckKind::Exec(vec!["sleep".into(), "5".into()]),
            Duration::from_millis(100),
        )
        .await;
        assert!(matches!(err, Err(ProbeError::Timeout(_))), "{err:?}");
    }
}
