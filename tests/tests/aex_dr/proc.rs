//! A process of `aex_dr_bench` in a lab host: stderr collected, killed if
//! the test ends first (`aex_dr` uses `weavers_tests::procs::Proc`).

use std::io::Read;
use std::process::{Child, ExitStatus};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weavers_tests::{bins, Lab};

/// An `aex` process in a lab host.
pub struct Proc {
    child: Option<Child>,
    stderr: Arc<Mutex<String>>,
}

impl Proc {
    pub fn spawn(lab: &Lab, host: usize, args: &[String]) -> Proc {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child = lab.host(host).spawn(bins::aex().to_str().unwrap(), &args);
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Proc { child: Some(child), stderr }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: a signal to a child this test started.
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }

    /// Waits up to `timeout` for the exit.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(s) = self.child.as_mut()?.try_wait().ok().flatten() {
                self.child = None;
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
