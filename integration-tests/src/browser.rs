//! A headless Chromium driven over the DevTools protocol, for tests that
//! look at the status page as a person would. The protocol runs over
//! `--remote-debugging-pipe` (JSON messages ending in NUL on file
//! descriptors 3 and 4), so no WebSocket client is needed.

use std::{
    fs::File,
    io::{BufRead, BufReader, Write},
    os::fd::{FromRawFd, RawFd},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc::{self, Receiver},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use tempfile::TempDir;

/// A running browser with one page attached.
pub struct Browser {
    child: Child,
    commands: File,
    messages: Receiver<Value>,
    next_id: u64,
    session: Option<String>,
    _profile: TempDir,
}

/// A pipe whose ends are closed on exec (the child gets dup2'ed copies).
fn pipe() -> Result<(RawFd, RawFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok((fds[0], fds[1]))
}

impl Browser {
    /// Starts `chromium` (or `$CHROMIUM`) headless with a fresh profile.
    pub fn launch() -> Result<Browser> {
        let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into());
        let profile = tempfile::tempdir()?;
        let (cmd_read, cmd_write) = pipe()?;
        let (msg_read, msg_write) = pipe()?;
        let mut command = Command::new(&binary);
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--remote-debugging-pipe",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: dup2 is async-signal-safe; the descriptors are open.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, move || {
                if libc::dup2(cmd_read, 3) < 0 || libc::dup2(msg_write, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {binary} (install Debian's chromium)"))?;
        // SAFETY: these descriptors came from pipe2 and are owned here.
        unsafe {
            libc::close(cmd_read);
            libc::close(msg_write);
        }
        // SAFETY: as above; each File now owns its descriptor.
        let commands = unsafe { File::from_raw_fd(cmd_write) };
        let replies = unsafe { File::from_raw_fd(msg_read) };
        let (tx, messages) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(replies);
            loop {
                let mut message = Vec::new();
                match reader.read_until(0, &mut message) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        message.pop();
                        if let Ok(value) = serde_json::from_slice::<Value>(&message) {
                            if tx.send(value).is_err() {
                                break;
                            }
                        }
                    }
                }
            }
        });
        Ok(Browser {
            child,
            commands,
            messages,
            next_id: 1,
            session: None,
            _profile: profile,
        })
    }

    /// Calls `method` (on the page once one is open) and returns its result.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = &self.session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = serde_json::to_vec(&message)?;
        bytes.push(0);
        self.commands.write_all(&bytes)?;
        let deadline = Instant::now() + crate::DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let reply = self
                .messages
                .recv_timeout(left)
                .map_err(|_| anyhow!("no answer to {method} within {:?}", crate::DEADLINE))?;
            if reply["id"] == id {
                if let Some(error) = reply.get("error") {
                    bail!("{method}: {error}");
                }
                return Ok(reply["result"].clone());
            }
        }
    }

    /// Opens `url` in a new page and attaches to it.
    pub fn open(&mut self, url: &str) -> Result<()> {
        let target = self.call("Target.createTarget", json!({ "url": url }))?;
        let target_id = target["targetId"].as_str().context("targetId")?.to_string();
        let attached = self.call(
            "Target.attachToTarget",
            json!({ "targetId": target_id, "flatten": true }),
        )?;
        self.session = Some(
            attached["sessionId"]
                .as_str()
                .context("sessionId")?
                .to_string(),
        );
        Ok(())
    }

    /// The value of `expression` in the page.
    pub fn eval(&mut self, expression: &str) -> Result<Value> {
        let result = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true }),
        )?;
        if let Some(exception) = result.get("exceptionDetails") {
            bail!("{expression}: {exception}");
        }
        Ok(result["result"]["value"].clone())
    }

    /// Waits until `expression` is true in the page, at most `within`.
    pub fn wait_for(&mut self, expression: &str, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if self.eval(expression).is_ok_and(|v| v == json!(true)) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("{expression} not true within {within:?}");
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Saves a PNG of the page at `path`.
    pub fn screenshot(&mut self, path: &Path) -> Result<()> {
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png" }))?;
        let data = shot["data"].as_str().context("screenshot data")?;
        std::fs::write(path, base64_decode(data)?)?;
        Ok(())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Standard base64 (the screenshot's encoding), without a crate for it.
fn base64_decode(text: &str) -> Result<Vec<u8>> {
    let value = |c: u8| -> Result<u32> {
        Ok(match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => bail!("not base64: {c}"),
        })
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|&c| c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= value(c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::base64_decode;

    #[test]
    fn base64_decodes_padded_and_unpadded_ends() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap_or_default(), b"hello");
        assert_eq!(base64_decode("aGk=").unwrap_or_default(), b"hi");
        assert_eq!(base64_decode("YWJj").unwrap_or_default(), b"abc");
    }
}
