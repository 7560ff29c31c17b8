//! The HTTP API from another language: `integration-tests/py/api_client.py`,
//! written with Python's standard library only, registers with a lease over
//! the API socket, watches with Server-Sent Events, resumes after its
//! connection is killed, renews, lets a lease expire and revokes one,
//! checking every event (the script exits non-zero at the first surprise).

use std::{path::Path, process::Command, time::Duration};

use anyhow::{Context, Result, ensure};
use catalogue_integration_tests::Daemon;

#[test]
fn a_python_standard_library_client_uses_the_api() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let socket = dir.path().join("api.sock");
    let mut daemon = Daemon::builder()
        .http()
        .set("http.socket", &socket.display().to_string())
        .start()?;
    daemon.wait_log(catalogue_integration_tests::DEADLINE, |l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("HTTP API listening on a UNIX socket"))
    })?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("py/api_client.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .arg(&daemon.http)
        .arg(&socket)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("python3 (the CI installs it)")?;
    // The script bounds each of its waits; this bounds the whole.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "the script ran over 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        status.success(),
        "api_client.py failed ({status}):\n{stdout}\n{stderr}"
    );
    ensure!(stdout.contains("all checks passed"), "{stdout}");
    Ok(())
}
