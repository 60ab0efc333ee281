//! The example web service (`examples/api.rs`) as a process on a free port, and a raw
//! HTTP/1.1 client for it that can send what a hostile client sends: any header, a
//! body over the limit, a body announced and never sent.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use todo_store::testing::TestDb;

use crate::support::examples::example_binary;

/// The service, on a free port, stopped when dropped.
pub struct Service {
    child: Child,
    addr: String,
    stdout: BufReader<ChildStdout>,
}

/// An answer: its status, its `Content-Type` and its body as text.
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The `Content-Type` header, empty when there is none.
    pub content_type: String,
    /// The body (de-chunked).
    pub body: String,
}

impl Reply {
    /// The body as JSON (null when empty, a string when it is not JSON).
    pub fn json(&self) -> Value {
        if self.body.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&self.body).unwrap_or(Value::String(self.body.clone()))
        }
    }
}

/// How long a test waits for an answer: a server waiting for a body the client never
/// sends does not answer within it.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(10);

impl Service {
    /// Starts the example against `db`, on a free port.
    pub fn start(db: &TestDb) -> Service {
        Service::start_with(db, &[])
    }

    /// Starts the example against `db`, on a free port, with these environment
    /// variables as well (`DATABASE_POOL_SIZE`, `API_CALLS`).
    pub fn start_with(db: &TestDb, env: &[(&str, &str)]) -> Service {
        let mut child = Command::new(example_binary("api"))
            .env("DATABASE_URL", db.url())
            .env("API_ADDR", "127.0.0.1:0")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the api example starts");
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_owned();
        Service {
            child,
            addr,
            stdout,
        }
    }

    /// Stops the service as Ctrl-C does and returns what it printed after its first
    /// line (the `served: ...` counters).
    pub fn stop(mut self) -> String {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).unwrap();
        let exit = self.child.wait().unwrap();
        assert!(exit.success(), "the service exited with {exit}: {rest}");
        rest
    }

    /// One HTTP/1.1 request with a JSON body, if any; the status and the JSON body
    /// (null when empty).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        auth: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut headers: Vec<(&str, &str)> = auth.to_vec();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        if !body.is_empty() {
            headers.push(("Content-Type", "application/json"));
        }
        let reply = self.send(method, path, &headers, body.as_bytes());
        (reply.status, reply.json())
    }

    /// One HTTP/1.1 request exactly as given: `Content-Length` is the body's unless
    /// `headers` set it (a larger one withholds the rest of the body). The body is
    /// written while the answer is read, and a server that stops reading it (an
    /// answer before the body) is no error.
    pub fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream.set_read_timeout(Some(ANSWER_WITHIN)).unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        let mut writer = stream.try_clone().unwrap();
        let sender = std::thread::spawn(move || {
            // Refused mid-body: the answer is what counts.
            let _ = writer.write_all(&request);
        });
        let mut response = Vec::new();
        let mut chunk = [0; 16 * 1024];
        loop {
            match stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => response.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    panic!("{method} {path}: no answer within {ANSWER_WITHIN:?}")
                }
                // A reset after an answer to a body the server did not read.
                Err(_) if !response.is_empty() => break,
                Err(e) => panic!("{method} {path}: {e}"),
            }
        }
        let _ = stream.shutdown(std::net::Shutdown::Both);
        sender.join().unwrap();
        let response = String::from_utf8_lossy(&response).into_owned();
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
        let header = |name: &str| {
            head.lines().skip(1).find_map(|line| {
                let (n, v) = line.split_once(':')?;
                n.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
        };
        let chunked =
            header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        Reply {
            status,
            content_type: header("content-type").unwrap_or_default(),
            body: if chunked {
                dechunk(body)
            } else {
                body.to_owned()
            },
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}
